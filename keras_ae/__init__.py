"""keras-ae: classic autoencoders as Keras 3 models, with a zoo of pretrained ones.

    import keras_ae
    model = keras_ae.load("vae_mnist")          # a zoo name, a preset folder, an http(s) URL or hf://owner/repo

Names are imported on first use, so `import keras_ae` (and the `keras-ae` command's start) stays light
until TensorFlow is needed.
"""

import importlib

__version__ = "0.1.0"

_PUBLIC = {
    "load": "keras_ae.cards",
    "save_preset": "keras_ae.cards",
    "list_models": "keras_ae.cards",
    "model_card": "keras_ae.cards",
    "export": "keras_ae.export",
    "train": "keras_ae.train",
    "Autoencoder": "keras_ae.models",
    "BaseAutoencoder": "keras_ae.models",
    "DenoisingAutoencoder": "keras_ae.models",
    "SparseAutoencoder": "keras_ae.models",
    "VAE": "keras_ae.models",
    "VariationalAutoencoder": "keras_ae.models",
}
_SUBMODULES = ("anomaly", "cards", "data", "evaluate", "losses", "models", "networks", "plot", "weights")

__all__ = [*_PUBLIC, *_SUBMODULES]


def __getattr__(name):
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"keras_ae.{name}")
    else:
        raise AttributeError(f"module 'keras_ae' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
