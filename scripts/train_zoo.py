"""Retrain a zoo entry from its card on the real data, then write weights, hash, cost and metrics back into the card.

    KERAS_AE_DATA=../shared/data python scripts/train_zoo.py vae_mnist
"""

import argparse
import datetime
import os
import platform

import keras
import tensorflow as tf

import keras_ae
from keras_ae import cards, weights
from keras_ae.train import STRATEGIES


def hardware():
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, " + (
        f"{len(tf.config.list_physical_devices('GPU'))} GPU" if tf.config.list_physical_devices("GPU") else "no GPU"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="+", help="zoo entries to retrain")
    parser.add_argument("--epochs", type=int, help="override the card's epochs")
    parser.add_argument("--strategy", default="auto", choices=STRATEGIES)
    parser.add_argument("--no-evaluate", action="store_true", help="skip measuring the metrics")
    parser.add_argument("--backup-dir", help="BackupAndRestore folder, so a killed run resumes")
    args = parser.parse_args(argv)
    for name in args.names:
        card = cards.model_card(name)
        print(f"== training {name} for {args.epochs or card['recipe']['epochs']} epochs", flush=True)
        model, history, stats = keras_ae.train(
            card, strategy=args.strategy, epochs=args.epochs, backup_dir=args.backup_dir, verbose=2
        )
        path = weights.ZOO_DIR / name / card["weights"]["file"]
        cards.save_weights(model, card, path)
        card["training"] = {
            **stats,
            "hardware": hardware(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "date": datetime.date.today().isoformat(),
            "final_losses": {key: round(float(values[-1]), 4) for key, values in history.history.items()},
            "command": f"KERAS_AE_DATA=../shared/data python scripts/train_zoo.py {name}",
        }
        cards.write_card(card)
        print(f"== wrote {path} ({card['weights']['sha256']})", flush=True)
        if not args.no_evaluate:
            from keras_ae import evaluate

            evaluate.write_metrics(name, model)


if __name__ == "__main__":
    main()
