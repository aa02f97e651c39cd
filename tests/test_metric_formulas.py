"""The formulas behind published numbers, against hand-computed cases and code that shares nothing with keras_ae."""

import math

import numpy as np
import pytest
from scipy import integrate, special, stats

import keras_ae
from keras_ae import evaluate, losses, networks


@pytest.mark.parametrize("mse, data_range, expected", [
    (0.01, 1.0, 20.0),  # 10 log10(1 / 0.01)
    (1e-3, 1.0, 30.0),
    (0.25, 2.0, 10 * math.log10(4 / 0.25)),  # 12.0412 dB
    (100.0, 255.0, 28.1308),  # 10 log10(65025 / 100)
])
def test_psnr_by_hand(mse, data_range, expected):
    assert evaluate.psnr(mse, data_range) == pytest.approx(expected, abs=1e-4)
    if data_range == 1.0:  # the default the cards use: images in [0, 1]
        assert evaluate.psnr(mse) == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("scores, is_anomaly, expected", [
    ([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1], 0.75),  # of the 4 (normal, anomaly) pairs, 3 are ordered right
    ([1.0, 1.0, 2.0], [0, 1, 1], 0.75),  # a tie counts one half
    ([3.0, 2.0, 1.0], [0, 1, 1], 0.0),
    ([0.0, 1.0, 2.0, 3.0, 4.0], [0, 0, 1, 0, 1], 5 / 6),
])
def test_auroc_by_hand(scores, is_anomaly, expected):
    assert evaluate.auroc(scores, is_anomaly) == pytest.approx(expected)


@pytest.mark.parametrize("levels", [None, 5, 2])  # continuous scores, then heavy ties
def test_auroc_matches_scikit_learn_with_ties(levels):
    from sklearn.metrics import roc_auc_score

    generator = np.random.default_rng(levels or 0)
    for size in (7, 60, 1001):
        is_anomaly = generator.random(size) < 0.3
        is_anomaly[:2] = (True, False)
        scores = generator.normal(size=size) + is_anomaly
        scores = np.round(scores * levels) / levels if levels else scores
        assert evaluate.auroc(scores, is_anomaly) == pytest.approx(roc_auc_score(is_anomaly, scores), abs=1e-12)


def test_auroc_refuses_a_single_class():
    with pytest.raises(keras_ae.errors.InputError, match="needs anomalies and normal examples"):
        evaluate.auroc([0.1, 0.2], [False, False])


def test_the_kl_term_is_the_integral_of_the_scipy_densities():
    mean, log_var = np.array([[0.0, 1.5, -0.7]]), np.array([[0.0, -1.2, 0.9]])
    by_integral = 0.0
    for mu, variance in zip(mean[0], np.exp(log_var[0])):
        q = stats.norm(mu, math.sqrt(variance))
        by_integral += integrate.quad(lambda z: q.pdf(z) * (q.logpdf(z) - stats.norm.logpdf(z)), -30, 30)[0]
    library = float(np.asarray(losses.gaussian_kl_divergence(mean.astype("float32"), log_var.astype("float32")))[0])
    assert library == pytest.approx(by_integral, rel=1e-5)


def test_the_importance_weighted_bound_is_scipy_logsumexp_of_the_log_weights(mnist_images, monkeypatch):
    model = keras_ae.VAE(*networks.dense((28, 28, 1), 4, hidden_units=(32,), variational=True), seed=0)
    x = (mnist_images[:3] > 0.5).astype("float32")
    draws = np.random.default_rng(1).normal(size=(3 * 50, 4))
    monkeypatch.setattr(model, "reparameterize", lambda mean, log_var, seed=None: (np.asarray(mean) + np.exp(0.5 * np.asarray(log_var)) * draws).astype("float32"))
    z_mean, z_log_var = (np.asarray(part, "float64") for part in model.encoder(x))
    z = np.repeat(z_mean, 50, axis=0) + np.exp(0.5 * np.repeat(z_log_var, 50, axis=0)) * draws
    probabilities = special.expit(np.asarray(model.decoder(z.astype("float32")), "float64").reshape(150, -1))
    log_weights = (stats.bernoulli.logpmf(np.repeat(x.reshape(3, -1), 50, axis=0), probabilities).sum(axis=1)
                   + stats.norm.logpdf(z).sum(axis=1)
                   - stats.norm.logpdf(z, np.repeat(z_mean, 50, axis=0), np.exp(0.5 * np.repeat(z_log_var, 50, axis=0))).sum(axis=1))
    expected = -(special.logsumexp(log_weights.reshape(3, 50), axis=1) - math.log(50))
    np.testing.assert_allclose(np.asarray(model.importance_weighted_bound(x, samples=50)), expected, rtol=1e-5, atol=1e-2)
