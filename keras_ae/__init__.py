"""keras-ae: classic autoencoders as Keras 3 models, with a zoo of pretrained ones.

    import keras_ae
    model = keras_ae.load("vae_mnist")          # a zoo name, a preset folder, an http(s) URL or hf://owner/repo

Names are imported on first use, so `import keras_ae` (and the `keras-ae` command's start) stays light
until TensorFlow is needed. The model classes are those of `keras_ae.models`, one module per family.
"""

import importlib

__version__ = "0.1.0"

_PUBLIC = {
    "load": "keras_ae.cards",
    "save_preset": "keras_ae.cards",
    "list_models": "keras_ae.cards",
    "model_card": "keras_ae.cards",
    "export": "keras_ae.exporting",
    "train": "keras_ae.training",
}
_SUBMODULES = ("anomaly", "cards", "data", "evaluate", "files", "kinds", "losses", "metrics", "models", "networks", "plot", "ratings",
               "weights")  # the functions keras_ae.train and keras_ae.export live in keras_ae.training and keras_ae.exporting

__all__ = [*_PUBLIC, *_SUBMODULES]  # and every model class of keras_ae.models (Autoencoder, VAE, ...)


def __getattr__(name):
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"keras_ae.{name}")
    elif name[:1].isupper() and name in importlib.import_module("keras_ae.models").__all__:
        value = getattr(importlib.import_module("keras_ae.models"), name)
    else:
        raise AttributeError(f"module 'keras_ae' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
