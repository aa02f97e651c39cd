"""Measure zoo entries on their full test split and write the metrics, with this command, into their cards.

    KERAS_AE_DATA=../shared/data python scripts/evaluate_zoo.py vae_mnist
"""

import argparse

from keras_ae import cards, evaluate


def write_metrics(name, model=None):
    """Measure a zoo entry on the full test split and write the numbers into its card."""
    card = cards.model_card(name)
    model = model or cards.load(name)
    measured = evaluate.measure(card, model)
    card["metrics"] = {
        **{key: round(value, 5) if isinstance(value, float) else value for key, value in measured.items()},
        "command": f"KERAS_AE_DATA=../shared/data python scripts/evaluate_zoo.py {name}",
    }
    cards.write_card(card)
    print(f"{name}: {card['metrics']}", flush=True)
    return card["metrics"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="zoo entries (default: all)")
    args = parser.parse_args(argv)
    for name in args.names or cards.list_models():
        write_metrics(name)


if __name__ == "__main__":
    main()
