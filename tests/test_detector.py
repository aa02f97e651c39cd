"""keras_ae.anomaly.Detector: the scikit-learn / PyOD interface on a real table, alone and inside a Pipeline."""

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from keras_ae import anomaly
from keras_ae.anomaly import Detector
from keras_ae.errors import InputError


@pytest.fixture(scope="module")
def cancer():
    """scikit-learn's breast cancer table: benign (label 1) rows are normal, malignant ones the anomalies."""
    rows, labels = load_breast_cancer(return_X_y=True)
    normal, anomalies = rows[labels == 1], rows[labels == 0]
    return normal[:300], np.concatenate([normal[300:], anomalies]), np.r_[np.zeros(len(normal) - 300), np.ones(len(anomalies))]


def test_it_fits_on_normal_rows_and_scores_anomalies_higher(cancer):
    train, test, is_anomaly = cancer
    detector = Detector(epochs=30, contamination=0.05).fit(train)
    scores = detector.decision_function(test)
    assert roc_auc_score(is_anomaly, scores) > 0.9
    np.testing.assert_array_equal(detector.score_samples(test), -scores)
    assert detector.predict(train).mean() == pytest.approx(0.05, abs=0.02)  # contamination sets the training share
    assert set(np.unique(detector.predict(test))) <= {0, 1}


def test_it_works_inside_a_pipeline_and_keeps_its_parameters(cancer):
    train, test, is_anomaly = cancer
    pipeline = make_pipeline(StandardScaler(), Detector(family="dae", epochs=20, contamination=0.1))
    pipeline.fit(train)
    assert roc_auc_score(is_anomaly, pipeline.decision_function(test)) > 0.85
    assert pipeline.get_params()["detector__family"] == "dae"
    pipeline.set_params(detector__epochs=5)
    assert pipeline.named_steps["detector"].epochs == 5


def test_bad_input_is_one_line():
    with pytest.raises(InputError, match="not fitted yet"):
        Detector().predict(np.zeros((2, 3)))
    with pytest.raises(InputError, match="contamination must lie in"):
        Detector(contamination=0.9).fit(np.random.default_rng(0).random((20, 3)))
    with pytest.raises(InputError, match="2-D array of rows"):
        Detector().fit(np.zeros(5))
    with pytest.raises(InputError, match="NaN"):
        Detector().fit(np.full((4, 2), np.nan))
    with pytest.raises(InputError, match="Unknown family 'gan'"):
        Detector(family="gan").fit(np.zeros((4, 2)))


def test_an_ensemble_scores_the_mean_of_its_models_standardized_log_errors(cancer):
    train, test, is_anomaly = cancer
    detector = Detector(epochs=5, ensemble_size=2, seed=3).fit(train)
    assert len(detector.models_) == 2 and detector.model_ is detector.models_[0]
    single = Detector(epochs=5, seed=1003).fit(train)  # the second member, trained alone with its seed
    np.testing.assert_allclose(single.model_.get_weights()[-1], detector.models_[1].get_weights()[-1], rtol=1e-5)

    def standardized_log(model, rows):
        reconstruct = lambda x: np.square(x - np.asarray(model(x.astype("float32")))).mean(axis=1)  # noqa: E731
        normal = np.log(reconstruct(train))
        return (np.log(reconstruct(rows)) - normal.mean()) / normal.std()

    expected = np.mean([standardized_log(model, test) for model in detector.models_], axis=0)
    np.testing.assert_allclose(detector.decision_function(test), expected, rtol=1e-3, atol=1e-3)
    assert roc_auc_score(is_anomaly, detector.decision_function(test)) > 0.85


def test_ensemble_size_must_be_a_positive_whole_number():
    rows = np.random.default_rng(0).random((20, 3))
    for bad in (0, 2.0, True, "3"):
        with pytest.raises(InputError, match="ensemble_size must be a whole number"):
            Detector(ensemble_size=bad, epochs=10_000).fit(rows)
    with pytest.raises(InputError, match="at least one model"):
        anomaly.fit_scorer([], rows)
    models = Detector(epochs=1, ensemble_size=2).fit(rows).models_
    with pytest.raises(InputError, match="at least 2 normal examples"):
        anomaly.fit_scorer(models, rows[:1])


def test_family_options_reach_the_model_and_unknown_ones_are_refused():
    rows = np.random.default_rng(0).random((40, 3)).astype("float32")
    assert Detector(family="dae", epochs=1, family_options={"noise_level": 0.3}).fit(rows).model_.noise_level == 0.3
    assert Detector(family="dae", epochs=1).fit(rows).model_.noise_level == 0.1  # the family's default for rows
    with pytest.raises(InputError, match="takes no argument 'noise_levl'"):
        Detector(family="dae", family_options={"noise_levl": 0.3}, epochs=10_000).fit(rows)
    with pytest.raises(InputError, match="family_options must be a dict"):
        Detector(family_options=[("noise_level", 0.3)], epochs=10_000).fit(rows)
