"""Builders of matching encoder/decoder pairs: the architecture, apart from the objective.

Each builder returns `(encoder, decoder)` as functional `keras.Model`s. With
`variational=True` the encoder has two outputs, `z_mean` and `z_log_var`, and the
decoder ends without an activation (its output is Bernoulli logits or a Gaussian
mean, whichever the VAE's likelihood says).

The classic single-hidden-layer autoencoder, 784 -> 32 (relu) -> 784 (sigmoid):

    keras_ae.Autoencoder(*keras_ae.networks.dense((784,), 32))

Convolutional networks take inputs of any size: sides that do not divide by `strides ** len(filters)` are
zero-padded inside the encoder and cropped back inside the decoder. `dense` and `conv1d` can carry the scaling of
raw tables and signals as weights (`scaling="minmax"|"standard"`, set by `adapt_scaling`), so the model takes and
returns raw values.
"""

import functools
import itertools
import math

import keras
import numpy as np
from keras import layers

from keras_ae.errors import InputError

SCALINGS = ("minmax", "standard")  # what `scaling=` takes: per-feature min-max to [0, 1], or standardization


CONVOLUTION_LAYERS = {  # rank -> (convolution, transposed convolution, padding, cropping)
    1: (layers.Conv1D, layers.Conv1DTranspose, layers.ZeroPadding1D, layers.Cropping1D),
    2: (layers.Conv2D, layers.Conv2DTranspose, layers.ZeroPadding2D, layers.Cropping2D),
}


class FeatureStatistics:
    """Per-feature count, min, max, mean and sum of squared deviations of batches seen one at a time (Chan et al.'s
    merge of means and squared deviations, in float64): the statistics of a whole training split in one streamed pass."""

    def __init__(self):
        self.count, self.minimum, self.maximum, self.mean, self.squares = 0, None, None, None, None

    @classmethod
    def of(cls, examples, feature_shape):
        """The statistics of a batch-first array, or of an iterable of such batches, each checked for shape and finiteness.

        Raises:
            InputError: a batch not of shape (batch, *feature_shape), NaN or Inf in one, or no examples at all.
        """
        statistics = cls()
        for batch in [examples] if isinstance(examples, np.ndarray) else examples:
            batch = np.asarray(batch)
            if batch.ndim != len(feature_shape) + 1 or batch.shape[1:] != feature_shape:
                expected = ", ".join(map(str, feature_shape))
                raise InputError(f"Scaling expects examples of shape (batch >= 1, {expected}); got {batch.shape}.")
            if not np.all(np.isfinite(batch)):
                raise InputError("Scaling got NaN or Inf in its examples; clean the data (e.g. np.nan_to_num) first.")
            statistics.update(batch)
        if not statistics.count:
            raise InputError(f"Scaling expects examples of shape (batch >= 1, {', '.join(map(str, feature_shape))}); got none.")
        return statistics

    def update(self, batch):
        batch = np.asarray(batch, np.float64)
        if not len(batch):
            return
        mean, squares = batch.mean(axis=0), ((batch - batch.mean(axis=0)) ** 2).sum(axis=0)
        if not self.count:
            self.count, self.minimum, self.maximum, self.mean, self.squares = len(batch), batch.min(0), batch.max(0), mean, squares
            return
        total = self.count + len(batch)
        delta = mean - self.mean
        self.squares = self.squares + squares + delta**2 * self.count * len(batch) / total
        self.mean = self.mean + delta * len(batch) / total
        self.minimum, self.maximum = np.minimum(self.minimum, batch.min(0)), np.maximum(self.maximum, batch.max(0))
        self.count = total


