"""I-AutoRec (Sedhain et al. 2015, "AutoRec: Autoencoders Meet Collaborative Filtering"): item-based rating prediction.

    explicit = keras_ae.ratings.explicit_split(ratings, split)                  # train: CSR users x items of ratings
    encoder, decoder = keras_ae.networks.dense((explicit.train.shape[0],), 500, activation="sigmoid",
                                               output_activation="linear", kernel_regularizer=keras.regularizers.L2(l2))
    model = keras_ae.AutoRec(encoder, decoder, rating_range=(explicit.train.data.min(), explicit.train.data.max()))
    model.fit(keras_ae.ratings.batches(explicit.train.T.tocsr(), 64, shuffle=True), epochs=30)
    predicted = model.predict_ratings(explicit.train, *explicit.test[:2])   # clipped to rating_range
    model.adapt_to(explicit)                                                 # ids and item codes, for recommend
    item_ids, scores = model.recommend([{1: 5.0, 260: 4.5}], k=10)          # a new user: {item id: rating}

The input is an item's column of the rating matrix, a vector over users with 0 where unobserved; the network (500
sigmoid hidden units, identity output in the paper) reconstructs it, and the loss is the squared error on the observed
entries only, summed over users per item. L2 weight decay comes from the layers' regularizers (`self.losses`).
Two regularizers beyond the paper, both off by default, help on small data (README's benchmark):
masking noise on the input (`input_dropout`) and dropout on the code (`code_dropout`).

A new user is not one of the input positions, so `recommend` folds them in: the items' codes h(r_j) stay fixed and the
user's own output row (the decoder's weights for one more user) is fitted to their ratings by ridge regression; the
scores are that row's predictions for every item.
"""

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from keras_ae import metrics
from keras_ae.errors import InputError
from keras_ae.models.base import BaseAutoencoder, per_batch
from keras_ae.models.task import RecommenderTask, history_rows, items_to_recommend, metric_text, top_unseen


def masked_squared_error(x, reconstruction):
    """Per item: the squared error summed over the observed (non-zero) entries of `x` only."""
    x = ops.cast(x, "float32")
    observed = ops.cast(ops.not_equal(x, 0.0), "float32")
    return ops.sum(observed * ops.square(x - ops.cast(reconstruction, "float32")), axis=-1)


def _dense_rows(matrix, batch_size):
    """Dense float32 batches of the rows of a (sparse) matrix or array."""
    for start in range(0, matrix.shape[0], batch_size):
        rows = matrix[start:start + batch_size]
        yield np.asarray(rows.toarray() if hasattr(rows, "toarray") else rows, dtype="float32")


