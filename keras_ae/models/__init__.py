"""The autoencoder families, one objective per class."""

from keras_ae.models.autoencoder import Autoencoder
from keras_ae.models.base import BaseAutoencoder
from keras_ae.models.denoising import DenoisingAutoencoder
from keras_ae.models.sparse import SparseAutoencoder
from keras_ae.models.vae import VAE, VariationalAutoencoder

__all__ = ["Autoencoder", "BaseAutoencoder", "DenoisingAutoencoder", "SparseAutoencoder", "VAE", "VariationalAutoencoder"]