@keras.saving.register_keras_serializable(package="keras_ae")
class Scaling(layers.Layer):
    """Per-feature `(x - offset) / scale` or its inverse, with the statistics as non-trainable weights that save and export.

    It computes in float32 whatever the dtype policy: raw values may not fit float16.

    Args:
        kind: `"minmax"` (to [0, 1]) or `"standard"` (to mean 0, standard deviation 1), the statistics `adapt` computes.
        invert: map scaled values back to raw ones, `x * scale + offset`.

    Raises:
        InputError: an unknown `kind`.
    """

    def __init__(self, kind, invert=False, **kwargs):
        super().__init__(**{"dtype": "float32", **kwargs})
        if kind not in SCALINGS:
            raise InputError(f"Unknown scaling {kind!r}; expected one of {sorted(SCALINGS)}, or None for raw inputs.")
        self.kind = kind
        self.invert = invert

    def build(self, input_shape):
        feature_shape = tuple(input_shape[1:])
        self.offset = self.add_weight(shape=feature_shape, initializer="zeros", trainable=False, name="offset")
        self.scale = self.add_weight(shape=feature_shape, initializer="ones", trainable=False, name="scale")

    def call(self, x):
        return self.unscale(x) if self.invert else (x - self.offset) / self.scale

    def unscale(self, x):
        """Scaled values back in raw units, `x * scale + offset`."""
        return x * self.scale + self.offset

    def adapt(self, examples):
        """Set `offset` and `scale` per feature from training examples: a batch-first array, or an iterable of such
        batches read in one pass (see `FeatureStatistics`).

        Raises:
            InputError: `examples` not of the layer's feature shape, holding NaN or Inf, or none (see
                `FeatureStatistics.of`).
        """
        self.set_statistics(FeatureStatistics.of(examples, tuple(self.offset.shape)))

    def set_statistics(self, statistics):
        """Set `offset` and `scale` from the `FeatureStatistics` of the training examples."""
        if self.kind == "minmax":
            offset, spread = statistics.minimum, statistics.maximum - statistics.minimum
        else:
            offset, spread = statistics.mean, np.sqrt(statistics.squares / statistics.count)
        self.offset.assign(np.asarray(offset, "float32"))
        self.scale.assign(np.where(spread > 0, spread, 1.0).astype("float32"))

    def get_config(self):
        return {**super().get_config(), "kind": self.kind, "invert": self.invert}


def scaling_layers(*networks):
    """The `Scaling` layers of `networks`, in order (none for networks built without `scaling=`)."""
    return [layer for network in networks for layer in network.layers if isinstance(layer, Scaling)]


def adapt_scaling(encoder, decoder, examples):
    """Set the scaling of a pair built with `scaling=` from training data; a no-op for networks without it.

    Args:
        encoder, decoder: the pair, e.g. `model.encoder, model.decoder`.
        examples: training examples in raw units: a float array, batch first, or an iterable of such batches.

    Raises:
        InputError: `examples` not of the scaling's feature shape, holding NaN or Inf, or none (see
            `FeatureStatistics.of`).
    """
    scalings = scaling_layers(encoder, decoder)
    if scalings:  # one pass over the examples, whatever their number
        statistics = FeatureStatistics.of(examples, tuple(scalings[0].offset.shape))
        for layer in scalings:
            layer.set_statistics(statistics)


class _LayerSettings:
    """The arguments every layer of a network gets: its dtype policy and, for weighted layers and dropout, a seed of its
    own drawn in build order from one seed. None keeps Keras' global policy or generator; neither is changed."""

    def __init__(self, seed, dtype):
        self.seed, self.count = seed, itertools.count()
        self.dtype = {} if dtype is None else {"dtype": dtype}

    def plain(self):
        return dict(self.dtype)

    def kernel(self):
        if self.seed is None:
            return self.plain()
        return {**self.dtype, "kernel_initializer": keras.initializers.GlorotUniform(seed=self.seed * 1009 + next(self.count))}

    def dropout(self):
        return self.plain() if self.seed is None else {**self.dtype, "seed": self.seed * 1009 + next(self.count)}


def _output_activation(output_activation, variational, scaling=None):
    if output_activation is not None:
        return output_activation
    return "linear" if variational or scaling == "standard" else "sigmoid"


