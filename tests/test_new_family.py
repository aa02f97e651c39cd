"""A new family is one module: a contractive autoencoder and its task, defined here and nowhere else, go the whole way.

It trains on real MNIST through `keras_ae.train`, is measured by `keras_ae.evaluate`, exported with its
own extra signature and reloaded without keras_ae, saved as a preset, loaded back, listed in the zoo
table and driven by the `keras-ae` command, without any file of the package knowing it exists.
"""

import json
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

import keras_ae
from keras_ae import cards, cli, evaluate
from keras_ae.models import per_batch
from keras_ae.models.autoencoder import AutoencoderTask
from keras_ae.models.task import metric_text


# --- The family: what a contributor writes (about 45 lines): the Keras model, and beside it its task ----------------------
@keras.saving.register_keras_serializable(package="contractive_example")
class ContractiveAutoencoder(keras_ae.Autoencoder):
    """Rifai et al. 2011: reconstruction plus `contraction_weight` x ||d code / d x||_F^2, for a dense sigmoid code."""

    metric_names = ("loss", "reconstruction_loss", "contraction")

    def __init__(self, encoder, decoder, contraction_weight=1e-3, **kwargs):
        self.contraction_weight = float(contraction_weight)
        super().__init__(encoder, decoder, **kwargs)

    def contraction(self, code):
        """Squared Frobenius norm of the encoder's Jacobian, closed form for code = sigmoid(W x + b)."""
        kernel = ops.cast(self.encoder.get_layer("code").kernel, "float32")
        code = ops.cast(code, "float32")
        return ops.sum(ops.square(code * (1.0 - code)) * ops.sum(ops.square(kernel), axis=0), axis=-1)

    def loss_terms(self, x, training):
        code = self.encoder(x, training=training)
        reconstruction = self.reconstruction_loss(x, self.decoder(code, training=training))
        contraction = self.contraction(code)
        return {"loss": reconstruction + self.contraction_weight * contraction, "reconstruction_loss": reconstruction,
                "contraction": contraction}

    def get_config(self):
        return {**super().get_config(), "contraction_weight": self.contraction_weight}


class ContractiveAutoencoderTask(AutoencoderTask):
    """Its measures add the mean contraction; its export adds a `contraction` signature."""

    family = ContractiveAutoencoder

    def measure(self, examples, inputs, targets=None):
        model = self.model
        contraction = np.asarray(per_batch(lambda batch: model.contraction(model.encode(batch)), examples))
        return {**super().measure(examples, inputs), "mean_contraction": float(contraction.mean())}

    @classmethod
    def card_columns(cls):
        return {**super().card_columns(), "contraction": lambda metrics: metric_text(metrics, "mean_contraction", 2)}

    def export_endpoints(self):
        model = self.model
        endpoints = super().export_endpoints()
        endpoints["contraction"] = (lambda x: model.contraction(model.encode(x)), endpoints["serve"][1])
        return endpoints


# --- Its card: data, not code ---------------------------------------------------------------------------------------------
CARD = {
    "name": "cae_mnist",
    "description": "Contractive autoencoder, 784 -> Dense(64, sigmoid) -> 784, on the first 6,000 MNIST training images.",
    "model": {"class_name": "contractive_example>ContractiveAutoencoder", "config": {"contraction_weight": 1e-3, "seed": 0}},
    "network": {"kind": "dense", "input_shape": [28, 28, 1], "latent_dim": 64, "code_activation": "sigmoid"},
    "data": {"dataset": "mnist", "train_split": "train[:6000]", "test_split": "test", "monitor_split": "train[6000:7000]", "binarize": None},
    "recipe": {"epochs": 4, "batch_size": 128, "optimizer": {"class_name": "Adam", "config": {"learning_rate": 0.01}}, "seed": 0},
    "weights": {"file": "model.weights.h5"},
}

