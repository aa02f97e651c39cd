"""Train a variant of a zoo recipe and measure it on the recipe's validation split, never its test split.

    KERAS_AE_DATA=../shared/data python scripts/select_on_validation.py vae_mnist \
        --set recipe.optimizer.config.learning_rate=0.001

The variant trains from the zoo card with each `--set PATH=VALUE` applied (VALUE read as JSON), into a scratch
folder, and is measured exactly as `scripts/train_zoo.py` measures the entry itself (`training.validation_metrics`).
The result is added to benchmarks/selection.json beside the zoo entry's own validation numbers, so a recipe choice
can be read off validation data alone.
"""

import argparse
import copy
import json
import tempfile
from pathlib import Path

import keras_ae
from keras_ae import cards
from keras_ae.training import finish
from train_zoo import validation_metrics

OUTPUT = Path(__file__).resolve().parents[1] / "benchmarks" / "selection.json"


def apply(card, assignment):
    """Set one dotted PATH=JSON assignment in a copy of the card."""
    path, _, text = assignment.partition("=")
    if not text:
        raise SystemExit(f"--set expects PATH=VALUE, got {assignment!r}")
    card = copy.deepcopy(card)
    *parents, leaf = path.split(".")
    node = card
    for key in parents:
        node = node[key]
    node[leaf] = json.loads(text)
    return card


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="zoo entry whose recipe is varied")
    parser.add_argument("--set", action="append", default=[], dest="assignments", help="PATH=VALUE, e.g. recipe.epochs=15")
    args = parser.parse_args(argv)
    card = cards.model_card(args.name)
    variant = card
    for assignment in args.assignments:
        variant = apply(variant, assignment)
    label = ", ".join(args.assignments) or "as in the card"
    print(f"== {args.name}: training the variant ({label})", flush=True)
    model, history, stats = keras_ae.train(variant, verbose=2)
    with tempfile.TemporaryDirectory() as scratch:
        variant = finish(model, variant, history, stats, Path(scratch) / args.name)
        measured = validation_metrics(variant, cards.load(Path(scratch) / args.name))
    results = json.loads(OUTPUT.read_text()) if OUTPUT.exists() else {}
    entry = results.setdefault(args.name, {"zoo_entry": None, "variants": {}})
    entry["zoo_entry"] = card["training"].get("validation_metrics")
    entry["variants"][label] = {
        "validation_metrics": measured,
        "stopped_at_epoch": variant["training"].get("stopped_at_epoch"),
        "best_epoch": variant["training"].get("best_epoch"),
        "wall_time_seconds": variant["training"]["wall_time_seconds"],
        "command": "KERAS_AE_DATA=../shared/data python scripts/select_on_validation.py "
        + " ".join([args.name] + [f"--set {a}" for a in args.assignments]),
    }
    OUTPUT.write_text(json.dumps(results, indent=2) + "\n")
    print(f"== {args.name} ({label}): validation {measured}; zoo entry {entry['zoo_entry']}", flush=True)


if __name__ == "__main__":
    main()