def _hidden(x, units_or_filters, layer_factory, activation, batch_norm, dropout, name, seeds):
    """One hidden block: linear map, optional batch norm, activation, optional dropout."""
    x = layer_factory(units_or_filters, None if batch_norm else activation, name)(x)
    if batch_norm:
        x = layers.BatchNormalization(name=f"{name}_batch_norm", **seeds.plain())(x)
        x = layers.Activation(activation, name=f"{name}_activation", **seeds.plain())(x)
    if dropout:
        x = layers.Dropout(dropout, name=f"{name}_dropout", **seeds.dropout())(x)
    return x


def _latent_heads(x, latent_dim, variational, code_activation, kernel_regularizer, seeds, head=layers.Dense):
    """The code layer(s): `head` is Dense for a vector code, a 1x1 convolution for a feature-map code."""
    if variational:
        z_mean = head(latent_dim, name="z_mean", **seeds.kernel())(x)
        z_log_var = head(latent_dim, name="z_log_var", **seeds.kernel())(x)
        return [z_mean, z_log_var]
    return head(latent_dim, activation=code_activation, kernel_regularizer=kernel_regularizer, name="code", **seeds.kernel())(x)


def _margins(side, reduction):
    """(before, after) padding that brings `side` up to a multiple of `reduction`, split as evenly as possible."""
    missing = -side % reduction
    return missing // 2, missing - missing // 2


def _output_layers(x, steps, activation, seeds):
    """Apply the decoder's last layers, `[(name, layer class with its arguments)]`, then the output `activation` as a
    layer named `reconstruction`.

    The steps compute in the dtype policy's compute dtype like every hidden layer; `reconstruction` computes in float32
    under any policy, as Keras' mixed-precision guide places its last activation: the output and the loss on it keep
    full precision, and a model trained in bfloat16 predicts float32 like any other.
    """
    for index, (name, layer) in enumerate(steps):
        x = layer(name=name, **(seeds.kernel() if index == 0 else seeds.plain()))(x)  # the first step is the weighted one
    return layers.Activation(activation, dtype="float32", name="reconstruction")(x)


def _scaled_input(input_shape, scaling):
    """The encoder's input and, with `scaling`, its scaled values."""
    inputs = keras.Input(input_shape, name="x")
    return inputs, Scaling(scaling, name="scaling")(inputs) if scaling is not None else inputs


def _unscaled_output(x, scaling):
    return Scaling(scaling, invert=True, name="unscaling")(x) if scaling is not None else x


def dense(
    input_shape,
    latent_dim,
    hidden_units=(),
    activation="relu",
    code_activation=None,
    output_activation=None,
    batch_norm=False,
    dropout=0.0,
    kernel_regularizer=None,
    variational=False,
    scaling=None,
    seed=None,
    dtype=None,
):
    """Dense (stacked) encoder and its mirror-image decoder.

    Args:
        input_shape: shape of one example; images are flattened inside the encoder.
        latent_dim: size of the code.
        hidden_units: encoder hidden layer sizes, outermost first; the decoder mirrors them.
        activation: hidden activation.
        code_activation: activation of a deterministic code (default: `activation`).
        output_activation: decoder output activation (default: sigmoid, or linear if variational or
            `scaling="standard"`), applied before unscaling.
        batch_norm: batch normalization after each hidden layer.
        dropout: dropout rate after each hidden layer.
        kernel_regularizer: any `keras.regularizers.get` identifier, e.g. `"l2"` or a `keras.regularizers.L1(1e-5)`.
        variational: encoder returns `[z_mean, z_log_var]`.
        scaling: None, `"minmax"` or `"standard"`: the encoder starts with a `Scaling` layer named `scaling` and the
            decoder ends with its inverse, `unscaling`; set both from training data with `adapt_scaling`.
        seed: seed of the initial weights and dropout (None: Keras' generator); no global random state is touched.
        dtype: the layers' dtype policy, e.g. `"mixed_bfloat16"` (None: Keras' global policy, which is left as it is);
            the scaling layers and `reconstruction` compute in float32 whatever it is.

    Raises:
        InputError: an unknown `scaling`.
    """
    input_shape = tuple(input_shape)
    regularizer = keras.regularizers.get(kernel_regularizer)
    code_activation = activation if code_activation is None else code_activation
    seeds = _LayerSettings(seed, dtype)

    def dense_layer(units, act, name):
        return layers.Dense(units, activation=act, kernel_regularizer=regularizer, name=name, **seeds.kernel())

    inputs, x = _scaled_input(input_shape, scaling)
    x = layers.Flatten(name="flatten", **seeds.plain())(x) if len(input_shape) > 1 else x
    for index, units in enumerate(hidden_units):
        x = _hidden(x, units, dense_layer, activation, batch_norm, dropout, f"encoder_dense_{index}", seeds)
    encoder = keras.Model(inputs, _latent_heads(x, latent_dim, variational, code_activation, regularizer, seeds), name="encoder")

    code = keras.Input((latent_dim,), name="z")
    x = code
    for index, units in enumerate(reversed(hidden_units)):
        x = _hidden(x, units, dense_layer, activation, batch_norm, dropout, f"decoder_dense_{index}", seeds)
    steps = [("decoder_output", functools.partial(layers.Dense, math.prod(input_shape), kernel_regularizer=regularizer))]
    if len(input_shape) > 1:
        steps.append(("decoder_output_reshape", functools.partial(layers.Reshape, input_shape)))
    x = _unscaled_output(_output_layers(x, steps, _output_activation(output_activation, variational, scaling), seeds), scaling)
    return encoder, keras.Model(code, x, name="decoder")


