"""Peers re-implemented for the benchmark, not keras_ae code: what recommendation autoencoders are compared against.

Ranking (implicit feedback): popularity and EASE (Steck 2019, "Embarrassingly Shallow Autoencoders for Sparse Data"),
over scipy.sparse CSR (users, items) matrices. Rating prediction: the global mean and biased matrix factorization
(Koren, Bell & Volinsky 2009, "Matrix Factorization Techniques for Recommender Systems"), over (row, column, value) triples.
"""

from typing import NamedTuple

import numpy as np

from keras_ae.evaluate import ndcg_at_k

EASE_L2_GRID = (50, 100, 200, 500, 1000, 2000, 5000)


def popularity_scores(train, fold_in):
    """Every fold-in user scores each item by its popularity: the number of training users who have it."""
    if train.shape[1] != fold_in.shape[1]:
        raise ValueError(f"train and fold_in must have the same items; got {train.shape[1]} and {fold_in.shape[1]} columns.")
    popularity = np.asarray((train > 0).sum(axis=0), dtype="float64").ravel()
    return np.tile(popularity, (fold_in.shape[0], 1))


def fit_ease(train, l2):
    """EASE's item-item weights B, in closed form (Steck 2019): P = (X^T X + l2 I)^-1, B = -P / diag(P), diag(B) = 0."""
    gram = np.asarray((train.T @ train).todense(), dtype="float64")
    gram[np.diag_indices_from(gram)] += l2
    precision = np.linalg.inv(gram)
    weights = precision / -np.diag(precision)
    weights[np.diag_indices_from(weights)] = 0.0
    return weights


def ease_scores(weights, fold_in):
    """EASE's scores of the fold-in users' items: fold_in @ B (Steck 2019)."""
    return np.asarray(fold_in @ weights)


def choose_ease_l2(train, fold_in, held_out, grid=EASE_L2_GRID):
    """The l2 of `grid` whose EASE has the best mean NDCG@100 on the validation users, and {l2: NDCG@100} for all of them."""
    ndcg = {}
    for l2 in grid:
        ndcg[l2] = float(ndcg_at_k(ease_scores(fit_ease(train, l2), fold_in), held_out, 100, exclude=fold_in).mean())
    return max(ndcg, key=ndcg.get), ndcg


def global_mean(train_ratings):
    """The mean training rating: the rating predicted for every pair by the simplest peer."""
    return float(np.mean(train_ratings))


class BiasedMF(NamedTuple):
    """A fitted biased matrix factorization: rating = global mean + user bias + item bias + user factors . item factors."""

    global_mean: float
    user_bias: np.ndarray
    item_bias: np.ndarray
    user_factors: np.ndarray
    item_factors: np.ndarray


def fit_biased_mf(
    rows, cols, values, n_users, n_items, factors=32, l2=0.05, epochs=40, learning_rate=0.01, seed=0, batch_size=1000,
):
    """Biased matrix factorization (Koren et al. 2009) fitted by SGD on the observed ratings, reshuffled each epoch (seeded).

    Each mini-batch of `batch_size` ratings applies the sum of their per-rating SGD updates (Funk's, with L2 weight `l2`),
    all computed from the parameters at the start of the batch; a batch of 1 is plain per-rating SGD.
    """
    rows, cols, values = np.asarray(rows), np.asarray(cols), np.asarray(values, dtype="float64")
    if not len(rows) == len(cols) == len(values) > 0:
        raise ValueError(f"rows, cols and values must have one non-empty length; got {len(rows)}, {len(cols)}, {len(values)}.")
    if rows.min() < 0 or rows.max() >= n_users or cols.min() < 0 or cols.max() >= n_items:
        raise ValueError(f"rows must lie in [0, {n_users}) and cols in [0, {n_items}); got rows in "
                         f"[{rows.min()}, {rows.max()}] and cols in [{cols.min()}, {cols.max()}].")
    random = np.random.default_rng(seed)
    mean = global_mean(values)
    user_bias, item_bias = np.zeros(n_users), np.zeros(n_items)
    user_factors = random.normal(0.0, 0.1, (n_users, factors))
    item_factors = random.normal(0.0, 0.1, (n_items, factors))
    for _ in range(epochs):
        order = random.permutation(len(values))
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            users, items = rows[batch], cols[batch]
            user_rows, item_rows = user_factors[users], item_factors[items]
            predicted = mean + user_bias[users] + item_bias[items] + np.einsum("ij,ij->i", user_rows, item_rows)
            error = values[batch] - predicted
            user_bias += learning_rate * np.bincount(users, error - l2 * user_bias[users], minlength=n_users)
            item_bias += learning_rate * np.bincount(items, error - l2 * item_bias[items], minlength=n_items)
            np.add.at(user_factors, users, learning_rate * (error[:, None] * item_rows - l2 * user_rows))
            np.add.at(item_factors, items, learning_rate * (error[:, None] * user_rows - l2 * item_rows))
    return BiasedMF(mean, user_bias, item_bias, user_factors, item_factors)


def predict_biased_mf(model, rows, cols):
    """The ratings a fitted `BiasedMF` predicts for the (row, column) pairs."""
    rows, cols = np.asarray(rows), np.asarray(cols)
    return (model.global_mean + model.user_bias[rows] + model.item_bias[cols]
            + np.einsum("ij,ij->i", model.user_factors[rows], model.item_factors[cols]))
