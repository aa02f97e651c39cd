"""Recommendation metrics (recall@k, NDCG@k of Liang et al. 2018, RMSE) and the peers in scripts/recommend_baselines.py."""

import csv
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse

from keras_ae.evaluate import ndcg_at_k, recall_at_k, rmse, top_k

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from recommend_baselines import (  # noqa: E402
    EASE_L2_GRID, choose_ease_l2, ease_scores, fit_biased_mf, fit_ease, global_mean, popularity_scores, predict_biased_mf,
)


def naive_recall_and_ndcg(scores, held_out, k):
    """Recall@k and NDCG@k written out user by user, with sorted lists and math.log2, for users with a held-out item."""
    recalls, ndcgs = [], []
    for user_scores, user_held_out in zip(scores.tolist(), held_out.tolist()):
        relevant = {item for item, marked in enumerate(user_held_out) if marked}
        if not relevant:
            continue
        ranked = sorted(range(len(user_scores)), key=lambda item: user_scores[item], reverse=True)[:k]
        recalls.append(sum(item in relevant for item in ranked) / min(k, len(relevant)))
        dcg = sum(1 / math.log2(rank + 1) for rank, item in enumerate(ranked, start=1) if item in relevant)
        ideal = sum(1 / math.log2(rank + 1) for rank in range(1, min(k, len(relevant)) + 1))
        ndcgs.append(dcg / ideal)
    return np.array(recalls), np.array(ndcgs)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k", [1, 5, 20, 100])
def test_recall_and_ndcg_match_a_naive_implementation(seed, k):
    random = np.random.default_rng(seed)
    scores = random.random((60, 120))
    fold_in = random.random(scores.shape) < 0.05
    held_out = (random.random(scores.shape) < 0.1) & ~fold_in
    held_out[:3] = False
    expected_recall, expected_ndcg = naive_recall_and_ndcg(scores, held_out, k)
    assert len(expected_recall) == 57
    for given in (held_out, scipy.sparse.csr_matrix(held_out.astype("float32"))):
        np.testing.assert_allclose(recall_at_k(scores, given, k), expected_recall, rtol=0, atol=1e-12)
        np.testing.assert_allclose(ndcg_at_k(scores, given, k), expected_ndcg, rtol=0, atol=1e-12)
    masked = np.where(fold_in, -np.inf, scores)
    excluded = scipy.sparse.csr_matrix(fold_in)
    expected_recall, expected_ndcg = naive_recall_and_ndcg(masked, held_out, k)
    np.testing.assert_allclose(recall_at_k(scores, held_out, k, exclude=excluded), expected_recall, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ndcg_at_k(scores, held_out, k, exclude=excluded), expected_ndcg, rtol=0, atol=1e-12)


def test_a_hand_worked_ranking():
    scores = np.array([[0.5, 0.1, 0.7, 0.9, 0.2]])  # ranks items 3, 2, 0, 4, 1
    held_out = scipy.sparse.csr_matrix(np.array([[1, 0, 0, 1, 0]]))
    assert recall_at_k(scores, held_out, 1)[0] == 1.0  # one hit of at most one possible
    assert recall_at_k(scores, held_out, 2)[0] == 0.5
    assert recall_at_k(scores, held_out, 3)[0] == 1.0
    one_over_log2_of_3 = 0.6309297535714574  # log(2) / log(3)
    assert ndcg_at_k(scores, held_out, 2)[0] == pytest.approx(1 / (1 + one_over_log2_of_3), abs=1e-15)
    assert ndcg_at_k(scores, held_out, 3)[0] == pytest.approx((1 + 1 / 2) / (1 + one_over_log2_of_3), abs=1e-15)
    best, best_scores = top_k(scores, 3)
    np.testing.assert_array_equal(best, [[3, 2, 0]])
    np.testing.assert_array_equal(best_scores, [[0.9, 0.7, 0.5]])
    best, best_scores = top_k(scores, 2, exclude=np.array([[0, 0, 1, 1, 0]]))
    np.testing.assert_array_equal(best, [[0, 4]])
    np.testing.assert_array_equal(best_scores, [[0.5, 0.2]])


