"""Do conditional VAEs draw the class they are asked for? A separate classifier judges their samples, one run.

    KERAS_AE_DATA=../shared/data python scripts/conditional_benchmark.py     # writes benchmarks/conditional.json

A plain Keras CNN (conv 32 - pool - conv 64 - pool - dropout - softmax) is trained on the real training split of each
dataset and its test accuracy reported. Then each ConditionalVAE zoo entry with trained weights (or each preset named
on the command line) draws `--samples` images of every class from its prior, seeded, and the classifier's accuracy on
them is reported per class and as the mean over classes; that is repeated for `--seeds` sample seeds (0..N-1) and
given as mean ± standard deviation over them. Goal: mean per-class accuracy >= 0.95 on MNIST.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import keras
import numpy as np

import keras_ae
from keras_ae import cards, data, weights

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "conditional.json"
FAMILY = "ConditionalVAE"


def build_classifier(input_shape=(28, 28, 1), num_classes=10):
    """The judge: a small convolutional classifier (Keras' MNIST convnet example), softmax over `num_classes`."""
    return keras.Sequential([
        keras.Input(tuple(input_shape)),
        keras.layers.Conv2D(32, 3, activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Conv2D(64, 3, activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dropout(0.5),
        keras.layers.Dense(num_classes, activation="softmax"),
    ], name="judge")


def train_classifier(dataset, num_classes=10, epochs=5, seed=0, train_split="train", test_split="test", data_dir=None):
    """A classifier trained on `dataset`'s real training split (through keras_ae.data); returns (classifier, test accuracy)."""
    keras.utils.set_random_seed(seed)
    train = data.load(dataset, split=train_split, batch_size=128, with_labels=True, seed=seed, data_dir=data_dir)
    test = data.load(dataset, split=test_split, batch_size=1000, with_labels=True, data_dir=data_dir)
    classifier = build_classifier(next(iter(test))[0].shape[1:], num_classes)
    classifier.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    classifier.fit(train, epochs=epochs, verbose=0)
    return classifier, float(classifier.evaluate(test, verbose=0, return_dict=True)["accuracy"])


def class_accuracy(classifier, model, samples_per_class=1000, seed=0, batch_size=500):
    """The classifier's accuracy on `samples_per_class` images the model draws of each class, one number per class.

    The draws of class k in batch b are seeded by (seed, k, b), so every number repeats exactly.
    """
    accuracies = []
    for label in range(model.num_classes):
        correct = 0
        for batch, start in enumerate(range(0, samples_per_class, batch_size)):
            count = min(batch_size, samples_per_class - start)
            drawn = np.asarray(model.sample(count, labels=label, seed=(seed * 1_000 + label) * 1_000 + batch))
            correct += int(np.sum(np.argmax(classifier.predict(drawn, verbose=0), axis=-1) == label))
        accuracies.append(correct / samples_per_class)
    return np.array(accuracies)


def conditional_entries():
    """Names of the zoo entries of the ConditionalVAE family."""
    return [name for name in cards.list_models() if cards.model_card(name)["model"]["class_name"] == FAMILY]


def summarize(runs):
    """Mean and standard deviation over the seeds, per class and of the mean over classes."""
    per_class = np.array([run["per_class"] for run in runs])
    means = per_class.mean(axis=1)
    ddof = 1 if len(runs) > 1 else 0  # one seed: a spread of 0
    return {
        "per_class": {"mean": per_class.mean(axis=0).tolist(), "std": per_class.std(axis=0, ddof=ddof).tolist()},
        "mean": {"mean": float(means.mean()), "std": float(means.std(ddof=ddof))},
    }


def table(classifiers, entries):
    """The results as a markdown table: one row per class and one for the mean, one column per entry."""
    names = list(entries)
    lines = [
        "| class | " + " | ".join(f"`{name}`" for name in names) + " |",
        "|---|" + "---|" * len(names),
    ]
    classes = max(len(entry["summary"]["per_class"]["mean"]) for entry in entries.values())
    for label in range(classes):
        cells = [f"{entry['summary']['per_class']['mean'][label]:.3f} ± {entry['summary']['per_class']['std'][label]:.3f}"
                 for entry in entries.values()]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    means = [f"**{entry['summary']['mean']['mean']:.3f} ± {entry['summary']['mean']['std']:.3f}**" for entry in entries.values()]
    lines.append("| **mean** | " + " | ".join(means) + " |")
    judges = ", ".join(f"{dataset} {result['test_accuracy']:.4f}" for dataset, result in classifiers.items())
    return "\n".join(lines) + f"\n\nClassifier test accuracy: {judges}."


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="*", help="presets to judge (zoo names or folders; default: every ConditionalVAE zoo entry)")
    parser.add_argument("--samples", type=int, default=1000, help="samples drawn per class")
    parser.add_argument("--seeds", type=int, default=3, help="sample seeds 0..N-1")
    parser.add_argument("--classifier-epochs", type=int, default=5, help="epochs of the judging classifier")
    parser.add_argument("--output", default=str(RESULTS), help="where to write the results (JSON)")
    args = parser.parse_args(argv)
    trained, skipped = {}, {}
    for source in args.sources or conditional_entries():
        card = cards.model_card(source)
        if card["model"]["class_name"] != FAMILY:
            raise SystemExit(f"{source} is a {card['model']['class_name']}, not a {FAMILY}: it draws no class on request.")
        if not card["weights"].get("sha256"):
            skipped[source] = "no trained weights yet"
            print(f"skipped {source}: no trained weights yet (train it: python scripts/train_zoo.py {card['name']})", flush=True)
            continue
        trained[source] = card
    classifiers, judges, entries = {}, {}, {}
    for dataset in sorted({card["data"]["dataset"] for card in trained.values()}):
        start = time.perf_counter()
        classes = {card["model"]["config"]["num_classes"] for card in trained.values() if card["data"]["dataset"] == dataset}
        judges[dataset], accuracy = train_classifier(dataset, max(classes), epochs=args.classifier_epochs)
        classifiers[dataset] = {"test_accuracy": accuracy, "epochs": args.classifier_epochs,
                                "seconds": round(time.perf_counter() - start, 1)}
        print(f"classifier on {dataset}: test accuracy {accuracy:.4f}", flush=True)
    for source, card in trained.items():
        model = keras_ae.load(source)
        runs = []
        for seed in range(args.seeds):
            per_class = class_accuracy(judges[card["data"]["dataset"]], model, args.samples, seed)
            runs.append({"seed": seed, "per_class": per_class.tolist(), "mean": float(per_class.mean())})
            print(f"{source} seed {seed}: mean per-class accuracy {per_class.mean():.4f}", flush=True)
        entries[source] = {"dataset": card["data"]["dataset"], "samples_per_class": args.samples, "runs": runs,
                           "summary": summarize(runs)}
    command = " ".join(["KERAS_AE_DATA=../shared/data python scripts/conditional_benchmark.py", *(sys.argv[1:] if argv is None else argv)])
    results = {"classifiers": classifiers, "entries": entries, "skipped": skipped, "command": command}
    weights.atomic_copy(lambda temporary: Path(temporary).write_text(json.dumps(results, indent=2) + "\n"), Path(args.output))
    if entries:
        print(table(classifiers, entries))
    print(f"wrote {args.output}")
    return results


if __name__ == "__main__":
    main()
