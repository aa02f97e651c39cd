"""Anomaly detection with any autoencoder: scores, a threshold fitted on normal data, and AUROC."""

import dataclasses
import numbers

import numpy as np
from keras import ops
from sklearn.base import BaseEstimator

from keras_ae.card_types import Anomaly
from keras_ae.errors import InputError
from keras_ae.metrics import auroc
from keras_ae.models import per_batch
from keras_ae.training import OWN_DATA_DEFAULTS, PRESET_SCORES

ROWS = OWN_DATA_DEFAULTS["rows"]  # the recipe `keras-ae train --data` uses on rows too

SCORES = ("reconstruction", "reconstruction+code", "weighted reconstruction+code", "reconstruction+neighbours")
NEIGHBOURS = 5  # the code term of "reconstruction+neighbours": distance to the 5th nearest normal code


def anomaly_scores(model, x, batch_size=500):
    """Per-example scores of `x` (reconstruction error; negative ELBO for a VAE) as a numpy array.

    Raises:
        InputError: `x` is not a floating-point batch of the input shape, or holds NaN or Inf (see `check_input`).
    """
    return np.asarray(per_batch(model.anomaly_score, np.asarray(x), batch_size=batch_size))


def codes(model, x, batch_size=500):
    """The deterministic code of each example (z_mean for a VAE) as a numpy array.

    Raises:
        InputError: `x` is not a floating-point batch of the input shape, or holds NaN or Inf (see `check_input`).
    """
    return np.asarray(per_batch(model.embed, np.asarray(x), batch_size=batch_size))


def squared_residuals(model, x, batch_size=500):
    """`(x - model(x)) ** 2` per value, flattened to (examples, values), as a float64 numpy array."""
    residual = lambda batch: np.square(batch - np.asarray(model(batch))).reshape(len(batch), -1)  # noqa: E731
    return np.asarray(per_batch(residual, np.asarray(x, "float32"), batch_size=batch_size)).astype("float64")


def fit_scorer(model, normal_x, score="reconstruction", ridge=1e-3, weight_floor=0.1):
    """A function from examples to anomaly scores (higher: more anomalous), fitted on known-normal examples.

    `model` is one autoencoder or a list of them (an ensemble): each model's score (for `"reconstruction"`, its log)
    is standardized by its mean and spread on `normal_x`, and the ensemble scores their mean.

    `"reconstruction"`: the model's own `anomaly_score`. `"reconstruction+code"` adds how far each code lies from
    the normal codes, for anomalies the model reconstructs well: the squared Mahalanobis distance to the normal codes'
    mean and covariance (its diagonal raised by `ridge` times the mean variance; if the normal codes never vary, the
    term is 0). Both terms are taken in log and
    standardized by their mean and spread on `normal_x`, then summed. `"weighted reconstruction+code"` takes as its
    first term the squared error of each value divided by that value's mean squared error on `normal_x` (raised by
    `weight_floor` times their mean), averaged: an error where normal examples are reconstructed closely counts more
    than one where they rarely are. `"reconstruction+neighbours"` takes as its code term the distance to the
    `NEIGHBOURS`-th nearest normal code (each normal example's own code left out when the terms are standardized): a
    normal class of several clusters is not one Gaussian.

    Raises:
        InputError: an unknown `score`; an empty list of models; for a code term or an ensemble, fewer than 2
            `normal_x`, examples refused by `check_input`, or negative anomaly scores to take the log of.
    """
    if score not in SCORES:
        raise InputError(f"Unknown anomaly score {score!r}; expected one of {list(SCORES)}.")
    if isinstance(model, (list, tuple)):
        return _ensemble_scorer(model, normal_x, score, ridge, weight_floor)
    if score == "reconstruction":
        return lambda x: anomaly_scores(model, x)
    normal_x = np.asarray(normal_x)
    if len(normal_x) < 2:
        raise InputError(f"score={score!r} needs at least 2 normal examples to fit; got {len(normal_x)}.")
    if score == "reconstruction+code":
        fitted = CodeScore.fit(model, normal_x, ridge)
        return lambda x: np.asarray(per_batch(lambda batch: fitted(model, batch), np.asarray(x)))
    normal_codes = codes(model, normal_x).reshape(len(normal_x), -1).astype("float64")
    if score == "reconstruction+neighbours":
        return _neighbours_scorer(model, normal_x, normal_codes)
    mean, inverse = _code_statistics(normal_codes, ridge)
    typical_error = squared_residuals(model, normal_x).mean(axis=0)
    typical_error += weight_floor * typical_error.mean()

    def terms(x):
        offsets = codes(model, x).reshape(len(x), -1) - mean
        distance = np.einsum("ij,ij->i", offsets @ inverse, offsets)
        weighted = (squared_residuals(model, x) / typical_error).mean(axis=1)
        return _log_of_errors(weighted, model, f"score={score!r}"), np.log(distance + 1e-12)

    return _standardized_sum(terms, terms(normal_x))


