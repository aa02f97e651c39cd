"""Measured quality of a model: reconstruction MSE/PSNR, denoising PSNR, sparsity, ELBO and IWAE bound, linear probe, AUROC."""

import math

import numpy as np
import tensorflow as tf
from keras import ops

from keras_ae import cards, data, losses
from keras_ae.models import DenoisingAutoencoder, SparseAutoencoder, VAE

NEAR_ZERO = 1e-2  # a code unit counts as silent when |activation| < NEAR_ZERO


def psnr(mse, data_range=1.0):
    """Peak signal-to-noise ratio in dB of a mean squared error."""
    return float(10.0 * math.log10(data_range**2 / mse))


def _batches(images, batch_size=500):
    for start in range(0, len(images), batch_size):
        yield images[start:start + batch_size]


def reconstruction_metrics(model, images):
    """Mean squared error per value and its PSNR, over all `images` (float in [0, 1])."""
    squared = [np.asarray(losses.mean_squared_error(batch, model(batch))) for batch in _batches(images)]
    mse = float(np.concatenate(squared).mean())
    return {"reconstruction_mse": mse, "psnr_db": psnr(mse)}


def denoising_metrics(model, images, seed=0):
    """PSNR of the corrupted input and of the model's output against the clean images, noise drawn with `seed`."""
    noisy_errors, denoised_errors = [], []
    for index, batch in enumerate(_batches(images)):
        noisy = model.corrupt(batch, seed=seed * 100_003 + index)
        noisy_errors.append(np.asarray(losses.mean_squared_error(batch, noisy)))
        denoised_errors.append(np.asarray(losses.mean_squared_error(batch, model(noisy))))
    return {
        "noise": f"{model.noise} {model.noise_level}",
        "psnr_noisy_db": psnr(float(np.concatenate(noisy_errors).mean())),
        "psnr_denoised_db": psnr(float(np.concatenate(denoised_errors).mean())),
    }


def codes(model, images):
    """The deterministic code of each image (z_mean for a VAE) as a numpy array."""
    return np.concatenate([np.asarray(model.embed(batch)) for batch in _batches(images)])


def sparsity_metrics(model, images):
    activations = np.abs(codes(model, images))
    return {"mean_code_activation": float(activations.mean()), "near_zero_code_fraction": float(np.mean(activations < NEAR_ZERO))}


def vae_bounds(model, binary_images, samples=100, seed=0, batch_size=50):
    """Test negative ELBO (one sample) and the importance-weighted bound on -log p(x) with `samples` draws, in nats."""
    negative_elbos, iwae_bounds = [], []
    for index, batch in enumerate(_batches(binary_images, batch_size)):
        batch = tf.convert_to_tensor(batch)
        z_mean, z_log_var = model.encoder(batch)
        z_mean, z_log_var = ops.cast(z_mean, "float32"), losses.clamp_log_variance(z_log_var)
        z = model.reparameterize(z_mean, z_log_var, seed=seed * 100_003 + index)
        negative_elbos.append(
            np.asarray(model.negative_log_likelihood(batch, model.decoder(z)) + losses.gaussian_kl_divergence(z_mean, z_log_var))
        )
        repeated = lambda tensor: tf.repeat(tensor, samples, axis=0)  # noqa: E731
        mean_k, log_var_k, x_k = repeated(z_mean), repeated(z_log_var), repeated(batch)
        z_k = model.reparameterize(mean_k, log_var_k, seed=seed * 100_003 + index + 50_000)
        log_weights = (
            -model.negative_log_likelihood(x_k, model.decoder(z_k))
            + losses.gaussian_log_density(z_k, tf.zeros_like(z_k), tf.zeros_like(z_k))
            - losses.gaussian_log_density(z_k, mean_k, log_var_k)
        )
        log_weights = tf.reshape(tf.cast(log_weights, tf.float64), (-1, samples))
        iwae_bounds.append(-(tf.reduce_logsumexp(log_weights, axis=1) - math.log(samples)).numpy())
    return {
        "negative_elbo_nats": float(np.concatenate(negative_elbos).mean()),
        "iwae_nll_nats": float(np.concatenate(iwae_bounds).mean()),
        "iwae_samples": samples,
    }


def linear_probe(train_codes, train_labels, test_codes, test_labels):
    """Accuracy on the test codes of a logistic regression fitted on standardized train codes."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    probe.fit(train_codes, train_labels)
    return float(probe.score(test_codes, test_labels))


def auroc(scores, is_anomaly):
    """Area under the ROC curve of `scores` for separating anomalies (True) from normal examples."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(np.asarray(is_anomaly, bool), np.asarray(scores)))


def card_images(card, split, limit=None):
    """The card's dataset split as float images shaped for the model, and labels."""
    images, labels = data.load_arrays(card["data"]["dataset"], split)
    if limit:
        images, labels = images[:limit], labels[:limit]
    images = images.astype("float32") / 255.0
    if card["data"].get("flatten"):
        images = images.reshape(len(images), -1)
    return images, labels


def binarized(images, seed):
    """A fixed stochastic binarization of grayscale images."""
    return (np.random.default_rng(seed).random(images.shape, dtype=np.float32) < images).astype("float32")


def measure(card, model, limit=None, iwae_samples=None, probe=None):
    """Every metric the card's family records, on the test split (first `limit` images if given)."""
    test_images, test_labels = card_images(card, "test", limit)
    metrics = reconstruction_metrics(model, test_images)
    if isinstance(model, DenoisingAutoencoder):
        metrics.update(denoising_metrics(model, test_images))
    if isinstance(model, SparseAutoencoder):
        metrics.update(sparsity_metrics(model, test_images))
    if isinstance(model, VAE):
        samples = iwae_samples or card.get("evaluation", {}).get("iwae_samples", 100)
        test_set = binarized(test_images, seed=0) if card["data"].get("binarize") else test_images
        metrics.update(vae_bounds(model, test_set, samples=samples))
    if probe if probe is not None else card.get("evaluation", {}).get("linear_probe", False):
        train_images, train_labels = card_images(card, "train")
        metrics["linear_probe_accuracy"] = linear_probe(
            codes(model, train_images), train_labels, codes(model, test_images), test_labels
        )
    metrics["test_examples"] = len(test_images)
    return metrics


def write_metrics(name, model=None):
    """Measure a zoo entry on the full test split and write the numbers into its card."""
    card = cards.model_card(name)
    model = model or cards.load(name)
    card["metrics"] = {
        **{key: round(value, 5) if isinstance(value, float) else value for key, value in measure(card, model).items()},
        "command": f"KERAS_AE_DATA=../shared/data python scripts/evaluate_zoo.py {name}",
    }
    cards.write_card(card)
    print(f"{name}: {card['metrics']}", flush=True)
    return card["metrics"]
