"""Mult-DAE and Mult-VAE (Liang et al. 2018): autoencoders of users' item histories with a multinomial likelihood.

    encoder, decoder = keras_ae.networks.dense((n_items,), 200, hidden_units=(600,), activation="tanh", variational=True)
    model = keras_ae.MultVAE(encoder, decoder, total_anneal_steps=2000)
    model.fit(keras_ae.ratings.batches(split.train, 100, shuffle=True), epochs=50)
    item_ids, scores = model.recommend([[1, 260, 1196]], k=10)      # the dataset's own item ids

The input is a user's row of the user-item matrix; it is L2-normalised and, in training, dropped out
(rate `input_dropout`, 0.5 in the paper); the decoder's logits score every item, and the loss is the
multinomial negative log-likelihood of the history under their softmax.
"""

import warnings

import keras
import numpy as np
from keras import ops

from keras_ae import losses, metrics
from keras_ae.errors import InputError
from keras_ae.models.base import BaseAutoencoder, check_networks, per_batch, ramp, reparameterize
from keras_ae.models.task import RecommenderTask, history_rows, items_to_recommend, metric_text, top_unseen

RANKING_METRICS = (("recall@20", metrics.recall_at_k, 20), ("recall@50", metrics.recall_at_k, 50), ("ndcg@100", metrics.ndcg_at_k, 100))


def multinomial_negative_log_likelihood(x, logits):
    """-sum_i x_i log softmax(logits)_i per user, in nats."""
    logits = ops.cast(logits, "float32")
    return -ops.sum(ops.log_softmax(logits, axis=-1) * ops.cast(x, "float32"), axis=-1)


@keras.saving.register_keras_serializable(package="keras_ae")
class MultDAE(BaseAutoencoder):
    """Denoising autoencoder of item histories (Mult-DAE): dropout on the normalised input, multinomial likelihood.

    Args:
        encoder, decoder: see `BaseAutoencoder`; the decoder returns one logit per item.
        input_dropout: fraction of the history dropped in training.
        **kwargs: as in `BaseAutoencoder`.

    `item_ids` (a weight, saved with the model) maps columns to the dataset's own item ids; set it with `set_item_ids`.

    Raises:
        InputError: an `input_dropout` outside [0, 1); or `encoder` or `decoder` is not a built `keras.Model`.
    """

    metric_names = ("loss", "reconstruction_loss")
    uses_y = True

    def __init__(self, encoder, decoder, input_dropout=0.5, **kwargs):
        if not 0.0 <= input_dropout < 1.0:
            raise InputError(f"input_dropout must lie in [0, 1); got {input_dropout!r}.")
        self.input_dropout = float(input_dropout)
        super().__init__(encoder, decoder, **kwargs)

    def create_state(self):
        self.item_ids = self.add_id_table("item_ids")
        self.item_popularity = self.add_weight(shape=self.input_shape_per_example, initializer="zeros", trainable=False,
                                               name="item_popularity")

    def set_item_ids(self, item_ids):
        """The dataset's item id of each input column (e.g. `RatingsSplit.item_ids`).

        Raises:
            InputError: `item_ids` are not one per input column.
        """
        self.assign_ids(self.item_ids, item_ids, "item")

    def adapt_to(self, split):
        """Take a `RatingsSplit`'s item ids and its training users' counts per item (what an empty history is shown).

        Raises:
            InputError: the split's item ids are not one per input column.
        """
        self.set_item_ids(split.item_ids)
        self.item_popularity.assign(np.asarray(split.train.sum(axis=0), "float32").ravel())

    def normalized(self, x):
        x = ops.cast(x, "float32")
        return x / ops.maximum(ops.sqrt(ops.sum(ops.square(x), axis=-1, keepdims=True)), 1e-12)

    def encode(self, x, training=False):
        return self.encoder(self.normalized(self.check_input(x)), training=training)

    def training_history(self, x, training):
        """The normalised history the encoder sees: in training, with `input_dropout` of it dropped."""
        history = self.normalized(x)
        if training and self.input_dropout:
            history = keras.random.dropout(history, self.input_dropout, seed=self.seed_generator)
        return history

    def loss_terms(self, x, training, y=None):
        """The multinomial NLL of the history, or of `y` (held-out items) given the history."""
        logits = self.decoder(self.encoder(self.training_history(x, training), training=training), training=training)
        nll = multinomial_negative_log_likelihood(x if y is None else y, logits)
        return {"loss": nll, "reconstruction_loss": nll}

    def anomaly_score(self, x):
        """Per-user multinomial negative log-likelihood of the history: how unusual the user's taste is.

        Raises:
            InputError: `x` is not a floating-point batch of the input shape, or holds NaN or Inf (see `check_input`).
        """
        return multinomial_negative_log_likelihood(x, self(self.check_input(x)))

    def recommend(self, histories, k=10, exclude_seen=True):
        """The `k` best items for each history (see `keras_ae.models.task.history_rows`), best first: (item ids in the dataset's
        own ids, scores), both (users, k).

        Histories are implicit: an item is in one or not (a rating other than 1, or a non-finite one, is refused). An
        empty history has nothing to go on: it gets the items most popular with the training users (their counts as
        scores), with a warning naming its rows. Where a history leaves fewer than `k` items unseen, fewer are returned,
        with a `FewerItemsWarning` (see `keras_ae.models.task.items_to_recommend`).

        Raises:
            InputError: history rows of another width, unknown item ids, a rating other than 1 (or not finite), or `k`
                not between 1 and the number of items.
        """
        rows = history_rows(histories, self.item_ids.numpy(), rating_range=(1.0, 1.0))
        k = items_to_recommend(rows, k, exclude_seen)
        scores = np.array(per_batch(lambda batch: self(batch), rows))
        empty = np.flatnonzero(~rows.any(axis=1))
        if empty.size:
            warnings.warn(f"Histories {empty[:10].tolist()} are empty: recommending the most popular items instead.", stacklevel=2)
            scores[empty] = self.item_popularity.numpy()
        best, best_scores = top_unseen(scores, rows, k, exclude_seen)
        return self.item_ids.numpy()[best], best_scores

    def get_config(self):
        return {**super().get_config(), "input_dropout": self.input_dropout}


