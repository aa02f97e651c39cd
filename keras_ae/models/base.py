"""What every autoencoder shares: encode/decode/call, the train and test steps, trackers, input checks, config."""

import keras
import tensorflow as tf
from keras import ops


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


class BaseAutoencoder(keras.Model):
    """An encoder, a decoder and an objective; subclasses define the objective in `loss_terms`.

    Args:
        encoder: a built Keras model mapping a batch of inputs to codes.
        decoder: a built Keras model mapping codes back to inputs.
        seed: seed of the model's own random draws (noise, sampling); None draws a fresh one.
    """

    metric_names = ("loss",)

    def __init__(self, encoder, decoder, seed=None, **kwargs):
        super().__init__(**kwargs)
        for role, network in (("encoder", encoder), ("decoder", decoder)):
            if not isinstance(network, keras.Model) or not network.built:
                raise ValueError(f"{role} must be a built keras.Model (e.g. from keras_ae.networks); got {network!r}.")
        self.encoder = encoder
        self.decoder = decoder
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed, name="seed_generator")
        self.trackers = {name: keras.metrics.Mean(name=name) for name in self.metric_names}
        self.create_state()
        # One call on a dummy batch records the input shape, so the model saves and exports before any fit.
        self(ops.zeros((1, *self.input_shape_per_example)))

    def create_state(self):
        """Hook for a subclass's own variables, created before the first call."""

    def build(self, input_shape):
        """Nothing to create: the encoder and decoder come built."""

    @property
    def input_shape_per_example(self):
        return tuple(self.encoder.inputs[0].shape[1:])

    @property
    def metrics(self):
        return list(self.trackers.values())

    def check_input(self, x):
        """Validate a batch against the encoder's input spec; return it as a float tensor."""
        if not hasattr(x, "dtype"):
            x = ops.convert_to_tensor(x)
        dtype = keras.backend.standardize_dtype(x.dtype)
        if not dtype.startswith(("float", "bfloat")):
            raise ValueError(
                f"{type(self).__name__} expects floating-point inputs scaled to [0, 1]; got dtype {dtype}. "
                "Convert first, e.g. x.astype('float32') / 255 for uint8 images."
            )
        expected = self.input_shape_per_example
        got = tuple(x.shape)
        matches = len(got) == len(expected) + 1 and all(
            want is None or have is None or want == have for want, have in zip(expected, got[1:])
        )
        if not matches:
            raise ValueError(
                f"{type(self).__name__} expects a batch of shape (batch, {', '.join(map(str, expected))}); got {got}."
            )
        return x

    def encode(self, x, training=False):
        return self.encoder(self.check_input(x), training=training)

    def decode(self, z, training=False):
        return self.decoder(z, training=training)

    def call(self, x, training=False):
        return self.decode(self.encode(x, training=training), training=training)

    def embed(self, x):
        """The deterministic code of `x`: what downstream models and interpolation use."""
        return self.encode(x)

    def interpolate(self, x_start, x_end, steps=8):
        """Decode `steps` evenly spaced points between the codes of two batches; shape (batch, steps, *input)."""
        start, end = self.embed(x_start), self.embed(x_end)
        weights = ops.reshape(ops.linspace(0.0, 1.0, steps), (1, steps, 1))
        path = ops.expand_dims(start, 1) * (1.0 - weights) + ops.expand_dims(end, 1) * weights
        decoded = self.decode(ops.reshape(path, (-1, ops.shape(start)[-1])))
        return ops.reshape(decoded, (-1, steps, *self.input_shape_per_example))

    def anomaly_score(self, x):
        """Per-example anomaly score; higher means less like the training data."""
        raise NotImplementedError

    def loss_terms(self, x, training):
        """Per-example terms of the objective as a dict; its `"loss"` entry is minimised."""
        raise NotImplementedError

    def on_train_batch(self):
        """Hook for state that advances once per training step (e.g. KL warm-up)."""

    def compute_step(self, data, training):
        x, _, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        x = self.check_input(x)
        terms = {
            name: weighted_batch_mean(value, sample_weight)
            for name, value in self.loss_terms(x, training=training).items()
        }
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
            config[role] = keras.saving.deserialize_keras_object(config[role])
        return cls(**config)
