"""Variational autoencoder: reparameterised sampling, KL term, beta and KL warm-up."""

import keras
from keras import ops

from keras_ae import losses
from keras_ae.models.base import BaseAutoencoder, check_choice

LIKELIHOODS = ("bernoulli", "gaussian")


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
        Other arguments as in `BaseAutoencoder`.
    """

    metric_names = ("loss", "reconstruction_loss", "kl_loss")

    def __init__(
        self, encoder, decoder, likelihood="bernoulli", beta=1.0, kl_warmup_steps=0, observation_scale=1.0, **kwargs
    ):
        self.likelihood = check_choice("likelihood", likelihood, LIKELIHOODS)
        if len(encoder.outputs) != 2:
            raise ValueError(
                f"A VAE encoder must return [z_mean, z_log_var]; this one has {len(encoder.outputs)} output(s). "
                "Build one with keras_ae.networks.dense(..., variational=True) or conv(..., variational=True)."
            )
        self.beta = float(beta)
        self.kl_warmup_steps = int(kl_warmup_steps)
        self.observation_scale = float(observation_scale)
        super().__init__(encoder, decoder, **kwargs)

    def create_state(self):
        self.training_steps = self.add_weight(
            shape=(), initializer="zeros", dtype="int64", trainable=False, name="training_steps",
            aggregation="only_first_replica",
        )

    @property
    def latent_dim(self):
        return self.decoder.inputs[0].shape[-1]

    def current_beta(self):
        """Beta after warm-up: `beta * min(1, steps / kl_warmup_steps)`."""
        if self.kl_warmup_steps <= 0:
            return ops.convert_to_tensor(self.beta, "float32")
        progress = ops.cast(self.training_steps + 1, "float32") / self.kl_warmup_steps
        return self.beta * ops.minimum(progress, 1.0)

    def encode(self, x, training=False):
        """Posterior parameters `(z_mean, z_log_var)`, the log-variance clamped against overflow."""
        z_mean, z_log_var = self.encoder(self.check_input(x), training=training)
        return z_mean, ops.cast(losses.clamp_log_variance(z_log_var), z_mean.dtype)

    def reparameterize(self, z_mean, z_log_var, seed=None):
        """Draw z = mean + sigma * epsilon with the model's seeded generator."""
        seed = self.seed_generator if seed is None else seed
        z_mean = ops.cast(z_mean, "float32")
        epsilon = keras.random.normal(ops.shape(z_mean), dtype="float32", seed=seed)
        return z_mean + ops.exp(0.5 * losses.clamp_log_variance(z_log_var)) * epsilon

    def likelihood_mean(self, decoder_output):
        """Mean of p(x | z): pixel probabilities for Bernoulli, the output itself for Gaussian."""
        if self.likelihood == "bernoulli":
            return ops.sigmoid(decoder_output)
        return decoder_output

    def negative_log_likelihood(self, x, decoder_output):
        if self.likelihood == "bernoulli":
            return losses.bernoulli_negative_log_likelihood(x, decoder_output)
        return losses.gaussian_negative_log_likelihood(x, decoder_output, self.observation_scale)

    def decode(self, z, training=False):
        return self.likelihood_mean(self.decoder(self.check_code(z), training=training))

    def call(self, x, training=False):
        z_mean, _ = self.encode(x, training=training)
        return self.likelihood_mean(self.decoder(z_mean, training=training))

    def embed(self, x):
        """The posterior mean, the VAE's deterministic code."""
        return self.encode(x)[0]

    def negative_elbo(self, x, seed=0):
        """Per-example negative ELBO in nats, one reparameterised draw with a fixed `seed` (repeatable)."""
        z_mean, z_log_var = self.encoder(self.check_input(x))
        z = self.reparameterize(z_mean, z_log_var, seed=seed)
        return self.negative_log_likelihood(x, self.decoder(z)) + losses.gaussian_kl_divergence(z_mean, z_log_var)

    def anomaly_score(self, x):
        """Per-example negative ELBO."""
        return self.negative_elbo(x)

    def sample(self, n, seed=None):
        """Decode `n` draws from the prior; returns likelihood means."""
        z = keras.random.normal((n, self.latent_dim), seed=self.seed_generator if seed is None else seed)
        return self.decode(z)

    def loss_terms(self, x, training):
        z_mean, z_log_var = self.encoder(x, training=training)
        z = self.reparameterize(z_mean, z_log_var)
        reconstruction = self.negative_log_likelihood(x, self.decoder(z, training=training))
        kl = losses.gaussian_kl_divergence(z_mean, z_log_var)
        beta = self.current_beta() if training else self.beta
        return {"loss": reconstruction + beta * kl, "reconstruction_loss": reconstruction, "kl_loss": kl}

    def on_train_batch(self):
        self.training_steps.assign_add(1)

    def get_config(self):
        return {
            **super().get_config(),
            "likelihood": self.likelihood,
            "beta": self.beta,
            "kl_warmup_steps": self.kl_warmup_steps,
            "observation_scale": self.observation_scale,
        }


VariationalAutoencoder = VAE
