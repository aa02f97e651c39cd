"""Measure zoo entries on their full test split and write the metrics, with this command, into their cards.

    KERAS_AE_DATA=../shared/data python scripts/evaluate_zoo.py vae_mnist [--subset-only]

The family's headline of those numbers is written beside them, so `keras-ae list` shows it without TensorFlow.
Every card also records `subset_metrics`: the same seeded metrics on the first 1,000 test examples (the
importance-weighted bound with 50 samples, so the tests stay short), which tests/test_zoo.py re-measures to a
relative 1e-3.
"""

import argparse

from keras_ae import cards, evaluate

SUBSET_EXAMPLES = 1000
SUBSET_IWAE_SAMPLES = 50


def rounded(measured):
    """Floats to 5 decimals, as the cards show them."""
    return {key: round(value, 5) if isinstance(value, float) else value for key, value in measured.items()}


def significant(measured):
    """Floats to 7 significant digits: tests/test_zoo.py compares these to a relative 1e-3, which 5 decimals of a small
    number (an MSE of 0.0044) would not keep."""
    return {key: float(f"{value:.7g}") if isinstance(value, float) else value for key, value in measured.items()}


def measure_subset(card, model):
    """The card's metrics on the first SUBSET_EXAMPLES test examples, as tests/test_zoo.py re-measures them."""
    return evaluate.measure(card, model, limit=SUBSET_EXAMPLES, iwae_samples=SUBSET_IWAE_SAMPLES)


def write_metrics(name, subset_only=False, measured=None):
    """Measure a zoo entry on the full test split (unless `subset_only`, or `measured` holds those numbers already) and on
    its subset; write both into its card.

    The model is the one `keras_ae.load(name)` gives, built under the float32 policy whatever precision trained it, so
    the card holds what users and tests/test_zoo.py measure.
    """
    card = cards.model_card(name)
    model = cards.load(name)
    if not subset_only:
        measured = evaluate.measure(card, model) if measured is None else measured
        card["metrics"] = {
            **rounded(measured),
            "headline": cards.task_of(card).headline(measured),
            "command": f"KERAS_AE_DATA=../shared/data python scripts/evaluate_zoo.py {name}",
        }
    card["subset_metrics"] = significant(measure_subset(card, model))
    cards.write_card(card)
    print(f"{name}: {card['metrics']} subset {card['subset_metrics']}", flush=True)
    return card["metrics"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="zoo entries (default: all)")
    parser.add_argument("--subset-only", action="store_true", help="re-measure only the first 1,000 test examples")
    args = parser.parse_args(argv)
    for name in args.names or cards.list_models():
        write_metrics(name, subset_only=args.subset_only)


if __name__ == "__main__":
    main()
