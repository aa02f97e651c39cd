"""ECG5000 anomaly detection: TensorFlow's own tutorial against keras-ae's `ae_ecg5000` recipe, side by side, several seeds.

    KERAS_AE_DATA=../shared/data python scripts/ecg_benchmark.py --seeds 5     # writes benchmarks/ecg.json

Both train on the normal beats of the tutorial's training split (sklearn's train_test_split, test_size 0.2,
random_state 21) and are scored on its 1,000 test beats: accuracy, and precision and recall with "normal"
as the positive class (as the tutorial reports them), and the AUROC of the anomaly score. The tutorial's
threshold is the mean plus one standard deviation of its training losses; keras-ae's comes from the
training split only (the card's `anomaly.threshold_rule`).
"""

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np

import keras_ae
from keras_ae import evaluate, weights
from keras_ae.train import finish
from ecg_tutorial import run_tutorial

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "ecg.json"
METRICS = {"accuracy": "detection_accuracy", "precision": "normal_precision", "recall": "normal_recall", "auroc": "auroc"}


def run_keras_ae(seed, data_dir=None):
    """Train `ae_ecg5000`'s recipe with `seed`, threshold from its training split, measured on the test split."""
    card = keras_ae.model_card("ae_ecg5000")
    card["recipe"]["seed"] = seed
    model, history, stats = keras_ae.train(card, data_dir=data_dir, verbose=0)
    with tempfile.TemporaryDirectory() as folder:
        card = finish(model, card, history, stats, folder, data_dir=data_dir)
    measured = evaluate.measure(card, model, data_dir=data_dir)
    return {name: measured[key] for name, key in METRICS.items()} | {"seconds": stats["wall_time_seconds"]}


def summary(runs):
    return {name: {"mean": float(np.mean([run[name] for run in runs])), "std": float(np.std([run[name] for run in runs], ddof=1))}
            for name in (*METRICS, "seconds")}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 for both")
    parser.add_argument("--data-dir", default=os.environ.get("KERAS_AE_DATA"), help="folder holding ecg5000/ecg.csv")
    args = parser.parse_args(argv)
    csv = Path(args.data_dir) / "ecg5000" / "ecg.csv"
    runs = {"tensorflow_tutorial": [], "keras_ae": []}
    for seed in range(args.seeds):  # alternated, so machine noise touches both alike
        runs["tensorflow_tutorial"].append(run_tutorial(csv, seed=seed))
        runs["keras_ae"].append(run_keras_ae(seed, args.data_dir))
        print(f"seed {seed}: " + json.dumps({name: {key: round(value, 4) for key, value in result[-1].items()
                                                     if key in (*METRICS, "seconds")} for name, result in runs.items()}), flush=True)
    results = {name: {"runs": result, "summary": summary(result)} for name, result in runs.items()}
    results["command"] = f"KERAS_AE_DATA=../shared/data python scripts/ecg_benchmark.py --seeds {args.seeds}"
    weights.atomic_copy(lambda temporary: Path(temporary).write_text(json.dumps(results, indent=2) + "\n"), RESULTS)
    print(f"| {'':<22} | " + " | ".join(f"{name} (mean ± std)" for name in (*METRICS, "seconds")) + " |")
    for name in runs:
        cells = [f"{results[name]['summary'][key]['mean']:.4f} ± {results[name]['summary'][key]['std']:.4f}" for key in (*METRICS, "seconds")]
        print(f"| {name:<22} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
