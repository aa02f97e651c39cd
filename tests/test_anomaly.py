"""keras_ae.anomaly.fit_scorer: the code scores against independent computations, and on real digits."""

import json

import numpy as np
import pytest
from scipy.spatial import distance

import keras_ae
from keras_ae import anomaly, data, evaluate


@pytest.fixture(scope="module")
def digits(data_root):
    images, labels = data.load_arrays("mnist", "test")
    return images[:3000].astype("float32") / 255.0, labels[:3000]


def test_the_code_term_is_the_mahalanobis_distance_scipy_computes(digits):
    model = keras_ae.load("conv_ae_mnist")
    images, labels = digits
    normal, other = images[labels == 1][:300], images[labels == 0][:20]
    scores = anomaly.fit_scorer(model, normal, "reconstruction+code", ridge=1e-3)
    normal_codes, other_codes = evaluate.codes(model, normal).astype("float64"), evaluate.codes(model, other).astype("float64")
    covariance = np.cov(normal_codes, rowvar=False)
    covariance += 1e-3 * np.trace(covariance) / len(covariance) * np.eye(len(covariance))
    inverse = np.linalg.inv(covariance)
    mean = normal_codes.mean(axis=0)

    def standardized_logs(values, reference):
        return (np.log(values) - np.log(reference).mean()) / np.log(reference).std()

    squared = lambda codes: np.array([distance.mahalanobis(code, mean, inverse) ** 2 for code in codes])  # noqa: E731
    reconstruction = lambda x: ((np.asarray(model(x)) - x) ** 2).mean(axis=(1, 2, 3))  # noqa: E731
    expected = (standardized_logs(reconstruction(other), reconstruction(normal))
                + standardized_logs(squared(other_codes), squared(normal_codes)))
    np.testing.assert_allclose(scores(other), expected, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(anomaly.fit_scorer(model, normal)(other), reconstruction(other), rtol=1e-4)
    assert abs(scores(normal).mean()) < 1e-6  # both terms standardized on the normal examples


def test_the_weighted_term_divides_each_pixel_by_its_typical_normal_error(digits):
    model = keras_ae.load("conv_ae_mnist")
    images, labels = digits
    normal, other = images[labels == 1][:300], images[labels == 0][:20]
    scores = anomaly.fit_scorer(model, normal, "weighted reconstruction+code", weight_floor=0.1)
    code_only = anomaly.fit_scorer(model, normal, "reconstruction+code")
    squared_error = lambda x: (x - np.asarray(model(x))).reshape(len(x), -1).astype("float64") ** 2  # noqa: E731
    typical = squared_error(normal).mean(axis=0)
    typical = typical + 0.1 * typical.mean()
    weighted = lambda x: np.log(np.mean(squared_error(x) / typical, axis=1))  # noqa: E731
    plain = lambda x: np.log(squared_error(x).mean(axis=1))  # noqa: E731
    standardized = lambda term: (term(other) - term(normal).mean()) / term(normal).std()  # noqa: E731
    # the code term is shared: the two scores differ by exactly the change of reconstruction term
    np.testing.assert_allclose(scores(other) - code_only(other), standardized(weighted) - standardized(plain), rtol=1e-3, atol=1e-3)
    assert abs(scores(normal).mean()) < 1e-6
    assert not np.allclose(standardized(weighted), standardized(plain), atol=0.1)  # the weights change the ranking term


def test_the_neighbours_term_is_the_distance_to_the_fifth_nearest_normal_code(digits):
    model = keras_ae.load("conv_ae_mnist")
    images, labels = digits
    normal, other = images[labels == 1][:300], images[labels != 1][:40]
    scores = anomaly.fit_scorer(model, normal, "reconstruction+neighbours")
    normal_codes, other_codes = evaluate.codes(model, normal).astype("float64"), evaluate.codes(model, other).astype("float64")
    to_normal = distance.cdist(other_codes, normal_codes)
    among_normal = distance.cdist(normal_codes, normal_codes) + np.diag(np.full(len(normal), np.inf))  # its own left out
    fifth = lambda distances: np.sort(distances, axis=1)[:, 4]  # noqa: E731
    reconstruction = lambda x: ((np.asarray(model(x)) - x) ** 2).mean(axis=(1, 2, 3))  # noqa: E731

    def standardized_logs(values, reference):
        return (np.log(values) - np.log(reference).mean()) / np.log(reference).std()

    expected = (standardized_logs(reconstruction(other), reconstruction(normal))
                + standardized_logs(fifth(to_normal), fifth(among_normal)))
    np.testing.assert_allclose(scores(other), expected, rtol=1e-3, atol=1e-3)


def test_the_code_term_finds_digits_the_model_reconstructs_well(digits):
    model = keras_ae.load("conv_ae_mnist")  # trained on every digit: reconstruction alone barely tells them apart
    images, labels = digits
    normal = images[labels == 7][:200]
    test, is_anomaly = images[1000:], labels[1000:] != 7
    plain = evaluate.auroc(anomaly.fit_scorer(model, normal)(test), is_anomaly)
    combined = evaluate.auroc(anomaly.fit_scorer(model, normal, "reconstruction+code")(test), is_anomaly)
    assert plain < 0.7 and combined > 0.85, (plain, combined)  # measured: 0.649 and 0.882


def test_bad_requests_say_what_was_expected(digits):
    model = keras_ae.load("conv_ae_mnist")
    with pytest.raises(ValueError, match="expected one of \\['reconstruction', 'reconstruction\\+code', 'weighted reconstruction\\+code', "
                       "'reconstruction\\+neighbours'\\]"):
        anomaly.fit_scorer(model, digits[0][:10], "code")
    with pytest.raises(ValueError, match="at least 2 normal examples"):
        anomaly.fit_scorer(model, digits[0][:1], "reconstruction+code")


def test_the_benchmark_runs_keras_ae_beside_every_pyod_peer(tmp_path):
    import anomaly_benchmark

    anomaly_benchmark.main(["--quick", "--suites", "tables", "--seeds", "1", "--output-dir", str(tmp_path)])
    suite = json.loads((tmp_path / "anomaly_tables.json").read_text())
    (unit,) = suite["units"]  # breast cancer, benign as normal
    assert (unit["dataset"], unit["class"]) == ("breast_cancer", "1")
    candidates = [f"{model}, {score}" for model in anomaly_benchmark.CANDIDATES["tables"] for score in anomaly.SCORES]
    assert set(unit["development"]) == set(candidates)
    assert set(unit["test"]) == {*candidates, "KNN", "IForest", "PCA", "OCSVM", "ECOD"}
    assert all(0.7 < values[0] <= 1.0 for values in unit["test"].values()), unit["test"]
    best = max(candidates, key=lambda name: unit["development"][name][0])
    assert suite["recommended"] == best  # chosen on the development part, not on the test split
    assert suite["wins"]["units"]["of"] == 1 and all(peer in suite["markdown"] for peer in ("KNN", "IForest", "OCSVM", "ECOD"))


def test_the_ucr_rule_picks_equal_length_univariate_datasets_within_the_limits():
    import anomaly_suites

    names = anomaly_suites.ucr_names()
    assert len(names) >= 12 and "ECG5000" not in names
    assert names == sorted(names, key=str.lower)


@pytest.mark.parametrize("score", ["reconstruction+code", "weighted reconstruction+code"])
def test_codes_that_never_vary_add_nothing_to_the_score(score):
    import keras

    from keras_ae import networks
    from keras_ae.models import Autoencoder

    rows = np.random.default_rng(0).normal(size=(60, 12)).astype("float32")
    model = Autoencoder(*networks.dense((12,), 4, hidden_units=(8,)), reconstruction="mse")
    model(rows[:1])
    for variable in model.encoder.trainable_variables:  # a collapsed encoder: the same code for every input
        variable.assign(keras.ops.zeros_like(variable))
    scores = anomaly.fit_scorer(model, rows[:40], score)(rows[40:])  # the covariance of the codes is 0
    reconstruction = anomaly.fit_scorer(model, rows[:40], "reconstruction")
    if score == "reconstruction+code":
        normal = np.log(reconstruction(rows[:40]).astype("float64"))
        expected = (np.log(reconstruction(rows[40:]).astype("float64")) - normal.mean()) / normal.std()
        np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-4)
    assert np.isfinite(scores).all()