@keras.saving.register_keras_serializable(package="keras_ae")
class AutoRec(BaseAutoencoder):
    """Item-based AutoRec: reconstructs each item's ratings over users; loss on observed ratings only.

    Args:
        encoder, decoder: see `BaseAutoencoder`; the input is one item's ratings by every user, shape (n_users,).
        rating_range: (lowest, highest) rating seen in training; `predict_ratings` clips to it (None: the range of the
            matrix it is given).
        items: the catalogue's size: `adapt_to` keeps each item's id and code (0: no `recommend`).
        fold_in_l2: the ridge penalty of fitting a new user's output row in `recommend`.
        input_dropout: in training, the share of an item's observed ratings hidden from its input but kept in its loss
            (masking noise, as in Strub & Mary 2016), so the network learns to predict ratings it does not see.
        code_dropout: dropout on the code in training (as in Kuchaiev & Ginsburg 2017).
        **kwargs: as in `BaseAutoencoder`.

    `user_ids` (a weight, saved with the model) maps input positions to the dataset's own user ids; set it with `set_user_ids`.

    Raises:
        InputError: a `rating_range` whose lowest is above its highest, an `input_dropout` or `code_dropout` outside
            [0, 1); or `encoder` or `decoder` is not a built `keras.Model`.
    """

    metric_names = ("loss", "reconstruction_loss")
    uses_y = True

    def __init__(self, encoder, decoder, rating_range=None, items=0, fold_in_l2=1.0, input_dropout=0.0, code_dropout=0.0, **kwargs):
        if rating_range is not None:
            low, high = (float(value) for value in rating_range)
            if not low <= high:
                raise InputError(f"rating_range must be (lowest, highest); got {rating_range!r}.")
            rating_range = (low, high)
        self.rating_range = rating_range
        self.items = int(items)
        self.fold_in_l2 = float(fold_in_l2)
        for name, rate in (("input_dropout", input_dropout), ("code_dropout", code_dropout)):
            if not 0.0 <= float(rate) < 1.0:
                raise InputError(f"{name} must lie in [0, 1); got {rate!r}.")
        self.input_dropout, self.code_dropout = float(input_dropout), float(code_dropout)
        super().__init__(encoder, decoder, **kwargs)

    def create_state(self):
        self.user_ids = self.add_id_table("user_ids")
        self.item_ids = self.add_weight(shape=(self.items,), dtype="int64", initializer="zeros", trainable=False, name="item_ids")
        self.item_codes = self.add_weight(shape=(self.items, *self.code_shape), initializer="zeros", trainable=False, name="item_codes")

    def adapt_to(self, explicit):
        """Take an `ExplicitSplit`'s user and item ids, and every item's code from its training ratings (for `recommend`).

        Raises:
            InputError: the split's users are not the model's input positions, or its items not `items`.
        """
        self.set_user_ids(explicit.user_ids)
        if len(explicit.item_ids) != self.items:
            raise InputError(f"{type(self).__name__} was built for {self.items} items; the split has {len(explicit.item_ids)}.")
        self.item_ids.assign(np.asarray(explicit.item_ids, "int64"))
        self.item_codes.assign(np.concatenate([np.asarray(self.embed(rows)) for rows in _dense_rows(explicit.train.T.tocsr(), 500)]))

    def set_user_ids(self, user_ids):
        """The dataset's user id of each input position (e.g. `ExplicitSplit.user_ids`).

        Raises:
            InputError: `user_ids` are not one per input position.
        """
        self.assign_ids(self.user_ids, user_ids, "user")

    def loss_terms(self, x, training, y=None):
        """Squared error on the item's observed ratings, or on `y` (its held-out ratings) given the observed ones."""
        seen = x
        if training and self.input_dropout and y is None:  # masking noise: hidden from the input, still in the loss
            keep = keras.random.uniform(ops.shape(x), seed=self.seed_generator) >= self.input_dropout
            seen = ops.where(keep, x, ops.zeros_like(x))
        code = self.encoder(seen, training=training)
        if training and self.code_dropout:
            code = keras.random.dropout(code, self.code_dropout, seed=self.seed_generator)
        error = masked_squared_error(x if y is None else y, self.decoder(code, training=training))
        return {"loss": error, "reconstruction_loss": error}

    def fold_in_scores(self, rows):
        """Each new user's predicted rating of every item, from their ratings `rows` (users, items; 0 unrated): ridge
        regression of the user's output weights on the rated items' codes, `fold_in_l2` the penalty."""
        codes = tf.reshape(tf.cast(self.item_codes, tf.float32), (self.items, -1))
        rows = tf.cast(rows, tf.float32)
        rated = tf.cast(rows != 0, tf.float32)
        design = rated[:, :, None] * codes[None]                                             # (users, items, code)
        gram = tf.einsum("uic,uid->ucd", design, design) + self.fold_in_l2 * tf.eye(tf.shape(codes)[1])
        weights = tf.linalg.solve(gram, tf.einsum("uic,ui->uc", design, rows)[..., None])[..., 0]
        return tf.einsum("ic,uc->ui", codes, weights)

    def recommend(self, histories, k=10, exclude_seen=True):
        """The `k` items with the highest fold-in predicted ratings for each history, best first: (item ids, scores).

        Histories as `keras_ae.models.task.history_rows` reads them: dicts {item id: rating}, lists of item ids (each rated
        the top of `rating_range`), or rows over this model's items. A rating outside `rating_range`, or not finite, is
        refused. Where a history leaves fewer than `k` items unseen, fewer are returned, with a `FewerItemsWarning`.

        Raises:
            InputError: the model keeps no item codes (`items=0`); history rows of another width, unknown item ids, a
                rating outside `rating_range` (or not finite), an empty history, or `k` not between 1 and the number of
                items.
        """
        if not self.items:
            raise InputError(f"This {type(self).__name__} keeps no item codes (items=0); build it with items= and call adapt_to.")
        rows = history_rows(histories, self.item_ids.numpy(), default_rating=self.rating_range[1] if self.rating_range else 1.0,
                            rating_range=self.rating_range)
        if not rows.any(axis=1).all():
            raise InputError(f"Histories {np.flatnonzero(~rows.any(axis=1))[:10].tolist()} are empty: AutoRec needs at least one rating.")
        k = items_to_recommend(rows, k, exclude_seen)
        scores = np.asarray(per_batch(self.fold_in_scores, rows, batch_size=64))
        best, best_scores = top_unseen(scores, rows, k, exclude_seen)
        return self.item_ids.numpy()[best], best_scores

    def anomaly_score(self, x):
        """Per item: the squared error of its reconstruction on its observed ratings, summed over users.

        Raises:
            InputError: `x` is not a floating-point batch of the input shape, or holds NaN or Inf (see `check_input`).
        """
        return masked_squared_error(x, self(self.check_input(x)))

    def predict_ratings(self, train_matrix, user_index, item_index, batch_size=256):
        """Predicted ratings at the (user, item) pairs, clipped to `rating_range`.

        Args:
            train_matrix: the (users x items) ratings the model reconstructs from (e.g. `ExplicitSplit.train`); each
                item's column is fed to the model.
            user_index, item_index: equal-length arrays indexing the rows and columns of `train_matrix`.

        Raises:
            InputError: `train_matrix` rows are not the model's users, or `user_index` and `item_index` are not 1-D of
                one length within its rows and columns.
        """
        users, items = np.asarray(user_index, dtype="int64"), np.asarray(item_index, dtype="int64")
        n_users = self.input_shape_per_example[0]
        if train_matrix.shape[0] != n_users:
            raise InputError(f"{type(self).__name__} has {n_users} users; train_matrix has {train_matrix.shape[0]} rows.")
        if users.shape != items.shape or users.ndim != 1:
            raise InputError(f"user_index and item_index must be 1-D of one length; got {users.shape} and {items.shape}.")
        if users.size and (users.min() < 0 or users.max() >= n_users or items.min() < 0 or items.max() >= train_matrix.shape[1]):
            raise InputError(f"user_index must lie in [0, {n_users}) and item_index in [0, {train_matrix.shape[1]}).")
        needed, position = np.unique(items, return_inverse=True)
        item_rows = train_matrix.T.tocsr()[needed] if hasattr(train_matrix, "tocsr") else np.asarray(train_matrix).T[needed]
        order = np.argsort(position, kind="stable")
        bounds = np.searchsorted(position[order], np.arange(0, len(needed) + batch_size, batch_size))
        predicted = np.empty(len(users), dtype="float32")
        for batch, rows in enumerate(_dense_rows(item_rows, batch_size)):
            chosen = order[bounds[batch]:bounds[batch + 1]]
            reconstruction = np.asarray(self(rows))
            predicted[chosen] = reconstruction[position[chosen] - batch * batch_size, users[chosen]]
        if self.rating_range is not None:
            low, high = self.rating_range
        else:
            data = train_matrix.data if hasattr(train_matrix, "data") and not isinstance(train_matrix, np.ndarray) else None
            data = np.asarray(train_matrix)[np.asarray(train_matrix) != 0] if data is None else data
            low, high = float(data.min()), float(data.max())
        return np.clip(predicted, low, high)

    def get_config(self):
        return {**super().get_config(), "rating_range": None if self.rating_range is None else list(self.rating_range),
                "items": self.items, "fold_in_l2": self.fold_in_l2, "input_dropout": self.input_dropout,
                "code_dropout": self.code_dropout}