def _code_statistics(normal_codes, ridge):
    """The normal codes' mean and the inverse of their covariance, its diagonal raised by `ridge` times the mean
    variance (a pseudo-inverse: codes that never vary, a collapsed encoder, add nothing)."""
    mean = normal_codes.mean(axis=0)
    covariance = np.atleast_2d(np.cov(normal_codes - mean, rowvar=False))
    covariance += ridge * np.trace(covariance) / len(covariance) * np.eye(len(covariance))
    return mean, np.linalg.pinv(covariance, hermitian=True)


@dataclasses.dataclass(frozen=True)
class CodeScore:
    """The "reconstruction+code" score fitted on normal examples, as numbers a card can carry (see `fit_scorer`).

    `score = CodeScore.fit(model, normal_x)`; `score(model, x)` scores a batch with Keras ops (so it runs inside a
    `tf.function`); `score.to_json()` and `CodeScore.from_json(mapping)` carry it in a card's `anomaly.code_score`.
    """

    code_mean: tuple  # the normal codes' mean, one value per code value
    code_precision: tuple  # rows of the inverse of their (ridged) covariance
    centers: tuple  # the mean on the normal examples of the two terms: log reconstruction error, log code distance
    spreads: tuple  # their standard deviations (plus 1e-12)

    @classmethod
    def fit(cls, model, normal_x, ridge=1e-3):
        """Fitted on the known-normal examples `normal_x` (at least 2; their scores must be non-negative)."""
        normal_x = np.asarray(normal_x)
        normal_codes = codes(model, normal_x).reshape(len(normal_x), -1).astype("float64")
        reconstruction = np.asarray(anomaly_scores(model, normal_x), "float64")
        _log_of_errors(reconstruction, model, "score='reconstruction+code'")
        mean, inverse = _code_statistics(normal_codes, ridge)
        unstandardized = cls(tuple(mean.tolist()), tuple(map(tuple, inverse.tolist())), (0.0, 0.0), (1.0, 1.0))
        terms = np.stack([np.asarray(term) for term in unstandardized.terms_of(reconstruction, normal_codes)], axis=1)
        return cls(unstandardized.code_mean, unstandardized.code_precision, tuple(terms.mean(axis=0).tolist()),
                   tuple((terms.std(axis=0) + 1e-12).tolist()))

    @classmethod
    def from_json(cls, mapping, source="code_score"):
        """The score of a card's `anomaly.code_score`; a one-line `InputError` naming `source` if its sizes disagree."""
        try:
            score = cls(tuple(map(float, mapping["code_mean"])), tuple(tuple(map(float, row)) for row in mapping["code_precision"]),
                        tuple(map(float, mapping["centers"])), tuple(map(float, mapping["spreads"])))
            size = len(score.code_mean)
            if any(len(row) != size for row in score.code_precision) or len(score.code_precision) != size \
                    or len(score.centers) != 2 or len(score.spreads) != 2:
                raise ValueError
        except (KeyError, TypeError, ValueError):
            raise InputError(f"{source} must hold code_mean (n values), code_precision (n rows of n), centers and spreads "
                             f"(2 values each); got {mapping!r:.200}") from None
        return score

    def to_json(self):
        return {field.name: _lists(getattr(self, field.name)) for field in dataclasses.fields(self)}

    def terms(self, model, x):
        """(log reconstruction error, log squared Mahalanobis distance of the code) of a batch, in float64."""
        return self.terms_of(model.anomaly_score(x), model.embed(x))

    def terms_of(self, reconstruction, code):
        """`terms` of examples' reconstruction errors and codes, already computed."""
        reconstruction = ops.cast(reconstruction, "float64")
        code = ops.reshape(ops.cast(code, "float64"), (-1, len(self.code_mean)))
        offsets = code - ops.convert_to_tensor(self.code_mean, "float64")
        distance = ops.sum(ops.matmul(offsets, ops.convert_to_tensor(self.code_precision, "float64")) * offsets, axis=1)
        return ops.log(reconstruction + 1e-12), ops.log(distance + 1e-12)

    def __call__(self, model, x):
        """The anomaly score of each example of the batch `x` (higher: more anomalous), in float64."""
        return sum((term - center) / spread for term, center, spread in zip(self.terms(model, x), self.centers, self.spreads))


