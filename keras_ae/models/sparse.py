"""Sparse autoencoder: reconstruction plus a sparsity penalty on the code activations.

Paper: Ng 2011, "Sparse autoencoder" (CS294A lecture notes), for the KL penalty; the L1 penalty is its common variant.

Objective, per example: reconstruction error plus `sparsity_weight` x the penalty, either the sum of absolute code
values (`"l1"`) or the sum over code units of KL(target || the unit's mean activation over the batch) (`"kl"`).

    model = keras_ae.SparseAutoencoder(*keras_ae.networks.dense((784,), 64), sparsity="l1", sparsity_weight=1e-3)
"""

import keras
import numpy as np
from keras import ops

from keras_ae import losses
from keras_ae.errors import InputError
from keras_ae.models.autoencoder import Autoencoder, AutoencoderTask
from keras_ae.models.base import check_choice, per_batch
from keras_ae.models.task import metric_column, metric_text

SPARSITY_KINDS = ("l1", "kl")
NEAR_ZERO = 1e-2  # a code unit counts as silent when |activation| < NEAR_ZERO


@keras.saving.register_keras_serializable(package="keras_ae")
class SparseAutoencoder(Autoencoder):
    """Autoencoder with an L1 or KL sparsity penalty on the code, logged as `sparsity_loss`.

    Args:
        sparsity: `"l1"` (sum of absolute code values per example) or `"kl"` (sum over code units of
            KL(target || mean activation over the batch); needs codes in [0, 1], e.g. sigmoid).
        target: the desired mean activation for `"kl"`.
        sparsity_weight: multiplier of the penalty.
        **kwargs: as in `Autoencoder`.

    Raises:
        InputError: an unknown `sparsity` or `reconstruction`, a `target` outside (0, 1); or `encoder` or `decoder` is
            not a built `keras.Model`.
    """

    metric_names = ("loss", "reconstruction_loss", "sparsity_loss", "mean_activation")

    def __init__(self, encoder, decoder, sparsity="l1", target=0.05, sparsity_weight=1e-3, **kwargs):
        self.sparsity = check_choice("sparsity", sparsity, SPARSITY_KINDS)
        if not 0.0 < target < 1.0:
            raise InputError(f"target must lie strictly between 0 and 1; got {target!r}.")
        self.target = float(target)
        self.sparsity_weight = float(sparsity_weight)
        super().__init__(encoder, decoder, **kwargs)

    def sparsity_penalty(self, code):
        code = ops.cast(code, "float32")
        if self.sparsity == "l1":
            return self.sparsity_weight * ops.sum(ops.abs(code), axis=-1)
        divergence = losses.bernoulli_kl_divergence(self.target, ops.mean(code, axis=0))
        return self.sparsity_weight * divergence * ops.ones((ops.shape(code)[0],))

    def loss_terms(self, x, training):
        code = self.encoder(x, training=training)
        reconstruction = self.reconstruction_loss(x, self.decoder(code, training=training))
        sparsity = self.sparsity_penalty(code)
        return {
            "loss": reconstruction + sparsity,
            "reconstruction_loss": reconstruction,
            "sparsity_loss": sparsity,
            "mean_activation": ops.mean(ops.abs(ops.cast(code, "float32")), axis=-1),
        }

    def get_config(self):
        return {
            **super().get_config(),
            "sparsity": self.sparsity,
            "target": self.target,
            "sparsity_weight": self.sparsity_weight,
        }


class SparseAutoencoderTask(AutoencoderTask):
    """The sparse autoencoder's task: its measures add how sparse its codes are."""

    family = SparseAutoencoder
    short_name = "sae"

    def measure(self, examples, inputs, targets=None):
        """Reconstruction metrics, plus the mean |code| and the fraction of code values below `NEAR_ZERO`."""
        activations = np.abs(np.asarray(per_batch(self.model.embed, examples, batch_size=500)))
        return {
            **super().measure(examples, inputs),
            "mean_code_activation": float(activations.mean()),
            "near_zero_code_fraction": float(np.mean(activations < NEAR_ZERO)),
        }

    @classmethod
    def card_columns(cls):
        sparsity = metric_column(lambda measured: f"{metric_text(measured, 'mean_code_activation', 3)} / "
                                 f"{metric_text(measured, 'near_zero_code_fraction', 3)}", "mean_code_activation")
        return {**super().card_columns(), "sparsity (mean / near-zero)": sparsity}
