"""Score or encode with an exported keras-ae SavedModel in an Apache Beam pipeline (the `beam` extra).

    import apache_beam as beam
    from apache_beam.ml.inference.base import KeyedModelHandler, RunInference
    from keras_ae.beam import SavedModelHandler

    keras_ae.export(keras_ae.load("ae_ecg5000"), "served")
    with beam.Pipeline() as pipeline:  # DirectRunner here; --runner=DataflowRunner, FlinkRunner or SparkRunner elsewhere
        (pipeline
         | beam.Create(rows)  # (key, float32 vector of 140) pairs
         | RunInference(KeyedModelHandler(SavedModelHandler("served", signature="anomaly_score")))
         | beam.MapTuple(lambda key, result: f"{key},{result.inference}")
         | beam.io.WriteToText("scores"))

The handler needs TensorFlow on the workers, not keras_ae: it loads the SavedModel that `keras_ae.export` wrote and calls
one of its one-input signatures (`anomaly_score`, `encode`, `serve`, `decode`) on each batch Beam forms.
"""

from pathlib import Path

import numpy as np

from keras_ae.errors import InputError, MissingExtraError

try:
    from apache_beam.ml.inference.base import ModelHandler, PredictionResult
except ImportError as error:  # pragma: no cover - the message is the point
    raise MissingExtraError("keras_ae.beam needs Apache Beam: pip install 'keras-ae[beam]'") from error


def _signature(path, name):
    """The SavedModel's signature `name` and its one input's name and per-example shape, or one clear error."""
    import tensorflow as tf

    if not (Path(path) / "saved_model.pb").is_file():
        raise InputError(f"{path} is not a SavedModel folder (no saved_model.pb): export one with keras_ae.export(model, path)")
    signatures = tf.saved_model.load(str(path)).signatures
    if name not in signatures:
        raise InputError(f"the SavedModel at {path} has no signature {name!r}; it has {sorted(signatures)}")
    function = signatures[name]
    inputs = function.structured_input_signature[1]
    if len(inputs) != 1:
        raise InputError(f"signature {name!r} takes {len(inputs)} inputs ({sorted(inputs)}); SavedModelHandler feeds one")
    (input_name, spec), = inputs.items()
    return function, input_name, tuple(spec.shape[1:])


class SavedModelHandler(ModelHandler):
    """Beam `ModelHandler` running one signature of a keras-ae SavedModel on batches of numpy examples.

    Args:
        path: the folder `keras_ae.export` wrote (a local path, or one every worker can read, such as gs://).
        signature: which signature to run: `anomaly_score` gives one float per example, `encode` its code.
        min_batch_size, max_batch_size: the batches Beam forms before calling the model.

    Raises:
        InputError: `path` holds no SavedModel, it has no such signature, or the signature takes more than one input;
            at inference, an example whose shape is not the signature's.
    """

    def __init__(self, path, signature="anomaly_score", min_batch_size=1, max_batch_size=1000):
        super().__init__()
        _, self._input_name, self._example_shape = _signature(path, signature)  # refused here, before the pipeline runs
        self._path, self._signature_name = str(path), signature
        self._batch_sizes = {"min_batch_size": min_batch_size, "max_batch_size": max_batch_size}

    def load_model(self):
        return _signature(self._path, self._signature_name)[0]

    def run_inference(self, batch, model, inference_args=None):
        for example in batch:
            shape = np.shape(example)
            if len(shape) != len(self._example_shape) or any(want not in (None, got) for want, got in zip(self._example_shape, shape)):
                raise InputError(f"signature {self._signature_name!r} takes examples of shape {self._example_shape}; got {shape}")
        examples = np.stack([np.asarray(example, dtype=np.float32) for example in batch])
        (outputs,) = model(**{self._input_name: examples}).values()
        return [PredictionResult(example, output) for example, output in zip(batch, outputs.numpy())]

    def get_num_bytes(self, batch):
        return sum(np.asarray(example).nbytes for example in batch)

    def batch_elements_kwargs(self):
        return self._batch_sizes

    def get_metrics_namespace(self):
        return "keras_ae"
