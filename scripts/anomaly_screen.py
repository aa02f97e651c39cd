"""Screens for the signal candidates of `anomaly_benchmark.py`, on the suites' development parts only (no test example).

    KERAS_AE_DATA=../shared/data python scripts/anomaly_screen.py networks --suites ucr       # dense / conv1d, codes 8 and 32
    KERAS_AE_DATA=../shared/data python scripts/anomaly_screen.py ensemble --suites ucr ecg5000
    KERAS_AE_DATA=../shared/data python scripts/anomaly_screen.py denoising --suites tables

`networks`: `keras_ae.anomaly.Detector` (its defaults otherwise, seed 0) with a dense or a conv1d network and a code of
8 or 32, scored by the reconstruction error and by "reconstruction+code". `ensemble`: the conv1d candidate of
`anomaly_benchmark.py` trained with seeds 0, 100 and 200; one model's reconstruction error (seed 0's, and the mean of
the three models' AUROC) against the mean of the three models' log errors, each standardized on the normal training
rows. `denoising`: the dense autoencoder of `keras_ae.anomaly.Detector`'s defaults (seed 0) against the denoising one
with Gaussian noise of each of NOISE_LEVELS (in the network's min-max scaled units), by reconstruction error. Prints
each unit's development AUROC and the
mean over the suite's units.
"""

import argparse
import json

import keras
import numpy as np

import anomaly_benchmark
from anomaly_suites import SUITES
from keras_ae import anomaly
from keras_ae.metrics import auroc

NETWORKS = [{"network": network, "latent_dim": code} for network in ("dense", "conv1d") for code in (8, 32)]
ENSEMBLE_SEEDS = (0, 100, 200)
NOISE_LEVELS = (0.02, 0.05, 0.1, 0.2, 0.5)


def networks(unit):
    """{variant and score: development AUROC} for every network of NETWORKS."""
    results = {}
    for options in NETWORKS:
        keras.utils.set_random_seed(0)
        model = anomaly.Detector(family="ae", seed=0, **options).fit(unit.train).model_
        for score in ("reconstruction", "reconstruction+code"):
            scorer = anomaly.fit_scorer(model, unit.train, score)
            results[f"{options['network']}, code {options['latent_dim']}, {score}"] = auroc(scorer(unit.development), unit.development_is_anomaly)
    return results


def ensemble(unit):
    """Development AUROC of the conv1d candidate's reconstruction error: one model's, and the ensemble's."""
    fit = anomaly_benchmark.CANDIDATES["signals"]["ae conv1d"]
    models = [fit(unit, seed, None) for seed in ENSEMBLE_SEEDS]
    alone = [auroc(anomaly.anomaly_scores(model, unit.development), unit.development_is_anomaly) for model in models]
    together = anomaly.fit_scorer(models, unit.train, "reconstruction")(unit.development)
    return {"one model (seed 0)": alone[0], "one model (mean over the seeds)": float(np.mean(alone)),
            f"mean of {len(ENSEMBLE_SEEDS)} models' scores": auroc(together, unit.development_is_anomaly)}


def denoising(unit):
    """Development AUROC of the reconstruction error: the dense autoencoder, and the denoising one per noise level."""
    results = {}
    for level in (None, *NOISE_LEVELS):
        keras.utils.set_random_seed(0)
        family, options = ("ae", None) if level is None else ("dae", {"noise_level": level})
        model = anomaly.Detector(family=family, family_options=options, seed=0).fit(unit.train).model_
        results["ae" if level is None else f"dae, noise {level}"] = auroc(anomaly.anomaly_scores(model, unit.development), unit.development_is_anomaly)
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("screen", choices=("networks", "ensemble", "denoising"))
    parser.add_argument("--suites", nargs="+", choices=[name for name, (_, kind) in SUITES.items() if kind != "images"], default=["ucr"])
    args = parser.parse_args(argv)
    tables = [name for name in args.suites if SUITES[name][1] != "signals"]
    if args.screen != "denoising" and tables:
        parser.error(f"the {args.screen} screen compares networks for series; {tables[0]} is not a signal suite")
    screen = {"networks": networks, "ensemble": ensemble, "denoising": denoising}[args.screen]
    for name in args.suites:
        make_units, _ = SUITES[name]
        collected = {}
        for unit in make_units(False):
            results = screen(unit)
            print(json.dumps({"suite": name, "dataset": unit.dataset, "class": unit.normal_class,
                              **{key: round(value, 4) for key, value in results.items()}}), flush=True)
            for key, value in results.items():
                collected.setdefault(key, []).append(value)
        print(json.dumps({"suite": name, "mean development AUROC": {key: round(float(np.mean(values)), 4) for key, values in collected.items()}}))


if __name__ == "__main__":
    main()
