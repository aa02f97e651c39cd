"""Retrain a zoo entry from its card on the real data, then write weights, hash, cost and metrics back into zoo/NAME/.

    KERAS_AE_DATA=../shared/data python scripts/train_zoo.py vae_mnist
    KERAS_AE_DATA=../shared/data python scripts/train_zoo.py vae_mnist iwae_mnist --repin   # a chain

Each entry is also measured on the first VALIDATION_EXAMPLES examples of its validation split (`data.monitor_split`,
carved from the training data), recorded as `training.validation_metrics`: the numbers its recipe choices rest on.
"""

import argparse
import os
import tempfile
from pathlib import Path

import keras_ae
from keras_ae import cards, evaluate, weights
from keras_ae.training import finish

VALIDATION_EXAMPLES = 1000
VALIDATION_IWAE_SAMPLES = 200


def repin(card):
    """Pin a fine-tuning recipe to the current weights of the preset it starts from (after that preset was retrained)."""
    start = card["recipe"].get("initial_weights")
    if start:
        sha256 = cards.find_preset(start["preset"]).card.weights.sha256
        if sha256 != start["sha256"]:
            print(f"== {card['name']}: recipe.initial_weights pinned to {start['preset']}'s new weights {sha256}", flush=True)
            start["sha256"] = sha256
    return card


def validation_metrics(card, model):
    """The card's metrics on the first VALIDATION_EXAMPLES examples of its validation split (None without one)."""
    split = card["data"].get("monitor_split")
    if split is None or card["data"].get("ratings"):
        return None
    measured = evaluate.measure(card, model, split=split, limit=VALIDATION_EXAMPLES, probe=False,
                                iwae_samples=VALIDATION_IWAE_SAMPLES)
    return {key: round(value, 5) if isinstance(value, float) else value for key, value in measured.items()}


def is_new_entry(name):
    """A zoo folder holding only its card (no weights yet): the entry is being trained for the first time."""
    folder = weights.ZOO_DIR / name
    return sorted(path.name for path in folder.iterdir()) == [cards.CARD_FILE]


def write_entry(model, card, history, stats, name):
    """`finish` into zoo/NAME; a new entry's lone card.json is replaced by the finished card, its weights moved in first."""
    folder = weights.ZOO_DIR / name
    if not is_new_entry(name):
        return finish(model, card, history, stats, folder)
    with tempfile.TemporaryDirectory(dir=weights.ZOO_DIR, prefix=f".{name}.") as scratch:
        card = finish(model, card, history, stats, Path(scratch) / name)
        for written in sorted((Path(scratch) / name).iterdir(), key=lambda path: path.name == cards.CARD_FILE):
            os.replace(written, folder / written.name)
    return card


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="+", help="zoo entries to retrain, in order")
    parser.add_argument("--epochs", type=int, help="override the card's epochs")
    parser.add_argument("--strategy", default="auto", help="auto, one_device, mirrored, multi_worker or tpu")
    parser.add_argument("--no-evaluate", action="store_true", help="skip measuring the metrics")
    parser.add_argument("--backup-dir", help="BackupAndRestore folder, so a killed run resumes")
    parser.add_argument("--repin", action="store_true",
                        help="pin a fine-tuning recipe to the current weights of the preset it starts from (retraining a chain)")
    args = parser.parse_args(argv)
    for name in args.names:
        card = cards.model_card(name)
        if args.repin:
            card = repin(card)
        if not is_new_entry(name):  # refused now, not after the training
            cards.check_preset_target(weights.ZOO_DIR / name, overwrite=True)
        print(f"== training {name} for {args.epochs or card['recipe']['epochs']} epochs", flush=True)
        model, history, stats = keras_ae.train(card, strategy=args.strategy, epochs=args.epochs, backup_dir=args.backup_dir, verbose=2)
        stats["command"] = f"KERAS_AE_DATA=../shared/data python scripts/train_zoo.py {name}" + (
            f" --epochs {args.epochs}" if args.epochs else ""
        )
        card = write_entry(model, card, history, stats, name)
        reloaded = cards.load(name)
        measured = validation_metrics(card, reloaded)
        if measured is not None:
            card["training"]["validation_metrics"] = measured
            cards.write_card(card)
        print(f"== wrote {weights.ZOO_DIR / name} ({card['weights']['sha256']}); validation {measured}", flush=True)
        if not args.no_evaluate:
            from evaluate_zoo import write_metrics

            write_metrics(name)


if __name__ == "__main__":
    main()
