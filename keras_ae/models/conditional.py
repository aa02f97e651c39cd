"""Conditional VAE (Sohn et al. 2015): encoder and decoder both see the class label, so the model draws the class asked for.

    encoder, decoder = keras_ae.networks.conv((28, 28, 1), 8, variational=True)      # an ordinary VAE pair
    model = keras_ae.ConditionalVAE(encoder, decoder, num_classes=10)
    model.compile(optimizer="adam")
    model.fit(keras_ae.data.load("mnist", binarize="dynamic", with_labels=True), epochs=10)   # (images, labels) batches
    sevens = model.sample(16, labels=7, seed=0)
    reconstructions = model(images, labels)            # also model.predict((images, labels)), encode(x, labels), ...

How the label gets in: the model appends the label's one-hot to the last axis of what each network reads, repeated
over any axes before it: the image gets `num_classes` extra channels (a constant plane per class), a vector code
`num_classes` extra entries. An ordinary pair from `keras_ae.networks` is widened to match when the model is made
(`condition_networks`: the networks are cloned onto wider inputs, so only their first layers' kernels grow); a pair
already that wide (e.g. from a saved model's config) is taken as it is. Labels are integers in [0, num_classes).
"""

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from keras_ae import losses, metrics
from keras_ae.errors import InputError
from keras_ae.models.base import MAX_EXPORTED_SAMPLES, dtype_name, per_batch
from keras_ae.models.task import named_code
from keras_ae.models.vae import VAE, VAETask, negative_log_mean_weight


def append_condition(tensor, condition):
    """`tensor` (batch, ..., features) with `condition` (batch, classes) appended on its last axis, repeated over the others."""
    shape = (-1, *([1] * (len(tensor.shape) - 2)), condition.shape[-1])
    condition = ops.reshape(ops.cast(condition, tensor.dtype), shape)
    return ops.concatenate([tensor, ops.ones_like(tensor[..., :1]) * condition], axis=-1)


def _widened(network, classes):
    """`network` cloned onto an input with `classes` more entries on its last axis (fresh weights)."""
    shape = tuple(network.inputs[0].shape[1:])
    wider = keras.Input((*shape[:-1], shape[-1] + classes), name=network.inputs[0].name)
    try:
        return keras.models.clone_model(network, input_tensors=wider)
    except (ValueError, TypeError) as error:
        raise InputError(
            f"Cannot widen the {network.name} network's input {shape} by {classes} label entries on its last axis ({error}). "
            "Give images a channel axis, or build the network for the wider input yourself."
        ) from None


def condition_networks(encoder, decoder, num_classes):
    """An (encoder, decoder) pair that reads the one-hot label too: widened from an ordinary VAE pair, or taken as it is.

    Ordinary: the encoder's input and the decoder's output have the same last axis, and the decoder's code that of
    `z_mean`. Conditioned: the encoder's input and the decoder's code are each `num_classes` wider.
    """
    if not all(isinstance(network, keras.Model) and network.built for network in (encoder, decoder)):
        return encoder, decoder  # BaseAutoencoder refuses them, with its message
    data_axis, output_axis = encoder.inputs[0].shape[-1], decoder.outputs[0].shape[-1]
    code_axis, latent_axis = decoder.inputs[0].shape[-1], encoder.outputs[0].shape[-1]
    if (data_axis, code_axis) == (output_axis + num_classes, latent_axis + num_classes):
        return encoder, decoder
    if (data_axis, code_axis) != (output_axis, latent_axis):
        raise InputError(
            f"ConditionalVAE takes an ordinary VAE pair (encoder input and decoder output of one last axis, decoder code "
            f"as wide as z_mean) or one widened by num_classes={num_classes}; got encoder input {encoder.inputs[0].shape}, "
            f"z_mean {encoder.outputs[0].shape}, decoder code {decoder.inputs[0].shape}, output {decoder.outputs[0].shape}."
        )
    from keras_ae.networks import scaling_layers

    if scaling_layers(encoder):
        raise InputError("ConditionalVAE does not take networks with scaling= (the label would be scaled); scale the data first.")
    return _widened(encoder, num_classes), _widened(decoder, num_classes)


