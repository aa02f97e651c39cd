"""Measured quality of a model: generic measures here (MSE/PSNR, codes, linear probe, AUROC); each family adds its own.

    metrics = keras_ae.evaluate.measure(keras_ae.model_card("vae_mnist"), keras_ae.load("vae_mnist"))

The test images are read through `keras_ae.data`, as in training; a card that binarizes its
training data is measured on one fixed, seeded binarization of the test split (see `data.binarize_images`).
"""

import math

import numpy as np

from keras_ae import data
from keras_ae.schema import positive_count

NEAR_ZERO = 1e-2  # a code unit counts as silent when |activation| < NEAR_ZERO
EVALUATION_BINARIZATION = {None: None, "static": "static", "dynamic": "fixed", "fixed": "fixed"}
READ_BATCH = 1000


def psnr(mse, data_range=1.0):
    """Peak signal-to-noise ratio in dB of a mean squared error."""
    return float(10.0 * math.log10(data_range**2 / mse))


def batches(array, batch_size=500):
    """Consecutive slices of `array` holding `batch_size` examples (the last one may hold fewer)."""
    for start in range(0, len(array), batch_size):
        yield array[start:start + batch_size]


def per_example(function, array, batch_size=500):
    """`function` applied batch by batch, its per-example results joined into one numpy array."""
    return np.concatenate([np.asarray(function(batch)) for batch in batches(array, batch_size)])


def reconstruction_metrics(model, images):
    """Mean squared error per value over all `images`, and its PSNR where the data lie in [0, 1] (data range 1)."""
    from keras_ae.losses import mean_squared_error

    mse = float(per_example(lambda batch: mean_squared_error(batch, model(batch)), images).mean())
    in_unit_range = float(np.min(images)) >= 0.0 and float(np.max(images)) <= 1.0
    return {"reconstruction_mse": mse, **({"psnr_db": psnr(mse)} if in_unit_range else {})}


def codes(model, images):
    """The deterministic code of each image (z_mean for a VAE) as a numpy array."""
    return per_example(model.embed, images)


def linear_probe(train_codes, train_labels, test_codes, test_labels):
    """Accuracy on the test codes of a logistic regression fitted to convergence on standardized train codes.

    The tolerance is tight so the fit is the unique optimum, not where one solver version stopped early.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(tol=1e-7, max_iter=10_000))
    probe.fit(train_codes.reshape(len(train_codes), -1), train_labels)
    return float(probe.score(test_codes.reshape(len(test_codes), -1), test_labels))


def auroc(scores, is_anomaly):
    """Area under the ROC curve of `scores` for separating anomalies (True) from normal examples."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(np.asarray(is_anomaly, bool), np.asarray(scores)))


def detection_metrics(anomaly, scores, labels):
    """AUROC of the anomaly scores, and with the card's threshold the accuracy, precision and recall of calling examples normal.

    Precision and recall take the normal class as the positive one, as TensorFlow's ECG tutorial reports them.
    """
    normal = labels == np.asarray(anomaly["normal_label"], dtype=labels.dtype)
    metrics = {"auroc": auroc(scores, ~normal)}
    if anomaly.get("threshold") is not None:
        called_normal = scores <= anomaly["threshold"]
        true_normal = np.sum(called_normal & normal)
        metrics.update(
            detection_accuracy=float(np.mean(called_normal == normal)),
            normal_precision=float(true_normal / max(np.sum(called_normal), 1)),
            normal_recall=float(true_normal / max(np.sum(normal), 1)),
        )
    return metrics


def first_of(split, limit):
    """The first `limit` examples of a split, itself maybe sliced: `first_of("test[100:]", 50)` is "test[100:150]"."""
    if limit is None:
        return split
    limit = positive_count(limit, "limit", "a positive number of examples (None: all)")
    base, start, stop = data.parse_split(split)
    if (start or "").endswith("%") or (stop or "").endswith("%"):
        raise ValueError(f"limit needs a split sliced by example counts, not percentages; got {split!r}.")
    first = int(start or 0)
    return f"{base}[{first}:{first + limit if stop is None else min(int(stop), first + limit)}]"


def split_arrays(card, split, limit=None, binarize=None, data_dir=None, every_label=True):
    """A card's dataset split read through `keras_ae.data` as numpy arrays: (examples, labels).

    With `every_label`, a one-class card's test split keeps its other labels (the anomalies to detect).
    """
    spec = card.get("data")
    if not spec or "dataset" not in spec:
        raise ValueError(f"Card {card.get('name')!r} names no dataset (its data.dataset field); it cannot be measured.")
    options = {**data.card_options(spec), "binarize": binarize, "with_labels": True}
    if every_label:
        options.pop("only_label", None)
    dataset = data.load(
        spec["dataset"], split=first_of(split, limit), batch_size=READ_BATCH, shuffle=False,
        data_dir=data_dir, **options,
    )
    examples, labels = zip(*dataset.as_numpy_iterator())
    return np.concatenate(examples), np.concatenate(labels)


