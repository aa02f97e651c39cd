"""Denoising autoencoder: corrupt the input inside the train and test steps, reconstruct the clean one.

Paper: Vincent et al. 2008, "Extracting and Composing Robust Features with Denoising Autoencoders" (ICML).

Objective, per example: the reconstruction error of decode(encode(corrupt(x))) against the clean x. The corruption
(Gaussian noise, masking or salt and pepper) is drawn afresh at each step; `predict`, `call` and `encode` never corrupt.

    model = keras_ae.DenoisingAutoencoder(*keras_ae.networks.conv((28, 28, 1), 32), noise="gaussian", noise_level=0.3)
    model.compile(optimizer="adam")
    model.fit(keras_ae.data.load("mnist"), epochs=10)
    cleaned = model.denoise(noisy_images)
"""

from pathlib import Path

import keras
import numpy as np
from keras import ops

from keras_ae import losses, metrics
from keras_ae.errors import InputError
from keras_ae.models.autoencoder import Autoencoder, AutoencoderTask
from keras_ae.models.base import check_choice, per_batch
from keras_ae.models.task import metric_column, metric_text
from keras_ae.networks import scaling_layers

NOISE_KINDS = ("gaussian", "masking", "salt_and_pepper")


@keras.saving.register_keras_serializable(package="keras_ae")
class DenoisingAutoencoder(Autoencoder):
    """Autoencoder trained to undo a corruption; `predict`, `call` and `encode` never corrupt.

    Args:
        noise: `"gaussian"` (add N(0, noise_level^2), clip to [0, 1]), `"masking"` (zero a
            `noise_level` fraction of values) or `"salt_and_pepper"` (set a `noise_level` fraction
            of values to 0 or 1 at random), in the network's scaled units if it scales raw values inside (see `corrupt`).
        noise_level: standard deviation or fraction, by `noise`.
        **kwargs: as in `Autoencoder`.

    Raises:
        InputError: an unknown `noise` or `reconstruction`, a `noise_level` that is not a non-negative number; or
            `encoder` or `decoder` is not a built `keras.Model`.
    """

    def __init__(self, encoder, decoder, noise="gaussian", noise_level=0.5, **kwargs):
        self.noise = check_choice("noise", noise, NOISE_KINDS)
        if not noise_level >= 0:
            raise InputError(f"noise_level must be a non-negative number; got {noise_level!r}.")
        self.noise_level = float(noise_level)
        super().__init__(encoder, decoder, **kwargs)

    def corrupt(self, x, seed=None):
        """Return a corrupted copy of `x`; an integer `seed` makes it repeatable.

        The noise, its [0, 1] bounds and the masked value 0 are in the units the network reconstructs from: inputs in
        [0, 1], or, for a network that scales raw values inside (`scaling="minmax"|"standard"`, as for tables and
        signals), the scaled values (bounded only for "minmax"), mapped back to raw units after corruption.
        """
        x = ops.convert_to_tensor(x)
        scalings = scaling_layers(self.encoder)
        if not scalings:
            return self._corrupt_in_unit_range(x, seed, bounded=True)
        scaled = self._corrupt_in_unit_range(ops.cast(scalings[0](x), "float32"), seed, bounded=scalings[0].kind == "minmax")
        return ops.cast(scalings[0].unscale(scaled), x.dtype)

    def _corrupt_in_unit_range(self, x, seed, bounded):
        first_seed, second_seed = (self.seed_generator,) * 2 if seed is None else (seed, seed + 1)
        shape = ops.shape(x)
        if self.noise == "gaussian":
            noise = keras.random.normal(shape, stddev=self.noise_level, dtype=x.dtype, seed=first_seed)
            return ops.clip(x + noise, 0.0, 1.0) if bounded else x + noise
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
        """Reconstruction of (possibly noisy) inputs: the model's prediction.

        Raises:
            InputError: `x` is not a floating-point batch of the input shape, or holds NaN or Inf (see `check_input`).
        """
        return self(self.check_input(x), training=False)

    def get_config(self):
        return {**super().get_config(), "noise": self.noise, "noise_level": self.noise_level}


class DenoisingAutoencoderTask(AutoencoderTask):
    """The denoising autoencoder's task: its measures add how well it undoes its own noise; it draws denoising triplets and
    supports `keras-ae denoise`."""

    family = DenoisingAutoencoder
    evaluation_defaults = {"noise_seed": 0}
    short_name = "dae"
    # rows, in the network's min-max units: the best of 0.02-0.5 on the table suite's development parts
    # (`scripts/anomaly_screen.py denoising --suites tables`: 0.1 0.967, 0.5 0.956)
    options_off_images = {"noise_level": 0.1}

    def measure(self, examples, inputs, targets=None, noise_seed=0):
        """Reconstruction metrics, plus the PSNR of the corrupted input and of its denoised output (noise seeded)."""
        model = self.model

        def errors(batch, index):
            noisy = model.corrupt(batch, seed=noise_seed * 100_003 + index)
            return ops.stack([losses.mean_squared_error(batch, noisy), losses.mean_squared_error(batch, model(noisy))], axis=1)

        noisy, denoised = np.asarray(per_batch(errors, examples, batch_size=500, indexed=True)).mean(axis=0)
        return {
            **super().measure(examples, inputs),
            "noise": f"{model.noise} {model.noise_level}",
            "psnr_noisy_db": metrics.psnr(float(noisy)),
            "psnr_denoised_db": metrics.psnr(float(denoised)),
        }

    @classmethod
    def headline(cls, measured):
        if "psnr_denoised_db" not in measured:
            return super().headline(measured)
        return f"denoising {measured['psnr_noisy_db']:.2f} -> {measured['psnr_denoised_db']:.2f} dB ({measured['noise']})"

    @classmethod
    def card_columns(cls):
        denoising = metric_column(lambda measured: f"{metric_text(measured, 'psnr_noisy_db', 2)} -> "
                                  f"{metric_text(measured, 'psnr_denoised_db', 2)} ({measured['noise']})", "psnr_denoised_db")
        return {**super().card_columns(), "denoising PSNR dB (noisy -> out)": denoising}

    def draw(self, examples, labels, folder, name):
        from keras_ae import plot

        path = Path(folder) / f"{name}_denoising.png"
        return {**super().draw(examples, labels, folder, name), "Denoising": plot.denoising_triplets(self.model, examples, path)}