@keras.saving.register_keras_serializable(package="keras_ae")
class ConditionalVAE(VAE):
    """VAE conditioned on a class label: q(z | x, y) and p(x | z, y) with a standard normal prior on z (Sohn et al. 2015).

    Training batches are `(images, labels)` (`keras_ae.data.load(..., with_labels=True)`, or `fit(images, labels)`);
    the loss is the VAE's given the label: the negative ELBO, or with `objective="iwae"` the `samples`-draw
    importance-weighted bound on -log p(x | y), with its likelihoods, KL warm-up and clamped log-variance.
    Every method that reads or writes images takes the labels right after them: `model(x, labels)`,
    `model.predict((x, labels))`, `encode(x, labels)`, `decode(z, labels)`, `embed`, `negative_elbo`,
    `importance_weighted_bound`, `anomaly_score`; they refuse to run without. Labels are one integer per example
    in [0, num_classes), or one int for the whole batch (`model(x, 3)`).
    `sample(n, labels=None, seed=None)` draws the classes asked for, by default cycling through them.
    The SavedModel's signatures take int32 `labels` too, and its `sample(labels, seed)` draws one image per label.

    Args:
        encoder, decoder: an ordinary VAE pair (e.g. `keras_ae.networks.conv(..., variational=True)`), widened here to
            read the one-hot label (see the module's docstring), or a pair already widened.
        num_classes: how many classes the labels name.
        **kwargs: as in `VAE`.

    Raises:
        InputError: `num_classes` below 1; networks that are neither an ordinary VAE pair nor one widened by
            `num_classes`, that cannot be widened, or that scale their inputs; or as in `VAE`.
    """

    uses_y = True

    def __init__(self, encoder, decoder, num_classes, **kwargs):
        self.num_classes = int(num_classes)
        if self.num_classes < 1:
            raise InputError(f"num_classes must be a positive number of classes; got {num_classes!r}.")
        encoder, decoder = condition_networks(encoder, decoder, self.num_classes)
        super().__init__(encoder, decoder, **kwargs)
        self.supports_jit = False  # XLA compiles check_labels' assertions away: jit_compile=True trains without XLA, with a warning

    def call_once(self):
        """One call on a dummy batch and its label, which records the input shape."""
        self(ops.zeros((1, *self.input_shape_per_example)), labels=ops.zeros((1,), "int32"))

    @property
    def input_shape_per_example(self):
        """Shape of one image, without the label's channels."""
        *spatial, channels = self.encoder.inputs[0].shape[1:]
        return (*spatial, channels - self.num_classes)

    @property
    def code_shape(self):
        """Shape of one latent code z, without the label's entries."""
        *spatial, width = self.decoder.inputs[0].shape[1:]
        return (*spatial, width - self.num_classes)

    def check_labels(self, labels, x):
        """The labels of the batch `x` as int32 of shape (batch,), an int standing for every example; else a ValueError.

        Inside a compiled step a wrong count or range is an InvalidArgumentError with the same message.

        Raises:
            InputError: `labels` are missing, not integers or not of shape (batch,); called eagerly, also of another
                count than `x`'s examples or outside [0, num_classes).
            tf.errors.InvalidArgumentError: inside a compiled step, a wrong count or a label outside [0, num_classes).
        """
        name, classes = type(self).__name__, self.num_classes
        expected = f"integer class labels in [0, {classes})"
        if labels is None:
            raise InputError(
                f"{name} needs {expected} with its inputs: model(x, labels), model.predict((x, labels)), and (images, labels) "
                "batches to fit (keras_ae.data.load(..., with_labels=True))."
            )
        if not hasattr(labels, "dtype"):
            labels = np.asarray(labels)
        dtype = dtype_name(labels)
        if not dtype.startswith(("int", "uint")):
            raise InputError(f"{name} expects {expected}; got dtype {dtype}. Convert first, e.g. labels.astype('int64').")
        if len(labels.shape) > 1:
            raise InputError(f"{name} expects {expected} of shape (batch,) or one int for the batch; got shape {tuple(labels.shape)}.")
        batch = tf.shape(x)[0]
        labels = tf.cast(labels, tf.int32)
        labels = tf.broadcast_to(labels, [batch]) if len(labels.shape) == 0 else labels
        count = f"{name} expects one label per example ({expected})"
        out_of_range = f"{name} got a label outside [0, {classes}); it expects {expected}."
        if tf.executing_eagerly():
            values = labels.numpy()
            if len(values) != int(batch):
                raise InputError(f"{count}; got {len(values)} labels for {int(batch)} examples.")
            if len(values) and (values.min() < 0 or values.max() >= classes):
                raise InputError(f"{out_of_range} Got {sorted(set(values[(values < 0) | (values >= classes)].tolist()))[:5]}.")
            return labels
        checks = [
            tf.debugging.assert_equal(tf.shape(labels)[0], batch, message=count),
            tf.debugging.assert_non_negative(labels, message=out_of_range),
            tf.debugging.assert_less(labels, classes, message=out_of_range),
        ]
        with tf.control_dependencies(checks):
            return tf.identity(labels)

    def condition(self, x, labels):
        """The checked inputs and the one-hot of their checked labels (float32).

        Raises:
            InputError: `x` is not a floating-point batch of the input shape (see `check_input`), or `labels` are not
                integers in [0, num_classes), one per example (see `check_labels`).
        """
        x = self.check_input(x)
        return x, ops.one_hot(self.check_labels(labels, x), self.num_classes, dtype="float32")

    def posterior(self, x, condition, training=False):
        """Raw `(z_mean, z_log_var)` of checked inputs and their one-hot labels."""
        return self.encoder(append_condition(x, condition), training=training)

    def decoder_output(self, z, condition, training=False):
        """Bernoulli logits or Gaussian mean of p(x | z, y)."""
        return self.decoder(append_condition(z, condition), training=training)

    def encode(self, x, labels=None, training=False):
        """Posterior parameters `(z_mean, z_log_var)` given the labels, the log-variance clamped against overflow.

        Raises:
            InputError: `x` is not a floating-point batch of the input shape (see `check_input`), or `labels` are not
                integers in [0, num_classes), one per example (see `check_labels`).
        """
        z_mean, z_log_var = self.posterior(*self.condition(x, labels), training=training)
        return z_mean, ops.cast(losses.clamp_log_variance(z_log_var), z_mean.dtype)

    def decode(self, z, labels=None, training=False):
        """The likelihood mean of p(x | z, y): what the codes `z` look like as the labels' classes.

        Raises:
            InputError: `z` is not a floating-point batch of codes (see `check_code`), or `labels` are not integers in
                [0, num_classes), one per code (see `check_labels`).
        """
        z = self.check_code(z)
        condition = ops.one_hot(self.check_labels(labels, z), self.num_classes, dtype="float32")
        return self.as_inputs(self.likelihood_mean(self.decoder_output(z, condition, training=training)))

    def __call__(self, x, labels=None, **kwargs):
        """Keras' `__call__` with the labels checked first (a wrong one is a one-line ValueError) and passed by keyword
        (so one int may stand for the batch).

        Raises:
            InputError: called eagerly, `labels` are not integers in [0, num_classes), one per example (see
                `check_labels`), or `x` is not a floating-point batch of the input shape (see `check_input`).
        """
        if tf.executing_eagerly() and not keras.backend.is_keras_tensor(x):
            self.check_labels(labels, x)
        return super().__call__(x, labels=labels, **kwargs)

    def call(self, x, labels=None, training=False):
        """The reconstruction of `x` given its labels: the likelihood mean at the posterior mean.

        Raises:
            InputError: `x` is not a floating-point batch of the input shape (see `check_input`), or `labels` are not
                integers in [0, num_classes), one per example (see `check_labels`).
        """
        x, condition = self.condition(x, labels)
        z_mean, _ = self.posterior(x, condition, training=training)
        return self.likelihood_mean(self.decoder_output(z_mean, condition, training=training))

    def predict_step(self, data):
        """Batches of `(images, labels)`, as `fit` takes them: `model.predict((x, labels))` or a dataset of such pairs."""
        x, labels, _ = keras.utils.unpack_x_y_sample_weight(data)
        if labels is None and isinstance(x, (tuple, list)) and len(x) == 2:  # arrays: Keras hands the pair over as x
            x, labels = x
        return self(x, labels, training=False)

    def embed(self, x, labels=None):
        """The posterior mean given the labels.

        Raises:
            InputError: `x` is not a floating-point batch of the input shape (see `check_input`), or `labels` are not
                integers in [0, num_classes), one per example (see `check_labels`).
        """
        return self.encode(x, labels)[0]

    def interpolate(self, x_start, x_end, start_labels, end_labels, steps=8):
        """Decode `steps` points between two batches' codes, the one-hot condition moving between their labels too.

        Raises:
            InputError: `x_start` or `x_end` is not a floating-point batch of the input shape (see `check_input`), or
                their labels are not valid (see `check_labels`).
        """
        x_start, start = self.condition(x_start, start_labels)
        x_end, end = self.condition(x_end, end_labels)

        def along(first, last):
            weights = ops.reshape(ops.linspace(0.0, 1.0, steps), (1, steps) + (1,) * (len(first.shape) - 1))
            path = ops.expand_dims(first, 1) * (1.0 - weights) + ops.expand_dims(last, 1) * weights
            return ops.reshape(path, (-1, *first.shape[1:]))

        path = along(self.posterior(x_start, start)[0], self.posterior(x_end, end)[0])
        decoded = self.likelihood_mean(self.decoder_output(path, along(start, end)))
        return ops.reshape(decoded, (-1, steps, *self.input_shape_per_example))

    def negative_elbo(self, x, labels=None, seed=0):
        """Per-example negative ELBO of `x` given its labels in nats, one reparameterised draw with a fixed `seed`.

        Raises:
            InputError: `x` is not a floating-point batch of the input shape (see `check_input`), or `labels` are not
                integers in [0, num_classes), one per example (see `check_labels`).
        """
        x, condition = self.condition(x, labels)
        z_mean, z_log_var = self.posterior(x, condition)
        z = self.reparameterize(z_mean, z_log_var, seed=seed)
        return self.negative_log_likelihood(x, self.decoder_output(z, condition)) + losses.gaussian_kl_divergence(z_mean, z_log_var)

    def importance_weighted_bound(self, x, labels=None, samples=100, seed=0):
        """Per-example importance-weighted upper bound on -log p(x | y) in nats (Burda et al. 2015), `samples` draws each.

        Raises:
            InputError: `x` is not a floating-point batch of the input shape (see `check_input`), or `labels` are not
                integers in [0, num_classes), one per example (see `check_labels`).
        """
        x, condition = self.condition(x, labels)
        log_weights, _ = self.log_importance_weights(x, *self.posterior(x, condition), samples, seed, condition=condition)
        return negative_log_mean_weight(tf.cast(log_weights, tf.float64))

    def anomaly_score(self, x, labels=None):
        """Per-example negative ELBO given the labels.

        Raises:
            InputError: `x` is not a floating-point batch of the input shape (see `check_input`), or `labels` are not
                integers in [0, num_classes), one per example (see `check_labels`).
        """
        return self.negative_elbo(x, labels)

    def sample_labels(self, n, labels=None):
        """`n` labels: `labels` as given (an int, or n ints), or by default 0, 1, ..., num_classes - 1, 0, 1, ..."""
        if labels is None:
            return np.arange(n) % self.num_classes
        given = np.asarray(labels)
        if given.dtype.kind not in "iu":
            raise InputError(f"labels must be integer classes in [0, {self.num_classes}); got dtype {given.dtype}.")
        return np.full(n, labels) if np.ndim(labels) == 0 else labels

    def sample(self, n, labels=None, seed=None):
        """Decode `n` draws from the prior given `labels` (an int, n ints, or None: cycling through the classes).

        Raises:
            InputError: `labels` are outside [0, num_classes), or neither one nor `n` of them.
        """
        z = keras.random.normal((n, *self.code_shape), seed=self.seed_generator if seed is None else seed)
        return self.in_batches(self.decode, z, np.asarray(self.sample_labels(n, labels), "int32"))

    def loss_terms(self, x, training, y=None):
        """The VAE's objective (`objective` and `samples` as there) given the labels `y`."""
        return self.objective_terms(*self.condition(x, y), training)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}


