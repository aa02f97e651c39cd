"""Builders of matching encoder/decoder pairs: the architecture, apart from the objective.

Each builder returns `(encoder, decoder)` as functional `keras.Model`s. With
`variational=True` the encoder has two outputs, `z_mean` and `z_log_var`, and the
decoder ends without an activation (its output is Bernoulli logits or a Gaussian
mean, whichever the VAE's likelihood says).

The classic single-hidden-layer autoencoder, 784 -> 32 (relu) -> 784 (sigmoid):

    keras_ae.Autoencoder(*keras_ae.networks.dense((784,), 32))
"""

import functools
import math

import keras
from keras import layers


def _output_activation(output_activation, variational):
    if output_activation is not None:
        return output_activation
    return "linear" if variational else "sigmoid"


def _hidden(x, units_or_filters, layer_factory, activation, batch_norm, dropout, name):
    """One hidden block: linear map, optional batch norm, activation, optional dropout."""
    x = layer_factory(units_or_filters, None if batch_norm else activation, name)(x)
    if batch_norm:
        x = layers.BatchNormalization(name=f"{name}_batch_norm")(x)
        x = layers.Activation(activation, name=f"{name}_activation")(x)
    if dropout:
        x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return x


def _latent_heads(x, latent_dim, variational, code_activation, kernel_regularizer, head=layers.Dense):
    """The code layer(s): `head` is Dense for a vector code, a 1x1 convolution for a feature-map code."""
    if variational:
        z_mean = head(latent_dim, name="z_mean")(x)
        z_log_var = head(latent_dim, name="z_log_var")(x)
        return [z_mean, z_log_var]
    return head(latent_dim, activation=code_activation, kernel_regularizer=kernel_regularizer, name="code")(x)


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
):
    """Dense (stacked) encoder and its mirror-image decoder.

    Args:
        input_shape: shape of one example; images are flattened inside the encoder.
        latent_dim: size of the code.
        hidden_units: encoder hidden layer sizes, outermost first; the decoder mirrors them.
        activation: hidden activation.
        code_activation: activation of a deterministic code (default: `activation`).
        output_activation: decoder output activation (default: sigmoid, or linear if variational).
        batch_norm: batch normalization after each hidden layer.
        dropout: dropout rate after each hidden layer.
        kernel_regularizer: any `keras.regularizers.get` identifier, e.g. `"l2"` or a `keras.regularizers.L1(1e-5)`.
        variational: encoder returns `[z_mean, z_log_var]`.
    """
    input_shape = tuple(input_shape)
    regularizer = keras.regularizers.get(kernel_regularizer)
    code_activation = activation if code_activation is None else code_activation

    def dense_layer(units, act, name):
        return layers.Dense(units, activation=act, kernel_regularizer=regularizer, name=name)

    inputs = keras.Input(input_shape, name="x")
    x = layers.Flatten(name="flatten")(inputs) if len(input_shape) > 1 else inputs
    for index, units in enumerate(hidden_units):
        x = _hidden(x, units, dense_layer, activation, batch_norm, dropout, f"encoder_dense_{index}")
    encoder = keras.Model(inputs, _latent_heads(x, latent_dim, variational, code_activation, regularizer), name="encoder")

    code = keras.Input((latent_dim,), name="z")
    x = code
    for index, units in enumerate(reversed(hidden_units)):
        x = _hidden(x, units, dense_layer, activation, batch_norm, dropout, f"decoder_dense_{index}")
    x = layers.Dense(
        math.prod(input_shape),
        activation=_output_activation(output_activation, variational),
        kernel_regularizer=regularizer,
        name="reconstruction" if len(input_shape) == 1 else "decoder_output",
    )(x)
    if len(input_shape) > 1:
        x = layers.Reshape(input_shape, name="reconstruction")(x)
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
    kernel_regularizer=None,
    variational=False,
    spatial_code=False,
):
    """Convolutional encoder (strided convolutions) and its transposed-convolution mirror.

    Args:
        input_shape: `(height, width, channels)`; height and width must divide by `strides ** len(filters)`.
        latent_dim: size of the code, or with `spatial_code` its channels.
        filters: encoder convolution widths, outermost first.
        kernel_size, strides: of every convolution.
        dense_units: optional dense layer between the flattened features and a vector code.
        activation, code_activation, output_activation, batch_norm, kernel_regularizer, variational: as in `dense`.
        spatial_code: the code is a feature map `(height / r, width / r, latent_dim)` (r = `strides ** len(filters)`,
            a 1x1 convolution of the last features) instead of a vector.
    """
    input_shape = tuple(input_shape)
    if len(input_shape) != 3:
        raise ValueError(f"conv networks need input_shape (height, width, channels); got {input_shape}.")
    height, width, channels = input_shape
    reduction = strides ** len(filters)
    if height % reduction or width % reduction:
        raise ValueError(
            f"input_shape {input_shape} must have height and width divisible by strides**len(filters) = {reduction}."
        )
    regularizer = keras.regularizers.get(kernel_regularizer)
    code_activation = activation if code_activation is None else code_activation

    def conv_layer(width, act, name):
        return layers.Conv2D(
            width, kernel_size, strides=strides, padding="same", activation=act, kernel_regularizer=regularizer, name=name
        )

    def transposed_layer(width, act, name):
        return layers.Conv2DTranspose(
            width, kernel_size, strides=strides, padding="same", activation=act, kernel_regularizer=regularizer, name=name
        )

    def dense_layer(units, act, name):
        return layers.Dense(units, activation=act, kernel_regularizer=regularizer, name=name)

    def pointwise_layer(width, act, name):
        return layers.Conv2D(width, 1, activation=act, kernel_regularizer=regularizer, name=name)

    inputs = keras.Input(input_shape, name="x")
    x = inputs
    for index, width_ in enumerate(filters):
        x = _hidden(x, width_, conv_layer, activation, batch_norm, 0.0, f"encoder_conv_{index}")
    if not spatial_code:
        x = layers.Flatten(name="flatten")(x)
        if dense_units:
            x = _hidden(x, dense_units, dense_layer, activation, batch_norm, 0.0, "encoder_dense")
    head = functools.partial(layers.Conv2D, kernel_size=1) if spatial_code else layers.Dense
    encoder = keras.Model(inputs, _latent_heads(x, latent_dim, variational, code_activation, regularizer, head), name="encoder")

    feature_shape = (height // reduction, width // reduction, filters[-1])
    if spatial_code:
        code = keras.Input((*feature_shape[:2], latent_dim), name="z")
        x = _hidden(code, filters[-1], pointwise_layer, activation, batch_norm, 0.0, "decoder_pointwise")
    else:
        code = keras.Input((latent_dim,), name="z")
        x = _hidden(code, math.prod(feature_shape), dense_layer, activation, batch_norm, 0.0, "decoder_dense")
        x = layers.Reshape(feature_shape, name="decoder_reshape")(x)
    for index, width_ in enumerate(reversed(filters)):
        x = _hidden(x, width_, transposed_layer, activation, batch_norm, 0.0, f"decoder_conv_transpose_{index}")
    outputs = layers.Conv2D(
        channels, kernel_size, padding="same", activation=_output_activation(output_activation, variational),
        name="reconstruction",
    )(x)
    return encoder, keras.Model(code, outputs, name="decoder")


BUILDERS = {"dense": dense, "conv": conv}


def build(kind, **kwargs):
    """Build an encoder/decoder pair from plain data, e.g. a zoo card's `network` entry."""
    if kind not in BUILDERS:
        raise ValueError(f"Unknown network kind {kind!r}; expected one of {sorted(BUILDERS)}.")
    return BUILDERS[kind](**kwargs)