def preset_score(model, settings):
    """The per-batch scoring function a card's `anomaly` section (`settings`: typed, its JSON form, or None) names: the
    model's own `anomaly_score`, or for `score` "reconstruction+code" its fitted `code_score`, e.g.
    `preset_scores(keras_ae.load("detector"), keras_ae.model_card("detector")["anomaly"], x)`.

    Raises:
        InputError: a score not in `PRESET_SCORES`, or "reconstruction+code" without a valid fitted `code_score` of the
            model's code size.
    """
    settings = Anomaly.from_json(settings) if isinstance(settings, dict) else settings
    score = "reconstruction" if settings is None else settings.score
    if score not in PRESET_SCORES:
        raise InputError(f"Unknown anomaly.score {score!r}; a card takes one of {list(PRESET_SCORES)}.")
    if score == "reconstruction":
        return model.anomaly_score
    if settings.code_score is None:
        raise InputError("The card's anomaly.score is 'reconstruction+code' but it holds no fitted anomaly.code_score; "
                         "train it (keras-ae train) to fit one on its normal training examples.")
    fitted = CodeScore.from_json(settings.code_score, source="the card's anomaly.code_score")
    code_size = int(np.prod(model.code_shape))
    if len(fitted.code_mean) != code_size:
        raise InputError(f"The card's anomaly.code_score was fitted to codes of {len(fitted.code_mean)} values; this model's "
                         f"codes have {code_size}: train the card again to fit it.")
    return lambda x: fitted(model, x)


def preset_scores(model, settings, x, batch_size=500):
    """`preset_score(model, settings)` of every example of `x`, as a numpy array."""
    return np.asarray(per_batch(preset_score(model, settings), np.asarray(x), batch_size=batch_size))


def _lists(value):
    return [_lists(item) for item in value] if isinstance(value, (tuple, list)) else value


def _ensemble_scorer(models, normal_x, score, ridge, weight_floor):
    """The mean of the `models`' scores, each standardized on `normal_x` (see `fit_scorer`)."""
    if not models:
        raise InputError("An ensemble needs at least one model; got an empty list.")
    normal_x = np.asarray(normal_x)
    if len(normal_x) < 2:
        raise InputError(f"An ensemble needs at least 2 normal examples to standardize its members' scores; got {len(normal_x)}.")
    scorers = [fit_scorer(model, normal_x, score, ridge, weight_floor) for model in models]
    if score == "reconstruction":  # errors spread over decades: standardized in log, as the code scores' first term
        scorers = [_in_log(scorer, model) for scorer, model in zip(scorers, models)]
    summed = _standardized_sum(lambda x: [scorer(x) for scorer in scorers], [scorer(normal_x) for scorer in scorers])
    return lambda x: summed(x) / len(scorers)


def _in_log(scorer, model):
    """`scorer`'s reconstruction errors in log; refused if any is negative (a VAE's negative ELBO can be)."""
    return lambda x: _log_of_errors(np.asarray(scorer(x), "float64"), model, "an ensemble's 'reconstruction' score",
                                    remedy="score with one model instead")


def _neighbours_scorer(model, normal_x, normal_codes):
    """The "reconstruction+neighbours" score fitted on `normal_x` (see `fit_scorer`)."""
    from sklearn.neighbors import NearestNeighbors

    k = min(NEIGHBOURS, len(normal_codes) - 1)
    index = NearestNeighbors(n_neighbors=k + 1).fit(normal_codes)

    def terms(x, own=False):  # own: x is normal_x, whose nearest code is its own, left out
        reconstruction = np.asarray(anomaly_scores(model, x), "float64")
        found = normal_codes if own else codes(model, x).reshape(len(x), -1).astype("float64")
        distance = index.kneighbors(found, n_neighbors=k + 1)[0][:, k if own else k - 1]
        return _log_of_errors(reconstruction, model, "score='reconstruction+neighbours'"), np.log(distance + 1e-12)

    return _standardized_sum(terms, terms(normal_x, own=True))


def _log_of_errors(reconstruction, model, score, remedy="use score='reconstruction'"):
    """The log of reconstruction errors, the first term of a code score (`score` names what takes it, as in
    "score='reconstruction+code'"); refused if any is negative."""
    if np.min(reconstruction) < 0:
        raise InputError(f"{score} takes the log of {type(model).__name__}'s anomaly scores, which must be non-negative; {remedy}.")
    return np.log(reconstruction + 1e-12)