@keras.saving.register_keras_serializable(package="keras_ae")
class MultVAE(MultDAE):
    """Variational autoencoder of item histories (Mult-VAE): Gaussian code, KL weight annealed from 0 to `beta_cap`.

    Args:
        encoder, decoder: a variational pair (the encoder returns `[z_mean, z_log_var]`).
        beta_cap: the largest KL weight (0.2 in the paper).
        total_anneal_steps: training steps over which the KL weight rises linearly to 1 (capped at `beta_cap`);
            the step counter is a model variable, saved with it.
        **kwargs: as in `MultDAE`.

    Raises:
        InputError: an encoder that does not return [z_mean, z_log_var], an `input_dropout` outside [0, 1), or a decoder
            that is not a built `keras.Model`.
    """

    metric_names = ("loss", "reconstruction_loss", "kl_loss")
    counts_steps = True

    def __init__(self, encoder, decoder, beta_cap=0.2, total_anneal_steps=20000, **kwargs):
        check_networks(encoder, decoder)
        if len(encoder.outputs) != 2:
            raise InputError("A MultVAE encoder must return [z_mean, z_log_var]; build it with keras_ae.networks.dense(..., variational=True).")
        self.beta_cap = float(beta_cap)
        self.total_anneal_steps = int(total_anneal_steps)
        super().__init__(encoder, decoder, **kwargs)

    def current_beta(self):
        """The annealed KL weight: `min(beta_cap, steps / total_anneal_steps)` (Liang et al.'s schedule)."""
        return ops.minimum(ramp(self.training_steps, self.total_anneal_steps), self.beta_cap)

    def encode(self, x, training=False):
        z_mean, z_log_var = self.encoder(self.normalized(self.check_input(x)), training=training)
        return z_mean, ops.cast(losses.clamp_log_variance(z_log_var), z_mean.dtype)

    def embed(self, x):
        return self.encode(x)[0]

    def call(self, x, training=False):
        return self.decoder(self.embed(x), training=training)

    def loss_terms(self, x, training, y=None):
        z_mean, z_log_var = self.encoder(self.training_history(x, training), training=training)
        z = reparameterize(z_mean, z_log_var, self.seed_generator) if training else z_mean
        nll = multinomial_negative_log_likelihood(x if y is None else y, self.decoder(z, training=training))
        kl = losses.gaussian_kl_divergence(z_mean, z_log_var)
        beta = self.current_beta() if training else self.beta_cap
        return {"loss": nll + beta * kl, "reconstruction_loss": nll, "kl_loss": kl}

    def get_config(self):
        return {**super().get_config(), "beta_cap": self.beta_cap, "total_anneal_steps": self.total_anneal_steps}


class MultDAETask(RecommenderTask):
    """Mult-DAE's and Mult-VAE's task: ranked held-out items (Liang et al.'s Recall@20, Recall@50, NDCG@100)."""

    family = MultDAE

    def measure(self, examples, inputs, targets=None):
        """Mean multinomial NLL of the test histories (nats per user); with held-out `targets`, Liang et al.'s
        Recall@20, Recall@50 and NDCG@100 of ranking them (history items excluded)."""
        model = self.model
        scores = np.asarray(per_batch(lambda batch: model(model.check_input(batch)), inputs, batch_size=500))
        measured = {"multinomial_nll_nats": float(np.mean(multinomial_negative_log_likelihood(inputs, scores)))}
        if targets is not None:
            scores = scores.astype("float64")
            measured.update({name: float(metric(scores, targets, k, exclude=inputs).mean()) for name, metric, k in RANKING_METRICS})
        return measured

    @classmethod
    def headline(cls, measured):
        if "ndcg@100" in measured:
            return f"NDCG@100 {measured['ndcg@100']:.3f}, Recall@20 {measured['recall@20']:.3f}"
        if "multinomial_nll_nats" in measured:
            return f"multinomial NLL {measured['multinomial_nll_nats']:.2f} nats"
        return super().headline(measured)

    @classmethod
    def card_columns(cls):
        return {"NDCG@100": lambda measured: metric_text(measured, "ndcg@100", 3)}
