"""What every autoencoder shares, and the hooks through which a family says what is special about it.

Shared: encode/decode/call, the train and test steps, trackers, input checks, config.
Hooks a family fills in (every other module asks the class, never checks its type):
`measure` (its metrics), `headline` and `card_columns` (how its numbers read), `export_endpoints`
(its SavedModel signatures), `draw` (its pictures) and `verbs` (the keras-ae commands it supports).
"""

import copy
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import ops

SAMPLE_BATCH = 1000  # examples decoded at once by `sample` and `in_batches`
MAX_EXPORTED_SAMPLES = 10_000  # the most images one call of an exported `sample` draws


def check_choice(argument, value, choices):
    """Return `value` if it is one of `choices`, else raise a ValueError listing them."""
    if value not in choices:
        raise ValueError(f"Unknown {argument} {value!r}; expected one of {sorted(choices)}.")
    return value


def weighted_batch_mean(values, sample_weight=None):
    """Mean over the batch of per-example `values`, weighted like Keras' `sum_over_batch_size`."""
    values = ops.cast(values, "float32")
    if sample_weight is None:
        return ops.mean(values)
    sample_weight = ops.reshape(ops.cast(sample_weight, "float32"), ops.shape(values))
    return ops.sum(values * sample_weight) / ops.cast(ops.shape(values)[0], "float32")


def scale_for_replicas(loss):
    """Divide a per-replica mean by the replica count, so summed gradients match one device on the global batch."""
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return loss / replicas if replicas > 1 else loss


def replica_context():
    """The tf.distribute replica context while a step runs on several replicas; None on one."""
    context = tf.distribute.get_replica_context()
    return context if context is not None and context.num_replicas_in_sync > 1 else None


class ReplicaSeedGenerator(keras.random.SeedGenerator):
    """A SeedGenerator whose draws differ between replicas (each folds in its replica id); on one device, its parent's."""

    def next(self, ordered=True):
        seed = super().next(ordered)
        context = replica_context()
        return seed if context is None else tf.random.experimental.stateless_fold_in(seed, context.replica_id_in_sync_group)


def dtype_name(array):
    """Keras' name of an array's dtype ("float32", "int64", ...), or numpy's where Keras has none (e.g. "object")."""
    try:
        return keras.backend.standardize_dtype(array.dtype)
    except ValueError:
        return str(array.dtype)


def metric_text(metrics, key, digits):
    """A card metric formatted with `digits` decimals, or "" where the card lacks it."""
    value = metrics.get(key)
    return "" if value is None else f"{value:.{digits}f}"