def evaluation_settings(card, model, overrides=None):
    """The family's evaluation settings: its defaults, then the card's `evaluation` section, then `overrides`."""
    defaults = type(model).evaluation_defaults
    given = {**card.get("evaluation", {}), **(overrides or {})}
    return {**defaults, **{key: value for key, value in given.items() if key in defaults}}


def measure(card, model, limit=None, probe=None, data_dir=None, split=None, **settings):
    """Every metric the model's family records, on the card's `test_split` (the first `limit` examples if given).

    Args:
        card: the model's card (its `data` section says which dataset and how it was prepared).
        model: a keras_ae model; its class's `measure` adds the family's own metrics.
        limit: measure only the first `limit` test examples.
        split: measure another split instead, e.g. the card's `monitor_split` (validation data, on which choices are made).
        probe: fit a linear probe on train-split codes (default: the card's `evaluation.linear_probe`).
        settings: family settings (e.g. `iwae_samples=200` for a VAE), over the card's.
    """
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive number of test examples; got {limit!r}.")
    test_split = split or card["data"].get("test_split", "test")
    images, labels = split_arrays(card, test_split, limit, data_dir=data_dir)
    if card["data"].get("ratings"):  # a recommender: its test rows, and their held-out entries to predict
        return {**model.measure(images, images, targets=labels), "test_examples": len(images)}
    mode = EVALUATION_BINARIZATION[card["data"].get("binarize")]
    inputs = split_arrays(card, test_split, limit, binarize=mode, data_dir=data_dir)[0] if mode else images
    conditioned = {"labels": labels} if card["data"].get("with_labels") else {}  # a conditional family: given the true labels
    metrics = model.measure(images, inputs, **conditioned, **evaluation_settings(card, model, settings))
    if card.get("anomaly"):
        metrics.update(detection_metrics(card["anomaly"], per_example(model.anomaly_score, inputs), labels))
    if probe if probe is not None else card.get("evaluation", {}).get("linear_probe", False):
        train_images, train_labels = split_arrays(card, "train", data_dir=data_dir)
        metrics["linear_probe_accuracy"] = linear_probe(codes(model, train_images), train_labels, codes(model, images), labels)
    metrics["test_examples"] = len(images)
    return metrics


# --- Ranking and rating metrics for recommendation -------------------------------------------------------------------
# Scores are dense (users, items) arrays; held-out and excluded items are scipy.sparse matrices or dense arrays of the
# same shape, where a positive entry marks an item. The ranking metrics follow Liang et al. 2018, "Variational
# Autoencoders for Collaborative Filtering" (their `Recall_at_k_batch` and `NDCG_binary_at_k_batch`).


def top_k(scores, k, exclude=None):
    """The k best-scored items of each user, best first, as (indices, scores), both (users, k); `exclude`d items score -inf.

    Ties are broken arbitrarily.
    """
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"scores must be a (users, items) array; got shape {scores.shape}.")
    items = scores.shape[1]
    if not 1 <= k <= items:
        raise ValueError(f"k must be between 1 and the number of items ({items}); got k={k}.")
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
        raise ValueError(f"{name} must have the scores' shape {shape}; got {marked.shape}.")
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
    """
    hits, held_out_counts = _hits_at_k(scores, held_out, k, exclude)
    return hits.sum(axis=1) / np.minimum(k, held_out_counts)


def ndcg_at_k(scores, held_out, k, exclude=None):
    """NDCG@k per user (Liang et al. 2018): DCG of the top k, gain 1/log2(rank + 1), over that of min(k, held-out) hits.

    Users without a held-out item are left out, as in `recall_at_k`; the mean is the reported number.
    """
    hits, held_out_counts = _hits_at_k(scores, held_out, k, exclude)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    return hits @ discounts / np.cumsum(discounts)[np.minimum(k, held_out_counts) - 1]


def rmse(predicted, actual):
    """Root mean squared error of predicted ratings against the actual ones (arrays over the same rated pairs)."""
    predicted, actual = np.asarray(predicted, dtype="float64"), np.asarray(actual, dtype="float64")
    if predicted.shape != actual.shape or predicted.size == 0:
        raise ValueError(f"predicted and actual must be non-empty, of one shape; got {predicted.shape} and {actual.shape}.")
    return float(np.sqrt(np.mean((predicted - actual) ** 2)))
