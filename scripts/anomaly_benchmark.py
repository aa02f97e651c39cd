"""keras-ae's anomaly detectors against PyOD's on four suites, in one run: images, heartbeats, UCR series, tables.

    pip install -e ".[bench]"
    KERAS_AE_DATA=../shared/data python scripts/anomaly_benchmark.py     # every suite, 3 seeds, the full image protocol
    KERAS_AE_DATA=../shared/data python scripts/anomaly_benchmark.py --suites ecg5000 ucr --seeds 2   # the signal suites

Each suite is a list of one-class units (`anomaly_suites.py`): one class is normal, every method is fitted on the same
normal training examples and scores the whole test split, measured by AUROC (`keras_ae.metrics.auroc`). PyOD's KNN,
IForest, PCA, OCSVM and ECOD run with their defaults, on pixels in [0, 1] for images and on features min-max scaled on
the normal training examples otherwise; IForest and PCA, which take a random state, run once per seed. keras-ae's
candidates per data kind (CANDIDATES) are each trained once per seed and scored by every `keras_ae.anomaly.SCORES`.

The recommendation for a data kind is the candidate with the highest mean AUROC on the development parts (a seeded
fifth of each unit's normal training examples plus training examples of the other classes; no test example) of the
kind's suites in the run: the mean over suites of the mean over their units. Suites measured in separate runs (the
image suites take an hour each here) get one recommendation per kind with `--recommend-only`, which trains nothing. Per suite the script prints and writes
(`benchmarks/anomaly_<suite>.json`) the mean AUROC of every method, its spread over seeds and over units, the means per
dataset, and on how many units and datasets the recommendation beats the PyOD detector with the best mean.
"""

import argparse
import json
import math
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from keras_ae import anomaly, networks, weights
from keras_ae.metrics import auroc
from keras_ae.models import Autoencoder
from anomaly_suites import SUITES

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def conv_autoencoder(unit, seed, epochs):
    """The image candidate: MSE autoencoder on `networks.conv` (filters 32, 64; code 32), Adam 1e-3, batches of 128."""
    keras.utils.set_random_seed(seed)
    model = Autoencoder(*networks.conv(unit.train.shape[1:], 32, filters=(32, 64)), reconstruction="mse", seed=seed)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.fit(unit.train, epochs=epochs, batch_size=128, shuffle=True, verbose=0)
    return model


def detector(family, network, batch_size=64, steps=None, ensemble_size=1):
    """A candidate for rows: `keras_ae.anomaly.Detector`, otherwise its defaults (50 epochs, code 8; the image epochs do
    not apply); with `steps`, as many epochs as make at least that many updates (a unit of 20 normal rows makes 2 a epoch);
    with `ensemble_size`, that many models (scored together by `anomaly.fit_scorer`)."""
    def fit(unit, seed, epochs):
        keras.utils.set_random_seed(seed)
        epochs = anomaly.ROWS["epochs"]
        if steps is not None:
            epochs = max(epochs, math.ceil(steps / math.ceil(len(unit.train) / batch_size)))
        fitted = anomaly.Detector(family=family, network=network, batch_size=batch_size, epochs=epochs, seed=seed,
                                  ensemble_size=ensemble_size).fit(unit.train)
        return fitted.models_ if ensemble_size > 1 else fitted.model_
    return fit


CANDIDATES = {  # data kind -> {model: how to train it on a unit}; each model is scored by every anomaly.SCORES
    "images": {"conv ae": conv_autoencoder},
    "signals": {"ae dense": detector("ae", "dense"), "ae conv1d": detector("ae", "conv1d"), "dae conv1d": detector("dae", "conv1d"),
                "ae conv1d, ensemble of 3": detector("ae", "conv1d", ensemble_size=3)},
    "tables": {"ae dense": detector("ae", "dense"), "ae dense, batches of 16": detector("ae", "dense", batch_size=16),
               "ae dense, batches of 16, 2,000 steps": detector("ae", "dense", 16, 2000),
               "dae dense, batches of 16": detector("dae", "dense", batch_size=16),
               "ae dense, batches of 16, ensemble of 3": detector("ae", "dense", batch_size=16, ensemble_size=3),
               "ae dense, batches of 16, ensemble of 5": detector("ae", "dense", batch_size=16, ensemble_size=5)},
}


