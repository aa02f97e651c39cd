"""A family's task: what the family does for the rest of keras-ae, beside its Keras model.

The model is a Keras model and nothing more (objective, train and test steps, encode, decode, sample, config). Its
task, defined in the same family module with `family = <the model class>`, says which data kind the family takes,
what it measures, how its numbers read, which pictures it draws, which SavedModel endpoints it exports and which
`keras-ae` commands it supports. Evaluation, the demo, the gallery, export and the command line ask the task; none of
them inspects a class or a card's data section.
"""

import numbers
import warnings
from pathlib import Path

import numpy as np
import tensorflow as tf

from keras_ae import losses, metrics
from keras_ae.errors import InputError
from keras_ae.models.base import per_batch

TASKS = {}  # model class -> its task class, filled by defining a Task subclass with `family` set


def metric_text(measured, key, digits):
    """A card metric formatted with `digits` decimals, or "" where the card lacks it."""
    value = measured.get(key)
    return "" if value is None else f"{value:.{digits}f}"


def metric_column(cell, *keys):
    """A zoo-table column: `cell(metrics)` where a card's metrics hold every one of `keys`, else ""."""
    return lambda measured: cell(measured) if set(keys) <= set(measured) else ""


def named_code(code):
    """A code as an exported `encode` returns it: a variational encoder's pair as `z_mean` and `z_log_var`, else as is."""
    return dict(zip(("z_mean", "z_log_var"), code)) if isinstance(code, (tuple, list)) else code


def task_for(family):
    """The task class of a model class (or model): its own, else that of its nearest ancestor that has one."""
    family = family if isinstance(family, type) else type(family)
    for ancestor in family.__mro__:
        if ancestor in TASKS:
            return TASKS[ancestor]
    raise TypeError(f"{family.__name__} has no task: define a keras_ae.models.task.Task subclass with family = {family.__name__}")


class Task:
    """What an autoencoder family does beyond training: the defaults every family starts from.

    Attributes a family's task may set:
        family: the model class it serves (registers the task).
        data_kind: how `keras_ae.kinds` reads its data: `"examples"` (images, tables, signals), `"labelled"` (examples and
            the labels it is conditioned on) or `"ratings"` (user rows, and held-out entries to predict).
        evaluation_defaults: settings of a card's `evaluation` section that `measure` takes, with their defaults.
        short_name: the name `keras-ae train --family` knows it by (None: not offered there).
        network_options: what it needs of a `keras_ae.networks` builder, by network kind ("*": every kind).
        options_off_images: its model arguments for data that is not images in [0, 1].
    """

    family = None
    data_kind = "examples"
    evaluation_defaults = {}
    short_name = None
    network_options = {}
    options_off_images = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "family" in vars(cls) and cls.family is not None:
            TASKS[cls.family] = cls

    def __init__(self, model):
        self.model = model

    @classmethod
    def commands(cls):
        """The `keras-ae` commands the family supports: every family's, those on its data, and one per capability (a
        method of its model: `sample`, `denoise`, `recommend`)."""
        found = ["info", "evaluate", "export"]
        if cls.data_kind != "ratings":
            found += ["reconstruct", "score", "embed"]
        return tuple(found + [name for name in ("sample", "denoise", "recommend") if callable(getattr(cls.family, name, None))])

    def measure(self, examples, inputs, targets=None):
        """The family's metrics on a test set, as a flat dict of numbers (and short strings).

        Args:
            examples: clean test examples, shaped for the model, in the data's range.
            inputs: the same examples as the model saw them in training (binarized where its card binarizes).
            targets: what the data kind hands beside them: the labels of a labelled family, the held-out entries of a
                ratings family; None otherwise. Families may take keyword settings, named in `evaluation_defaults`.
        """
        mse = float(np.asarray(per_batch(lambda batch: losses.mean_squared_error(batch, self.model(batch)), examples)).mean())
        in_unit_range = float(np.min(examples)) >= 0.0 and float(np.max(examples)) <= 1.0
        return {"reconstruction_mse": mse, **({"psnr_db": metrics.psnr(mse)} if in_unit_range else {})}

    @classmethod
    def headline(cls, measured):
        """One short phrase of the family's headline numbers, for listings and the demo."""
        if "psnr_db" in measured:
            return f"PSNR {measured['psnr_db']:.2f} dB"
        return f"MSE {measured['reconstruction_mse']:.4g}" if "reconstruction_mse" in measured else "not measured"

    @classmethod
    def card_columns(cls):
        """{column heading: function of a card's metrics -> cell text} for the zoo table."""
        return {
            "MSE/pixel": lambda measured: metric_text(measured, "reconstruction_mse", 4),
            "PSNR dB": lambda measured: metric_text(measured, "psnr_db", 2),
        }

    def export_endpoints(self):
        """{name: (function, input signature)} that `keras_ae.export` writes into a SavedModel."""
        model = self.model
        x = tf.TensorSpec([None, *model.input_shape_per_example], tf.float32, name="x")
        z = tf.TensorSpec([None, *model.code_shape], tf.float32, name="z")
        return {
            "serve": (lambda x: model(x, training=False), [x]),
            "encode": (lambda x: named_code(model.encode(x)), [x]),
            "decode": (lambda z: model.decode(z), [z]),
            "anomaly_score": (lambda x: model.anomaly_score(x), [x]),
        }

    def draw(self, examples, labels, folder, name):
        """Write the family's pictures of `examples` into `folder`; return {title: path}."""
        from keras_ae import plot

        return {"Reconstructions": plot.reconstructions(self.model, examples, Path(folder) / f"{name}_reconstructions.png")}


