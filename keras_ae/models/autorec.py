"""I-AutoRec (Sedhain et al. 2015, "AutoRec: Autoencoders Meet Collaborative Filtering"): item-based rating prediction.

    explicit = keras_ae.ratings.explicit_split(ratings, split)                  # train: CSR users x items of ratings
    encoder, decoder = keras_ae.networks.dense((explicit.train.shape[0],), 500, activation="sigmoid",
                                               output_activation="linear", kernel_regularizer=keras.regularizers.L2(l2))
    model = keras_ae.AutoRec(encoder, decoder, rating_range=(explicit.train.data.min(), explicit.train.data.max()))
    model.fit(keras_ae.ratings.batches(explicit.train.T.tocsr(), 64, shuffle=True), epochs=30)
    predicted = model.predict_ratings(explicit.train, *explicit.test[:2])   # clipped to rating_range

The input is an item's column of the rating matrix, a vector over users with 0 where unobserved; the network (500
sigmoid hidden units, identity output in the paper) reconstructs it, and the loss is the squared error on the observed
entries only, summed over users per item. L2 weight decay comes from the layers' regularizers (`self.losses`).
"""

import keras
import numpy as np
from keras import ops

from keras_ae.models.base import BaseAutoencoder, metric_text


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
        Other arguments as in `BaseAutoencoder`. `user_ids` (a weight, saved with the model) maps input positions to the
        dataset's own user ids; set it with `set_user_ids`.
    """

    metric_names = ("loss", "reconstruction_loss")
    verbs = ("info", "export")

    def __init__(self, encoder, decoder, rating_range=None, **kwargs):
        if rating_range is not None:
            low, high = (float(value) for value in rating_range)
            if not low <= high:
                raise ValueError(f"rating_range must be (lowest, highest); got {rating_range!r}.")
            rating_range = (low, high)
        self.rating_range = rating_range
        super().__init__(encoder, decoder, **kwargs)

    def create_state(self):
        self.user_ids = self.add_id_table("user_ids")

    def set_user_ids(self, user_ids):
        """The dataset's user id of each input position (e.g. `ExplicitSplit.user_ids`)."""
        self.assign_ids(self.user_ids, user_ids, "user")

    def loss_terms(self, x, training):
        error = masked_squared_error(x, self.decoder(self.encoder(x, training=training), training=training))
        return {"loss": error, "reconstruction_loss": error}

    def anomaly_score(self, x):
        """Per item: the squared error of its reconstruction on its observed ratings, summed over users."""
        return masked_squared_error(x, self(self.check_input(x)))

    def predict_ratings(self, train_matrix, user_index, item_index, batch_size=256):
        """Predicted ratings at the (user, item) pairs, clipped to `rating_range`.

        Args:
            train_matrix: the (users x items) ratings the model reconstructs from (e.g. `ExplicitSplit.train`); each
                item's column is fed to the model.
            user_index, item_index: equal-length arrays indexing the rows and columns of `train_matrix`.
        """
        users, items = np.asarray(user_index, dtype="int64"), np.asarray(item_index, dtype="int64")
        n_users = self.input_shape_per_example[0]
        if train_matrix.shape[0] != n_users:
            raise ValueError(f"{type(self).__name__} has {n_users} users; train_matrix has {train_matrix.shape[0]} rows.")
        if users.shape != items.shape or users.ndim != 1:
            raise ValueError(f"user_index and item_index must be 1-D of one length; got {users.shape} and {items.shape}.")
        if users.size and (users.min() < 0 or users.max() >= n_users or items.min() < 0 or items.max() >= train_matrix.shape[1]):
            raise ValueError(f"user_index must lie in [0, {n_users}) and item_index in [0, {train_matrix.shape[1]}).")
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

    def measure(self, images, inputs):
        """RMSE of the reconstruction on the observed (non-zero) entries of `inputs` (item rows over users)."""
        errors, counts = 0.0, 0
        for rows in _dense_rows(inputs, 500):
            errors += float(np.sum(np.asarray(masked_squared_error(rows, self(rows)))))
            counts += int(np.count_nonzero(rows))
        return {"observed_rmse": float(np.sqrt(errors / max(counts, 1)))}

    @classmethod
    def headline(cls, metrics):
        if "observed_rmse" in metrics:
            return f"RMSE {metrics['observed_rmse']:.4f} on observed ratings"
        return super().headline(metrics)

    @classmethod
    def card_columns(cls):
        return {"RMSE (observed)": lambda metrics: metric_text(metrics, "observed_rmse", 4)}

    def draw(self, images, labels, folder, name):
        """No pictures: an item's ratings are not an image."""
        return {}

    def get_config(self):
        return {**super().get_config(), "rating_range": None if self.rating_range is None else list(self.rating_range)}