class BaseAutoencoder(keras.Model):
    """An encoder, a decoder and an objective; subclasses define the objective in `loss_terms`.

    Args:
        encoder: a built Keras model mapping a batch of inputs to codes.
        decoder: a built Keras model mapping codes back to inputs.
        seed: seed of the model's own random draws (noise, sampling), distinct on each replica; None draws a fresh one.
    """

    metric_names = ("loss",)
    #: keras-ae commands that work on this family (`keras-ae sample` only where the family samples).
    verbs = ("info", "evaluate", "export", "reconstruct", "score")
    #: Settings of a card's `evaluation` section that `measure` takes, with their defaults.
    evaluation_defaults = {}
    #: The short name `keras-ae train --family` knows the family by (declared by each family itself; None: not offered).
    short_name = None
    #: Whether `loss_terms` takes a batch's second element as `y=` (held-out entries to predict, labels to condition on).
    uses_y = False
    #: What the family needs of a `keras_ae.networks` builder, by network kind ("*": every kind), e.g.
    #: {"*": {"variational": True}}; and of its own arguments on data that is not images in [0, 1]; for
    #: `keras-ae train --data`.
    network_options = {}
    options_off_images = {}

    def __init__(self, encoder, decoder, seed=None, **kwargs):
        super().__init__(**kwargs)
        for role, network in (("encoder", encoder), ("decoder", decoder)):
            if not isinstance(network, keras.Model) or not network.built:
                raise ValueError(f"{role} must be a built keras.Model (e.g. from keras_ae.networks); got {network!r}.")
        self.encoder = encoder
        self.decoder = decoder
        self.seed = seed
        self.seed_generator = ReplicaSeedGenerator(seed, name="seed_generator")
        self.trackers = {name: keras.metrics.Mean(name=name) for name in self.metric_names}
        self.create_state()
        # One call on a dummy batch records the input shape, so the model saves and exports before any fit.
        self(ops.zeros((1, *self.input_shape_per_example)))

    def create_state(self):
        """Hook for a subclass's own variables, created before the first call."""

    def add_id_table(self, name):
        """A saved, non-trainable int64 weight: the dataset's id of each input position (default 0..n-1)."""
        return self.add_weight(
            shape=(self.input_shape_per_example[0],), dtype="int64", trainable=False, name=name,
            initializer=lambda shape, dtype=None: ops.arange(shape[0], dtype="int64"),
        )

    def assign_ids(self, table, ids, noun):
        """Fill an id table made by `add_id_table`, refusing a count that does not match its `noun`s."""
        ids = np.asarray(ids, dtype="int64")
        if ids.shape != tuple(table.shape):
            raise ValueError(f"{type(self).__name__} has {table.shape[0]} {noun}s; got {ids.shape[0]} {noun} ids.")
        table.assign(ids)

    def build(self, input_shape):
        """Nothing to create: the encoder and decoder come built."""

    @property
    def input_shape_per_example(self):
        return tuple(self.encoder.inputs[0].shape[1:])

    @property
    def code_shape(self):
        """Shape of one code, read from the decoder's input: a vector or, e.g., a feature map."""
        return tuple(self.decoder.inputs[0].shape[1:])

    @property
    def metrics(self):
        return list(self.trackers.values())

    def check_input(self, x):
        """Validate a batch of inputs against the encoder's input spec; return it as a tensor.

        Floating-point inputs of any precision are accepted, values outside [0, 1] as they are;
        integer (uint8 included), bool and other dtypes are refused, and so are NaN and Inf: a
        ValueError when called eagerly, an InvalidArgumentError with the same message inside a step (except under
        jit_compile=True, where XLA drops that check: arrays given to fit, evaluate and predict are still checked first).
        """
        return self._check_batch(x, self.input_shape_per_example, "inputs scaled to [0, 1]")

    def check_code(self, z):
        """Validate a batch of codes against the decoder's input spec, as `check_input` does for inputs."""
        return self._check_batch(z, self.code_shape, "codes")

    def _check_batch(self, x, expected, what):
        name = type(self).__name__
        if not hasattr(x, "dtype") or isinstance(x, np.ndarray) and x.dtype == object:
            x = np.asarray(x)
        dtype = dtype_name(x)
        if not dtype.startswith(("float", "bfloat")):
            raise ValueError(
                f"{name} expects floating-point {what}; got dtype {dtype}. "
                "Convert first, e.g. x.astype('float32') / 255 for uint8 images."
            )
        got = tuple(x.shape)
        matches = len(got) == len(expected) + 1 and all(
            want is None or have is None or want == have for want, have in zip(expected, got[1:])
        )
        if not matches:
            raise ValueError(f"{name} expects {what} of shape (batch, {', '.join(map(str, expected))}); got {got}.")
        message = f"{name} got NaN or Inf in its {what.split()[0]}; clean the data (e.g. np.nan_to_num) first."
        if isinstance(x, np.ndarray) or tf.executing_eagerly():
            if not np.all(np.isfinite(ops.convert_to_numpy(x).astype("float32"))):
                raise ValueError(message)
            return x
        return tf.debugging.assert_all_finite(x, message)

    def _check_arrays(self, x):
        """Validate in-memory inputs before Keras turns them into a dataset."""
        if isinstance(x, np.ndarray):
            self.check_input(x)

    def fit(self, x=None, *args, **kwargs):
        self._check_arrays(x)
        return super().fit(x, *args, **kwargs)

    def evaluate(self, x=None, *args, **kwargs):
        self._check_arrays(x)
        return super().evaluate(x, *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        self._check_arrays(x)
        if isinstance(x, np.ndarray) and len(x) == 0:  # Keras' own predict fails on no examples (UnboundLocalError)
            return np.zeros((0, *self.input_shape_per_example), "float32")
        return super().predict(x, *args, **kwargs)

    def encode(self, x, training=False):
        return self.encoder(self.check_input(x), training=training)

    def decode(self, z, training=False):
        return self.as_inputs(self.decoder(self.check_code(z), training=training))

    def as_inputs(self, outputs):
        """Decoder outputs shaped as a batch of inputs (a transposed convolution given no codes reports its own
        channels: 0 codes would decode to shape (0, 28, 28, 32))."""
        return ops.reshape(outputs, (-1, *self.input_shape_per_example))

    def in_batches(self, function, *arrays, batch_size=SAMPLE_BATCH):
        """`function(*arrays)` computed `batch_size` examples at a time and concatenated, so a large count decodes in
        bounded memory with the same result; no examples give an empty batch of inputs' shape (some convolutions fail
        on an empty batch)."""
        total = arrays[0].shape[0]
        if total == 0:
            return ops.zeros((0, *self.input_shape_per_example))
        if total is None or total <= batch_size:  # inside a graph, or small
            return function(*arrays)
        return ops.concatenate([function(*(array[start:start + batch_size] for array in arrays))
                                for start in range(0, total, batch_size)], axis=0)

    def call(self, x, training=False):
        return self.decoder(self.encode(x, training=training), training=training)

    def embed(self, x):
        """The deterministic code of `x`: what downstream models and interpolation use."""
        return self.encode(x)

    def interpolate(self, x_start, x_end, steps=8):
        """Decode `steps` evenly spaced points between the codes of two batches; shape (batch, steps, *input)."""
        start, end = self.embed(x_start), self.embed(x_end)
        weights = ops.reshape(ops.linspace(0.0, 1.0, steps), (1, steps) + (1,) * len(self.code_shape))
        path = ops.expand_dims(start, 1) * (1.0 - weights) + ops.expand_dims(end, 1) * weights
        decoded = self.decode(ops.reshape(path, (-1, *self.code_shape)))
        return ops.reshape(decoded, (-1, steps, *self.input_shape_per_example))

    def anomaly_score(self, x):
        """Per-example anomaly score; higher means less like the training data."""
        raise NotImplementedError

    def loss_terms(self, x, training):
        """Per-example terms of the objective as a dict; its `"loss"` entry is minimised. A family with `uses_y` also
        takes a batch's second element as `y=` (None when the batch has none)."""
        raise NotImplementedError

    def on_train_batch(self):
        """Hook for state that advances once per training step (e.g. KL warm-up)."""

    def compute_step(self, data, training):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        x = self.check_input(x)
        # A batch's y goes to a family that declares it uses one (a recommender's held-out entries, a conditional
        # model's labels); others ignore it, so `fit(x, x, sample_weight=w)` works as in any Keras autoencoder.
        terms = self.loss_terms(x, training=training, y=y) if self.uses_y else self.loss_terms(x, training=training)
        terms = {name: weighted_batch_mean(value, sample_weight) for name, value in terms.items()}
        if self.losses:
            terms["loss"] = terms["loss"] + ops.cast(ops.sum(self.losses), "float32")
        return terms, ops.shape(x)[0]

    def update_trackers(self, terms, batch_size):
        for name, tracker in self.trackers.items():
            tracker.update_state(terms[name], sample_weight=batch_size)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def train_step(self, data):
        with tf.GradientTape() as tape:
            terms, batch_size = self.compute_step(data, training=True)
            loss = self.optimizer.scale_loss(scale_for_replicas(terms["loss"]))
        gradients = tape.gradient(loss, self.trainable_weights)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_weights))
        self.on_train_batch()
        return self.update_trackers(terms, batch_size)

    def test_step(self, data):
        terms, batch_size = self.compute_step(data, training=False)
        return self.update_trackers(terms, batch_size)

    # --- What a family declares: its metrics, how they read, its signatures, its pictures ---------------------------

    def measure(self, images, inputs):
        """This family's metrics on a test set, as a flat dict of numbers (and short strings).

        Args:
            images: clean test examples, shaped for the model, floats in the data's range.
            inputs: the same examples as the model saw them in training (binarized where its card binarizes).
            Subclasses may take keyword settings, named with defaults in `evaluation_defaults`.
        """
        from keras_ae.evaluate import reconstruction_metrics

        return reconstruction_metrics(self, images)

    @classmethod
    def headline(cls, metrics):
        """One short phrase of this family's headline numbers, for listings and the demo."""
        if "psnr_db" in metrics:
            return f"PSNR {metrics['psnr_db']:.2f} dB"
        return f"MSE {metrics['reconstruction_mse']:.4g}" if "reconstruction_mse" in metrics else "not measured"

    @classmethod
    def card_columns(cls):
        """{column heading: function of a card's metrics -> cell text} for the zoo table."""
        return {
            "MSE/pixel": lambda metrics: metric_text(metrics, "reconstruction_mse", 4),
            "PSNR dB": lambda metrics: metric_text(metrics, "psnr_db", 2),
        }

    def export_endpoints(self):
        """{name: (function, input signature)} that `keras_ae.export` writes into a SavedModel."""
        x = tf.TensorSpec([None, *self.input_shape_per_example], tf.float32, name="x")
        z = tf.TensorSpec([None, *self.code_shape], tf.float32, name="z")
        return {
            "serve": (lambda x: self(x, training=False), [x]),
            "encode": (lambda x: self.encode(x), [x]),
            "decode": (lambda z: self.decode(z), [z]),
            "anomaly_score": (lambda x: self.anomaly_score(x), [x]),
        }

    def draw(self, images, labels, folder, name):
        """Write this family's pictures of `images` into `folder`; return {title: path}."""
        from keras_ae import plot

        return {"Reconstructions": plot.reconstructions(self, images, Path(folder) / f"{name}_reconstructions.png")}

    def get_config(self):
        config = super().get_config()
        config.update(
            encoder=keras.saving.serialize_keras_object(self.encoder),
            decoder=keras.saving.serialize_keras_object(self.decoder),
            seed=self.seed,
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for role in ("encoder", "decoder"):
            # A copy: Keras' deserialization empties the dict it is given, which may be a card's.
            config[role] = keras.saving.deserialize_keras_object(copy.deepcopy(config[role]))
        return cls(**config)