def _rating_fault(rating, rating_range):
    """Why `rating` is not a rating this model takes (`rating_range` (lowest, highest); equal bounds: an implicit
    history, where an item is in it or not), or None."""
    if not np.isfinite(rating):
        return "is not a finite number"
    if rating_range is None:
        return None if rating != 0 else "is 0, which marks an item as unrated"
    low, high = rating_range
    if low == high and rating != low:
        return (f"is not {low:g}: this model's histories are implicit (an item is in one or not), so give item ids without "
                "ratings")
    if not low <= rating <= high:
        return f"lies outside this model's rating range, {low:g} to {high:g}"
    return None


def history_rows(histories, item_ids, default_rating=1.0, rating_range=None):
    """Dense float32 (users, items) rows over the catalogue `item_ids` from a batch of histories: a (sparse) matrix
    over those items (0: not in the history), or per user a list of item ids (each rated `default_rating`) or a dict
    {item id: rating}.

    Every rating must be finite and, given `rating_range` (lowest, highest), inside it; equal bounds make an implicit
    history (Mult-VAE's), where a rating only says an item is there. Anything else is an InputError naming the history,
    the item and the rating."""
    if hasattr(histories, "toarray"):
        histories = histories.toarray()
    if isinstance(histories, np.ndarray) and histories.ndim == 2:
        if histories.shape[1] != len(item_ids):
            raise InputError(f"History rows must have one column per item ({len(item_ids)}); got shape {histories.shape}.")
        rows = histories.astype("float32")
        given = rows != 0  # NaN included
        bad = given & ~np.isfinite(rows)
        if rating_range is not None:
            bad |= given & ((rows < rating_range[0]) | (rows > rating_range[1]))
        faults = [(row, column, _rating_fault(float(rows[row, column]), rating_range)) for row, column in np.argwhere(bad)[:1]]
    else:
        columns = {int(item): column for column, item in enumerate(item_ids)}
        rows = np.zeros((len(histories), len(item_ids)), "float32")
        faults = []
        for row, history in enumerate(histories):
            history = history if isinstance(history, dict) else dict.fromkeys(history, default_rating)
            unknown = [item for item in history if int(item) not in columns]
            if unknown:
                raise InputError(f"Unknown item ids {unknown[:10]}: not in this model's {len(item_ids)} items.")
            for item, rating in history.items():
                rows[row, columns[int(item)]] = float(rating)
                faults.append((row, columns[int(item)], _rating_fault(float(rating), rating_range)))
    for row, column, fault in faults:
        if fault:
            raise InputError(f"History {row}: item {int(item_ids[column])} has the rating {float(rows[row, column]):g}, which "
                             f"{fault}.")
    return rows


class FewerItemsWarning(UserWarning):
    """A history leaves fewer unseen items than were asked for, so fewer are recommended."""


def items_to_recommend(rows, k, exclude_seen=True):
    """How many items `recommend` returns for each of the history `rows`: `k` (from 1 to the catalogue's size), or, where
    seen items are left out and a history leaves fewer than `k` unseen, that fewest (0 for a whole catalogue), with a
    `FewerItemsWarning`: a seen item is never recommended to fill the list."""
    items = rows.shape[1]
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 1 <= k <= items:
        raise InputError(f"k must be between 1 and the number of items ({items}); got k={k}.")
    unseen = np.count_nonzero(rows == 0, axis=1)
    if not exclude_seen or not len(rows) or unseen.min() >= k:
        return int(k)
    fewest, short = int(unseen.min()), np.flatnonzero(unseen < k)
    left = f"only {fewest}" if fewest else "none"
    if len(rows) == 1:
        told = f"The history leaves {left} of the {items} items unseen: recommending {fewest}, not {k}."
    else:
        told = (f"Histories {short[:10].tolist()} leave fewer than {k} of the {items} items unseen (history "
                f"{int(np.argmin(unseen))}: {left}): recommending {fewest} for each, not {k}.")
    warnings.warn(told, FewerItemsWarning, stacklevel=3)
    return fewest


def top_unseen(scores, rows, k, exclude_seen=True):
    """The `k` best-scored items of each history row, best first, as (indices, scores), both (users, k); where
    `exclude_seen`, every item in a history is left out (`k` as `items_to_recommend` gives it)."""
    if k == 0:
        return np.zeros((len(rows), 0), "int64"), np.zeros((len(rows), 0), np.asarray(scores).dtype)
    return metrics.top_k(scores, k, exclude=(rows != 0) if exclude_seen else None)


class RecommenderTask(Task):
    """A recommender's task: it takes ratings, draws no pictures (a history is not an image), and exports one
    `recommend(history, k)` endpoint (the k best unseen items' ids and scores) over `scores`, the family's scores of every
    item for a batch of history rows."""

    data_kind = "ratings"
    history_name = "x"  # the name of the recommend signature's history input

    def scores(self, history):
        return self.model(history, training=False)

    def catalogue_size(self):
        """Items a history row covers (0: the model cannot recommend)."""
        return self.model.input_shape_per_example[0]

    def export_endpoints(self):
        model = self.model
        endpoints = super().export_endpoints()
        if self.catalogue_size():
            def recommend(history, k):
                scores = tf.cast(self.scores(history), tf.float32)
                best = tf.math.top_k(tf.where(history != 0, tf.constant(-np.inf, tf.float32), scores), k)
                return {"item_ids": tf.gather(model.item_ids, best.indices), "scores": best.values}

            history = tf.TensorSpec([None, self.catalogue_size()], tf.float32, name=self.history_name)
            endpoints["recommend"] = (recommend, [history, tf.TensorSpec([], tf.int32, name="k")])
        return endpoints

    def draw(self, examples, labels, folder, name):
        """No pictures: a history is not an image."""
        return {}