def test_a_perfect_ranking_scores_one_and_users_without_held_out_items_are_left_out():
    held_out = np.array([[1, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0], [0, 1, 0, 1, 1, 1]])
    perfect = held_out + np.linspace(0.0, 0.1, 6)  # every held-out item above every other
    for k in range(1, 7):
        np.testing.assert_array_equal(recall_at_k(perfect, held_out, k), [1.0, 1.0])
        np.testing.assert_allclose(ndcg_at_k(perfect, held_out, k), [1.0, 1.0], atol=1e-15)
    scores = np.random.default_rng(0).random(held_out.shape)
    np.testing.assert_array_equal(ndcg_at_k(scores, held_out, 3), ndcg_at_k(scores[[0, 2]], held_out[[0, 2]], 3))
    np.testing.assert_array_equal(recall_at_k(scores, held_out, 3), recall_at_k(scores[[0, 2]], held_out[[0, 2]], 3))


def test_wrong_k_and_shapes_are_refused_with_the_numbers():
    scores = np.zeros((2, 5))
    with pytest.raises(ValueError, match=r"number of items \(5\); got k=6"):
        recall_at_k(scores, np.eye(2, 5), 6)
    with pytest.raises(ValueError, match=r"number of items \(5\); got k=0"):
        top_k(scores, 0)
    with pytest.raises(ValueError, match=r"held_out must have the scores' shape \(2, 5\); got \(2, 4\)"):
        ndcg_at_k(scores, np.eye(2, 4), 2)


def test_rmse():
    assert rmse([1.0, 2.0], [1.0, 4.0]) == pytest.approx(math.sqrt(2.0), abs=1e-15)
    with pytest.raises(ValueError, match=r"one shape; got \(2,\) and \(3,\)"):
        rmse([1.0, 2.0], [1.0, 2.0, 3.0])


def clustered_interactions(users=400, items=150, clusters=5, seed=0):
    """Binary (users, items) CSR data where each user mostly picks items of its own cluster."""
    random = np.random.default_rng(seed)
    user_cluster, item_cluster = random.integers(clusters, size=users), random.integers(clusters, size=items)
    chance = np.where(user_cluster[:, None] == item_cluster[None, :], 0.25, 0.02)
    return scipy.sparse.csr_matrix((random.random((users, items)) < chance).astype("float64"))


