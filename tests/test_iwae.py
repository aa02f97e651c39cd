"""The importance-weighted objective and bound (Burda et al. 2015), checked against scipy densities and its properties."""

import keras
import numpy as np
import pytest
from scipy import special, stats

import keras_ae
from keras_ae import networks


def small_vae(**options):
    keras.utils.set_random_seed(0)
    return keras_ae.VAE(*networks.dense((28, 28, 1), 4, hidden_units=(64,), variational=True), seed=0, **options)


def test_log_weights_match_scipy_densities(mnist_images, monkeypatch):
    model = small_vae()
    x = (mnist_images[:3] > 0.5).astype("float32")
    z_mean, z_log_var = (np.asarray(part, "float64") for part in model.encoder(x))
    draws = np.random.default_rng(0).normal(size=(3 * 5, 4))
    monkeypatch.setattr(model, "reparameterize", lambda mean, log_var, seed=None: (np.asarray(mean) + np.exp(0.5 * np.asarray(log_var)) * draws).astype("float32"))
    log_weights, nll = (np.asarray(part, "float64") for part in model.log_importance_weights(x, z_mean, z_log_var, 5))
    z = np.repeat(z_mean, 5, axis=0) + np.exp(0.5 * np.repeat(z_log_var, 5, axis=0)) * draws
    logits = np.asarray(model.decoder(z.astype("float32")), "float64").reshape(15, -1)
    pixels = np.repeat(x.reshape(3, -1), 5, axis=0)
    log_likelihood = stats.bernoulli.logpmf(pixels, special.expit(logits)).sum(axis=1)
    log_prior = stats.norm.logpdf(z).sum(axis=1)
    log_posterior = stats.norm.logpdf(z, np.repeat(z_mean, 5, axis=0), np.exp(0.5 * np.repeat(z_log_var, 5, axis=0))).sum(axis=1)
    np.testing.assert_allclose(log_weights.ravel(), log_likelihood + log_prior - log_posterior, rtol=1e-4, atol=1e-2)
    np.testing.assert_allclose(nll.ravel(), -log_likelihood, rtol=1e-4, atol=1e-2)


def test_the_bound_and_the_training_objective_are_the_k_sample_bound_scipy_computes(mnist_images, monkeypatch):
    """On fixed draws: `importance_weighted_bound` and the loss `fit` minimises under objective="iwae" both equal
    -(logsumexp of the scipy log weights - log k)."""
    samples = 5
    model = small_vae(objective="iwae", samples=samples)
    x = (mnist_images[:3] > 0.5).astype("float32")
    draws = np.random.default_rng(1).normal(size=(3 * samples, 4))
    monkeypatch.setattr(model, "reparameterize", lambda mean, log_var, seed=None: (np.asarray(mean) + np.exp(0.5 * np.asarray(log_var)) * draws).astype("float32"))
    z_mean, z_log_var = (np.repeat(np.asarray(part, "float64"), samples, axis=0) for part in model.encoder(x))
    z = z_mean + np.exp(0.5 * z_log_var) * draws
    logits = np.asarray(model.decoder(z.astype("float32")), "float64").reshape(3 * samples, -1)
    log_weights = (stats.bernoulli.logpmf(np.repeat(x.reshape(3, -1), samples, axis=0), special.expit(logits)).sum(axis=1)
                   + stats.norm.logpdf(z).sum(axis=1) - stats.norm.logpdf(z, z_mean, np.exp(0.5 * z_log_var)).sum(axis=1))
    expected = -(special.logsumexp(log_weights.reshape(3, samples), axis=1) - np.log(samples))
    np.testing.assert_allclose(np.asarray(model.importance_weighted_bound(x, samples=samples)), expected, rtol=1e-5, atol=2e-3)
    np.testing.assert_allclose(np.asarray(model.loss_terms(x, training=False)["loss"]), expected, rtol=1e-5, atol=2e-3)


def test_the_bound_tightens_with_samples_and_one_sample_is_the_elbo(mnist_images):
    model = small_vae()
    x = (mnist_images[:200] > 0.5).astype("float32")
    elbo = np.mean([np.mean(model.negative_elbo(x, seed=seed)) for seed in range(20)])
    one = np.mean([np.mean(model.importance_weighted_bound(x, samples=1, seed=seed)) for seed in range(20)])
    assert one == pytest.approx(elbo, rel=0.01)
    bounds = [float(np.mean(model.importance_weighted_bound(x, samples=k, seed=1))) for k in (1, 10, 100)]
    assert bounds[0] > bounds[1] > bounds[2]


def test_training_on_the_iwae_objective_lowers_the_bound_and_saves_its_choice(mnist_images, tmp_path):
    model = small_vae(objective="iwae", samples=5)
    x = (mnist_images[:2048] > 0.5).astype("float32")
    before = float(np.mean(model.importance_weighted_bound(x[:500], samples=50)))
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = model.fit(x, epochs=3, batch_size=128, verbose=0)
    after = float(np.mean(model.importance_weighted_bound(x[:500], samples=50)))
    assert after < before - 100 and history.history["loss"][-1] < history.history["loss"][0]
    model.save(tmp_path / "iwae.keras")
    again = keras.saving.load_model(tmp_path / "iwae.keras", safe_mode=True)
    assert (again.objective, again.samples) == ("iwae", 5)


@pytest.mark.parametrize("options, message", [({"objective": "vimco"}, "objective"), ({"samples": 0}, "samples must be a positive integer")])
def test_bad_objective_options_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        small_vae(**options)