def test_suites_measured_apart_get_one_recommendation_per_data_kind(tmp_path):
    import anomaly_benchmark

    def suite(name, development):  # one unit; candidate "a" or "b" is better on its development part
        peers = {peer: [0.8] for peer in ("KNN", "IForest", "PCA", "OCSVM", "ECOD")}
        units = [{"dataset": name, "class": "0", "development": {key: [value] for key, value in development.items()},
                  "test": {"a": [0.9], "b": [0.7], **peers}}]
        return {"suite": name, "kind": "signals", "units": units, "summary": anomaly_benchmark.summarize(units)}

    for name, development in (("ecg5000", {"a": 0.9, "b": 0.7}), ("ucr", {"a": 0.6, "b": 0.95})):
        (tmp_path / f"anomaly_{name}.json").write_text(json.dumps(suite(name, development)))
    anomaly_benchmark.main(["--recommend-only", "--suites", "ecg5000", "ucr", "--output-dir", str(tmp_path)])
    for name in ("ecg5000", "ucr"):
        written = json.loads((tmp_path / f"anomaly_{name}.json").read_text())
        assert written["recommended"] == "b" and written["recommended_over"] == ["ecg5000", "ucr"]  # mean 0.825 against 0.75
        assert written["wins"]["units"]["wins"] == 0 and "**b** (recommended)" in written["markdown"]  # b's test 0.7 < KNN's 0.8
    with pytest.raises(SystemExit, match="no measured suite at .*anomaly_tables.json"):
        anomaly_benchmark.main(["--recommend-only", "--suites", "tables", "--output-dir", str(tmp_path)])
