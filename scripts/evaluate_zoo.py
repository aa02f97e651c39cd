"""Measure zoo entries on their full test split and write the metrics into their cards.

    KERAS_AE_DATA=../shared/data python scripts/evaluate_zoo.py vae_mnist
"""

import argparse

from keras_ae import cards, evaluate


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="zoo entries (default: all)")
    args = parser.parse_args(argv)
    for name in args.names or cards.list_models():
        evaluate.write_metrics(name)


if __name__ == "__main__":
    main()
