"""The plain autoencoder: minimise reconstruction error.

Paper: Hinton and Salakhutdinov 2006, "Reducing the Dimensionality of Data with Neural Networks" (Science 313).

Objective, per example: the reconstruction error of decode(encode(x)) against x, mean squared error (`"mse"`) or binary
cross-entropy (`"bce"`) summed over values.

    encoder, decoder = keras_ae.networks.conv((28, 28, 1), 32)
    model = keras_ae.Autoencoder(encoder, decoder, reconstruction="bce")
    model.compile(optimizer="adam")
    model.fit(keras_ae.data.load("mnist"), epochs=10)
    codes = model.encode(images)
"""

import keras

from keras_ae import losses
from keras_ae.models.base import BaseAutoencoder, check_choice
from keras_ae.models.task import Task

RECONSTRUCTION_LOSSES = {"mse": losses.mean_squared_error, "bce": losses.binary_crossentropy}


@keras.saving.register_keras_serializable(package="keras_ae")
class Autoencoder(BaseAutoencoder):
    """Deterministic autoencoder trained on reconstruction error.

    Args:
        encoder, decoder: see `BaseAutoencoder`; the decoder outputs values in the data's range
            (pixel probabilities in [0, 1] for `"bce"`).
        reconstruction: `"mse"` (mean squared error) or `"bce"` (binary cross-entropy), averaged over data dimensions.

    Raises:
        InputError: an unknown `reconstruction`; or `encoder` or `decoder` is not a built `keras.Model`.
    """

    metric_names = ("loss", "reconstruction_loss")
    error_score = True

    def __init__(self, encoder, decoder, reconstruction="mse", **kwargs):
        self.reconstruction = check_choice("reconstruction", reconstruction, RECONSTRUCTION_LOSSES)
        super().__init__(encoder, decoder, **kwargs)

    def reconstruction_loss(self, x, x_hat):
        return RECONSTRUCTION_LOSSES[self.reconstruction](x, x_hat)

    def anomaly_score(self, x):
        """Per-example reconstruction error (the model's reconstruction loss).

        Raises:
            InputError: `x` is not a floating-point batch of the input shape, or holds NaN or Inf (see `check_input`).
        """
        return self.reconstruction_loss(x, self(self.check_input(x)))

    def loss_terms(self, x, training):
        reconstruction = self.reconstruction_loss(x, self.decoder(self.encoder(x, training=training), training=training))
        return {"loss": reconstruction, "reconstruction_loss": reconstruction}

    def get_config(self):
        return {**super().get_config(), "reconstruction": self.reconstruction}


class AutoencoderTask(Task):
    """The plain autoencoder's task: the shared measures (reconstruction error), pictures and endpoints."""

    family = Autoencoder
    short_name = "ae"