def peers():
    """PyOD's detectors by name, each a function of the seed (used by those that take a random state)."""
    from pyod.models.ecod import ECOD
    from pyod.models.iforest import IForest
    from pyod.models.knn import KNN
    from pyod.models.ocsvm import OCSVM
    from pyod.models.pca import PCA

    return {"KNN": lambda seed: KNN(), "IForest": lambda seed: IForest(random_state=seed),
            "PCA": lambda seed: PCA(random_state=seed), "OCSVM": lambda seed: OCSVM(), "ECOD": lambda seed: ECOD()}


SEEDED_PEERS = ("IForest", "PCA")


def peer_features(unit, kind):
    """The unit's (train, test) rows for PyOD, in float64: flattened pixels, or features min-max scaled on the normal
    training rows. (PyOD computes in the dtype it is given: in float32, PCA's last explained variance on ECG5000 was 0
    and every score infinite.)"""
    train, test = (rows.reshape(len(rows), -1).astype("float64") for rows in (unit.train, unit.test))
    if kind == "images":
        return train, test
    low, span = train.min(axis=0), train.max(axis=0) - train.min(axis=0)
    span[span == 0] = 1.0
    return (train - low) / span, (test - low) / span


def measure_unit(unit, kind, seeds, epochs):
    """{"development": {candidate: [AUROC per seed]}, "test": {method: [AUROC per seed]}, "seconds": {method: s}}."""
    development, test, seconds = {}, {}, {}
    for model_name, fit in CANDIDATES[kind].items():
        started = time.perf_counter()
        for seed in seeds:
            model = fit(unit, seed, epochs)
            for score in anomaly.SCORES:
                scorer = anomaly.fit_scorer(model, unit.train, score)
                name = f"{model_name}, {score}"
                development.setdefault(name, []).append(auroc(scorer(unit.development), unit.development_is_anomaly))
                test.setdefault(name, []).append(auroc(scorer(unit.test), unit.test_is_anomaly))
        seconds[model_name] = round((time.perf_counter() - started) / len(seeds), 1)
    train, test_rows = peer_features(unit, kind)
    for name, make in peers().items():
        started = time.perf_counter()
        for seed in seeds if name in SEEDED_PEERS else seeds[:1]:
            test.setdefault(name, []).append(auroc(make(seed).fit(train).decision_function(test_rows), unit.test_is_anomaly))
        seconds[name] = round(time.perf_counter() - started, 1)
    return {"dataset": unit.dataset, "class": unit.normal_class, "normal_train": len(unit.train),
            "development_examples": len(unit.development), "test_examples": len(unit.test),
            "development": development, "test": test, "seconds": seconds}


def summarize(units):
    """Per method: mean AUROC over units, spread over seeds (of the suite mean) and over units, means per dataset."""
    summary = {}
    for method in units[0]["test"]:
        per_seed = np.array([unit["test"][method] for unit in units])  # (units, seeds run)
        unit_means = per_seed.mean(axis=1)
        datasets = dict.fromkeys(unit["dataset"] for unit in units)
        summary[method] = {
            "mean_auroc": round(float(unit_means.mean()), 4),
            "std_over_seeds": round(float(per_seed.mean(axis=0).std(ddof=1)), 4) if per_seed.shape[1] > 1 else 0.0,
            "std_over_units": round(float(unit_means.std(ddof=1)), 4) if len(units) > 1 else 0.0,
            "seeds": per_seed.shape[1],
            "per_dataset": {name: round(float(np.mean([m for m, unit in zip(unit_means, units) if unit["dataset"] == name])), 4)
                            for name in datasets},
        }
        if method in units[0]["development"]:
            summary[method]["development_auroc"] = round(float(np.mean([np.mean(unit["development"][method]) for unit in units])), 4)
    return summary