def _convolutional(
    input_shape, latent_dim, *, filters, kernel_size, strides, dense_units, activation, code_activation,
    output_activation, batch_norm, dropout, kernel_regularizer, variational, spatial_code=False, scaling=None, seed=None, dtype=None,
):
    """Strided-convolution encoder and transposed-convolution decoder over 1 or 2 spatial axes.

    `input_shape` is `(*spatial, channels)`, or `(length,)` for a one-channel signal. Sides are padded up to
    a multiple of `strides ** len(filters)` in the encoder and cropped back in the decoder.
    """
    flat = len(input_shape) == 1
    *spatial, channels = (*input_shape, 1) if flat else input_shape
    rank = len(spatial)
    convolution, transposed_convolution, padding, cropping = CONVOLUTION_LAYERS[rank]
    reduction = strides ** len(filters)
    margins = tuple(_margins(side, reduction) for side in spatial)
    padded = any(map(any, margins))
    margins = margins if rank > 1 else margins[0]
    regularizer = keras.regularizers.get(kernel_regularizer)
    code_activation = activation if code_activation is None else code_activation
    seeds = _LayerSettings(seed, dtype)

    def conv_layer(filter_count, act, name):
        return convolution(
            filter_count, kernel_size, strides=strides, padding="same", activation=act, kernel_regularizer=regularizer,
            name=name, **seeds.kernel(),
        )

    def transposed_layer(filter_count, act, name):
        return transposed_convolution(
            filter_count, kernel_size, strides=strides, padding="same", activation=act, kernel_regularizer=regularizer,
            name=name, **seeds.kernel(),
        )

    def dense_layer(units, act, name):
        return layers.Dense(units, activation=act, kernel_regularizer=regularizer, name=name, **seeds.kernel())

    def pointwise_layer(filter_count, act, name):
        return convolution(filter_count, 1, activation=act, kernel_regularizer=regularizer, name=name, **seeds.kernel())

    inputs, x = _scaled_input(input_shape, scaling)
    if flat:
        x = layers.Reshape((*spatial, channels), name="encoder_reshape", **seeds.plain())(x)
    if padded:
        x = padding(margins, name="encoder_padding", **seeds.plain())(x)
    for index, filter_count in enumerate(filters):
        x = _hidden(x, filter_count, conv_layer, activation, batch_norm, dropout, f"encoder_conv_{index}", seeds)
    if not spatial_code:
        x = layers.Flatten(name="flatten", **seeds.plain())(x)
        if dense_units:
            x = _hidden(x, dense_units, dense_layer, activation, batch_norm, dropout, "encoder_dense", seeds)
    head = functools.partial(convolution, kernel_size=1) if spatial_code else layers.Dense
    code_layers = _latent_heads(x, latent_dim, variational, code_activation, regularizer, seeds, head)
    encoder = keras.Model(inputs, code_layers, name="encoder")

    feature_shape = (*(math.ceil(side / reduction) for side in spatial), filters[-1])
    if spatial_code:
        code = keras.Input((*feature_shape[:-1], latent_dim), name="z")
        x = _hidden(code, filters[-1], pointwise_layer, activation, batch_norm, dropout, "decoder_pointwise", seeds)
    else:
        code = keras.Input((latent_dim,), name="z")
        x = _hidden(code, math.prod(feature_shape), dense_layer, activation, batch_norm, dropout, "decoder_dense", seeds)
        x = layers.Reshape(feature_shape, name="decoder_reshape", **seeds.plain())(x)
    for index, filter_count in enumerate(reversed(filters)):
        x = _hidden(x, filter_count, transposed_layer, activation, batch_norm, dropout, f"decoder_conv_transpose_{index}", seeds)
    steps = [("decoder_output", functools.partial(convolution, channels, kernel_size, padding="same"))]
    if padded:
        steps.append(("decoder_cropping", functools.partial(cropping, margins)))
    if flat:
        steps.append(("decoder_output_reshape", functools.partial(layers.Reshape, input_shape)))
    x = _unscaled_output(_output_layers(x, steps, _output_activation(output_activation, variational, scaling), seeds), scaling)
    return encoder, keras.Model(code, x, name="decoder")


