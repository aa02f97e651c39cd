"""keras-ae: classic autoencoders as Keras 3 models, with a zoo of pretrained ones."""

from keras_ae import anomaly, data, losses, networks
from keras_ae.cards import list_models, load, model_card
from keras_ae.export import export
from keras_ae.models import (
    Autoencoder,
    BaseAutoencoder,
    DenoisingAutoencoder,
    SparseAutoencoder,
    VAE,
    VariationalAutoencoder,
)
from keras_ae.train import train

__version__ = "0.1.0"