def recommend(suites):
    """{kind: candidate} with the highest mean over the kind's suites of the mean development AUROC."""
    chosen = {}
    for kind in {suite["kind"] for suite in suites.values()}:
        kind_suites = [suite for suite in suites.values() if suite["kind"] == kind]
        candidates = [method for method in kind_suites[0]["summary"] if "development_auroc" in kind_suites[0]["summary"][method]]
        chosen[kind] = max(candidates, key=lambda method: np.mean([s["summary"][method]["development_auroc"] for s in kind_suites]))
    return chosen


def wins(suite, recommended):
    """How often the recommendation beats the PyOD detector of best mean AUROC, per unit and per dataset (ties apart)."""
    summary = suite["summary"]
    best_peer = max((method for method in summary if method in peers()), key=lambda method: summary[method]["mean_auroc"])
    unit_pairs = [(np.mean(unit["test"][recommended]), np.mean(unit["test"][best_peer])) for unit in suite["units"]]
    dataset_pairs = [(summary[recommended]["per_dataset"][name], value) for name, value in summary[best_peer]["per_dataset"].items()]
    count = lambda pairs: {"wins": int(sum(a > b for a, b in pairs)), "ties": int(sum(a == b for a, b in pairs)), "of": len(pairs)}  # noqa: E731
    return {"best_peer": best_peer, "units": count(unit_pairs), "datasets": count(dataset_pairs)}


def markdown(name, suite):
    """The suite's tables: every method's mean, spreads and development AUROC; then the recommendation and peers per dataset."""
    summary, recommended, tally = suite["summary"], suite["recommended"], suite["wins"]
    lines = [f"**{name}** ({len(suite['units'])} units; recommendation: `{recommended}`; against {tally['best_peer']}, "
             f"the best PyOD detector here, it wins {tally['units']['wins']} of {tally['units']['of']} units and "
             f"{tally['datasets']['wins']} of {tally['datasets']['of']} datasets)", "",
             "| method | mean AUROC | ± over seeds | ± over units | seeds | development AUROC |", "|---|---|---|---|---|---|"]
    for method, row in sorted(summary.items(), key=lambda item: -item[1]["mean_auroc"]):
        label = f"**{method}** (recommended)" if method == recommended else method
        development = f"{row['development_auroc']:.3f}" if "development_auroc" in row else ""
        lines.append(f"| {label} | {row['mean_auroc']:.3f} | {row['std_over_seeds']:.3f} | {row['std_over_units']:.3f} | "
                     f"{row['seeds']} | {development} |")
    shown = [recommended, *peers()]
    lines += ["", "| dataset | " + " | ".join(shown) + " |", "|---" * (len(shown) + 1) + "|"]
    for dataset in summary[recommended]["per_dataset"]:
        values = [summary[method]["per_dataset"][dataset] for method in shown]
        lines.append(f"| {dataset} | " + " | ".join(f"**{v:.3f}**" if v == max(values) else f"{v:.3f}" for v in values) + " |")
    return "\n".join(lines)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suites", nargs="+", choices=list(SUITES), default=list(SUITES))
    parser.add_argument("--seeds", type=int, help="keras-ae and seeded peers run with seeds 0..N-1 (default: 3)")
    parser.add_argument("--image-epochs", type=int, help="epochs of the image autoencoder (default: 10)")
    parser.add_argument("--image-train-limit", type=int, help="a seeded sample of this many training images per class (default: all)")
    parser.add_argument("--image-test-limit", type=int, help="the first this many test images (default: all 10,000)")
    parser.add_argument("--output-dir", default=str(BENCHMARKS), help="where anomaly_<suite>.json go")
    parser.add_argument("--quick", action="store_true", help="smoke run: one unit per suite, 1 image epoch, 2,000 test images")
    parser.add_argument("--recommend-only", action="store_true",
                        help="train nothing: read the suites' anomaly_<suite>.json from --output-dir (measured in separate runs) and "
                             "choose each data kind's recommendation over them together")
    args = parser.parse_args(argv)
    measuring = (args.quick, args.seeds, args.image_epochs, args.image_train_limit, args.image_test_limit)
    if args.recommend_only and any(option not in (None, False) for option in measuring):
        parser.error("--recommend-only reads measured suites; it takes only --suites and --output-dir")
    args.seeds = 3 if args.seeds is None else args.seeds
    args.image_epochs = 10 if args.image_epochs is None else args.image_epochs
    if args.seeds < 1:
        parser.error(f"--seeds must be at least 1; got {args.seeds}")
    if args.quick:
        args.image_epochs, args.image_test_limit = 1, 2000
    return args


