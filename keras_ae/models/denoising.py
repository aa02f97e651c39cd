"""Denoising autoencoder: corrupt the input inside the train and test steps, reconstruct the clean one."""

from pathlib import Path

import keras
import numpy as np
from keras import ops

from keras_ae import evaluate, losses
from keras_ae.models.autoencoder import Autoencoder
from keras_ae.models.base import check_choice, metric_text

NOISE_KINDS = ("gaussian", "masking", "salt_and_pepper")


@keras.saving.register_keras_serializable(package="keras_ae")
class DenoisingAutoencoder(Autoencoder):
    """Autoencoder trained to undo a corruption; `predict`, `call` and `encode` never corrupt.

    Args:
        noise: `"gaussian"` (add N(0, noise_level^2), clip to [0, 1]), `"masking"` (zero a
            `noise_level` fraction of values) or `"salt_and_pepper"` (set a `noise_level` fraction
            of values to 0 or 1 at random).
        noise_level: standard deviation or fraction, by `noise`.
        Other arguments as in `Autoencoder`.
    """

    evaluation_defaults = {"noise_seed": 0}
    short_name = "dae"
    verbs = Autoencoder.verbs + ("denoise",)

    def __init__(self, encoder, decoder, noise="gaussian", noise_level=0.5, **kwargs):
        self.noise = check_choice("noise", noise, NOISE_KINDS)
        if not noise_level >= 0:
            raise ValueError(f"noise_level must be a non-negative number; got {noise_level!r}.")
        self.noise_level = float(noise_level)
        super().__init__(encoder, decoder, **kwargs)

    def corrupt(self, x, seed=None):
        """Return a corrupted copy of `x` (inputs in [0, 1]); an integer `seed` makes it repeatable."""
        first_seed, second_seed = (self.seed_generator,) * 2 if seed is None else (seed, seed + 1)
        x = ops.convert_to_tensor(x)
        shape = ops.shape(x)
        if self.noise == "gaussian":
            noise = keras.random.normal(shape, stddev=self.noise_level, dtype=x.dtype, seed=first_seed)
            return ops.clip(x + noise, 0.0, 1.0)
        hit = keras.random.uniform(shape, dtype=x.dtype, seed=first_seed) < self.noise_level
        if self.noise == "masking":
            return ops.where(hit, ops.zeros_like(x), x)
        salt = keras.random.uniform(shape, dtype=x.dtype, seed=second_seed) < 0.5
        return ops.where(hit, ops.cast(salt, x.dtype), x)

    def loss_terms(self, x, training):
        noisy = self.corrupt(x)
        reconstruction = self.reconstruction_loss(x, self.decoder(self.encoder(noisy, training=training), training=training))
        return {"loss": reconstruction, "reconstruction_loss": reconstruction}

    def denoise(self, x):
        """Reconstruction of (possibly noisy) inputs: the model's prediction."""
        return self(self.check_input(x), training=False)

    def measure(self, images, inputs, noise_seed=0):
        """Reconstruction metrics, plus the PSNR of the corrupted input and of its denoised output (noise seeded)."""
        noisy_errors, denoised_errors = [], []
        for index, batch in enumerate(evaluate.batches(images)):
            noisy = self.corrupt(batch, seed=noise_seed * 100_003 + index)
            noisy_errors.append(np.asarray(losses.mean_squared_error(batch, noisy)))
            denoised_errors.append(np.asarray(losses.mean_squared_error(batch, self(noisy))))
        return {
            **super().measure(images, inputs),
            "noise": f"{self.noise} {self.noise_level}",
            "psnr_noisy_db": evaluate.psnr(float(np.concatenate(noisy_errors).mean())),
            "psnr_denoised_db": evaluate.psnr(float(np.concatenate(denoised_errors).mean())),
        }

    @classmethod
    def headline(cls, metrics):
        if "psnr_denoised_db" not in metrics:
            return super().headline(metrics)
        return f"denoising {metrics['psnr_noisy_db']:.2f} -> {metrics['psnr_denoised_db']:.2f} dB ({metrics['noise']})"

    @classmethod
    def card_columns(cls):
        def denoising(metrics):
            if "psnr_denoised_db" not in metrics:
                return ""
            return f"{metric_text(metrics, 'psnr_noisy_db', 2)} -> {metric_text(metrics, 'psnr_denoised_db', 2)} ({metrics['noise']})"

        return {**super().card_columns(), "denoising PSNR dB (noisy -> out)": denoising}

    def draw(self, images, labels, folder, name):
        from keras_ae import plot

        path = Path(folder) / f"{name}_denoising.png"
        return {**super().draw(images, labels, folder, name), "Denoising": plot.denoising_triplets(self, images, path)}

    def get_config(self):
        return {**super().get_config(), "noise": self.noise, "noise_level": self.noise_level}
