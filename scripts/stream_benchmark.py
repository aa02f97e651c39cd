"""Memory and speed of reading users' own data, keras-ae against the way a user would do it by hand, into benchmarks/stream.json.

    KERAS_AE_DATA=../shared/data python scripts/stream_benchmark.py --inputs /tmp/stream_inputs --image-scales 1 2 --table-scales 1 5

Makes the inputs of issue 32 once (kept in --inputs): N x 60,000 RGB PNGs of 64x64 in 10 class folders, and an
N x 200,000-row CSV of 140 columns (ECG5000's beats, resampled with noise) scored by the ae_ecg5000 preset. Each
measurement runs in its own process: peak RSS (resource.getrusage), time to the first batch, time for the whole pass.
Images: one pass at batch 128 of keras.utils.image_dataset_from_directory and of keras_ae.data.load. Tables: pandas.read_csv
then anomaly_score in batches of 1,000, and `keras-ae score` (which streams its input and writes the CSV of scores).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

IMAGES, IMAGE_SIDE, CLASSES, ROWS, COLUMNS = 60_000, 64, 10, 200_000, 140
ROOT = Path(__file__).resolve().parent.parent


def make_images(folder, count, seed=0):
    """`count` RGB PNGs of 64x64 in 10 class folders: smooth random colour fields (upsampled 8x8 noise) with fine noise."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for index in range(count):
        target = folder / f"class_{index % CLASSES}" / f"{index:07d}.png"
        if index < CLASSES:
            target.parent.mkdir(parents=True, exist_ok=True)
        coarse = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        image = np.asarray(Image.fromarray(coarse).resize((IMAGE_SIDE, IMAGE_SIDE), Image.Resampling.BILINEAR), np.int16)
        image = np.clip(image + rng.integers(-8, 9, image.shape), 0, 255).astype(np.uint8)
        Image.fromarray(image).save(target)


def make_table(path, rows, seed=0):
    """A headerless CSV of `rows` x 140 values: ECG5000 beats drawn with replacement, plus Gaussian noise of 0.05."""
    from keras_ae import data

    beats = data.load_arrays("ecg5000", "train")[0]
    rng = np.random.default_rng(seed)
    with open(path, "w") as handle:
        for start in range(0, rows, 10_000):
            chunk = beats[rng.integers(0, len(beats), min(10_000, rows - start))]
            chunk = chunk + rng.normal(0, 0.05, chunk.shape).astype(np.float32)
            np.savetxt(handle, chunk, fmt="%.6f", delimiter=",")


def image_input(folder, scale):
    """The folder of images at `scale` times the issue's size, made once."""
    images = folder / f"images_x{scale}"
    if not (images / "done").exists():
        make_images(images, IMAGES * scale)
        (images / "done").write_text("")
    return images


def table_input(folder, scale):
    """The CSV at `scale` times the issue's size, made once."""
    table = folder / f"table_x{scale}.csv"
    if not table.exists():
        partial = table.with_suffix(".partial")
        make_table(partial, ROWS * scale)
        partial.rename(table)
    return table


def peak_rss_gb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


def measure_images(way, folder):
    """One pass at batch 128 over the folder, the first batch timed from the call."""
    start = time.perf_counter()
    if way == "keras":
        import keras

        dataset = keras.utils.image_dataset_from_directory(folder, image_size=(IMAGE_SIDE, IMAGE_SIDE), batch_size=128,
                                                           shuffle=False, verbose=False)
    else:
        from keras_ae import data

        dataset = data.load(str(folder), image_size=(IMAGE_SIDE, IMAGE_SIDE), color_mode="rgb", batch_size=128)
    first, examples = None, 0
    for batch in dataset:
        batch = batch[0] if isinstance(batch, tuple) else batch
        examples += int(batch.shape[0])
        first = first or time.perf_counter() - start
    return {"examples": examples, "first_batch_seconds": first, "seconds": time.perf_counter() - start}


def measure_table(way, table, out):
    """Score every row of the CSV with ae_ecg5000: pandas and anomaly_score in batches of 1,000, or `keras-ae score`."""
    start = time.perf_counter()
    if way == "pandas":
        import pandas

        import keras_ae

        model = keras_ae.load("ae_ecg5000")
        values = pandas.read_csv(table, header=None).to_numpy("float32")
        first, scores = None, []
        for begin in range(0, len(values), 1000):
            scores.append(np.asarray(model.anomaly_score(values[begin:begin + 1000])))
            first = first or time.perf_counter() - start
        np.savetxt(out, np.concatenate(scores), fmt="%.9g")
        return {"examples": len(values), "first_batch_seconds": first, "seconds": time.perf_counter() - start}
    from keras_ae import cli

    status = cli.main(["score", "ae_ecg5000", str(table), "--out", str(out)])
    assert status == 0, status
    return {"examples": sum(1 for _ in open(out)) - 1, "first_batch_seconds": None, "seconds": time.perf_counter() - start}


def child(arguments):
    """Run one measurement in this process and print it as JSON on the last line."""
    kind, way, path, out = arguments
    result = measure_images(way, path) if kind == "images" else measure_table(way, path, out)
    print(json.dumps({**result, "peak_rss_gb": peak_rss_gb()}))


def run(kind, way, path, out):
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, __file__, "--child", kind, way, str(path), str(out)], capture_output=True, text=True,
                          env=environment, cwd=ROOT)
    if done.returncode:
        raise RuntimeError(f"{kind} {way} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", default="/tmp/stream_inputs", help="folder for the generated inputs (kept between runs)")
    parser.add_argument("--image-scales", type=int, nargs="+", default=[1, 5], help="multiples of the issue's 60,000 images")
    parser.add_argument("--table-scales", type=int, nargs="+", default=[1, 5], help="multiples of the issue's 200,000 rows")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "stream.json"))
    parser.add_argument("--make-only", action="store_true", help="make the inputs and stop")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child)
    folder = Path(args.inputs)
    folder.mkdir(parents=True, exist_ok=True)
    results = []
    cases = [("images", scale, ("keras", "keras_ae"), image_input(folder, scale)) for scale in args.image_scales]
    cases += [("table", scale, ("pandas", "keras_ae"), table_input(folder, scale)) for scale in args.table_scales]
    for kind, scale, ways, path in [] if args.make_only else cases:
        for way in ways:
            result = {"input": kind, "scale": scale, "way": way, **run(kind, way, path, folder / f"scores_{way}.csv")}
            print(json.dumps(result), flush=True)
            results.append(result)
    if args.make_only:
        return
    record = {"command": "python scripts/stream_benchmark.py " + " ".join(sys.argv[1:]), "cpu_count": os.cpu_count(),
              "note": "a shared, loaded 2-core machine: compare the two ways as ratios", "results": results}
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print("| input | scale | way | examples | first batch (s) | pass (s) | peak RSS (GB) |\n|---|---|---|---|---|---|---|")
    for result in results:
        first = "" if result["first_batch_seconds"] is None else f"{result['first_batch_seconds']:.1f}"
        print(f"| {result['input']} | {result['scale']}x | {result['way']} | {result['examples']:,} | {first} | "
              f"{result['seconds']:.1f} | {result['peak_rss_gb']:.2f} |")


if __name__ == "__main__":
    main()