def measure(args, command):
    """Every suite of `args` measured: {name: the suite's record, with the run's config, platform and command}."""
    seeds, suites = list(range(args.seeds)), {}
    for name in args.suites:
        make_units, kind = SUITES[name]
        started, units = time.perf_counter(), []
        for unit in make_units(args.quick, train_limit=args.image_train_limit, test_limit=args.image_test_limit):
            units.append(measure_unit(unit, kind, seeds, args.image_epochs))
            print(f"{name} {unit.dataset} class {unit.normal_class}: " + ", ".join(
                f"{method} {np.mean(values):.4f}" for method, values in units[-1]["test"].items()) + f" {units[-1]['seconds']}",
                flush=True)
        suites[name] = {"suite": name, "kind": kind, "units": units, "summary": summarize(units),
                        "seconds": round(time.perf_counter() - started, 1),
                        "config": {"seeds": seeds, "image_epochs": args.image_epochs, "image_train_limit": args.image_train_limit,
                                   "image_test_limit": args.image_test_limit, "quick": args.quick, "suites_in_run": args.suites},
                        "hardware": f"{platform.machine()}, {os.cpu_count()} CPU cores, {len(tf.config.list_physical_devices('GPU'))} GPU",
                        "tensorflow": tf.__version__, "keras": keras.__version__, "command": command}
    return suites


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    command = shlex.join(["python", "scripts/anomaly_benchmark.py", *argv])
    if os.environ.get("KERAS_AE_DATA"):
        command = f"KERAS_AE_DATA={shlex.quote(os.environ['KERAS_AE_DATA'])} {command}"
    paths = {name: Path(args.output_dir) / f"anomaly_{name}.json" for name in args.suites}
    if args.recommend_only:
        missing = [str(path) for path in paths.values() if not path.is_file()]
        if missing:
            sys.exit(f"--recommend-only: no measured suite at {missing[0]}; run the suite first")
        suites = {name: json.loads(path.read_text()) for name, path in paths.items()}
    else:
        suites = measure(args, command)
    chosen = recommend(suites)
    for name, suite in suites.items():
        suite["recommended"] = chosen[suite["kind"]]
        suite["recommended_over"] = [other for other in suites if suites[other]["kind"] == suite["kind"]]
        suite["wins"] = wins(suite, suite["recommended"])
        suite["markdown"] = markdown(name, suite)
        if args.recommend_only:
            suite["recommendation_command"] = command
        paths[name].parent.mkdir(parents=True, exist_ok=True)
        weights.atomic_copy(lambda temporary: Path(temporary).write_text(json.dumps(suite, indent=1) + "\n"), paths[name])
        print(f"\n{suite['markdown']}\n\nWrote {paths[name]}", flush=True)
    print(f"\nCommand: {command}", flush=True)


if __name__ == "__main__":
    main()
