"""Variational autoencoder: reparameterised sampling, KL term, beta and KL warm-up; and the importance-weighted bound.

Papers: Kingma and Welling 2014, "Auto-Encoding Variational Bayes" (ICLR); Burda et al. 2016, "Importance Weighted
Autoencoders" (ICLR) for `objective="iwae"`; Higgins et al. 2017 (beta-VAE) for `beta`.

Objective, per example: the negative ELBO, -E_q[log p(x|z)] + beta KL(q(z|x) || N(0, I)); or with `objective="iwae"`
the negative k-sample bound -log (1/k) sum_i p(x, z_i) / q(z_i|x). Measured: the test NLL as the k-sample bound with a
large k (`evaluation.iwae_samples`).

    encoder, decoder = keras_ae.networks.conv((28, 28, 1), 32, variational=True)
    model = keras_ae.VAE(encoder, decoder, likelihood="bernoulli")
    model.compile(optimizer="adam")
    model.fit(keras_ae.data.load("mnist", binarize="dynamic"), epochs=10)
    digits = model.sample(16, seed=0)
"""

import math
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from keras_ae import losses
from keras_ae.errors import InputError
from keras_ae.models.base import (
    MAX_EXPORTED_SAMPLES, BaseAutoencoder, check_choice, check_networks, per_batch, ramp, reparameterize,
)
from keras_ae.models.task import Task, metric_column, metric_text

LIKELIHOODS = ("bernoulli", "gaussian")
OBJECTIVES = ("elbo", "iwae")


def negative_log_mean_weight(log_weights):
    """-log of the mean importance weight per row of (batch, samples) log weights: the k-sample bound (Burda et al. 2015)."""
    return -(ops.logsumexp(log_weights, axis=1) - math.log(log_weights.shape[1]))


