"""Anomaly detection with any autoencoder: scores, a threshold fitted on normal data, and AUROC."""

import numpy as np

from keras_ae.evaluate import auroc, per_example


def anomaly_scores(model, x, batch_size=500):
    """Per-example scores of `x` (reconstruction error; negative ELBO for a VAE) as a numpy array."""
    return per_example(model.anomaly_score, np.asarray(x), batch_size)


def fit_threshold(model, normal_x, percentile=99.0):
    """The score below which `percentile` percent of known-normal examples fall."""
    if not 0.0 < percentile < 100.0:
        raise ValueError(f"percentile must lie strictly between 0 and 100; got {percentile!r}.")
    return float(np.percentile(anomaly_scores(model, normal_x), percentile))


def detect(model, x, threshold):
    """Boolean array: True where an example's score exceeds `threshold`."""
    return anomaly_scores(model, x) > threshold


def evaluate_detection(model, x, is_anomaly):
    """AUROC of the model's scores for separating anomalies (True) from normal examples."""
    return auroc(anomaly_scores(model, x), is_anomaly)
