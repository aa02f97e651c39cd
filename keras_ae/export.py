"""Export to a TensorFlow SavedModel with named signatures, for serving without keras_ae."""

import shutil
import tempfile
from pathlib import Path

import keras
import tensorflow as tf

from keras_ae.models import VAE


def _check_destination(path):
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise FileExistsError(f"Export path {path} exists and is not an empty directory; choose a new path or remove it.")
    parent = path.parent if str(path.parent) else Path(".")
    parent.mkdir(parents=True, exist_ok=True)
    return path


def export(model, path):
    """Write a SavedModel with signatures `serve`, `encode`, `decode`, `anomaly_score` and, for VAEs, `sample`.

    Inputs are float32 `[None, *input_shape]`; `sample` takes an int32 count and an int32 seed.
    The SavedModel appears at `path` only once it is complete.
    """
    path = _check_destination(path)
    input_spec = tf.TensorSpec([None, *model.input_shape_per_example], tf.float32, name="x")
    latent_dim = model.decoder.inputs[0].shape[-1]
    code_spec = tf.TensorSpec([None, latent_dim], tf.float32, name="z")
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serve", lambda x: model(x, training=False), input_signature=[input_spec])
    if isinstance(model, VAE):
        archive.add_endpoint(
            "encode", lambda x: dict(zip(("z_mean", "z_log_var"), model.encode(x))), input_signature=[input_spec]
        )

        def sample(count, seed):
            z = tf.random.stateless_normal(tf.stack([count, latent_dim]), seed=tf.stack([seed, 0]))
            return model.decode(z)

        archive.add_endpoint(
            "sample", sample,
            input_signature=[tf.TensorSpec([], tf.int32, name="count"), tf.TensorSpec([], tf.int32, name="seed")],
        )
    else:
        archive.add_endpoint("encode", lambda x: model.encode(x), input_signature=[input_spec])
    archive.add_endpoint("decode", lambda z: model.decode(z), input_signature=[code_spec])
    archive.add_endpoint("anomaly_score", lambda x: model.anomaly_score(x), input_signature=[input_spec])
    staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.partial-"))
    try:
        archive.write_out(str(staging / "saved_model"), verbose=False)
        if path.exists():
            path.rmdir()
        (staging / "saved_model").rename(path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path