def _standardized_sum(terms, normal_terms):
    """A scorer summing `terms(x)`, each standardized by its mean and spread on the normal examples (`normal_terms`)."""
    reference = [(term.mean(), term.std() + 1e-12) for term in normal_terms]
    return lambda x: sum((term - center) / spread for term, (center, spread) in zip(terms(np.asarray(x)), reference))


def fit_threshold(model, normal_x, percentile=99.0):
    """The score below which `percentile` percent of known-normal examples fall.

    Raises:
        InputError: `percentile` is not strictly between 0 and 100, or `normal_x` is refused by `check_input`.
    """
    if not 0.0 < percentile < 100.0:
        raise InputError(f"percentile must lie strictly between 0 and 100; got {percentile!r}.")
    return float(np.percentile(anomaly_scores(model, normal_x), percentile))


def detect(model, x, threshold):
    """Boolean array: True where an example's score exceeds `threshold`."""
    return anomaly_scores(model, x) > threshold


def evaluate_detection(model, x, is_anomaly):
    """AUROC of the model's scores for separating anomalies (True) from normal examples.

    Raises:
        InputError: `x` refused by `check_input`, or `is_anomaly` not one per example or without both classes (see
            `auroc`).
    """
    return auroc(anomaly_scores(model, x), is_anomaly)


