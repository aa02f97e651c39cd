"""One-class anomaly detection on MNIST and Fashion-MNIST, the protocol of Ruff et al. 2018 (Deep SVDD), Table 1.

    KERAS_AE_DATA=../shared/data python scripts/anomaly_benchmark.py --model conv_ae

For each dataset and class c: train a model on the training images of class c only, score the
whole test set (higher = more anomalous) and measure AUROC with c as the normal class and the nine
others as anomalies. Every score of `keras_ae.anomaly.fit_scorer` (`anomaly.SCORES`) is measured on the same
model: the reconstruction error alone, with the code's distance from the normal codes added, and the same with
each value's error weighted by how closely normal examples are reconstructed there. Prints progress, a markdown
table of AUROC per class and the mean per dataset, and writes everything to a JSON file (`--output`).
"""

import argparse
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from keras_ae import anomaly, data, networks
from keras_ae.evaluate import auroc
from keras_ae.models import VAE, Autoencoder

DATASETS = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST"}
DEFAULT_OUTPUT = Path(__file__).resolve().parent.parent / "benchmarks" / "anomaly.json"
INPUT_SHAPE = (28, 28, 1)


def build_model(kind, latent_dim, seed):
    """A fresh `conv_ae` (MSE autoencoder) or `vae` (Bernoulli VAE), both on `networks.conv` with filters (32, 64)."""
    if kind == "conv_ae":
        model = Autoencoder(*networks.conv(INPUT_SHAPE, latent_dim, filters=(32, 64)), reconstruction="mse", seed=seed)
    else:
        model = VAE(
            *networks.conv(INPUT_SHAPE, latent_dim, filters=(32, 64), variational=True), likelihood="bernoulli", seed=seed
        )
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    return model


def one_class_auroc(args, seed, normal_class, train_images, train_labels, test_images, test_labels):
    """Train on `normal_class` only; {score: AUROC} on the test set, the other classes being anomalies."""
    keras.utils.set_random_seed(seed)
    model = build_model(args.model, args.latent_dim, seed)
    normal = train_images[train_labels == normal_class]
    model.fit(normal, epochs=args.epochs, batch_size=args.batch_size, shuffle=True, verbose=0)
    return {score: auroc(anomaly.fit_scorer(model, normal, score)(test_images), test_labels != normal_class)
            for score in anomaly.SCORES}


def as_float(images):
    return images.astype("float32") / 255.0


def markdown_table(results):
    """Rows: the classes and the mean; columns: each dataset under each score, mean ± std over the seeds."""
    columns = [(name, score) for name in results for score in anomaly.SCORES]
    classes = list(results[columns[0][0]][columns[0][1]]["auroc"])
    lines = ["| class | " + " | ".join(f"{DATASETS[name]}, {score}" for name, score in columns) + " |",
             "|---" * (len(columns) + 1) + "|"]
    lines += [f"| {c} | " + " | ".join(f"{results[name][score]['auroc'][c]:.3f}" for name, score in columns) + " |"
              for c in classes]
    lines.append("| **mean** | " + " | ".join(
        f"**{results[name][score]['mean_auroc']:.3f}** ± {results[name][score]['std_over_seeds']:.3f}" for name, score in columns
    ) + " |")
    return "\n".join(lines)


def write_json(payload, path):
    """Write `payload` as JSON to `path` through a temporary file and one rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".partial-", suffix=f"-{path.name}")
    try:
        with os.fdopen(handle, "w") as file:
            json.dump(payload, file, indent=2)
            file.write("\n")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("conv_ae", "vae"), default="conv_ae")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--latent-dim", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--datasets", nargs="+", choices=sorted(DATASETS), default=list(DATASETS))
    parser.add_argument("--classes", nargs="+", type=int, choices=range(10), default=list(range(10)), metavar="C")
    parser.add_argument("--seed", type=int, default=0, help="class c trains with seed + c")
    parser.add_argument("--seeds", type=int, default=1, help="repeat with seeds seed, seed + 100, ...; report mean and spread")
    parser.add_argument("--output", default=str(DEFAULT_OUTPUT), help="JSON results file")
    parser.add_argument("--quick", action="store_true", help="smoke run: first class only, 1 epoch, first 2000 test images")
    args = parser.parse_args(argv)
    if args.quick:
        args.classes, args.epochs = args.classes[:1], 1
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    data_dir = os.environ.get("KERAS_AE_DATA")
    command = shlex.join(["python", "scripts/anomaly_benchmark.py", *(sys.argv[1:] if argv is None else argv)])
    command = f"KERAS_AE_DATA={shlex.quote(data_dir)} {command}" if data_dir else command
    results = {}
    started = time.perf_counter()
    for name in args.datasets:
        train_images, train_labels = data.load_arrays(name, "train")
        test_images, test_labels = data.load_arrays(name, "test")
        if args.quick:
            test_images, test_labels = test_images[:2000], test_labels[:2000]
        train_images, test_images = as_float(train_images), as_float(test_images)
        per_seed = {score: [] for score in anomaly.SCORES}  # [seed][class] AUROC
        seconds = {}
        for base in range(args.seed, args.seed + 100 * args.seeds, 100):
            runs = {}
            for normal_class in args.classes:
                class_start = time.perf_counter()
                runs[normal_class] = one_class_auroc(
                    args, base + normal_class, normal_class, train_images, train_labels, test_images, test_labels)
                seconds[f"{base}/{normal_class}"] = round(time.perf_counter() - class_start, 1)
                print(f"{name} seed {base} class {normal_class}: " + ", ".join(
                    f"{score} {value:.4f}" for score, value in runs[normal_class].items()) + f" ({seconds[f'{base}/{normal_class}']:.0f} s)",
                    flush=True)
            for score in anomaly.SCORES:
                per_seed[score].append([runs[c][score] for c in args.classes])
        results[name] = {"seconds": seconds, "test_examples": len(test_images)}
        for score, table in per_seed.items():
            table = np.array(table)
            results[name][score] = {
                "auroc": {c: round(float(value), 4) for c, value in zip(args.classes, table.mean(axis=0))},
                "mean_auroc": round(float(table.mean()), 4),
                "std_over_seeds": round(float(table.mean(axis=1).std()), 4),
                "per_seed_mean_auroc": [round(float(value), 4) for value in table.mean(axis=1)],
            }
            print(f"{name} {score}: mean AUROC {results[name][score]['mean_auroc']:.4f} "
                  f"± {results[name][score]['std_over_seeds']:.4f} over {args.seeds} seed(s)", flush=True)

    table = markdown_table(results)
    write_json(
        {
            "protocol": "one-class, Ruff et al. 2018 (Deep SVDD) Table 1: train on one class, AUROC on the whole test set",
            "config": {key: getattr(args, key) for key in ("model", "epochs", "latent_dim", "batch_size", "seed", "seeds", "quick")},
            "results": results,
            "total_seconds": round(time.perf_counter() - started, 1),
            "hardware": f"{platform.machine()}, {os.cpu_count()} CPU cores, {len(tf.config.list_physical_devices('GPU'))} GPU",
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "command": command,
            "markdown": table,
        },
        args.output,
    )
    print(f"\n{table}\n\nCommand: {command}\nWrote {args.output}", flush=True)


if __name__ == "__main__":
    main()
