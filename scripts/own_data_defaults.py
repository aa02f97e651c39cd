"""`keras-ae train --data`'s defaults before and after they followed the anomaly suites, on the first hour's example.

    KERAS_AE_DATA=../shared/data python scripts/own_data_defaults.py --seeds 3

The example of issue 34: a detector trained on UCR ECG5000's TRAIN rows (label column 0, normal label 1, as
`keras-ae train --data ECG5000_TRAIN.tsv --label-column 0 --normal-label 1` reads them), its threshold the 99th
percentile of the normal training scores, then scored on UCR's TEST rows: AUROC, and accuracy, precision and recall at
that threshold. "before" is the old default recipe (a dense network without hidden layers, code 32, 20 epochs of 128);
"now" is `training.OWN_DATA_DEFAULTS["rows"]`, the recipe the anomaly suites measured. No choice is made here: the test
rows only report. Writes benchmarks/own_data_defaults.json.
"""

import argparse
import copy
import json
import os
import tempfile
from pathlib import Path

import numpy as np

import keras_ae
from keras_ae import metrics
from keras_ae.anomaly import anomaly_scores
from keras_ae.training import card_for_data, finish

OUTPUT = Path(__file__).resolve().parents[1] / "benchmarks" / "own_data_defaults.json"
BEFORE = {"latent_dim": 32, "epochs": 20, "batch_size": 128}  # and hidden_units (), the old dense default


def recipe_card(train_file, variant, seed):
    card = card_for_data(str(train_file), label_column=0, normal_label="1", **(BEFORE if variant == "before" else {}))
    card = copy.deepcopy(card)
    if variant == "before":
        card["network"].pop("hidden_units")
    card["recipe"]["seed"] = card["model"]["config"]["seed"] = seed
    return card


def measure(card, test_rows, test_labels, folder):
    model, history, stats = keras_ae.train(card, verbose=0)
    card = finish(model, card, history, stats, folder)
    scores = anomaly_scores(model, test_rows)
    anomalous = test_labels != 1
    flagged = scores > card["anomaly"]["threshold"]
    return {
        "auroc": metrics.auroc(scores, anomalous),
        "accuracy": float(np.mean(flagged == anomalous)),
        "precision": float(np.sum(flagged & anomalous) / max(1, np.sum(flagged))),
        "recall": float(np.sum(flagged & anomalous) / np.sum(anomalous)),
        "epochs": card["training"]["epochs"],
        "seconds": card["training"]["wall_time_seconds"],
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args(argv)
    folder = Path(os.environ["KERAS_AE_DATA"]) / "ecg5000"
    test = np.loadtxt(folder / "ECG5000_TEST.tsv", delimiter="\t")
    test_rows, test_labels = test[:, 1:].astype("float32"), test[:, 0].astype(int)
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        for variant in ("before", "now"):
            runs = [measure(recipe_card(folder / "ECG5000_TRAIN.tsv", variant, seed), test_rows, test_labels,
                            Path(scratch) / f"{variant}_{seed}") for seed in range(args.seeds)]
            results[variant] = {"runs": runs, **{f"{key}_mean": float(np.mean([run[key] for run in runs]))
                                                  for key in ("auroc", "accuracy", "precision", "recall")},
                                **{f"{key}_std": float(np.std([run[key] for run in runs])) for key in ("auroc", "recall")}}
            print(variant, {key: round(value, 4) for key, value in results[variant].items() if key != "runs"}, flush=True)
    results["command"] = f"KERAS_AE_DATA=../shared/data python scripts/own_data_defaults.py --seeds {args.seeds}"
    OUTPUT.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
