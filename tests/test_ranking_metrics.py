"""The benchmark's NDCG@k and Recall@k (keras_ae.evaluate, as scripts/recommend_benchmark.py calls them) against
implementations written apart from them: scikit-learn's `ndcg_score` on binary relevance, and recall per Liang et al.
in plain Python, both over each user's items with the fold-in items taken out of the ranking."""

import numpy as np
import pytest
import scipy.sparse
from sklearn.metrics import ndcg_score

from keras_ae import evaluate


def random_case(seed, users=40, items=150):
    """Scores without ties, fold-in items, held-out items apart from them; a few users with nothing held out."""
    random = np.random.default_rng(seed)
    scores = random.permutation(users * items).reshape(users, items) / (users * items)
    fold_in = random.random((users, items)) < random.uniform(0.02, 0.3)
    held_out = (random.random((users, items)) < random.uniform(0.01, 0.2)) & ~fold_in
    held_out[random.choice(users, 3, replace=False)] = False
    return scores, fold_in, held_out


def sklearn_ndcg(scores, fold_in, held_out, k):
    """scikit-learn's NDCG@k of each user with a held-out item, over the items not folded in."""
    return np.array([ndcg_score(relevant[~seen][None].astype(float), user[~seen][None], k=k)
                     for user, seen, relevant in zip(scores, fold_in, held_out) if relevant.any()])


def plain_recall(scores, fold_in, held_out, k):
    """Recall@k per Liang et al.: held-out items among the k best unseen ones, over min(k, held-out count)."""
    recalls = []
    for user, seen, relevant in zip(scores.tolist(), fold_in.tolist(), held_out.tolist()):
        wanted = {item for item, marked in enumerate(relevant) if marked}
        if not wanted:
            continue
        unseen = [item for item, was_seen in enumerate(seen) if not was_seen]
        ranked = sorted(unseen, key=lambda item: user[item], reverse=True)[:k]
        recalls.append(len(wanted.intersection(ranked)) / min(k, len(wanted)))
    return np.array(recalls)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("k", [1, 10, 20, 50, 100])
def test_ndcg_and_recall_match_independent_implementations(seed, k):
    scores, fold_in, held_out = random_case(seed)
    as_benchmark = dict(exclude=scipy.sparse.csr_matrix(fold_in.astype("float32")))
    held = scipy.sparse.csr_matrix(held_out.astype("float32"))
    ndcg = evaluate.ndcg_at_k(scores, held, k, **as_benchmark)
    recall = evaluate.recall_at_k(scores, held, k, **as_benchmark)
    assert len(ndcg) == len(recall) == np.count_nonzero(held_out.any(axis=1)) == 37
    np.testing.assert_allclose(ndcg, sklearn_ndcg(scores, fold_in, held_out, k), rtol=0, atol=1e-12)
    np.testing.assert_allclose(recall, plain_recall(scores, fold_in, held_out, k), rtol=0, atol=1e-12)


def test_the_cases_are_not_trivial():
    """The random cases reach every NDCG regime: users below 1, above 0, and recall capped by min(k, held-out)."""
    scores, fold_in, held_out = random_case(0)
    ndcg = sklearn_ndcg(scores, fold_in, held_out, 20)
    assert 0 < ndcg.mean() < 1 and len(set(np.round(ndcg, 6))) > 5
    assert (held_out.sum(axis=1) > 20).any() and (held_out.sum(axis=1)[held_out.any(axis=1)] < 20).any()
