"""`keras-ae train --data`'s defaults before and after they followed the anomaly suites, on the first hour's example.

    KERAS_AE_DATA=../shared/data python scripts/own_data_defaults.py --seeds 3
    KERAS_AE_DATA=../shared/data python scripts/own_data_defaults.py --images    # writes own_data_defaults_images.json

The example of issue 34: a detector trained on UCR ECG5000's TRAIN rows (label column 0, normal label 1, as
`keras-ae train --data ECG5000_TRAIN.tsv --label-column 0 --normal-label 1` reads them), its threshold the 99th
percentile of the normal training scores, then scored on UCR's TEST rows: AUROC, and accuracy, precision and recall at
that threshold. "before" is the old default recipe (a dense network without hidden layers, code 32, 20 epochs of 128);
"now" is `training.OWN_DATA_DEFAULTS["rows"]`, the recipe the anomaly suites measured. No choice is made here: the test
rows only report. Writes benchmarks/own_data_defaults.json.

`--images`: the default score for images, the model's reconstruction error ("before") against "reconstruction+code"
("now", chosen on the image suites' development parts), on the same models. For MNIST and Fashion-MNIST, the first
IMAGES_PER_CLASS training images of each class are written as a folder of class subfolders; for each class a detector
is trained as `keras-ae train --data FOLDER --normal-label CLASS` trains it (its defaults, seed 0), each score gets the
default threshold (the 99th percentile of the normal training scores), and both score all 10,000 test images.
"""

import argparse
import copy
import json
import os
import tempfile
from pathlib import Path

import numpy as np

import keras_ae
from keras_ae import cards, data, metrics
from keras_ae.anomaly import anomaly_scores, preset_scores
from keras_ae.training import anomaly_threshold, card_for_data, finish

OUTPUT = Path(__file__).resolve().parents[1] / "benchmarks" / "own_data_defaults.json"
IMAGES_OUTPUT = OUTPUT.with_name("own_data_defaults_images.json")
IMAGES_PER_CLASS = 1000
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


def detection(scores, threshold, anomalous):
    flagged = scores > threshold
    return {"auroc": metrics.auroc(scores, anomalous), "accuracy": float(np.mean(flagged == anomalous)),
            "precision": float(np.sum(flagged & anomalous) / max(1, np.sum(flagged))),
            "recall": float(np.sum(flagged & anomalous) / np.sum(anomalous))}


def image_folder(dataset, folder):
    """The first IMAGES_PER_CLASS training images of each class of `dataset` as PNG files in class subfolders."""
    from PIL import Image

    images, labels = data.load_arrays(dataset, "train")
    for label in range(10):
        (folder / str(label)).mkdir(parents=True)
        for index in np.flatnonzero(labels == label)[:IMAGES_PER_CLASS]:
            Image.fromarray(images[index, ..., 0]).save(folder / str(label) / f"{index}.png")
    return folder


def images(scratch):
    results = {}
    for dataset in ("mnist", "fashion_mnist"):
        folder = image_folder(dataset, scratch / dataset)
        test_images, test_labels = data.load_arrays(dataset, "test")
        test_images = test_images.astype("float32") / 255.0
        runs = []
        for label in range(10):
            card = card_for_data(str(folder), normal_label=str(label))
            model, history, stats = keras_ae.train(card, verbose=0)
            card = cards.as_card(finish(model, card, history, stats, scratch / f"{dataset}_{label}"))
            model = keras_ae.load(scratch / f"{dataset}_{label}")
            plain = card.anomaly.without("score", "code_score")
            reconstruction_card = cards.as_card({**card.to_json(), "anomaly": plain.to_json()})
            before = detection(anomaly_scores(model, test_images), anomaly_threshold(model, reconstruction_card)["threshold"], test_labels != label)
            now = detection(preset_scores(model, card.anomaly, test_images), card.anomaly.threshold, test_labels != label)
            runs.append({"class": label, "before": before, "now": now})
            print(dataset, label, {"before": round(before["auroc"], 4), "now": round(now["auroc"], 4)}, flush=True)
        results[dataset] = {"runs": runs, **{variant: {key: float(np.mean([run[variant][key] for run in runs])) for key in runs[0][variant]}
                                            for variant in ("before", "now")}}
        print(dataset, {variant: {key: round(value, 4) for key, value in results[dataset][variant].items()} for variant in ("before", "now")}, flush=True)
    results["command"] = "KERAS_AE_DATA=../shared/data python scripts/own_data_defaults.py --images"
    IMAGES_OUTPUT.write_text(json.dumps(results, indent=2) + "\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--images", action="store_true", help="the images' default score instead (see the docstring)")
    args = parser.parse_args(argv)
    if args.images:
        with tempfile.TemporaryDirectory() as scratch:
            return images(Path(scratch))
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
