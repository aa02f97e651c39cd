"""The autoencoder families, one module each: the Keras model and, beside it, its task (`keras_ae.models.task`). Every
module here is imported (and so registered with Keras), so a new family is one new file: `keras_ae.<Class>`, the cards
and the command find it with no other edit."""

import importlib
import pkgutil

from keras_ae.models.base import BaseAutoencoder, per_batch
from keras_ae.models.task import TASKS, Task, task_for

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")


def families():
    """Every model class defined in keras_ae.models, by class name."""
    found, pending = {}, [BaseAutoencoder]
    while pending:
        family = pending.pop()
        if family.__module__.startswith(f"{__name__}."):
            found[family.__name__] = family
        pending.extend(family.__subclasses__())
    return dict(sorted(found.items()))


def by_short_name():
    """{short name: task class} of the families `keras-ae train --family` offers (ae, dae, sae, vae, vqvae, ...)."""
    return {vars(task)["short_name"]: task for task in TASKS.values() if vars(task).get("short_name")}


globals().update(families())
VariationalAutoencoder = families()["VAE"]
__all__ = [*families(), "VariationalAutoencoder", "Task", "task_for", "per_batch"]
