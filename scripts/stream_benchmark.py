"""Memory and speed of reading users' own data, keras-ae against the way a user would do it by hand, into benchmarks/stream.json.

    KERAS_AE_DATA=../shared/data python scripts/stream_benchmark.py --inputs /tmp/stream_inputs --image-scales 1 5 --table-scales 1 5 --repeats 3

Makes the inputs of issue 32 once (kept in --inputs): N x 60,000 RGB PNGs of 64x64 in 10 class folders, and an
N x 200,000-row CSV of 140 columns (ECG5000's beats, resampled with noise) scored by the ae_ecg5000 preset. Each
measurement runs in its own process: peak RSS (resource.getrusage), the import, the time from the call to the first batch (images), the whole pass.
Images: one pass at batch 128 of keras.utils.image_dataset_from_directory and of keras_ae.data.load. Tables: pandas.read_csv
then anomaly_score in batches of 1,000, and `keras-ae score` (which streams its input and writes the CSV of scores).

    KERAS_AE_DATA=../shared/data python scripts/stream_benchmark.py --inputs /tmp/stream_inputs --image-scales \
        --table-scales 1 5 --table-formats parquet tfrecord --out benchmarks/stream_formats.json

The same rows as a Parquet file (row groups of 65,536 rows) and a TFRecord file (one tf.train.Example per row, its 140
values as the float feature "x"), each made once from the CSV: `keras-ae score` against pandas.read_parquet then
anomaly_score in batches of 1,000, and against tf.data.TFRecordDataset parsed by hand (tf.io.parse_example) in batches
of 1,000.
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


def convert_table(table, target):
    """The CSV `table` as a Parquet file (columns "v0".."v139") or a TFRecord file (feature "x"), by `target`'s suffix."""
    import pandas

    chunks = pandas.read_csv(table, header=None, chunksize=65_536, dtype=np.float32)
    if target.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        writer = None
        for chunk in chunks:
            batch = pa.Table.from_pandas(chunk.set_axis([f"v{index}" for index in range(COLUMNS)], axis=1), preserve_index=False)
            writer = writer or pq.ParquetWriter(target, batch.schema)
            writer.write_table(batch)
        writer.close()
        return
    import tensorflow as tf

    with tf.io.TFRecordWriter(str(target)) as writer:
        for chunk in chunks:
            for row in chunk.to_numpy():
                feature = tf.train.Feature(float_list=tf.train.FloatList(value=row))
                writer.write(tf.train.Example(features=tf.train.Features(feature={"x": feature})).SerializeToString())


def image_input(folder, scale):
    """The folder of images at `scale` times the issue's size, made once."""
    images = folder / f"images_x{scale}"
    if not (images / "done").exists():
        make_images(images, IMAGES * scale)
        (images / "done").write_text("")
    return images


def table_input(folder, scale, table_format="csv"):
    """The CSV at `scale` times the issue's size, or its rows as a Parquet or TFRecord file, made once."""
    table = folder / f"table_x{scale}.{table_format}"
    if not table.exists():
        partial = folder / f"table_x{scale}.partial.{table_format}"
        if table_format == "csv":
            make_table(partial, ROWS * scale)
        else:
            convert_table(table_input(folder, scale), partial)
        partial.rename(table)
    return table


def peak_rss_gb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


def measure_images(way, folder):
    """One pass at batch 128 over the folder: the import (TensorFlow's, mostly), then the first batch timed from the
    loader's call, then the whole pass timed from the import."""
    start = time.perf_counter()
    if way == "keras":
        import keras

        called = time.perf_counter()
        dataset = keras.utils.image_dataset_from_directory(folder, image_size=(IMAGE_SIDE, IMAGE_SIDE), batch_size=128,
                                                           shuffle=False, verbose=False)
    else:
        from keras_ae import data

        called = time.perf_counter()
        dataset = data.load(str(folder), image_size=(IMAGE_SIDE, IMAGE_SIDE), color_mode="rgb", batch_size=128)
    first, examples = None, 0
    for batch in dataset:
        batch = batch[0] if isinstance(batch, tuple) else batch
        examples += int(batch.shape[0])
        first = first or time.perf_counter() - called
    return {"examples": examples, "import_seconds": called - start, "first_batch_seconds": first,
            "seconds": time.perf_counter() - start}


