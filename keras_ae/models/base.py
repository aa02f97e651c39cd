"""What every autoencoder shares as a Keras model: encode/decode/call, the train and test steps, trackers, input checks,
config; and the one batching helper.

A family's model defines its objective (`loss_terms`); what the family does for the rest of keras-ae (its data kind,
measures, pictures, endpoints and commands) is its task, `keras_ae.models.task`.
"""

import copy

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from keras_ae import losses
from keras_ae.errors import InputError

SAMPLE_BATCH = 1000  # examples decoded, scored or measured at once by `per_batch`
MAX_EXPORTED_SAMPLES = 10_000  # the most images one call of an exported `sample` draws


def check_networks(encoder, decoder):
    """Refuse an encoder or decoder that is not a built `keras.Model`, in one line; a family checks this before it reads
    their outputs."""
    for role, network in (("encoder", encoder), ("decoder", decoder)):
        if not isinstance(network, keras.Model) or not network.built:
            raise InputError(f"{role} must be a built keras.Model (e.g. from keras_ae.networks); got {network!r}.")


def check_choice(argument, value, choices):
    """Return `value` if it is one of `choices`, else raise a ValueError listing them."""
    if value not in choices:
        raise InputError(f"Unknown {argument} {value!r}; expected one of {sorted(choices)}.")
    return value


def weighted_batch_mean(values, sample_weight=None):
    """Mean over the batch of per-example `values`, weighted like Keras' `sum_over_batch_size`."""
    values = ops.cast(values, "float32")
    if sample_weight is None:
        return ops.mean(values)
    sample_weight = ops.reshape(ops.cast(sample_weight, "float32"), ops.shape(values))
    return ops.sum(values * sample_weight) / ops.cast(ops.shape(values)[0], "float32")


def reparameterize(z_mean, z_log_var, seed):
    """A draw z = mean + sigma * epsilon from a diagonal Gaussian posterior, epsilon drawn with `seed` (a SeedGenerator or
    an int), the log-variance clamped against overflow; float32 whatever the dtype policy."""
    z_mean = ops.cast(z_mean, "float32")
    epsilon = keras.random.normal(ops.shape(z_mean), dtype="float32", seed=seed)
    return z_mean + ops.exp(0.5 * losses.clamp_log_variance(z_log_var)) * epsilon


def ramp(step, steps):
    """The share of a linear warm-up done after `step` of `steps` training steps: min(1, step / steps); 1 without one."""
    if steps <= 0:
        return ops.convert_to_tensor(1.0, "float32")
    return ops.minimum(ops.cast(step, "float32") / steps, 1.0)


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


def per_batch(function, *arrays, batch_size=SAMPLE_BATCH, indexed=False):
    """`function(*arrays)` computed `batch_size` examples at a time, the results joined along the batch axis (a tensor;
    `np.asarray` it for numpy): the one batching helper, for decoding, sampling, scoring and measuring in bounded memory.

    Inside a graph, or for at most one batch, it is one call. `indexed=True` also passes each batch's index as `index=`
    (for draws seeded per batch, so a prefix of the data re-measures to the same numbers).
    """
    total = arrays[0].shape[0]
    if total is None or (total <= batch_size and not indexed):
        return function(*arrays)
    results = []
    for index, start in enumerate(range(0, total, batch_size)):
        chunk = [array[start:start + batch_size] for array in arrays]
        results.append(function(*chunk, index=index) if indexed else function(*chunk))
    return ops.concatenate(results, axis=0)


