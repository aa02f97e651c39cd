"""Vector-quantised autoencoder (VQ-VAE, van den Oord et al. 2017): a discrete code, and compression to its indices.

Paper: van den Oord, Vinyals and Kavukcuoglu 2017, "Neural Discrete Representation Learning" (NeurIPS).

Objective, per example: reconstruction error plus the commitment term `commitment_cost` x ||z_e - sg(e)||^2; the
codebook follows the encoder outputs by exponential moving averages (`ema_decay`), not by gradients. Gradients pass the
quantiser straight through. `compress` turns each image into its code indices.

    encoder, decoder = keras_ae.networks.conv((28, 28, 1), 16, spatial_code=True)
    model = keras_ae.VQVAE(encoder, decoder, num_embeddings=64)
"""

import math

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from keras_ae import losses
from keras_ae.errors import InputError
from keras_ae.models.base import BaseAutoencoder, check_networks, per_batch, replica_context
from keras_ae.models.task import Task, metric_column

LAPLACE_EPSILON = 1e-5  # smoothing of the EMA cluster sizes, so no code divides by zero
DEAD_CODE_USAGE = 1.0  # a code whose EMA usage (vectors per batch) falls below this is re-initialised


def perplexity(counts):
    """exp of the entropy of code usage given each code's count: 1 when one code is used, K when all K are used evenly."""
    probabilities = ops.cast(counts, "float32") / ops.cast(ops.sum(counts), "float32")
    return ops.exp(-ops.sum(probabilities * ops.log(probabilities + 1e-10)))