@keras.saving.register_keras_serializable(package="keras_ae")
class VAE(BaseAutoencoder):
    """Variational autoencoder with a standard normal prior.

    The encoder returns `(z_mean, z_log_var)`; the decoder returns Bernoulli logits or a Gaussian
    mean. The loss per example is the negative log-likelihood summed over data dimensions plus
    `beta` x KL summed over latent dimensions, averaged over the batch.

    Args:
        likelihood: `"bernoulli"` (binary or [0, 1] data) or `"gaussian"` (fixed `observation_scale`).
        beta: weight of the KL term.
        kl_warmup_steps: ramp beta linearly from 0 over this many training steps (0: no warm-up);
            the step counter is a model variable, saved with it.
        observation_scale: standard deviation of the Gaussian likelihood.
        objective: `"elbo"`, or `"iwae"`: train on the `samples`-sample importance-weighted bound (Burda et al. 2015),
            with warm-up weighting log p(z) - log q(z|x) inside each weight by the current beta.
        samples: draws per example of the `"iwae"` objective.
        **kwargs: as in `BaseAutoencoder`.

    Raises:
        InputError: an unknown `likelihood` or `objective`, `samples` not a positive integer, an encoder that does not
            return [z_mean, z_log_var], or a decoder that is not a built `keras.Model`.
    """

    metric_names = ("loss", "reconstruction_loss", "kl_loss")
    counts_steps = True

    def __init__(
        self, encoder, decoder, likelihood="bernoulli", beta=1.0, kl_warmup_steps=0, observation_scale=1.0, objective="elbo",
        samples=1, **kwargs
    ):
        self.likelihood = check_choice("likelihood", likelihood, LIKELIHOODS)
        self.objective = check_choice("objective", objective, OBJECTIVES)
        if not isinstance(samples, (int, np.integer)) or isinstance(samples, bool) or samples < 1:
            raise InputError(f"samples must be a positive integer of draws per example; got {samples!r}.")
        self.samples = int(samples)
        check_networks(encoder, decoder)
        if len(encoder.outputs) != 2:
            raise InputError(
                f"A VAE encoder must return [z_mean, z_log_var]; this one has {len(encoder.outputs)} output(s). "
                "Build one with keras_ae.networks.dense(..., variational=True) or conv(..., variational=True)."
            )
        self.beta = float(beta)
        self.kl_warmup_steps = int(kl_warmup_steps)
        self.observation_scale = float(observation_scale)
        super().__init__(encoder, decoder, **kwargs)

    @property
    def latent_dim(self):
        return self.code_shape[-1]

    def current_beta(self):
        """Beta after warm-up: `beta * min(1, steps / kl_warmup_steps)`."""
        return self.beta * ramp(self.training_steps + 1, self.kl_warmup_steps)

    def encode(self, x, training=False):
        """Posterior parameters `(z_mean, z_log_var)`, the log-variance clamped against overflow.

        Raises:
            InputError: `x` is not a floating-point batch of the input shape, or holds NaN or Inf (see `check_input`).
        """
        z_mean, z_log_var = self.encoder(self.check_input(x), training=training)
        return z_mean, ops.cast(losses.clamp_log_variance(z_log_var), z_mean.dtype)

    def reparameterize(self, z_mean, z_log_var, seed=None):
        """Draw z = mean + sigma * epsilon with the model's seeded generator."""
        return reparameterize(z_mean, z_log_var, self.seed_generator if seed is None else seed)

    def likelihood_mean(self, decoder_output):
        """Mean of p(x | z): pixel probabilities for Bernoulli, the output itself for Gaussian."""
        if self.likelihood == "bernoulli":
            return ops.sigmoid(decoder_output)
        return decoder_output

    def negative_log_likelihood(self, x, decoder_output):
        if self.likelihood == "bernoulli":
            return losses.bernoulli_negative_log_likelihood(x, decoder_output)
        return losses.gaussian_negative_log_likelihood(x, decoder_output, self.observation_scale)

    def posterior(self, x, condition=None, training=False):
        """Raw `(z_mean, z_log_var)` of checked inputs; `condition` is the one-hot label of a `ConditionalVAE`."""
        return self.encoder(x, training=training)

    def decoder_output(self, z, condition=None, training=False):
        """Bernoulli logits or Gaussian mean of p(x | z); `condition` is the one-hot label of a `ConditionalVAE`."""
        return self.decoder(z, training=training)

    def decode(self, z, training=False):
        """The likelihood mean of p(x | z) for a batch of codes `z`.

        Raises:
            InputError: `z` is not a floating-point batch of codes of `code_shape`, or holds NaN or Inf (see
                `check_code`).
        """
        return self.as_inputs(self.likelihood_mean(self.decoder(self.check_code(z), training=training)))

    def call(self, x, training=False):
        z_mean, _ = self.encode(x, training=training)
        return self.likelihood_mean(self.decoder(z_mean, training=training))

    def embed(self, x):
        """The posterior mean, the VAE's deterministic code.

        Raises:
            InputError: `x` is not a floating-point batch of the input shape, or holds NaN or Inf (see `check_input`).
        """
        return self.encode(x)[0]

    def negative_elbo(self, x, seed=0):
        """Per-example negative ELBO in nats, one reparameterised draw with a fixed `seed` (repeatable).

        Raises:
            InputError: `x` is not a floating-point batch of the input shape, or holds NaN or Inf (see `check_input`).
        """
        z_mean, z_log_var = self.encoder(self.check_input(x))
        z = self.reparameterize(z_mean, z_log_var, seed=seed)
        return self.negative_log_likelihood(x, self.decoder(z)) + losses.gaussian_kl_divergence(z_mean, z_log_var)

    def importance_weighted_bound(self, x, samples=100, seed=0):
        """Per-example importance-weighted upper bound on -log p(x) in nats (Burda et al. 2015), `samples` draws each.

        It tightens towards -log p(x) as `samples` grows; with one sample it is the negative ELBO.

        Raises:
            InputError: `x` is not a floating-point batch of the input shape, or holds NaN or Inf (see `check_input`).
        """
        x = self.check_input(x)
        log_weights, _ = self.log_importance_weights(x, *self.encoder(x), samples, seed)
        return negative_log_mean_weight(tf.cast(log_weights, tf.float64))

    def log_importance_weights(self, x, z_mean, z_log_var, samples, seed=None, beta=1.0, training=False, condition=None):
        """(log p(x|z) + beta * (log p(z) - log q(z|x)), -log p(x|z)), each (batch, samples), for `samples` draws per example;
        given the one-hot labels `condition` for a `ConditionalVAE`."""
        z_mean, z_log_var = ops.cast(z_mean, "float32"), losses.clamp_log_variance(z_log_var)
        repeat = lambda tensor: ops.repeat(tensor, samples, axis=0)  # noqa: E731
        mean_k, log_var_k, x_k = repeat(z_mean), repeat(z_log_var), repeat(x)
        condition_k = None if condition is None else repeat(condition)
        z_k = self.reparameterize(mean_k, log_var_k, seed=seed)
        nll = self.negative_log_likelihood(x_k, self.decoder_output(z_k, condition_k, training=training))
        log_ratio = losses.gaussian_log_density(z_k, ops.zeros_like(z_k), ops.zeros_like(z_k)) - losses.gaussian_log_density(z_k, mean_k, log_var_k)
        return ops.reshape(-nll + beta * log_ratio, (-1, samples)), ops.reshape(nll, (-1, samples))

    def anomaly_score(self, x):
        """Per-example negative ELBO.

        Raises:
            InputError: `x` is not a floating-point batch of the input shape, or holds NaN or Inf (see `check_input`).
        """
        return self.negative_elbo(x)

    def sample(self, n, seed=None):
        """Decode `n` draws from the prior; returns likelihood means."""
        z = keras.random.normal((n, *self.code_shape), seed=self.seed_generator if seed is None else seed)
        return self.in_batches(self.decode, z)

    def loss_terms(self, x, training):
        return self.objective_terms(x, None, training)

    def objective_terms(self, x, condition, training):
        """The negative ELBO (one draw) or, for `objective="iwae"`, the `samples`-draw importance-weighted bound, of checked
        inputs given `condition` (a `ConditionalVAE`'s one-hot labels, else None)."""
        z_mean, z_log_var = self.posterior(x, condition, training=training)
        kl = losses.gaussian_kl_divergence(z_mean, z_log_var)
        beta = self.current_beta() if training else self.beta
        if self.objective == "iwae":
            log_weights, nll = self.log_importance_weights(
                x, z_mean, z_log_var, self.samples, beta=beta, training=training, condition=condition
            )
            return {"loss": negative_log_mean_weight(log_weights), "reconstruction_loss": ops.mean(nll, axis=1), "kl_loss": kl}
        z = self.reparameterize(z_mean, z_log_var)
        reconstruction = self.negative_log_likelihood(x, self.decoder_output(z, condition, training=training))
        return {"loss": reconstruction + beta * kl, "reconstruction_loss": reconstruction, "kl_loss": kl}

    def get_config(self):
        return {
            **super().get_config(),
            "likelihood": self.likelihood,
            "beta": self.beta,
            "kl_warmup_steps": self.kl_warmup_steps,
            "observation_scale": self.observation_scale,
            "objective": self.objective,
            "samples": self.samples,
        }


