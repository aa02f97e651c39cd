"""Metric formulas as pure functions of arrays: PSNR, AUROC, and Liang et al.'s ranking metrics, RMSE for ratings.

They know no model, card or file; `keras_ae.evaluate` and the families' tasks apply them.
"""

import math
import numbers

import numpy as np

from keras_ae.errors import InputError


def psnr(mse, data_range=1.0):
    """Peak signal-to-noise ratio in dB of a mean squared error (infinite for a perfect reconstruction)."""
    return math.inf if mse == 0 else float(10.0 * math.log10(data_range**2 / mse))


def auroc(scores, is_anomaly):
    """Area under the ROC curve of `scores` for separating anomalies (True) from normal examples.

    The Mann-Whitney form: the chance that a random anomaly scores above a random normal example, ties counting half
    (average ranks).

    Raises:
        InputError: `scores` and `is_anomaly` differ in length, lack anomalies or normal examples, or the scores are not
            finite.
    """
    from scipy.stats import rankdata

    scores, is_anomaly = np.asarray(scores, "float64").ravel(), np.asarray(is_anomaly, bool).ravel()
    if scores.shape != is_anomaly.shape:
        raise InputError(f"scores and is_anomaly must have one length; got {len(scores)} and {len(is_anomaly)}.")
    anomalies, normals = int(is_anomaly.sum()), int((~is_anomaly).sum())
    if not anomalies or not normals:
        raise InputError(f"AUROC needs anomalies and normal examples; got {anomalies} anomalies and {normals} normal.")
    if not np.all(np.isfinite(scores)):
        raise InputError("AUROC got NaN or infinite scores.")
    anomaly_rank_sum = rankdata(scores)[is_anomaly].sum()
    return float((anomaly_rank_sum - anomalies * (anomalies + 1) / 2) / (anomalies * normals))


# Scores are dense (users, items) arrays; held-out and excluded items are scipy.sparse matrices or dense arrays of the
# same shape, where a positive entry marks an item. The ranking metrics follow Liang et al. 2018, "Variational
# Autoencoders for Collaborative Filtering" (their `Recall_at_k_batch` and `NDCG_binary_at_k_batch`).


def top_k(scores, k, exclude=None):
    """The k best-scored items of each user, best first, as (indices, scores), both (users, k); `exclude`d items score -inf.

    Ties are broken arbitrarily.

    Raises:
        InputError: `scores` is not 2-D, `k` is not an integer between 1 and the number of items, or `exclude` has another shape.
    """
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise InputError(f"scores must be a (users, items) array; got shape {scores.shape}.")
    items = scores.shape[1]
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 1 <= k <= items:
        raise InputError(f"k must be an integer between 1 and the number of items ({items}); got k={k}.")
    if exclude is not None:
        scores = np.array(scores, dtype=np.result_type(scores.dtype, np.float32))
        scores[_marked_items(exclude, scores.shape, "exclude").nonzero()] = -np.inf
    rows = np.arange(len(scores))[:, None]
    candidates = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    best = candidates[rows, np.argsort(-scores[rows, candidates], axis=1)]
    return best, scores[rows, best]


def _marked_items(matrix, shape, name):
    """`matrix` (scipy.sparse or dense, of `shape`) as a CSR matrix of booleans, True where an entry is positive."""
    import scipy.sparse

    marked = scipy.sparse.csr_matrix(matrix) > 0
    if marked.shape != shape:
        raise InputError(f"{name} must have the scores' shape {shape}; got {marked.shape}.")
    return marked


def _hits_at_k(scores, held_out, k, exclude=None):
    """For each user with a held-out item: whether each of its top k items is held out (users, k), and its held-out count."""
    best, _ = top_k(scores, k, exclude)
    relevant = _marked_items(held_out, np.shape(scores), "held_out")
    held_out_counts = relevant.getnnz(axis=1)
    hits = relevant[np.arange(len(best))[:, None], best].toarray()
    has_held_out = held_out_counts > 0
    return hits[has_held_out], held_out_counts[has_held_out]


def recall_at_k(scores, held_out, k, exclude=None):
    """Recall@k per user (Liang et al. 2018): held-out items among the top k, over min(k, the user's held-out count).

    Users without a held-out item are left out (their recall is undefined): one value per user who has one; the mean is
    the reported number. Pass the fold-in items as `exclude` to rank only unseen items, as Liang et al. do.

    Raises:
        InputError: as in `top_k`, or `held_out` is not of the scores' shape.
    """
    hits, held_out_counts = _hits_at_k(scores, held_out, k, exclude)
    return hits.sum(axis=1) / np.minimum(k, held_out_counts)


def ndcg_at_k(scores, held_out, k, exclude=None):
    """NDCG@k per user (Liang et al. 2018): DCG of the top k, gain 1/log2(rank + 1), over that of min(k, held-out) hits.

    Users without a held-out item are left out, as in `recall_at_k`; the mean is the reported number.

    Raises:
        InputError: as in `top_k`, or `held_out` is not of the scores' shape.
    """
    hits, held_out_counts = _hits_at_k(scores, held_out, k, exclude)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    return hits @ discounts / np.cumsum(discounts)[np.minimum(k, held_out_counts) - 1]


def rmse(predicted, actual):
    """Root mean squared error of predicted ratings against the actual ones (arrays over the same rated pairs).

    Raises:
        InputError: `predicted` and `actual` are empty or of different shapes.
    """
    predicted, actual = np.asarray(predicted, dtype="float64"), np.asarray(actual, dtype="float64")
    if predicted.shape != actual.shape or predicted.size == 0:
        raise InputError(f"predicted and actual must be non-empty, of one shape; got {predicted.shape} and {actual.shape}.")
    return float(np.sqrt(np.mean((predicted - actual) ** 2)))
