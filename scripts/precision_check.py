"""Retrain zoo entries with `precision="auto"` and compare them with their float32 cards on the full test split.

    KERAS_AE_DATA=../shared/data python scripts/precision_check.py vae_mnist conv_ae_mnist   # writes benchmarks/precision.json

The card's own recipe is used unchanged except for its precision; the float32 numbers are the card's, measured by
`scripts/evaluate_zoo.py` with the same `keras_ae.evaluate.measure`. Issue 14 holds quality to NLL within 0.3 nats and
PSNR within 0.1 dB. Each retrained model is kept as a preset in build/precision/NAME/ (what `scripts/train_zoo.py NAME`
would write with the recipe's precision set to auto), so an entry whose quality held can take it:

    KERAS_AE_DATA=../shared/data python scripts/precision_check.py --adopt vae_mnist   # zoo/vae_mnist/ trains in auto

`--adopt` refuses an entry whose checks did not all hold, then moves the preset into zoo/NAME/ (its recipe now says
auto) and writes its metrics there with `scripts/evaluate_zoo.py`'s `write_metrics`. The preset is measured as
`keras_ae.load` gives it (float32 policy), as the card's numbers are; `--measure-only` measures presets already there.
"""

import argparse
import json
import shutil
from pathlib import Path

import keras_ae
from keras_ae import cards, evaluate, weights
from keras_ae.training import finish, hardware

PRESETS = Path("build/precision")

TOLERANCES = {"iwae_nll_nats": 0.3, "psnr_db": 0.1}  # how far the auto retrain may fall behind the float32 card


def compare(name, retrain=True):
    """Train `name` in auto precision into build/precision/NAME/ (unless `retrain` is False and it is there), measure
    that preset as `keras_ae.load` gives it, and return its metrics beside the float32 card's."""
    card = cards.model_card(name)
    if card["training"]["precision"] != "float32":
        raise SystemExit(f"{name}'s card was trained in {card['training']['precision']}, not float32: nothing to compare with")
    if retrain:
        card["recipe"]["precision"] = "auto"
        model, history, stats = keras_ae.train(card, verbose=2)
        finish(model, card, history, stats, PRESETS / name)
    stats = cards.model_card(str(PRESETS / name))["training"]
    measured = evaluate.measure(card, cards.load(str(PRESETS / name)))
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


def adopt(name, result):
    """Make the auto-precision preset of `name` its zoo entry, if every check held; then measure it into its card."""
    from evaluate_zoo import write_metrics

    if not result["checks"] or not all(check["held"] for check in result["checks"].values()):
        raise SystemExit(f"{name}: not adopted, its quality did not hold in auto precision: {json.dumps(result['checks'])}")
    card = cards.model_card(str(PRESETS / name))
    card["training"]["command"] = f"KERAS_AE_DATA=../shared/data python scripts/train_zoo.py {name}"
    for file in (card["weights"]["file"], "training_curves.png"):
        shutil.copyfile(PRESETS / name / file, weights.ZOO_DIR / name / file)
    cards.write_card(card)
    write_metrics(name, measured=result["metrics"])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="+", help="zoo entries to retrain in auto precision")
    parser.add_argument("--output", default="benchmarks/precision.json")
    parser.add_argument("--adopt", action="store_true", help="move the recorded auto presets whose quality held into the zoo")
    parser.add_argument("--measure-only", action="store_true", help="measure the presets already in build/precision/")
    args = parser.parse_args(argv)
    output = Path(args.output)
    results = json.loads(output.read_text()) if output.exists() else {}
    for name in args.names:
        if args.adopt:
            if name not in results:
                raise SystemExit(f"{name}: {output} records no check of it; run this script on it without --adopt first")
            adopt(name, results[name])
            continue
        results[name] = compare(name, retrain=not args.measure_only)
        print(name, json.dumps(results[name]["checks"]), f"{results[name]['wall_time_seconds']} s", flush=True)
        output.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