def test_ease_is_steck_s_closed_form_and_approaches_co_occurrence_for_large_l2():
    """B matches Steck's eq. 8, satisfies the optimality conditions off its diagonal, and l2 * B -> X^T X as l2 grows."""
    train = clustered_interactions(users=200, items=40)
    co_occurrence = (train.T @ train).toarray()
    weights = fit_ease(train, 30.0)
    precision = np.linalg.inv(co_occurrence + 30.0 * np.eye(40))
    np.testing.assert_allclose(weights, np.eye(40) - precision @ np.diag(1 / np.diag(precision)), atol=1e-12)  # Steck eq. 8
    assert np.all(np.diag(weights) == 0.0)
    stationarity = (co_occurrence + 30.0 * np.eye(40)) @ weights - co_occurrence
    np.testing.assert_allclose(stationarity[~np.eye(40, dtype=bool)], 0.0, atol=1e-9)
    np.fill_diagonal(co_occurrence, 0.0)
    np.testing.assert_allclose(1e7 * fit_ease(train, 1e7), co_occurrence, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(ease_scores(weights, train[:3]), train[:3].toarray() @ weights, rtol=0, atol=1e-12)  # sparse @ dense sums in another order


def test_ease_beats_popularity_and_its_l2_comes_from_the_grid():
    data = clustered_interactions()
    train, validation = data[:300], data[300:].toarray()
    random = np.random.default_rng(1)
    held = validation * (random.random(validation.shape) < 0.2)
    fold_in, held_out = scipy.sparse.csr_matrix(validation - held), scipy.sparse.csr_matrix(held)
    best, ndcg = choose_ease_l2(train, fold_in, held_out)
    assert best in EASE_L2_GRID and list(ndcg) == list(EASE_L2_GRID) and ndcg[best] == max(ndcg.values())
    popularity = popularity_scores(train, fold_in)
    np.testing.assert_array_equal(popularity[0], np.asarray(train.sum(axis=0)).ravel())
    popularity_ndcg = ndcg_at_k(popularity, held_out, 100, exclude=fold_in).mean()
    assert ndcg[best] > popularity_ndcg + 0.05


def low_rank_ratings(users=300, items=200, rank=3, noise=0.1, observed=0.2, seed=1):
    """Observed (rows, cols, ratings) of mean + user bias + item bias + a rank-`rank` product + Gaussian noise."""
    random = np.random.default_rng(seed)
    user_bias, item_bias = random.normal(0, 0.5, users), random.normal(0, 0.5, items)
    user_factors, item_factors = random.normal(0, 0.6, (users, rank)), random.normal(0, 0.6, (items, rank))
    rows, cols = np.nonzero(random.random((users, items)) < observed)
    ratings = 3.5 + user_bias[rows] + item_bias[cols] + np.einsum("ij,ij->i", user_factors[rows], item_factors[cols])
    return rows, cols, ratings + random.normal(0, noise, len(rows))


def test_biased_mf_recovers_a_low_rank_model_down_near_its_noise_and_is_reproducible():
    rows, cols, ratings = low_rank_ratings(noise=0.1)
    test = np.random.default_rng(2).random(len(ratings)) < 0.2
    settings = dict(n_users=300, n_items=200, factors=8, l2=0.02, epochs=200)
    model = fit_biased_mf(rows[~test], cols[~test], ratings[~test], **settings)
    mf_rmse = rmse(predict_biased_mf(model, rows[test], cols[test]), ratings[test])
    mean_rmse = rmse(np.full(test.sum(), global_mean(ratings[~test])), ratings[test])
    assert mf_rmse < 0.7 * mean_rmse and mf_rmse < 1.5 * 0.1, (mf_rmse, mean_rmse)
    again = fit_biased_mf(rows[~test], cols[~test], ratings[~test], **settings)
    for fitted, refitted in zip(model, again):
        np.testing.assert_array_equal(fitted, refitted)
    other_seed = fit_biased_mf(rows[~test], cols[~test], ratings[~test], **settings, seed=1)
    assert not np.array_equal(model.user_factors, other_seed.user_factors)
    with pytest.raises(ValueError, match=r"cols in \[0, 10\); got rows in \[0, 299\] and cols in \[0, 199\]"):
        fit_biased_mf(rows, cols, ratings, n_users=300, n_items=10)


def test_biased_mf_beats_the_global_mean_on_movielens(data_root):
    path = os.path.join(data_root, "ml-latest-small", "ratings.csv")
    with open(path, newline="") as file:
        reader = csv.reader(file)
        assert next(reader) == ["userId", "movieId", "rating", "timestamp"]
        users, movies, ratings = zip(*((int(user), int(movie), float(rating)) for user, movie, rating, _ in reader))
    _, rows = np.unique(users, return_inverse=True)
    _, cols = np.unique(movies, return_inverse=True)
    ratings = np.array(ratings)
    assert len(ratings) == 100_836
    test = np.random.default_rng(0).permutation(len(ratings)) < len(ratings) // 10
    started = time.perf_counter()
    model = fit_biased_mf(rows[~test], cols[~test], ratings[~test], rows.max() + 1, cols.max() + 1)
    seconds = time.perf_counter() - started
    mf_rmse = rmse(predict_biased_mf(model, rows[test], cols[test]), ratings[test])
    mean_rmse = rmse(np.full(test.sum(), global_mean(ratings[~test])), ratings[test])
    print(f"ml-latest-small, 10% held out: biased MF RMSE {mf_rmse:.4f} ({seconds:.1f} s), global mean {mean_rmse:.4f}")
    assert mf_rmse < mean_rmse