class BaseAutoencoder(keras.Model):
    """An encoder, a decoder and an objective; subclasses define the objective in `loss_terms`.

    Args:
        encoder: a built Keras model mapping a batch of inputs to codes.
        decoder: a built Keras model mapping codes back to inputs.
        seed: seed of the model's own random draws (noise, sampling), distinct on each replica; None draws a fresh one.

    Raises:
        InputError: `encoder` or `decoder` is not a built `keras.Model`.
    """

    metric_names = ("loss",)
    #: Whether `loss_terms` takes a batch's second element as `y=` (held-out entries to predict, labels to condition on).
    uses_y = False
    #: Whether the model keeps `training_steps`, a saved counter of its training steps (for warm-ups and annealing).
    counts_steps = False
    #: Whether `anomaly_score` is a non-negative reconstruction error without labels, so a code term can join it in log
    #: (`keras_ae.anomaly.CodeScore`).
    error_score = False

    def __init__(self, encoder, decoder, seed=None, **kwargs):
        super().__init__(**kwargs)
        check_networks(encoder, decoder)
        self.encoder = encoder
        self.decoder = decoder
        self.seed = seed
        self.seed_generator = ReplicaSeedGenerator(seed, name="seed_generator")
        self.trackers = {name: keras.metrics.Mean(name=name) for name in self.metric_names}
        self.create_state()
        if self.counts_steps:
            self.training_steps = self.add_weight(
                shape=(), initializer="zeros", dtype="int64", trainable=False, name="training_steps",
                aggregation="only_first_replica",
            )
        self.call_once()

    def call_once(self):
        """One call on a dummy batch, which records the input shape, so the model saves and exports before any fit."""
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
        """Fill an id table made by `add_id_table`, refusing a count that does not match its `noun`s.

        Raises:
            InputError: `ids` are not one per position of `table`.
        """
        ids = np.asarray(ids, dtype="int64")
        if ids.shape != tuple(table.shape):
            raise InputError(f"{type(self).__name__} has {table.shape[0]} {noun}s; got {ids.shape[0]} {noun} ids.")
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

        Raises:
            InputError: called eagerly, `x` is not floating-point, not of the encoder's input shape, or holds NaN or
                Inf.
            tf.errors.InvalidArgumentError: inside a compiled step (not under XLA), `x` holds NaN or Inf.
        """
        return self._check_batch(x, self.input_shape_per_example, "inputs scaled to [0, 1]")

    def check_code(self, z):
        """Validate a batch of codes against the decoder's input spec, as `check_input` does for inputs.

        Raises:
            InputError: called eagerly, `z` is not floating-point, not of the decoder's input shape, or holds NaN or
                Inf.
            tf.errors.InvalidArgumentError: inside a compiled step (not under XLA), `z` holds NaN or Inf.
        """
        return self._check_batch(z, self.code_shape, "codes")

    def _check_batch(self, x, expected, what):
        name = type(self).__name__
        if not hasattr(x, "dtype") or isinstance(x, np.ndarray) and x.dtype == object:
            x = np.asarray(x)
        dtype = dtype_name(x)
        if not dtype.startswith(("float", "bfloat")):
            raise InputError(
                f"{name} expects floating-point {what}; got dtype {dtype}. "
                "Convert first, e.g. x.astype('float32') / 255 for uint8 images."
            )
        got = tuple(x.shape)
        matches = len(got) == len(expected) + 1 and all(
            want is None or have is None or want == have for want, have in zip(expected, got[1:])
        )
        if not matches:
            raise InputError(f"{name} expects {what} of shape (batch, {', '.join(map(str, expected))}); got {got}.")
        message = f"{name} got NaN or Inf in its {what.split()[0]}; clean the data (e.g. np.nan_to_num) first."
        if isinstance(x, np.ndarray) or tf.executing_eagerly():
            if not np.all(np.isfinite(ops.convert_to_numpy(x).astype("float32"))):
                raise InputError(message)
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
        """The codes of a batch of inputs.

        Raises:
            InputError: `x` is not a floating-point batch of the input shape, or holds NaN or Inf (see `check_input`).
        """
        return self.encoder(self.check_input(x), training=training)

    def decode(self, z, training=False):
        """The inputs a batch of codes decodes to.

        Raises:
            InputError: `z` is not a floating-point batch of codes of `code_shape`, or holds NaN or Inf (see
                `check_code`).
        """
        return self.as_inputs(self.decoder(self.check_code(z), training=training))

    def as_inputs(self, outputs):
        """Decoder outputs shaped as a batch of inputs (a transposed convolution given no codes reports its own
        channels: 0 codes would decode to shape (0, 28, 28, 32))."""
        return ops.reshape(outputs, (-1, *self.input_shape_per_example))

    def in_batches(self, function, *arrays):
        """`per_batch(function, *arrays)`, where no examples give an empty batch of inputs' shape (some convolutions fail
        on an empty batch)."""
        if arrays[0].shape[0] == 0:
            return ops.zeros((0, *self.input_shape_per_example))
        return per_batch(function, *arrays)

    def call(self, x, training=False):
        return self.decoder(self.encode(x, training=training), training=training)

    def embed(self, x):
        """The deterministic code of `x`: what downstream models and interpolation use.

        Raises:
            InputError: `x` is not a floating-point batch of the input shape, or holds NaN or Inf (see `check_input`).
        """
        return self.encode(x)

    def interpolate(self, x_start, x_end, steps=8):
        """Decode `steps` evenly spaced points between the codes of two batches; shape (batch, steps, *input).

        Raises:
            InputError: `x_start` or `x_end` is not a floating-point batch of the input shape, or holds NaN or Inf (see
                `check_input`).
        """
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
        if self.counts_steps:
            self.training_steps.assign_add(1)
        return self.update_trackers(terms, batch_size)

    def test_step(self, data):
        terms, batch_size = self.compute_step(data, training=False)
        return self.update_trackers(terms, batch_size)

    @property
    def _default_save_signature(self):
        """The serving function TensorFlow traces whenever the model is written as a SavedModel (`keras_ae.export`,
        `model.export`, `tf.saved_model.save`): its family task's `serve` endpoint, so a family whose call takes more than
        `x` (labels) saves too. Keras' own traces `self(x)` alone, at the dummy batch's shape (kept for a model with no task)."""
        from keras_ae.models.task import task_for

        try:
            task = task_for(self)
        except TypeError:
            return super()._default_save_signature
        function, signature = task(self).export_endpoints()["serve"]
        return tf.function(function, input_signature=signature)

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
