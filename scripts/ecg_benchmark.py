"""ECG5000 anomaly detection: TensorFlow's own tutorial against keras-ae's `ae_ecg5000` recipe, side by side, several seeds.

    KERAS_AE_DATA=../shared/data python scripts/ecg_benchmark.py --seeds 5     # writes benchmarks/ecg.json
    KERAS_AE_DATA=../shared/data python scripts/ecg_benchmark.py --select      # writes benchmarks/ecg_selection.json

Both train on the normal beats of the tutorial's training split (sklearn's train_test_split, test_size 0.2,
random_state 21) and are scored on its 1,000 test beats: accuracy, and precision and recall with "normal"
as the positive class (as the tutorial reports them), and the AUROC of the anomaly score, which needs no threshold.
keras-ae is reported with two thresholds, each from the training split only: the tutorial's rule (the mean plus one
standard deviation of the normal training beats' scores, no anomaly labels) and the card's (the score that
classifies the labelled training beats best). keras-ae trains on 90% of the tutorial's training split; the other
10% (seeded) is its validation part, where `--select` chose the recipe (AUROC over its normal and abnormal beats).
"""

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np

import keras_ae
from keras_ae import evaluate, weights
from keras_ae.training import anomaly_threshold, finish
from ecg_tutorial import run_tutorial

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
RESULTS = BENCHMARKS / "ecg.json"
METRICS = {"accuracy": "detection_accuracy", "precision": "normal_precision", "recall": "normal_recall", "auroc": "auroc"}


THRESHOLDS = {"keras_ae": "best_accuracy", "keras_ae_tutorial_threshold": "mean_plus_std"}
CANDIDATES = {  # --select: changes to ae_ecg5000's card, compared by AUROC on its validation part
    "dense 64-32-8, per-feature min-max": {},
    "dense 64-32-8, standardized": {"network": {"scaling": "standard"}},
    "dense 64-32-16, per-feature min-max": {"network": {"latent_dim": 16}},
    "conv1d 32-64, per-feature min-max": {"network": {"kind": "conv1d", "input_shape": [140], "latent_dim": 8, "filters": [32, 64],
                                                      "scaling": "minmax"}, "replace_network": True},
}


def run_keras_ae(seed, data_dir=None):
    """Train `ae_ecg5000`'s recipe with `seed`; measure it on the test split with each rule of THRESHOLDS."""
    card = keras_ae.model_card("ae_ecg5000")
    card["recipe"]["seed"] = seed
    model, history, stats = keras_ae.train(card, data_dir=data_dir, verbose=0)
    with tempfile.TemporaryDirectory() as folder:
        card = finish(model, card, history, stats, folder, data_dir=data_dir)
        model = keras_ae.load(folder)  # float32, as users load it
    results = {}
    for name, rule in THRESHOLDS.items():
        ruled = {**card, "anomaly": {**card["anomaly"], "threshold_rule": rule}}
        ruled["anomaly"].update(anomaly_threshold(model, ruled, data_dir))
        measured = evaluate.measure(ruled, model, data_dir=data_dir)
        results[name] = {key: measured[metric] for key, metric in METRICS.items()} | {
            "threshold": ruled["anomaly"]["threshold"], "seconds": stats["wall_time_seconds"]}
    return results


def select(seeds, data_dir=None):
    """AUROC on the validation part of each CANDIDATES recipe, over `seeds`; the test split is not read."""
    results = {}
    for label, change in CANDIDATES.items():
        aurocs = []
        for seed in range(seeds):
            card = keras_ae.model_card("ae_ecg5000")
            card["network"] = dict(change["network"]) if change.get("replace_network") else {**card["network"], **change.get("network", {})}
            card["recipe"]["seed"] = seed
            card["anomaly"] = {key: value for key, value in card["anomaly"].items() if key not in ("threshold", "threshold_source")}
            model, _, _ = keras_ae.train(card, data_dir=data_dir, verbose=0)
            aurocs.append(evaluate.measure(card, model, split=card["data"]["monitor_split"], data_dir=data_dir)["auroc"])
        results[label] = {"validation_auroc": aurocs, "mean": float(np.mean(aurocs)), "std": float(np.std(aurocs, ddof=1))}
        print(f"{label}: validation AUROC {np.mean(aurocs):.4f} ± {np.std(aurocs, ddof=1):.4f}", flush=True)
    return results


def summary(runs):
    return {name: {"mean": float(np.mean([run[name] for run in runs])), "std": float(np.std([run[name] for run in runs], ddof=1))}
            for name in (*METRICS, "seconds")}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, help="seeds 0..N-1 (default: 5 for the benchmark, 3 for --select)")
    parser.add_argument("--data-dir", default=os.environ.get("KERAS_AE_DATA"), help="folder holding ecg5000/ecg.csv")
    parser.add_argument("--select", action="store_true", help="compare CANDIDATES on the validation part (seeds 0..N-1, default 3)")
    args = parser.parse_args(argv)
    if args.select:
        seeds = args.seeds or 3
        results = {"candidates": select(seeds, args.data_dir),
                   "command": f"KERAS_AE_DATA=../shared/data python scripts/ecg_benchmark.py --select --seeds {seeds}"}
        weights.atomic_copy(lambda temporary: Path(temporary).write_text(json.dumps(results, indent=2) + "\n"),
                            BENCHMARKS / "ecg_selection.json")
        return
    args.seeds = args.seeds or 5
    csv = Path(args.data_dir) / "ecg5000" / "ecg.csv"
    runs = {"tensorflow_tutorial": [], **{name: [] for name in THRESHOLDS}}
    for seed in range(args.seeds):  # alternated, so machine noise touches both alike
        runs["tensorflow_tutorial"].append(run_tutorial(csv, seed=seed))
        for name, result in run_keras_ae(seed, args.data_dir).items():
            runs[name].append(result)
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
