"""Measured quality of a model: the family's own measures (its task's `measure`), and the ones every family shares
(anomaly detection against a card's threshold, the linear probe of codes).

    metrics = keras_ae.evaluate.measure(keras_ae.model_card("vae_mnist"), keras_ae.load("vae_mnist"))

The test split is read by the family's data kind (`keras_ae.kinds`), as in training; a card that binarizes its training
data is measured on one fixed, seeded binarization of the test split (see `data.binarize_images`).
"""

import numpy as np

from keras_ae import kinds
from keras_ae.anomaly import codes, preset_scores
from keras_ae.card_types import as_card
from keras_ae.errors import InputError
from keras_ae.metrics import auroc, ndcg_at_k, psnr, recall_at_k, rmse, top_k  # noqa: F401  (public here too, as before)
from keras_ae.models import task_for


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


def detection_metrics(anomaly, scores, labels):
    """AUROC of the anomaly scores, and with the card's threshold the accuracy, precision and recall of calling examples normal.

    Precision and recall take the normal class as the positive one, as TensorFlow's ECG tutorial reports them.
    """
    normal = labels == np.asarray(anomaly.normal_label, dtype=labels.dtype)
    metrics = {"auroc": auroc(scores, ~normal)}
    if anomaly.threshold is not None:
        called_normal = scores <= anomaly.threshold
        true_normal = np.sum(called_normal & normal)
        metrics.update(
            detection_accuracy=float(np.mean(called_normal == normal)),
            normal_precision=float(true_normal / max(np.sum(called_normal), 1)),
            normal_recall=float(true_normal / max(np.sum(normal), 1)),
        )
    return metrics


def evaluation_settings(card, model, overrides=None):
    """The family's evaluation settings: its defaults, then the card's `evaluation` section, then `overrides`."""
    defaults = task_for(model).evaluation_defaults
    given = {**card.evaluation, **(overrides or {})}
    return {**defaults, **{key: value for key, value in given.items() if key in defaults}}


def measure(card, model, limit=None, probe=None, data_dir=None, split=None, **settings):
    """Every metric the model's family records, on the card's `test_split` (the first `limit` examples if given).

    Args:
        card: the model's card, a `Card` or its JSON form (its `data` section says which dataset and how it was prepared).
        model: a keras_ae model; its family's task adds the family's own metrics.
        limit: measure only the first `limit` test examples.
        probe: fit a linear probe on train-split codes (default: the card's `evaluation.linear_probe`).
        split: measure another split instead, e.g. the card's `monitor_split` (validation data, on which choices are made).
        settings: family settings (e.g. `iwae_samples=200` for a VAE), over the card's.

    Raises:
        InputError: `limit` is not a positive integer, the card names no dataset, or its data are refused (see
            `keras_ae.data.load`).
        FileNotFoundError: the card's dataset has no local copy nor a TensorFlow Datasets source, or its path does not
            exist.
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InputError(f"limit must be a positive number of test examples; got {limit!r}.")
    card = as_card(card)
    if card.data is None:
        raise InputError(f"Card {card.name!r} names no dataset (its data.dataset field); it cannot be measured.")
    kind = kinds.of(task_for(model))
    arrays = kind.measure_arrays(card, split or card.data.test_split, limit, data_dir)
    return {**shared_measures(card, model, arrays, probe, data_dir, **settings), "test_examples": len(arrays["examples"])}


def shared_measures(card, model, arrays, probe=None, data_dir=None, **settings):
    """The family's measures of `arrays` (a data kind's `measure_arrays` or `bundled`), and where the card asks for them
    the anomaly detection and the linear probe."""
    card = as_card(card)
    task = task_for(model)(model)
    measured = task.measure(arrays["examples"], arrays["inputs"], arrays["targets"], **evaluation_settings(card, model, settings))
    if card.anomaly is not None:
        measured.update(detection_metrics(card.anomaly, preset_scores(model, card.anomaly, arrays["inputs"]), arrays["labels"]))
    if probe if probe is not None else card.evaluation.get("linear_probe", False):
        train_examples, train_labels = kinds.of(task).arrays(card, "train", data_dir=data_dir)
        measured["linear_probe_accuracy"] = linear_probe(codes(model, train_examples), train_labels,
                                                         codes(model, arrays["examples"]), arrays["labels"])
    return measured
