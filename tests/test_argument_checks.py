"""Arguments that used to escape the one-line checks (found while writing the API's Raises sections)."""

import math

import numpy as np
import pytest

import keras_ae
from keras_ae import anomaly, metrics, networks
from keras_ae.errors import InputError
from keras_ae.models import BaseAutoencoder, families
from keras_ae.training import card_for_data


@pytest.mark.parametrize("family", [family for family in families().values() if family is not BaseAutoencoder],
                         ids=lambda family: family.__name__)
def test_every_family_refuses_networks_that_are_not_models_in_one_line(family):
    extra = {"num_classes": 3} if family.__name__ == "ConditionalVAE" else {}
    with pytest.raises(InputError, match="encoder must be a built keras.Model"):
        family(None, None, **extra)


def test_conditional_samples_refuse_labels_that_are_not_integers():
    model = keras_ae.ConditionalVAE(*networks.dense((6,), 2, hidden_units=(4,), variational=True, seed=0), num_classes=3)
    with pytest.raises(InputError, match="integer classes"):
        model.sample(2, labels=[1.7, 0.2])
    assert model.sample(2, labels=[1, 0]).shape == (2, 6)


def test_the_detector_refuses_its_options_before_training(tmp_path):
    rows = np.random.default_rng(0).random((20, 4))
    with pytest.raises(InputError, match="Unknown anomaly score"):
        anomaly.Detector(score="nonsense", epochs=10_000).fit(rows)  # refused at once, not after 10,000 epochs
    with pytest.raises(InputError, match="contamination must lie in"):
        anomaly.Detector(contamination="abc").fit(rows)
    with pytest.raises(InputError, match="contamination is the expected share"):
        np.savetxt(tmp_path / "rows.csv", rows, delimiter=",")
        card_for_data(tmp_path / "rows.csv", normal_label=None, contamination="abc")


def test_metric_formulas_take_their_edge_cases():
    assert metrics.psnr(0.0) == math.inf  # a perfect reconstruction
    with pytest.raises(InputError, match="k must be an integer"):
        metrics.top_k(np.zeros((1, 5)), 1.5)


@pytest.mark.parametrize("limit", [True, 0, 2.5])
def test_measure_refuses_a_limit_that_is_no_count(limit):
    with pytest.raises(InputError, match="limit must be a positive number of test examples"):
        keras_ae.evaluate.measure(keras_ae.model_card("ae_mnist"), None, limit=limit)