class ConditionalVAETask(VAETask):
    """The conditional VAE's task: it takes labelled examples, is measured given the true labels (its bounds are
    -log p(x | y), not -log p(x)), draws a row of samples per class, and exports endpoints that take the labels."""

    family = ConditionalVAE
    data_kind = "labelled"
    bound_name = "-log p(x given the label)"  # its bounds are given the true label: not -log p(x), so columns of their own
    elbo_heading = "-ELBO given the label, nats"
    short_name = None  # not offered by `keras-ae train --data`: that command's cards carry no labels

    def measure(self, examples, inputs, targets=None, iwae_samples=100, bound_seed=0, batch_size=50):
        """The VAE's metrics, each given the true labels `targets`: reconstruction MSE/PSNR, negative ELBO and
        importance-weighted bound.

        Raises:
            InputError: `targets` (the true labels) are missing or not one per example; or the examples or labels are
                not valid (see `check_input`, `check_labels`).
        """
        model = self.model
        if targets is None:
            raise InputError(f"{model.__class__.__name__} is measured given the true labels: pass them as targets.")
        labels = np.asarray(targets)
        if len(labels) != len(examples):
            raise InputError(f"measure needs one label per test example; got {len(labels)} labels for {len(examples)} examples.")
        errors = per_batch(lambda batch, given: losses.mean_squared_error(batch, model(batch, given)), examples, labels,
                           batch_size=batch_size)
        measured = {"reconstruction_mse": float(np.asarray(errors).mean())}
        if float(np.min(examples)) >= 0.0 and float(np.max(examples)) <= 1.0:
            measured["psnr_db"] = metrics.psnr(measured["reconstruction_mse"])
        return {**measured, **self.bounds(inputs, iwae_samples, bound_seed, batch_size, labels=labels)}

    def export_endpoints(self):
        """`serve`, `encode`, `decode`, `anomaly_score`, each taking int32 `labels` beside its input, and `sample(labels, seed)`
        (one image per label)."""
        model = self.model
        x = tf.TensorSpec([None, *model.input_shape_per_example], tf.float32, name="x")
        z = tf.TensorSpec([None, *model.code_shape], tf.float32, name="z")
        labels = tf.TensorSpec([None], tf.int32, name="labels")

        def sample(labels, seed):
            tf.debugging.assert_less_equal(tf.size(labels), MAX_EXPORTED_SAMPLES, message=f"at most {MAX_EXPORTED_SAMPLES} labels")
            shape = tf.concat([tf.shape(labels)[:1], model.code_shape], axis=0)
            z = tf.random.stateless_normal(shape, seed=tf.stack([seed, 0]))
            return tf.cond(tf.size(labels) > 0, lambda: model.decode(z, labels), lambda: tf.zeros((0, *model.input_shape_per_example)))

        return {
            "serve": (lambda x, labels: model(x, labels, training=False), [x, labels]),
            "encode": (lambda x, labels: named_code(model.encode(x, labels)), [x, labels]),
            "decode": (lambda z, labels: model.decode(z, labels), [z, labels]),
            "anomaly_score": (lambda x, labels: model.anomaly_score(x, labels), [x, labels]),
            "sample": (sample, [labels, tf.TensorSpec([], tf.int32, name="seed")]),
        }

    def draw(self, examples, labels, folder, name, columns=10, seed=0):
        """Reconstructions given the true labels, and a grid of samples with one row per class."""
        from keras_ae import plot

        model, folder = self.model, Path(folder)
        shown, shown_labels = np.asarray(examples[:columns]), np.asarray(labels[:columns])
        rows = [np.asarray(model.sample(columns, labels=label, seed=seed + label)) for label in range(model.num_classes)]
        return {
            "Reconstructions": plot.image_grid(
                [shown, np.asarray(model(shown, shown_labels))], folder / f"{name}_reconstructions.png", ["input", "output"],
                title="Reconstructions (given the true labels)",
            ),
            "Samples by class": plot.image_grid(
                rows, folder / f"{name}_samples.png", [str(label) for label in range(model.num_classes)],
                title="Samples, one row per class",
            ),
        }

