"""RecVAE (Shenbin et al. 2020): Mult-VAE with a composite prior, a KL weight that grows with the user's history, and
alternating encoder and decoder updates.

    encoder, decoder = keras_ae.networks.summed_dense((n_items,), 200, variational=True, output_activation="linear")
    model = keras_ae.RecVAE(encoder, decoder, gamma=0.005)
    model.fit(keras_ae.ratings.batches(split.train, 100, shuffle=True), epochs=50)
    item_ids, scores = model.recommend([[1, 260, 1196]], k=10)      # the dataset's own item ids

The prior of a user's code mixes, dimension by dimension, a standard normal, the posterior that a frozen copy of the
encoder (the "old encoder", refreshed at the end of every epoch) gives the same history, and a wide normal. The KL
term is weighted by `gamma` times the number of items in the history. Each training batch makes `encoder_updates`
updates of the encoder on the history with input dropout, then one of the decoder on the whole history.
"""

import keras
import tensorflow as tf
from keras import ops

from keras_ae import losses
from keras_ae.errors import InputError
from keras_ae.models.base import reparameterize, scale_for_replicas, weighted_batch_mean
from keras_ae.models.multinomial import MultDAETask, MultVAE, multinomial_negative_log_likelihood

PRIOR_WEIGHTS = (3 / 20, 3 / 4, 1 / 10)  # standard normal, old posterior, wide normal: the reference code's mixture
WIDE_LOG_VARIANCE = 10.0  # log-variance of the prior's wide component


class RefreshPrior(keras.callbacks.Callback):
    """Copy the encoder into the old encoder of RecVAE's prior at the end of every epoch."""

    def on_epoch_end(self, epoch, logs=None):
        self.model.refresh_prior()


@keras.saving.register_keras_serializable(package="keras_ae")
class RecVAE(MultVAE):
    """Variational autoencoder of item histories with RecVAE's composite prior and alternating updates.

    Args:
        encoder, decoder: a variational pair, e.g. from `keras_ae.networks.summed_dense(..., variational=True)`.
        gamma: the KL weight per item of the user's history (0.005 in the paper).
        encoder_updates: encoder updates per batch, before the batch's one decoder update (the paper alternates 3
            epochs of the encoder with 1 of the decoder).
        **kwargs: as in `MultDAE` (`input_dropout`, applied on the encoder's updates only; `seed`).

    Raises:
        InputError: `beta_cap` or `total_anneal_steps` given, `gamma` below 0, `encoder_updates` not an integer >= 1; or
            as in `MultVAE`.
    """

    def __init__(self, encoder, decoder, gamma=0.005, encoder_updates=3, **kwargs):
        unused = sorted({"beta_cap", "total_anneal_steps"} & set(kwargs))
        if unused:
            raise InputError(f"RecVAE weighs its KL term by gamma times the history's size; it takes no {unused[0]}.")
        if not gamma >= 0:
            raise InputError(f"gamma must be a number >= 0; got {gamma!r}.")
        if isinstance(encoder_updates, bool) or not isinstance(encoder_updates, int) or encoder_updates < 1:
            raise InputError(f"encoder_updates must be an integer >= 1; got {encoder_updates!r}.")
        self.gamma = float(gamma)
        self.encoder_updates = encoder_updates
        super().__init__(encoder, decoder, **kwargs)

    def create_state(self):
        super().create_state()
        self.old_encoder = keras.models.clone_model(self.encoder)
        self.old_encoder.trainable = False
        self.refresh_prior()

    def refresh_prior(self):
        """Make the prior's old encoder a copy of the encoder as it is now."""
        for old, new in zip(self.old_encoder.weights, self.encoder.weights):
            old.assign(new)

    def fit(self, *args, callbacks=None, **kwargs):
        return super().fit(*args, callbacks=[*(callbacks or []), RefreshPrior()], **kwargs)

    def objective(self, x, y, training, denoise):
        """Per-user terms: the multinomial NLL of the history (or of held-out `y`), the one-draw KL estimate against the
        composite prior, and their sum with the KL weighted by `gamma` times the history's size. `denoise` drops out
        part of the history the encoder sees (the encoder's updates); `training` draws the code (else its mean)."""
        z_mean, z_log_var = self.encoder(self.training_history(x, denoise), training=training)
        z_log_var = losses.clamp_log_variance(z_log_var)
        z = reparameterize(z_mean, z_log_var, self.seed_generator) if training else ops.cast(z_mean, "float32")
        nll = multinomial_negative_log_likelihood(x if y is None else y, self.decoder(z, training=training))
        old_mean, old_log_var = self.old_encoder(self.normalized(x), training=False)
        prior = [(0.0, 0.0), (old_mean, old_log_var), (0.0, WIDE_LOG_VARIANCE)]
        kl = (losses.gaussian_log_density(z, z_mean, z_log_var)
              - losses.gaussian_mixture_log_density(z, prior, PRIOR_WEIGHTS))
        weight = self.gamma * ops.sum(ops.cast(x, "float32"), axis=-1)
        return {"loss": nll + weight * kl, "reconstruction_loss": nll, "kl_loss": kl}

    def loss_terms(self, x, training, y=None):
        return self.objective(x, y, training=training, denoise=training)

    def update(self, x, y, sample_weight, variables, denoise):
        """One optimizer step on `variables` (the encoder's or the decoder's) of the batch's mean loss; its terms."""
        with tf.GradientTape() as tape:
            terms = self.objective(x, y, training=True, denoise=denoise)
            terms = {name: weighted_batch_mean(value, sample_weight) for name, value in terms.items()}
            loss = self.optimizer.scale_loss(scale_for_replicas(terms["loss"]))
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return terms

    def train_step(self, data):
        """`encoder_updates` encoder steps on the history with input dropout, then one decoder step on the whole
        history (each fitting the batch's held-out items where it has them, as `MultDAE`); the trackers take the decoder
        step's terms."""
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        x = self.check_input(x)
        if not self.optimizer.built:  # on all weights at once: each update then steps a part of them
            self.optimizer.build(self.trainable_weights)
        for _ in range(self.encoder_updates):
            self.update(x, y, sample_weight, self.encoder.trainable_weights, denoise=True)
        terms = self.update(x, y, sample_weight, self.decoder.trainable_weights, denoise=False)
        self.training_steps.assign_add(1)
        return self.update_trackers(terms, ops.shape(x)[0])

    def get_config(self):
        config = {key: value for key, value in super().get_config().items() if key not in ("beta_cap", "total_anneal_steps")}
        return {**config, "gamma": self.gamma, "encoder_updates": self.encoder_updates}


class RecVAETask(MultDAETask):
    """RecVAE's task: Mult-VAE's (ranked held-out items: Recall@20, Recall@50, NDCG@100)."""

    family = RecVAE
