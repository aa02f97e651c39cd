"""A new labelled family is one module: a conditional denoising autoencoder and its task, defined here and nowhere else.

Its decoder reads the class label beside the code, so its task takes the "labelled" data kind: training batches are
(images, labels), and the measure gets the true labels. It trains on real MNIST through `keras_ae.train` from a card
whose model config holds its own encoder and decoder (no network section), is finished into a preset, loaded back,
measured by `keras_ae.evaluate`, exported with endpoints that take the labels, and driven by the `keras-ae` command,
without any file of the package knowing it exists.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers, ops

import keras_ae
from keras_ae import cards, cli, evaluate, losses, metrics
from keras_ae.errors import InputError
from keras_ae.models import per_batch
from keras_ae.models.task import Task, metric_text

CLASSES = 10
CODE = 4  # a code this small cannot say which digit it was: the label has to


# --- The family: the Keras model, and beside it its task ----------------------------------------------------------------
@keras.saving.register_keras_serializable(package="proof_example")
class ConditionalDenoisingAutoencoder(keras_ae.DenoisingAutoencoder):
    """A denoising autoencoder whose decoder also reads the class label: decode(code ++ one_hot(label)).

    Every method that decodes takes the labels after the images or codes: `model(x, labels)`, `decode(z, labels)`,
    `denoise(x, labels)`, `anomaly_score(x, labels)`; training batches are (images, labels). The decoder's input is
    `num_classes` wider than the encoder's code.
    """

    uses_y = True

    def __init__(self, encoder, decoder, num_classes=CLASSES, **kwargs):
        self.num_classes = int(num_classes)
        super().__init__(encoder, decoder, **kwargs)

    def call_once(self):
        self(ops.zeros((1, *self.input_shape_per_example)), labels=ops.zeros((1,), "int32"))

    @property
    def code_shape(self):
        return (self.decoder.inputs[0].shape[-1] - self.num_classes,)

    def conditioned(self, code, labels):
        if labels is None:
            raise InputError(f"{type(self).__name__} decodes given class labels: model(x, labels), decode(z, labels).")
        one_hot = ops.one_hot(ops.reshape(ops.cast(labels, "int32"), (-1,)), self.num_classes, dtype=code.dtype)
        return ops.concatenate([code, one_hot], axis=-1)

    def decode(self, z, labels=None, training=False):
        return self.as_inputs(self.decoder(self.conditioned(self.check_code(z), labels), training=training))

    def call(self, x, labels=None, training=False):
        return self.decode(self.encode(x, training=training), labels, training=training)

    def loss_terms(self, x, training, y=None):
        reconstruction = self.reconstruction_loss(x, self.decode(self.encoder(self.corrupt(x), training=training), y, training=training))
        return {"loss": reconstruction, "reconstruction_loss": reconstruction}

    def denoise(self, x, labels=None):
        return self(self.check_input(x), labels)

    def anomaly_score(self, x, labels=None):
        return self.reconstruction_loss(x, self(self.check_input(x), labels))

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}


class ConditionalDenoisingTask(Task):
    """Labelled examples; measured given the true labels, and given wrong ones (how much the label carries)."""

    family = ConditionalDenoisingAutoencoder
    data_kind = "labelled"
    evaluation_defaults = {"noise_seed": 0}

    def measure(self, examples, inputs, targets=None, noise_seed=0):
        model = self.model
        if targets is None:
            raise InputError(f"{type(model).__name__} is measured given the true labels: pass them as targets.")
        labels = np.asarray(targets, "int32")
        wrong = (labels + 1) % model.num_classes

        def errors(batch, given, other, index):
            noisy = model.corrupt(batch, seed=noise_seed * 100_003 + index)
            return ops.stack([losses.mean_squared_error(batch, model(batch, given)),
                              losses.mean_squared_error(batch, model(batch, other)),
                              losses.mean_squared_error(batch, model(noisy, given))], axis=1)

        clean, wrong_label, denoised = np.asarray(per_batch(errors, examples, labels, wrong, batch_size=500, indexed=True)).mean(axis=0)
        return {"reconstruction_mse": float(clean), "psnr_db": metrics.psnr(float(clean)),
                "psnr_wrong_label_db": metrics.psnr(float(wrong_label)), "psnr_denoised_db": metrics.psnr(float(denoised))}

    @classmethod
    def headline(cls, measured):
        if "psnr_wrong_label_db" not in measured:
            return super().headline(measured)
        return f"PSNR {measured['psnr_db']:.2f} dB given the label ({measured['psnr_wrong_label_db']:.2f} given a wrong one)"

    @classmethod
    def card_columns(cls):
        return {**super().card_columns(), "PSNR dB, wrong label": lambda measured: metric_text(measured, "psnr_wrong_label_db", 2)}

    def export_endpoints(self):
        model = self.model
        x = tf.TensorSpec([None, *model.input_shape_per_example], tf.float32, name="x")
        z = tf.TensorSpec([None, *model.code_shape], tf.float32, name="z")
        labels = tf.TensorSpec([None], tf.int32, name="labels")
        return {
            "serve": (lambda x, labels: model(x, labels, training=False), [x, labels]),
            "encode": (lambda x: model.encode(x), [x]),
            "decode": (lambda z, labels: model.decode(z, labels), [z, labels]),
            "anomaly_score": (lambda x, labels: model.anomaly_score(x, labels), [x, labels]),
        }

    def draw(self, examples, labels, folder, name):
        from pathlib import Path

        from keras_ae import plot

        path = Path(folder) / f"{name}_reconstructions.png"
        return {"Reconstructions": plot.reconstructions(self.model, examples, path, labels=labels)}


# --- Its card: data, not code; the networks are plain Keras, kept in the model's config -----------------------------------
def network_config():
    """A dense encoder (784 -> 128 -> CODE) and a decoder that reads the code and the one-hot label, serialized."""
    initializer = keras.initializers.GlorotUniform(seed=0)
    image = keras.Input((28, 28, 1), name="image")
    hidden = layers.Dense(128, activation="relu", kernel_initializer=initializer)(layers.Flatten()(image))
    encoder = keras.Model(image, layers.Dense(CODE, name="code", kernel_initializer=initializer)(hidden), name="encoder")
    given = keras.Input((CODE + CLASSES,), name="code_and_label")
    hidden = layers.Dense(128, activation="relu", kernel_initializer=initializer)(given)
    pixels = layers.Dense(28 * 28, activation="sigmoid", kernel_initializer=initializer)(hidden)
    decoder = keras.Model(given, layers.Reshape((28, 28, 1))(pixels), name="decoder")
    return {role: keras.saving.serialize_keras_object(network) for role, network in (("encoder", encoder), ("decoder", decoder))}


CARD = {
    "name": "cdae_mnist",
    "description": "Conditional denoising autoencoder: 784 -> 128 -> 4, decoded with the one-hot label; first 3,000 MNIST images.",
    "model": {"class_name": "proof_example>ConditionalDenoisingAutoencoder",
              "config": {**network_config(), "num_classes": CLASSES, "noise": "gaussian", "noise_level": 0.2,
                         "reconstruction": "bce", "seed": 0}},
    "data": {"dataset": "mnist", "train_split": "train[:3000]", "monitor_split": "train[3000:3500]", "test_split": "test", "binarize": None},
    "recipe": {"epochs": 3, "batch_size": 64, "optimizer": {"class_name": "Adam", "config": {"learning_rate": 1e-2}}, "seed": 0},
    "weights": {"file": "model.weights.h5"},
}


@pytest.fixture(scope="module")
def trained(data_root, tmp_path_factory):
    """The family trained from its card through keras_ae.train, and finished into a preset folder."""
    from keras_ae.training import finish

    folder = tmp_path_factory.mktemp("cdae") / "cdae_mnist"
    model, history, stats = keras_ae.train(CARD, precision="float32", verbose=0)
    finish(model, CARD, history, stats, folder)
    return model, history, folder


@pytest.fixture(scope="module")
def sample(data_root):
    images, labels = keras_ae.data.bundled_sample("mnist")
    return images[:16].reshape(-1, 28, 28, 1).astype("float32"), labels[:16].astype("int32")


def test_it_trains_on_labelled_batches(trained):
    model, history, _ = trained
    assert {"loss", "reconstruction_loss", "val_loss"} <= set(history.history)
    assert history.history["loss"][-1] < 0.8 * history.history["loss"][0]
    assert cards.task_of(CARD) is ConditionalDenoisingTask and keras_ae.kinds.of(ConditionalDenoisingTask).with_labels


def test_it_is_measured_given_the_true_labels(trained):
    model, _, _ = trained
    measured = evaluate.measure(CARD, model, limit=500)
    assert measured["test_examples"] == 500 and measured["psnr_db"] > 12.5
    assert measured["psnr_wrong_label_db"] < measured["psnr_db"] - 0.5, measured  # the label is used (13.5 vs 12.1 dB)
    untrained = evaluate.measure(CARD, cards.build_model(CARD), limit=500)
    assert measured["reconstruction_mse"] < 0.7 * untrained["reconstruction_mse"]


def test_its_preset_loads_back_and_exports_endpoints_that_take_labels(trained, sample, tmp_path):
    model, _, folder = trained
    images, labels = sample
    loaded = keras_ae.load(str(folder))
    assert type(loaded) is ConditionalDenoisingAutoencoder and loaded.num_classes == CLASSES and loaded.code_shape == (CODE,)
    np.testing.assert_array_equal(np.asarray(loaded(images, labels)), np.asarray(model(images, labels)))
    with pytest.raises(InputError, match="given class labels"):
        loaded(images)
    keras_ae.export(loaded, tmp_path / "served")
    served = tf.saved_model.load(str(tmp_path / "served"))
    np.testing.assert_allclose(served.serve(x=images, labels=labels), loaded(images, labels), atol=1e-5)
    codes = served.encode(x=images)
    np.testing.assert_allclose(served.decode(z=codes, labels=labels), loaded(images, labels), atol=1e-5)
    assert served.anomaly_score(x=images, labels=labels).shape == (16,)


def test_the_command_knows_it(trained, sample, tmp_path, capsys):
    _, _, folder = trained
    images, labels = sample
    assert cli.main(["info", str(folder)]) == 0
    assert "proof_example>ConditionalDenoisingAutoencoder" in capsys.readouterr().out
    assert cli.main(["evaluate", str(folder), "--limit", "200"]) == 0
    printed = capsys.readouterr().out
    assert "test_examples: 200" in printed and "psnr_wrong_label_db" in printed
    assert cli.main(["sample", str(folder)]) == 2 and "does not support `keras-ae sample`" in capsys.readouterr().err
    np.save(tmp_path / "images.npy", images)
    np.save(tmp_path / "labels.npy", labels)
    given = ["--labels", str(tmp_path / "labels.npy")]
    assert cli.main(["reconstruct", str(folder), str(tmp_path / "images.npy"), "--out", str(tmp_path / "out.npy"), *given]) == 0
    loaded = keras_ae.load(str(folder))
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), loaded(images, labels), atol=1e-6)
    assert cli.main(["score", str(folder), str(tmp_path / "images.npy"), "--out", str(tmp_path / "scores.csv"), *given]) == 0
    assert len((tmp_path / "scores.csv").read_text().splitlines()) == 1 + len(images)
    assert cli.main(["reconstruct", str(folder), str(tmp_path / "images.npy"), "--out", str(tmp_path / "x.npy")]) == 2
    assert "pass --labels" in capsys.readouterr().err
    task = cards.task_of(cards.model_card(str(folder)))
    assert {"denoise", "reconstruct", "score"} <= set(task.commands())
    assert task.headline({"psnr_db": 20.0, "psnr_wrong_label_db": 15.0}).endswith("(15.00 given a wrong one)")