VariationalAutoencoder = VAE


class VAETask(Task):
    """The VAE's task: its measures add the test bounds in nats; it draws samples (and for a 2-D code its manifold),
    exports `sample`, and supports `keras-ae sample`."""

    family = VAE
    bound_name = "NLL"  # how the importance-weighted bound reads in headlines and column headings
    elbo_heading = "-ELBO nats"
    evaluation_defaults = {"iwae_samples": 100, "bound_seed": 0}
    short_name = "vae"
    network_options = {"*": {"variational": True}}
    options_off_images = {"likelihood": "gaussian"}

    def bounds(self, inputs, iwae_samples, bound_seed, batch_size, **condition):
        """The test negative ELBO (one draw) and, unless `iwae_samples` is 0, the importance-weighted bound, in nats; given
        `labels=` for a conditional family. Draws are seeded per batch of `batch_size`, so a prefix re-measures the same."""
        model = self.model

        def per_example_bounds(batch, *labels, index):
            given = {"labels": labels[0]} if labels else {}
            elbo = ops.cast(model.negative_elbo(batch, seed=bound_seed * 100_003 + index, **given), "float64")
            if not iwae_samples:
                return ops.expand_dims(elbo, 1)
            bound = model.importance_weighted_bound(batch, samples=iwae_samples, seed=bound_seed * 100_003 + index + 50_000, **given)
            return ops.stack([elbo, ops.cast(bound, "float64")], axis=1)

        arrays = (inputs, *condition.values())
        means = np.asarray(per_batch(per_example_bounds, *arrays, batch_size=batch_size, indexed=True)).mean(axis=0)
        measured = {"negative_elbo_nats": float(means[0])}
        if iwae_samples:
            measured.update(iwae_nll_nats=float(means[1]), iwae_samples=iwae_samples)
        return measured

    def measure(self, examples, inputs, targets=None, iwae_samples=100, bound_seed=0, batch_size=50):
        """Reconstruction metrics, the test negative ELBO (one draw) and the importance-weighted bound, in nats.

        The bounds are computed on `inputs` (the binarized test set where the card binarizes); `iwae_samples=0`
        skips the importance-weighted bound.
        """
        return {**super().measure(examples, inputs), **self.bounds(inputs, iwae_samples, bound_seed, batch_size)}

    @classmethod
    def headline(cls, measured):
        if "iwae_nll_nats" in measured:
            return f"{cls.bound_name} {measured['iwae_nll_nats']:.2f} nats (IWAE k={measured['iwae_samples']})"
        if "negative_elbo_nats" in measured:
            return f"negative ELBO {measured['negative_elbo_nats']:.2f} nats"
        return super().headline(measured)

    @classmethod
    def card_columns(cls):
        bound = metric_column(lambda measured: f"{metric_text(measured, 'iwae_nll_nats', 2)} (k={measured['iwae_samples']})",
                              "iwae_nll_nats")
        return {
            **super().card_columns(),
            cls.elbo_heading: lambda measured: metric_text(measured, "negative_elbo_nats", 2),
            f"{cls.bound_name} nats (IWAE k)": bound,
        }

    def export_endpoints(self):
        """The common endpoints (`encode` returning `z_mean` and `z_log_var`) and `sample(count, seed)`."""
        model = self.model
        endpoints = super().export_endpoints()

        def sample(count, seed):
            tf.debugging.assert_less_equal(count, MAX_EXPORTED_SAMPLES, message=f"count must be at most {MAX_EXPORTED_SAMPLES}")
            z = tf.random.stateless_normal(tf.concat([[count], model.code_shape], axis=0), seed=tf.stack([seed, 0]))
            return tf.cond(count > 0, lambda: model.decode(z), lambda: tf.zeros((0, *model.input_shape_per_example)))

        endpoints["sample"] = (sample, [tf.TensorSpec([], tf.int32, name="count"), tf.TensorSpec([], tf.int32, name="seed")])
        return endpoints

    def draw(self, examples, labels, folder, name):
        """Reconstructions, samples from the prior, interpolations, and for a 2-D code its manifold and scatter."""
        from keras_ae import plot

        model, folder = self.model, Path(folder)
        pictures = {
            **super().draw(examples, labels, folder, name),
            "Samples": plot.samples(model, folder / f"{name}_samples.png"),
            "Interpolation": plot.interpolation(model, examples[:5], examples[5:10], folder / f"{name}_interpolation.png"),
        }
        if model.code_shape == (2,):
            pictures["2-D latent manifold"] = plot.latent_manifold(model, folder / f"{name}_manifold.png")
            pictures["Latent codes by label"] = plot.latent_scatter(model, examples, labels, folder / f"{name}_latent_scatter.png")
        return pictures