def conv(
    input_shape,
    latent_dim,
    filters=(32, 64),
    kernel_size=3,
    strides=2,
    dense_units=None,
    activation="relu",
    code_activation=None,
    output_activation=None,
    batch_norm=False,
    dropout=0.0,
    kernel_regularizer=None,
    variational=False,
    spatial_code=False,
    seed=None,
    dtype=None,
):
    """Convolutional encoder (strided convolutions) and its transposed-convolution mirror, for images of any size.

    Args:
        input_shape: `(height, width, channels)`; sides that do not divide by r = `strides ** len(filters)` are
            zero-padded up to the next multiple (`encoder_padding`, split evenly) and cropped back
            (`reconstruction` is then a cropping layer after the output convolution `decoder_output`).
        latent_dim: size of the code, or with `spatial_code` its channels.
        filters: encoder convolution widths, outermost first.
        kernel_size, strides: of every convolution.
        dense_units: optional dense layer between the flattened features and a vector code.
        activation, code_activation, output_activation, batch_norm, dropout, kernel_regularizer, variational:
            as in `dense`; dropout follows every hidden block.
        spatial_code: the code is a feature map `(ceil(height / r), ceil(width / r), latent_dim)` (a 1x1 convolution
            of the last features) instead of a vector.
        seed, dtype: as in `dense`.

    Raises:
        InputError: an `input_shape` that is not (height, width, channels).
    """
    arguments = dict(locals())  # every argument, passed on as given
    if len(input_shape) != 3:
        raise InputError(f"conv networks need input_shape (height, width, channels); got {tuple(input_shape)}.")
    return _convolutional(**{**arguments, "input_shape": tuple(input_shape)})