@keras.saving.register_keras_serializable(package="keras_ae")
class VQVAE(BaseAutoencoder):
    """VQ-VAE: each code vector (the encoder output's last axis) becomes the nearest of `num_embeddings` codebook vectors.

    The encoder returns a continuous code, a feature map `(h, w, D)` (`networks.conv(..., spatial_code=True)`) or a
    vector `(D,)`; the decoder takes the quantised code. Gradients pass the quantisation straight through to the
    encoder. The loss per example is the squared reconstruction error summed over data dimensions plus
    `commitment_cost` x ||z_e - sg(e)||^2 summed over the code; the codebook gets no gradient: the training step
    moves it by exponential moving averages of the encoder outputs assigned to each code (cluster sizes Laplace
    smoothed), and re-initialises a code whose average usage falls below `DEAD_CODE_USAGE` vectors per batch to a
    random encoder output of the batch. A fresh codebook counts as unused, so the first step fills it from data.
    Under several replicas the statistics are summed over them, so the codebook moves as on one device given the global
    batch, and restarts take the first replica's picks. Logged: the loss, its two terms, and `perplexity`,
    exp of the entropy of each batch's code usage (1: one code used; K: all used evenly). `compress` gives the code
    indices, `decompress` the images: `bits_per_image` bits before entropy coding.

    Args:
        num_embeddings: codebook size K.
        commitment_cost: weight beta of the commitment loss.
        ema_decay: decay of the codebook's moving averages.
        **kwargs: as in `BaseAutoencoder`.

    Raises:
        InputError: the encoder does not return one code of the decoder's input shape, or the decoder is not a built
            `keras.Model`.
    """

    metric_names = ("loss", "reconstruction_loss", "commitment_loss", "perplexity")
    error_score = True

    def __init__(self, encoder, decoder, num_embeddings=256, commitment_cost=0.25, ema_decay=0.99, **kwargs):
        check_networks(encoder, decoder)
        if len(encoder.outputs) != 1 or tuple(encoder.outputs[0].shape[1:]) != tuple(decoder.inputs[0].shape[1:]):
            raise InputError(
                "A VQVAE encoder must return one code of the decoder's input shape; got outputs "
                f"{[tuple(output.shape[1:]) for output in encoder.outputs]} for decoder input {tuple(decoder.inputs[0].shape[1:])}. "
                "Build the pair with keras_ae.networks.conv(..., spatial_code=True) or dense(...)."
            )
        self.num_embeddings = int(num_embeddings)
        self.commitment_cost = float(commitment_cost)
        self.ema_decay = float(ema_decay)
        super().__init__(encoder, decoder, **kwargs)

    def create_state(self):
        """The codebook and its moving averages: non-trainable float32 weights (under any dtype policy), saved with the model;
        every replica computes the same update, and the first replica's is kept."""
        def state(name, shape):
            return self.add_weight(
                shape=shape, initializer="zeros", dtype="float32", trainable=False, autocast=False, name=name,
                aggregation="only_first_replica",
            )

        self.codebook = state("codebook", (self.num_embeddings, self.code_shape[-1]))
        self.ema_cluster_size = state("ema_cluster_size", (self.num_embeddings,))
        self.ema_embedding_sum = state("ema_embedding_sum", (self.num_embeddings, self.code_shape[-1]))

    @property
    def code_positions(self):
        """Shape of one code's grid of indices, e.g. (7, 7) for a 7x7 feature map, () for a vector."""
        return self.code_shape[:-1]

    @property
    def bits_per_image(self):
        """Bits of one image's code indices before entropy coding: positions x log2(num_embeddings)."""
        return math.prod(self.code_positions) * math.log2(self.num_embeddings)

    def nearest_codes(self, z):
        """Index of the nearest codebook vector at every position of the codes `z`, and those vectors."""
        vectors = ops.reshape(ops.cast(z, "float32"), (-1, self.code_shape[-1]))
        distances = (
            ops.sum(ops.square(vectors), axis=1, keepdims=True)
            - 2.0 * ops.matmul(vectors, ops.transpose(self.codebook))
            + ops.sum(ops.square(self.codebook), axis=1)
        )
        indices = ops.cast(ops.argmin(distances, axis=1), "int32")
        return ops.reshape(indices, ops.shape(z)[:-1]), ops.reshape(ops.take(self.codebook, indices, axis=0), ops.shape(z))

    def call(self, x, training=False):
        return self.decoder(self.nearest_codes(self.encode(x, training=training))[1], training=training)

    def compress(self, x):
        """The int32 code indices of a batch of images, shape (batch, *code_positions).

        Raises:
            InputError: `x` is not a floating-point batch of the input shape, or holds NaN or Inf (see `check_input`).
        """
        return self.nearest_codes(self.encode(x))[0]

    def decompress(self, indices):
        """Images decoded from code indices (any integer dtype, shape (batch, *code_positions), values below K).

        Raises:
            InputError: `indices` are not integers of shape (batch, *code_positions) in [0, num_embeddings), or the call
                is inside an XLA-compiled function (see `check_indices`).
        """
        indices = self.check_indices(indices)
        return self.in_batches(lambda chosen: self.as_inputs(self.decoder(ops.take(self.codebook, chosen, axis=0))), indices)

    def check_indices(self, indices):
        """Validate a batch of code indices; return them as int32 (an assertion inside a graph, as `check_input`).

        Refused inside an XLA-compiled function: XLA drops assertions, and its gather would clamp a bad index to a code.

        Raises:
            InputError: `indices` are not integers of shape (batch, *code_positions), or (eagerly) not in
                [0, num_embeddings), or the call is inside an XLA-compiled function.
            tf.errors.InvalidArgumentError: inside a compiled step, an index outside [0, num_embeddings).
        """
        indices = indices if hasattr(indices, "dtype") else np.asarray(indices)
        expected = (
            f"VQVAE.decompress expects integer code indices of shape (batch, {', '.join(map(str, self.code_positions))}) "
            f"in [0, {self.num_embeddings})"
        )
        dtype = keras.backend.standardize_dtype(indices.dtype)
        if not dtype.startswith(("int", "uint")):
            raise InputError(f"{expected}; got dtype {dtype}.")
        if len(indices.shape) != len(self.code_positions) + 1 or tuple(indices.shape[1:]) != self.code_positions:
            raise InputError(f"{expected}; got shape {tuple(indices.shape)}.")
        if tf.__internal__.get_enclosing_xla_context() is not None:
            raise InputError(f"{expected}; got a call inside an XLA-compiled function, which skips that check: call it outside one.")
        indices = ops.cast(indices, "int32")
        in_range = ops.all((indices >= 0) & (indices < self.num_embeddings))
        if tf.executing_eagerly():
            if not bool(in_range):
                raise InputError(f"{expected}; got values from {int(ops.min(indices))} to {int(ops.max(indices))}.")
            return indices
        with tf.control_dependencies([tf.debugging.Assert(in_range, [f"{expected}; got values outside it."])]):
            return tf.identity(indices)

    def squared_error(self, x, x_hat):
        """Squared error summed over data dimensions, per example."""
        return losses.mean_squared_error(x, x_hat) * math.prod(self.input_shape_per_example)

    def anomaly_score(self, x):
        """Per-example squared reconstruction error, summed over data dimensions.

        Raises:
            InputError: `x` is not a floating-point batch of the input shape, or holds NaN or Inf (see `check_input`).
        """
        return self.squared_error(x, self(self.check_input(x)))

    def loss_terms(self, x, training):
        z = ops.cast(self.encoder(x, training=training), "float32")
        indices, quantized = self.nearest_codes(z)
        straight_through = z + ops.stop_gradient(quantized - z)
        reconstruction = self.squared_error(x, self.decoder(straight_through, training=training))
        commitment = ops.sum(ops.reshape(ops.square(z - ops.stop_gradient(quantized)), (ops.shape(z)[0], -1)), axis=1)
        assignments = ops.one_hot(ops.reshape(indices, (-1,)), self.num_embeddings)
        if training:  # as BatchNormalization moves its statistics, the training pass moves the codebook
            self.update_codebook(z, assignments)
        return {
            "loss": reconstruction + self.commitment_cost * commitment,
            "reconstruction_loss": reconstruction,
            "commitment_loss": commitment,
            "perplexity": ops.broadcast_to(perplexity(ops.sum(assignments, axis=0)), ops.shape(reconstruction)),
        }

    def update_codebook(self, z, assignments):
        """One EMA step of each code towards the mean of the code vectors `z` assigned to it (one-hot `assignments`,
        one row per vector), counted over all replicas; dead codes restart."""
        vectors = ops.reshape(z, (-1, self.code_shape[-1]))
        counts, sums = ops.sum(assignments, axis=0), ops.matmul(ops.transpose(assignments), vectors)
        picks = keras.random.randint((self.num_embeddings,), 0, ops.shape(vectors)[0], seed=self.seed_generator)
        restarts = ops.take(vectors, picks, axis=0)
        context = replica_context()
        if context is not None:
            first = context.replica_id_in_sync_group == 0
            counts, sums, restarts = context.all_reduce("sum", [counts, sums, ops.where(first, restarts, 0.0)])
        decay = self.ema_decay
        cluster_size = decay * self.ema_cluster_size + (1.0 - decay) * counts
        embedding_sum = decay * self.ema_embedding_sum + (1.0 - decay) * sums
        total = ops.sum(cluster_size)
        smoothed = (cluster_size + LAPLACE_EPSILON) / (total + self.num_embeddings * LAPLACE_EPSILON) * total
        codebook = embedding_sum / smoothed[:, None]
        dead = cluster_size < DEAD_CODE_USAGE
        self.codebook.assign(ops.where(dead[:, None], restarts, codebook))
        self.ema_cluster_size.assign(ops.where(dead, 1.0, cluster_size))  # a restarted code counts as used once
        self.ema_embedding_sum.assign(ops.where(dead[:, None], restarts, embedding_sum))

    def get_config(self):
        return {
            **super().get_config(),
            "num_embeddings": self.num_embeddings,
            "commitment_cost": self.commitment_cost,
            "ema_decay": self.ema_decay,
        }


