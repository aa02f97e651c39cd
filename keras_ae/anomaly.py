"""Anomaly detection with any autoencoder: scores, a threshold fitted on normal data, and AUROC."""

import numpy as np

from keras_ae.errors import InputError
from keras_ae.metrics import auroc
from keras_ae.models import per_batch

SCORES = ("reconstruction", "reconstruction+code", "weighted reconstruction+code")


def anomaly_scores(model, x, batch_size=500):
    """Per-example scores of `x` (reconstruction error; negative ELBO for a VAE) as a numpy array."""
    return np.asarray(per_batch(model.anomaly_score, np.asarray(x), batch_size=batch_size))


def codes(model, x, batch_size=500):
    """The deterministic code of each example (z_mean for a VAE) as a numpy array."""
    return np.asarray(per_batch(model.embed, np.asarray(x), batch_size=batch_size))


def squared_residuals(model, x, batch_size=500):
    """`(x - model(x)) ** 2` per value, flattened to (examples, values), as a float64 numpy array."""
    residual = lambda batch: np.square(batch - np.asarray(model(batch))).reshape(len(batch), -1)  # noqa: E731
    return np.asarray(per_batch(residual, np.asarray(x, "float32"), batch_size=batch_size)).astype("float64")


def fit_scorer(model, normal_x, score="reconstruction", ridge=1e-3, weight_floor=0.1):
    """A function from examples to anomaly scores (higher: more anomalous), fitted on known-normal examples.

    `"reconstruction"`: the model's own `anomaly_score`. `"reconstruction+code"` adds how far each code lies from
    the normal codes, for anomalies the model reconstructs well: the squared Mahalanobis distance to the normal codes'
    mean and covariance (its diagonal raised by `ridge` times the mean variance). Both terms are taken in log and
    standardized by their mean and spread on `normal_x`, then summed. `"weighted reconstruction+code"` takes as its
    first term the squared error of each value divided by that value's mean squared error on `normal_x` (raised by
    `weight_floor` times their mean), averaged: an error where normal examples are reconstructed closely counts more
    than one where they rarely are.
    """
    if score not in SCORES:
        raise InputError(f"Unknown anomaly score {score!r}; expected one of {list(SCORES)}.")
    if score == "reconstruction":
        return lambda x: anomaly_scores(model, x)
    normal_x = np.asarray(normal_x)
    if len(normal_x) < 2:
        raise InputError(f"score={score!r} needs at least 2 normal examples to fit; got {len(normal_x)}.")
    normal_codes = codes(model, normal_x).reshape(len(normal_x), -1).astype("float64")
    mean = normal_codes.mean(axis=0)
    covariance = np.atleast_2d(np.cov(normal_codes - mean, rowvar=False))
    covariance += ridge * np.trace(covariance) / len(covariance) * np.eye(len(covariance))
    inverse = np.linalg.inv(covariance)
    if score == "weighted reconstruction+code":
        typical_error = squared_residuals(model, normal_x).mean(axis=0)
        typical_error += weight_floor * typical_error.mean()
        reconstruction_term = lambda x: (squared_residuals(model, x) / typical_error).mean(axis=1)  # noqa: E731
    else:
        # float64, as the other terms: standardized in float32, the normal examples' mean strayed from 0 by 1e-6
        reconstruction_term = lambda x: np.asarray(anomaly_scores(model, x), "float64")  # noqa: E731

    def terms(x):
        reconstruction = reconstruction_term(x)
        if np.min(reconstruction) < 0:
            raise InputError(f"score={score!r} takes the log of {type(model).__name__}'s anomaly scores, "
                             "which must be non-negative; use score='reconstruction'.")
        offsets = codes(model, x).reshape(len(x), -1) - mean
        distance = np.einsum("ij,ij->i", offsets @ inverse, offsets)
        return np.log(reconstruction + 1e-12), np.log(distance + 1e-12)

    reference = [(term.mean(), term.std() + 1e-12) for term in terms(normal_x)]
    return lambda x: sum((term - center) / spread for term, (center, spread) in zip(terms(np.asarray(x)), reference))


def fit_threshold(model, normal_x, percentile=99.0):
    """The score below which `percentile` percent of known-normal examples fall."""
    if not 0.0 < percentile < 100.0:
        raise InputError(f"percentile must lie strictly between 0 and 100; got {percentile!r}.")
    return float(np.percentile(anomaly_scores(model, normal_x), percentile))


def detect(model, x, threshold):
    """Boolean array: True where an example's score exceeds `threshold`."""
    return anomaly_scores(model, x) > threshold


def evaluate_detection(model, x, is_anomaly):
    """AUROC of the model's scores for separating anomalies (True) from normal examples."""
    return auroc(anomaly_scores(model, x), is_anomaly)