def conv1d(
    input_shape,
    latent_dim,
    filters=(32, 64),
    kernel_size=7,
    strides=2,
    dense_units=None,
    activation="relu",
    code_activation=None,
    output_activation=None,
    batch_norm=False,
    dropout=0.0,
    kernel_regularizer=None,
    variational=False,
    scaling=None,
    seed=None,
    dtype=None,
):
    """1-D convolutional encoder and its transposed-convolution mirror, for sequences and signals of any length.

    Args:
        input_shape: `(length,)` (reshaped to one channel inside, returned flat) or `(length, channels)`; lengths
            that do not divide by `strides ** len(filters)` are padded and cropped back, as in `conv`.
        latent_dim: size of the code.
        filters, kernel_size, strides, dense_units: as in `conv`.
        activation, code_activation, output_activation, batch_norm, dropout, kernel_regularizer, variational, scaling, seed, dtype: as in `dense`.

    Raises:
        InputError: an `input_shape` that is not (length,) or (length, channels), or an unknown `scaling`.
    """
    arguments = dict(locals())  # every argument, passed on as given
    if len(input_shape) not in (1, 2):
        raise InputError(f"conv1d networks need input_shape (length,) or (length, channels); got {tuple(input_shape)}.")
    return _convolutional(**{**arguments, "input_shape": tuple(input_shape)})


def summed_dense(
    input_shape,
    latent_dim,
    hidden_units=(600, 600, 600, 600, 600),
    activation="swish",
    layer_norm_epsilon=0.1,
    output_activation=None,
    variational=False,
    seed=None,
    dtype=None,
):
    """RecVAE's encoder (Shenbin et al. 2020): dense layers of one width, each adding the sum of every earlier hidden
    output to its own before the activation, then layer norm; and a decoder of one dense layer.

    Args:
        input_shape: shape of one example; flattened inside the encoder.
        latent_dim: size of the code.
        hidden_units: the encoder's hidden layer sizes, all equal (their outputs are summed).
        activation: hidden activation (swish in the paper).
        layer_norm_epsilon: the layer norms' epsilon (0.1 in the paper's code).
        output_activation: decoder output activation (default: sigmoid, or linear if variational).
        variational: encoder returns `[z_mean, z_log_var]`.
        seed, dtype: as in `dense`.

    Raises:
        InputError: `hidden_units` empty or not all of one width.
    """
    input_shape, hidden_units = tuple(input_shape), tuple(hidden_units)
    if not hidden_units or len(set(hidden_units)) != 1:
        raise InputError(f"summed_dense needs hidden_units of one width (their outputs are summed); got {list(hidden_units)}.")
    seeds = _LayerSettings(seed, dtype)
    inputs = keras.Input(input_shape, name="x")
    x = layers.Flatten(name="flatten", **seeds.plain())(inputs) if len(input_shape) > 1 else inputs
    earlier = []
    for index, units in enumerate(hidden_units):
        x = layers.Dense(units, name=f"encoder_dense_{index}", **seeds.kernel())(x)
        if earlier:
            x = layers.Add(name=f"encoder_sum_{index}", **seeds.plain())([x, *earlier])
        x = layers.Activation(activation, name=f"encoder_activation_{index}", **seeds.plain())(x)
        x = layers.LayerNormalization(epsilon=layer_norm_epsilon, name=f"encoder_layer_norm_{index}", **seeds.plain())(x)
        earlier.append(x)
    encoder = keras.Model(inputs, _latent_heads(x, latent_dim, variational, activation, None, seeds), name="encoder")

    code = keras.Input((latent_dim,), name="z")
    steps = [("decoder_output", functools.partial(layers.Dense, math.prod(input_shape)))]
    if len(input_shape) > 1:
        steps.append(("decoder_output_reshape", functools.partial(layers.Reshape, input_shape)))
    return encoder, keras.Model(code, _output_layers(code, steps, _output_activation(output_activation, variational), seeds), name="decoder")


BUILDERS = {"dense": dense, "conv": conv, "conv1d": conv1d, "summed_dense": summed_dense}


def build(kind, **kwargs):
    """Build an encoder/decoder pair from plain data, e.g. a zoo card's `network` entry.

    Raises:
        InputError: an unknown `kind`, or what its builder refuses (see `dense`, `conv`, `conv1d`, `summed_dense`).
    """
    if kind not in BUILDERS:
        raise InputError(f"Unknown network kind {kind!r}; expected one of {sorted(BUILDERS)}.")
    return BUILDERS[kind](**kwargs)