class VQVAETask(Task):
    """The VQ-VAE's task: its measures add the bits per image and code usage; it exports `compress` and `decompress`."""

    family = VQVAE
    short_name = "vqvae"
    network_options = {"*": {"code_activation": "linear"}, "conv": {"spatial_code": True}}  # conv: a grid of codes

    def measure(self, examples, inputs, targets=None):
        """Reconstruction MSE and PSNR, bits per image, and the perplexity of the code usage over all `examples`."""
        model = self.model
        indices = np.asarray(per_batch(model.compress, examples, batch_size=500))
        return {
            **super().measure(examples, inputs),
            "bits_per_image": model.bits_per_image,
            "code_perplexity": float(perplexity(np.bincount(indices.ravel(), minlength=model.num_embeddings))),
        }

    @classmethod
    def headline(cls, measured):
        if "psnr_db" in measured and "bits_per_image" in measured:
            return f"PSNR {measured['psnr_db']:.2f} dB at {measured['bits_per_image']:g} bits/image"
        return super().headline(measured)

    @classmethod
    def card_columns(cls):
        rate = metric_column(lambda measured: f"{measured['psnr_db']:.2f} at {measured['bits_per_image']:g}", "psnr_db", "bits_per_image")
        return {**super().card_columns(), "PSNR dB at bits/image": rate}

    def export_endpoints(self):
        """The common endpoints, `compress` (images -> int32 indices) and `decompress` (indices -> images)."""
        model = self.model
        endpoints = super().export_endpoints()
        indices = tf.TensorSpec([None, *model.code_positions], tf.int32, name="indices")
        endpoints["compress"] = (lambda x: model.compress(x), endpoints["serve"][1])
        endpoints["decompress"] = (lambda indices: model.decompress(indices), [indices])
        return endpoints
