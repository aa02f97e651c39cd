"""An exported SavedModel scores and encodes a PCollection on Beam's DirectRunner exactly as the Keras model does."""

import json

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference

import keras_ae
from keras_ae.anomaly import anomaly_scores
from keras_ae.beam import SavedModelHandler
from keras_ae.errors import InputError


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    model = keras_ae.load("ae_ecg5000")
    folder = tmp_path_factory.mktemp("beam") / "served"
    keras_ae.export(model, folder)
    return model, folder


def run_keyed(folder, signature, rows, out):
    """The handler's outputs by key, from a DirectRunner pipeline over (key, row) pairs written as JSON lines."""
    with beam.Pipeline(runner="DirectRunner") as pipeline:
        (pipeline | beam.Create(list(enumerate(rows)))
         | RunInference(KeyedModelHandler(SavedModelHandler(folder, signature=signature, max_batch_size=500)))
         | beam.MapTuple(lambda key, result: json.dumps([key, np.asarray(result.inference).tolist()]))
         | beam.io.WriteToText(str(out)))
    written = dict(json.loads(line) for part in sorted(out.parent.glob(out.name + "*")) for line in part.read_text().splitlines())
    assert sorted(written) == list(range(len(rows)))
    return np.array([written[key] for key in range(len(rows))], dtype="float32")


def test_scores_and_codes_on_the_direct_runner_equal_the_models_own(served, tmp_path):
    model, folder = served
    rows = np.random.default_rng(0).uniform(-4, 4, size=(3000, 140)).astype("float32")
    np.testing.assert_allclose(run_keyed(folder, "anomaly_score", rows, tmp_path / "scores"),
                               anomaly_scores(model, rows, batch_size=1000), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(run_keyed(folder, "encode", rows[:500], tmp_path / "codes"),
                               np.asarray(model.encode(rows[:500])), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("make, message", [
    (lambda folder: SavedModelHandler(folder.parent / "absent"), "is not a SavedModel folder"),
    (lambda folder: SavedModelHandler(folder, signature="recommend"), r"has no signature 'recommend'; it has \['anomaly_score'"),
])
def test_a_wrong_folder_or_signature_is_refused_before_the_pipeline_runs(served, make, message):
    with pytest.raises(InputError, match=message) as error:
        make(served[1])
    assert "\n" not in str(error.value)


def test_an_example_of_another_shape_is_refused_in_one_line(served):
    handler = SavedModelHandler(served[1])
    with pytest.raises(InputError, match=r"takes examples of shape \(140,\); got \(28, 28\)"):
        handler.run_inference([np.zeros((28, 28), "float32")], handler.load_model())
