"""Retrain a zoo entry from its card on the real data, then write weights, hash, cost and metrics back into zoo/NAME/.

    KERAS_AE_DATA=../shared/data python scripts/train_zoo.py vae_mnist
"""

import argparse

import keras_ae
from keras_ae import cards, weights
from keras_ae.train import finish


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="+", help="zoo entries to retrain")
    parser.add_argument("--epochs", type=int, help="override the card's epochs")
    parser.add_argument("--strategy", default="auto", help="auto, one_device, mirrored, multi_worker or tpu")
    parser.add_argument("--no-evaluate", action="store_true", help="skip measuring the metrics")
    parser.add_argument("--backup-dir", help="BackupAndRestore folder, so a killed run resumes")
    args = parser.parse_args(argv)
    for name in args.names:
        card = cards.model_card(name)
        print(f"== training {name} for {args.epochs or card['recipe']['epochs']} epochs", flush=True)
        model, history, stats = keras_ae.train(card, strategy=args.strategy, epochs=args.epochs, backup_dir=args.backup_dir, verbose=2)
        stats["command"] = f"KERAS_AE_DATA=../shared/data python scripts/train_zoo.py {name}" + (
            f" --epochs {args.epochs}" if args.epochs else ""
        )
        card = finish(model, card, history, stats, weights.ZOO_DIR / name)
        print(f"== wrote {weights.ZOO_DIR / name} ({card['weights']['sha256']})", flush=True)
        if not args.no_evaluate:
            from evaluate_zoo import write_metrics

            write_metrics(name)


if __name__ == "__main__":
    main()