class AutoRecTask(RecommenderTask):
    """AutoRec's task: predicted ratings (RMSE on held-out ones); `recommend` folds a new user in."""

    family = AutoRec
    history_name = "ratings"

    def scores(self, history):
        return self.model.fold_in_scores(history)

    def catalogue_size(self):
        return self.model.items

    def measure(self, examples, inputs, targets=None):
        """RMSE of the reconstruction on the observed (non-zero) entries of `inputs` (item rows over users); with
        `targets` (held-out ratings of the same items), `rmse` of the predictions there, clipped to `rating_range`."""
        model = self.model
        inputs = np.asarray(inputs.toarray() if hasattr(inputs, "toarray") else inputs, dtype="float32")
        predicted = np.asarray(per_batch(lambda rows: model(rows), inputs, batch_size=500))
        observed = inputs != 0
        measured = {"observed_rmse": float(np.sqrt(np.sum(np.square(inputs - predicted)[observed]) / max(np.count_nonzero(observed), 1)))}
        if targets is not None:
            targets = np.asarray(targets.toarray() if hasattr(targets, "toarray") else targets)
            if model.rating_range is not None:
                predicted = np.clip(predicted, *model.rating_range)
            held = targets != 0
            measured["rmse"] = metrics.rmse(predicted[held], targets[held])
        return measured

    @classmethod
    def headline(cls, measured):
        if "rmse" in measured:
            return f"RMSE {measured['rmse']:.4f} on held-out ratings"
        if "observed_rmse" in measured:
            return f"RMSE {measured['observed_rmse']:.4f} on observed ratings"
        return super().headline(measured)

    @classmethod
    def card_columns(cls):
        return {"RMSE (held out)": lambda measured: metric_text(measured, "rmse", 4)}
