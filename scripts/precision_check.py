"""Retrain zoo entries with `precision="auto"` and compare them with their float32 cards on the full test split.

    KERAS_AE_DATA=../shared/data python scripts/precision_check.py vae_mnist conv_ae_mnist   # writes benchmarks/precision.json

The card's own recipe is used unchanged except for its precision; the float32 numbers are the card's, measured by
`scripts/evaluate_zoo.py` with the same `keras_ae.evaluate.measure`. Issue 14 holds quality to NLL within 0.3 nats and
PSNR within 0.1 dB.
"""

import argparse
import json
from pathlib import Path

import keras_ae
from keras_ae import cards, evaluate
from keras_ae.train import hardware

TOLERANCES = {"iwae_nll_nats": 0.3, "psnr_db": 0.1}  # how far the auto retrain may fall behind the float32 card


def compare(name):
    """Train `name` in auto precision and return its metrics beside the card's, with the training records."""
    card = cards.model_card(name)
    card["recipe"].pop("precision", None)
    model, _, stats = keras_ae.train(card, verbose=2)
    measured = evaluate.measure(card, model)
    recorded = cards.model_card(name)
    checks = {}
    for key, tolerance in TOLERANCES.items():
        if key in recorded["metrics"]:
            lower_is_better = key.endswith("nats")
            shortfall = (measured[key] - recorded["metrics"][key]) * (1 if lower_is_better else -1)
            checks[key] = {"float32_card": recorded["metrics"][key], "auto": round(measured[key], 4),
                           "shortfall": round(shortfall, 4), "tolerance": tolerance, "held": shortfall <= tolerance}
    return {"precision": stats["precision"], "hardware": hardware(), "wall_time_seconds": stats["wall_time_seconds"],
            "float32_wall_time_seconds": recorded["training"]["wall_time_seconds"],
            "float32_hardware": recorded["training"].get("hardware"), "checks": checks,
            "metrics": measured}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="+", help="zoo entries to retrain in auto precision")
    parser.add_argument("--output", default="benchmarks/precision.json")
    args = parser.parse_args(argv)
    output = Path(args.output)
    results = json.loads(output.read_text()) if output.exists() else {}
    for name in args.names:
        results[name] = compare(name)
        print(name, json.dumps(results[name]["checks"]), f"{results[name]['wall_time_seconds']} s", flush=True)
        output.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