def hand_made_batches(table):
    """The table's rows in batches of 1,000, read the way a user would by hand: pandas for a CSV or Parquet file (whole),
    tf.data for a TFRecord file (streamed)."""
    if Path(table).suffix == ".tfrecord":
        import tensorflow as tf

        spec = {"x": tf.io.FixedLenFeature([COLUMNS], tf.float32)}
        dataset = tf.data.TFRecordDataset(str(table)).batch(1000).map(lambda records: tf.io.parse_example(records, spec)["x"])
        yield from dataset.prefetch(2).as_numpy_iterator()
        return
    import pandas

    frame = pandas.read_parquet(table) if Path(table).suffix == ".parquet" else pandas.read_csv(table, header=None)
    values = frame.to_numpy("float32")
    del frame
    for begin in range(0, len(values), 1000):
        yield values[begin:begin + 1000]


def measure_table(way, table, out):
    """Score every row of the table with ae_ecg5000: read by hand and anomaly_score in batches of 1,000, or `keras-ae
    score`."""
    start = time.perf_counter()
    if way != "keras_ae":
        import keras_ae

        model = keras_ae.load("ae_ecg5000")
        first, scores = None, []
        for batch in hand_made_batches(table):
            scores.append(np.asarray(model.anomaly_score(batch)))
            first = first or time.perf_counter() - start
        np.savetxt(out, np.concatenate(scores), fmt="%.9g")
        return {"examples": sum(map(len, scores)), "first_batch_seconds": first, "seconds": time.perf_counter() - start}
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
    parser.add_argument("--image-scales", type=int, nargs="*", default=[1, 5], help="multiples of the issue's 60,000 images")
    parser.add_argument("--table-scales", type=int, nargs="*", default=[1, 5], help="multiples of the issue's 200,000 rows")
    parser.add_argument("--table-formats", nargs="+", choices=("csv", "parquet", "tfrecord"), default=["csv"],
                        help="the tables' file formats")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "stream.json"))
    parser.add_argument("--repeats", type=int, default=1, help="runs of each way, alternating; the table gives medians")
    parser.add_argument("--make-only", action="store_true", help="make the inputs and stop")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child)
    folder = Path(args.inputs)
    folder.mkdir(parents=True, exist_ok=True)
    results = []
    cases = [("images", scale, ("keras", "keras_ae"), image_input(folder, scale)) for scale in args.image_scales]
    hand_made = {"csv": "pandas", "parquet": "pandas", "tfrecord": "tf.data"}
    cases += [(f"table ({table_format})" if table_format != "csv" else "table", scale, (hand_made[table_format], "keras_ae"),
               table_input(folder, scale, table_format)) for table_format in args.table_formats for scale in args.table_scales]
    for kind, scale, ways, path in [] if args.make_only else cases:
        for repeat in range(args.repeats):  # the two ways alternate, so a slow spell of the machine hits both
            for way in ways:
                result = {"input": kind, "scale": scale, "way": way, "repeat": repeat,
                          **run(kind, way, path, folder / f"scores_{way}.csv")}
                print(json.dumps(result), flush=True)
                results.append(result)
    if args.make_only:
        return
    record = {"command": "python scripts/stream_benchmark.py " + " ".join(sys.argv[1:]), "cpu_count": os.cpu_count(),
              "note": "a shared 2-core machine: compare the two ways as ratios; the table gives each one's median over the repeats",
              "results": results}
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(markdown(results))


def markdown(results):
    """One row per input, scale and way: the median of each measurement over its repeats, and the range of the pass."""
    with_range = max(result["repeat"] for result in results) > 0
    lines = ["| input | scale | way | examples | import (s) | first batch from the call (s) | pass (s) | peak RSS (GB) |",
             "|---|---|---|---|---|---|---|---|"]
    groups = {}
    for result in results:
        groups.setdefault((result["input"], result["scale"], result["way"]), []).append(result)
    for (kind, scale, way), runs in groups.items():
        def median(key):
            values = [run[key] for run in runs if run.get(key) is not None]
            return float(np.median(values)) if values else None
        first, imported, passes = median("first_batch_seconds"), median("import_seconds"), [run["seconds"] for run in runs]
        spread = f" ({min(passes):.1f}-{max(passes):.1f})" if with_range else ""
        lines.append(f"| {kind} | {scale}x | {way} | {runs[0]['examples']:,} | {'' if imported is None else f'{imported:.1f}'} | "
                     f"{'' if first is None else f'{first:.2f}'} | {np.median(passes):.1f}{spread} | {median('peak_rss_gb'):.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