class Detector(BaseEstimator):
    """An autoencoder anomaly detector with scikit-learn's and PyOD's interface: `fit`, `decision_function`, `predict`,
    `score_samples`; it works inside a scikit-learn `Pipeline`.

        detector = keras_ae.anomaly.Detector(family="ae", contamination=0.05).fit(normal_rows)
        is_outlier = detector.predict(new_rows)          # 1 for an outlier, 0 for an inlier, as PyOD's detectors
        scores = detector.decision_function(new_rows)    # higher: more anomalous (PyOD); score_samples is its negative

    Args:
        family: a short name of `keras-ae train --family` (`"ae"`, `"dae"`, `"sae"`, `"vae"`, `"vqvae"`).
        network: `"dense"` for rows of features, `"conv1d"` for signals; rows are min-max scaled inside the model.
        latent_dim: the code's size.
        hidden_units: the dense network's hidden layers.
        epochs, batch_size, learning_rate: training, on all of `X` (no validation part: `fit` holds nothing out).
        contamination: the expected share of anomalies in `X`, in (0, 0.5]; the threshold is that upper quantile of the
            training scores (`threshold_`), as PyOD sets it.
        score: one of `SCORES` (see `fit_scorer`).
        seed: seed of the weights and of the model's draws.
        family_options: the family's model arguments, over its defaults for rows, e.g. `{"noise_level": 0.2}` for `"dae"`.
        ensemble_size: how many autoencoders to train, with seeds `seed`, `seed + 1000`, ...; each one's score is
            standardized on `X` and the detector scores their mean (see `fit_scorer`). `model_` is the first,
            `models_` all of them.
    """

    def __init__(self, family="ae", network=ROWS["network"], latent_dim=ROWS["latent_dim"], hidden_units=ROWS["hidden_units"],
                 epochs=ROWS["epochs"], batch_size=ROWS["batch_size"], learning_rate=1e-3, contamination=0.1,
                 score="reconstruction", seed=0, family_options=None, ensemble_size=1):
        self.family, self.network, self.latent_dim, self.hidden_units = family, network, latent_dim, hidden_units
        self.epochs, self.batch_size, self.learning_rate = epochs, batch_size, learning_rate
        self.contamination, self.score, self.seed = contamination, score, seed
        self.family_options, self.ensemble_size = family_options, ensemble_size

    def _rows(self, X):
        rows = np.asarray(X, dtype="float32")
        if rows.ndim != 2 or not len(rows):
            raise InputError(f"Detector expects a 2-D array of rows (examples, features); got shape {rows.shape}.")
        if not np.all(np.isfinite(rows)):
            raise InputError("Detector got NaN or infinite values; clean the data (e.g. impute) first.")
        return rows

    def fit(self, X, y=None):
        """Train the autoencoder on the rows of `X` (`y` is ignored, as in unsupervised scikit-learn estimators).

        Raises:
            InputError: `contamination` outside (0, 0.5], `ensemble_size` not a positive whole number, an unknown
                `family` or argument of it in `family_options`, `X` not 2-D rows (or empty, or not finite), or an
                unknown `score` (each before training).
        """
        if not _is_number(self.contamination) or not 0.0 < float(self.contamination) <= 0.5:
            raise InputError(f"contamination must lie in (0, 0.5], a number; got {self.contamination!r}.")
        if not isinstance(self.ensemble_size, numbers.Integral) or isinstance(self.ensemble_size, bool) or self.ensemble_size < 1:
            raise InputError(f"ensemble_size must be a whole number of at least 1; got {self.ensemble_size!r}.")
        if self.score not in SCORES:
            raise InputError(f"Unknown anomaly score {self.score!r}; expected one of {list(SCORES)}.")
        from keras_ae.models import by_short_name

        tasks = by_short_name()
        if self.family not in tasks:
            raise InputError(f"Unknown family {self.family!r}; expected one of {sorted(tasks)}.")
        self._check_family_options(tasks[self.family].family)
        rows = self._rows(X)
        self.models_ = [self._train(tasks[self.family], rows, self.seed + 1000 * member) for member in range(self.ensemble_size)]
        self.model_ = self.models_[0]
        self.scorer_ = fit_scorer(self.models_ if self.ensemble_size > 1 else self.model_, rows, self.score)
        self.decision_scores_ = np.asarray(self.scorer_(rows), "float64")
        self.threshold_ = float(np.quantile(self.decision_scores_, 1.0 - float(self.contamination)))
        self.n_features_in_ = rows.shape[1]
        return self

    def _check_family_options(self, family):
        import inspect

        if self.family_options is None:
            return
        if not isinstance(self.family_options, dict):
            raise InputError(f"family_options must be a dict of {family.__name__}'s arguments; got {self.family_options!r}.")
        accepted = [name for name, parameter in inspect.signature(family).parameters.items()
                    if name not in ("encoder", "decoder") and parameter.kind is not parameter.VAR_KEYWORD]
        unknown = [name for name in self.family_options if name not in accepted]
        if unknown:
            raise InputError(f"{family.__name__} takes no argument {unknown[0]!r} in family_options; expected some of {accepted}.")

    def _train(self, task, rows, seed):
        """One autoencoder of the family's `task`, trained on `rows` with `seed`."""
        import keras

        from keras_ae import networks

        options = {**task.network_options.get("*", {}), **task.network_options.get(self.network, {})}
        if self.network == "dense":
            options["hidden_units"] = tuple(self.hidden_units)
        encoder, decoder = networks.build(self.network, input_shape=(rows.shape[1],), latent_dim=self.latent_dim, scaling="minmax",
                                          seed=seed, **options)
        networks.adapt_scaling(encoder, decoder, rows)
        model = task.family(encoder, decoder, seed=seed, **{**task.options_off_images, **(self.family_options or {})})
        model.compile(optimizer=keras.optimizers.Adam(self.learning_rate))
        model.fit(_row_batches(rows, self.batch_size, seed), epochs=self.epochs, verbose=0, shuffle=False)  # batches shuffle themselves
        return model

    def _check_fitted(self, X):
        if not hasattr(self, "model_"):
            raise InputError("This Detector is not fitted yet: call fit(X) first.")
        rows = self._rows(X)
        if rows.shape[1] != self.n_features_in_:
            raise InputError(f"Detector was fitted on {self.n_features_in_} features; got rows of {rows.shape[1]}.")
        return rows

    def decision_function(self, X):
        """Each row's anomaly score: higher is more anomalous (PyOD's convention).

        Raises:
            InputError: the detector is not fitted, or `X` is not finite 2-D rows of the features it was fitted on.
        """
        rows = self._check_fitted(X)
        return np.asarray(self.scorer_(rows), "float64")

    def score_samples(self, X):
        """Each row's normality: higher is more normal (scikit-learn's convention), the negative of `decision_function`.

        Raises:
            InputError: as in `decision_function`.
        """
        return -self.decision_function(X)

    def predict(self, X):
        """1 for a row scoring above `threshold_` (an outlier), 0 otherwise (PyOD's convention).

        Raises:
            InputError: as in `decision_function`.
        """
        return (self.decision_function(X) > self.threshold_).astype("int64")

    def fit_predict(self, X, y=None):
        return self.fit(X).predict(X)


def _is_number(value):
    """A real number (numpy's too), not a bool or a string."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _row_batches(rows, batch_size, seed):
    """Shuffled batches of rows for `fit` (a seeded tf.data pipeline)."""
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices(rows).shuffle(len(rows), seed=seed, reshuffle_each_iteration=True).batch(batch_size)