RELOAD_WITHOUT_KERAS_AE = """
import json, sys
import numpy as np
import tensorflow as tf
served = tf.saved_model.load(sys.argv[1])
x = np.load(sys.argv[2])
assert "keras_ae" not in sys.modules
print(json.dumps({name: getattr(served, name)(x).numpy().tolist() for name in ("serve", "contraction")}))
"""


@pytest.fixture(scope="module")
def trained(data_root, tmp_path_factory):
    """The family trained from its card through keras_ae.train, and finished into a preset folder."""
    folder = tmp_path_factory.mktemp("cae") / "cae_mnist"
    model, history, stats = keras_ae.train(CARD, precision="float32", verbose=0)  # compared exactly below
    from keras_ae.training import finish

    finish(model, CARD, history, stats, folder)
    return model, history, folder


def test_it_trains_on_real_mnist_and_logs_its_own_terms(trained):
    _, history, _ = trained
    assert {"loss", "reconstruction_loss", "contraction", "val_contraction"} <= set(history.history)
    assert history.history["loss"][-1] < 0.8 * history.history["loss"][0]


def test_it_is_measured_by_the_generic_evaluation(trained):
    model, _, _ = trained
    metrics = evaluate.measure(CARD, model, limit=1000)
    assert metrics["test_examples"] == 1000 and 0 < metrics["mean_contraction"] < 1e4
    assert metrics["psnr_db"] > 13.0
    untrained = evaluate.measure(CARD, cards.build_model(CARD), limit=1000)
    assert metrics["reconstruction_mse"] < 0.5 * untrained["reconstruction_mse"]


def test_its_export_carries_its_own_signature_and_reloads_without_keras_ae(trained, tmp_path):
    model, _, _ = trained
    x = keras_ae.data.bundled_sample("mnist")[0][:8]
    np.save(tmp_path / "x.npy", x)
    keras_ae.export(model, tmp_path / "served")
    result = subprocess.run([sys.executable, "-c", RELOAD_WITHOUT_KERAS_AE, str(tmp_path / "served"), str(tmp_path / "x.npy")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    served = json.loads(result.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(served["serve"], model.predict(x, verbose=0), atol=1e-5)
    np.testing.assert_allclose(served["contraction"], model.contraction(model.encode(x)), rtol=1e-5)


def test_its_preset_loads_back_identical_and_the_command_and_table_know_it(trained, capsys):
    model, _, folder = trained
    loaded = keras_ae.load(str(folder))
    assert type(loaded) is ContractiveAutoencoder and loaded.contraction_weight == 1e-3
    x = keras_ae.data.bundled_sample("mnist")[0][:16]
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    card = json.loads((folder / "card.json").read_text())
    assert card["training"]["epochs"] == 4 and (folder / "training_curves.png").stat().st_size > 1000
    assert cards.task_of(card).card_columns()["contraction"]({"mean_contraction": 1.234}) == "1.23"
    assert cli.main(["info", str(folder)]) == 0 and "contractive_example>ContractiveAutoencoder" in capsys.readouterr().out
    assert cli.main(["sample", str(folder)]) == 2
    assert "does not support `keras-ae sample`" in capsys.readouterr().err
    assert cards.task_of(card).headline({"psnr_db": 20.0}) == "PSNR 20.00 dB"


def test_a_hand_built_model_saves_as_a_preset_with_its_config(tmp_path):
    model = ContractiveAutoencoder(*keras_ae.networks.dense((28, 28, 1), 8, code_activation="sigmoid"), contraction_weight=0.5)
    card = keras_ae.save_preset(model, tmp_path / "My Model")
    assert card["name"] == "my_model" and "network" not in card
    loaded = keras_ae.load(tmp_path / "My Model")
    assert loaded.contraction_weight == 0.5
    for mine, theirs in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(np.asarray(mine), np.asarray(theirs))
    assert tf.nest.flatten(loaded.get_config()["encoder"]) == tf.nest.flatten(model.get_config()["encoder"])
