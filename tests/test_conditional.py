"""The conditional VAE: trained on real MNIST with its labels, it draws the digit asked for; labels are required and
checked; it round-trips through .keras, presets and a SavedModel that takes labels; keras_ae.train and evaluate drive it."""

import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_ae
from keras_ae import cards, data, evaluate, networks

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import conditional_benchmark  # noqa: E402

TRAIN_EXAMPLES = 3072


def small_model(**kwargs):
    return keras_ae.ConditionalVAE(
        *networks.conv((28, 28, 1), 8, filters=(16, 32), dense_units=64, variational=True), num_classes=10, seed=0, **kwargs
    )


@pytest.fixture(scope="module")
def labelled(mnist_images):
    """Real MNIST train images in [0, 1] with their labels: (train images, train labels, held-out images, held-out labels)."""
    labels = data.load_arrays("mnist", "train")[1][: len(mnist_images)].astype("int64")
    return (mnist_images[:TRAIN_EXAMPLES], labels[:TRAIN_EXAMPLES], mnist_images[TRAIN_EXAMPLES:], labels[TRAIN_EXAMPLES:])


@pytest.fixture(scope="module")
def trained(labelled):
    images, labels, _, _ = labelled
    keras.utils.set_random_seed(0)
    model = small_model(kl_warmup_steps=50)
    model.compile(optimizer=keras.optimizers.Adam(2e-3))
    history = model.fit(images, labels, batch_size=64, epochs=6, shuffle=True, verbose=0)
    return model, history


def nearest_class_mean(images, class_means):
    """The class whose mean training image is nearest to each image (a crude judge that needs no training)."""
    distances = ((images.reshape(len(images), 1, -1) - class_means.reshape(1, len(class_means), -1)) ** 2).sum(axis=-1)
    return distances.argmin(axis=1)


def test_fit_on_real_mnist_lowers_the_loss_and_logs_the_vae_terms(trained):
    _, history = trained
    assert {"loss", "reconstruction_loss", "kl_loss"} <= set(history.history)
    assert history.history["loss"][-1] < 0.7 * history.history["loss"][0]


def test_samples_are_images_of_the_class_asked_for(trained, labelled):
    model, _ = trained
    images, labels, _, _ = labelled
    sevens = np.asarray(model.sample(16, labels=7, seed=0))
    assert sevens.shape == (16, 28, 28, 1) and sevens.min() >= 0.0 and sevens.max() <= 1.0
    np.testing.assert_array_equal(sevens, model.sample(16, labels=[7] * 16, seed=0))
    ones = np.asarray(model.sample(16, labels=1, seed=0))  # the same draws of z, another label
    assert np.abs(ones - sevens).mean() > 0.05
    cycled = np.asarray(model.sample(20, seed=3))
    np.testing.assert_array_equal(cycled, model.sample(20, labels=np.arange(20) % 10, seed=3))
    class_means = np.stack([images[labels == label].mean(axis=0) for label in range(10)])
    asked = np.repeat(np.arange(10), 30)
    drawn = np.asarray(model.sample(len(asked), labels=asked, seed=1))
    assert np.mean(nearest_class_mean(drawn, class_means) == asked) > 0.7


def test_labels_are_required_and_validated(trained, labelled):
    model, _ = trained
    images, labels, _, _ = labelled
    x, y = images[:4], labels[:4]
    with pytest.raises(ValueError, match=r"needs integer class labels in \[0, 10\)"):
        model.loss_terms(x, training=False)
    with pytest.raises(ValueError, match="needs integer class labels"):
        model.fit(images[:64], epochs=1, verbose=0)
    with pytest.raises(ValueError, match="needs integer class labels"):
        model.predict(x, verbose=0)
    with pytest.raises(ValueError, match="needs integer class labels") as missing:
        model(x)
    assert "\n" not in str(missing.value)
    with pytest.raises(ValueError, match=r"label outside \[0, 10\).*Got \[10\]"):
        model.encode(x, [0, 1, 2, 10])
    with pytest.raises(ValueError, match=r"label outside \[0, 10\).*Got \[-1\]"):
        model.sample(2, labels=-1)
    with pytest.raises(ValueError, match="got dtype float32.*astype\\('int64'\\)"):
        model(x, y.astype("float32"))
    with pytest.raises(ValueError, match="got 3 labels for 4 examples"):
        model.negative_elbo(x, y[:3])
    with pytest.raises(ValueError, match=r"of shape \(batch,\) or one int"):
        model.decode(np.zeros((4, 8), "float32"), y[:, None])
    bad = tf.data.Dataset.from_tensor_slices((images[:8], np.array([0, 1, 2, 3, 4, 5, 6, 12]))).batch(4)
    with pytest.raises(tf.errors.InvalidArgumentError, match="label outside"):
        model.evaluate(bad, verbose=0)
    with pytest.raises(ValueError, match="measured given the true labels"):
        keras_ae.models.task_for(model)(model).measure(x, x)


def test_bad_labels_are_refused_under_jit_compile(labelled):
    images, _, _, _ = labelled
    model = small_model()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=True)
    bad = tf.data.Dataset.from_tensor_slices((images[:8], np.array([0, 1, 2, 3, 4, 5, 6, 12]))).batch(8)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"label outside \[0, 10\)"):
        model.fit(bad, verbose=0)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"label outside \[0, 10\)"):
        model.train_on_batch(images[:4], np.array([0, 1, 2, 10]))


def test_every_method_takes_the_labels_and_predict_takes_pairs(trained, labelled):
    model, _ = trained
    _, _, held_out, held_out_labels = labelled
    x, y = held_out[:32], held_out_labels[:32]
    reconstruction = np.asarray(model(x, y))
    np.testing.assert_allclose(model.predict((x, y), batch_size=16, verbose=0), reconstruction, atol=1e-6)
    pairs = tf.data.Dataset.from_tensor_slices((x, y)).batch(10)
    np.testing.assert_allclose(model.predict(pairs, verbose=0), reconstruction, atol=1e-6)
    np.testing.assert_array_equal(model(x, 3), model(x, np.full(32, 3)))
    z_mean, z_log_var = model.encode(x, y)
    assert z_mean.shape == z_log_var.shape == (32, 8) and model.embed(x, y).shape == (32, 8)
    np.testing.assert_allclose(model.decode(z_mean, y), reconstruction, atol=1e-6)
    elbo = np.asarray(model.negative_elbo(x, y))
    bound = np.asarray(model.importance_weighted_bound(x, y, samples=20))
    assert elbo.shape == bound.shape == (32,) and bound.mean() < elbo.mean()
    np.testing.assert_array_equal(model.anomaly_score(x, y), elbo)
    assert np.mean(model.negative_elbo(x, (y + 1) % 10)) > elbo.mean()  # the wrong label explains the digit worse
    assert model.interpolate(x[:2], x[2:4], y[:2], y[2:4], steps=5).shape == (2, 5, 28, 28, 1)


def test_an_ordinary_pair_is_widened_and_a_widened_one_taken_as_it_is():
    model = small_model()
    assert model.encoder.inputs[0].shape[1:] == (28, 28, 11) and model.decoder.inputs[0].shape[1:] == (18,)
    assert model.input_shape_per_example == (28, 28, 1) and model.code_shape == (8,) and model.latent_dim == 8
    again = keras_ae.ConditionalVAE(model.encoder, model.decoder, num_classes=10)
    assert again.encoder is model.encoder and again.decoder is model.decoder
    with pytest.raises(ValueError, match="ordinary VAE pair"):
        keras_ae.ConditionalVAE(model.encoder, model.decoder, num_classes=4)
    dense = keras_ae.ConditionalVAE(*networks.dense((6,), 2, hidden_units=(8,), variational=True), num_classes=3,
                                    likelihood="gaussian")
    assert dense.encoder.inputs[0].shape[1:] == (9,) and dense(np.zeros((2, 6), "float32"), np.array([0, 2])).shape == (2, 6)


def test_keras_file_round_trip_in_safe_mode(trained, labelled, tmp_path):
    model, _ = trained
    _, _, held_out, held_out_labels = labelled
    x, y = held_out[:16], held_out_labels[:16]
    model.save(tmp_path / "cvae.keras")
    loaded = keras.saving.load_model(tmp_path / "cvae.keras", safe_mode=True)
    assert type(loaded) is keras_ae.ConditionalVAE and loaded.num_classes == 10
    assert int(loaded.training_steps.numpy()) == int(model.training_steps.numpy())
    np.testing.assert_array_equal(loaded(x, y), model(x, y))
    np.testing.assert_array_equal(loaded.sample(10, seed=5), model.sample(10, seed=5))
    np.testing.assert_array_equal(loaded.negative_elbo(x, y), model.negative_elbo(x, y))


def test_preset_save_and_load(trained, labelled, tmp_path):
    model, _ = trained
    _, _, held_out, held_out_labels = labelled
    card = keras_ae.save_preset(model, tmp_path / "my_cvae")
    assert card["model"]["class_name"] == "ConditionalVAE" and card["model"]["config"]["num_classes"] == 10
    loaded = keras_ae.load(tmp_path / "my_cvae")
    x, y = held_out[:16], held_out_labels[:16]
    np.testing.assert_array_equal(loaded(x, y), model(x, y))
    np.testing.assert_array_equal(loaded.sample(10, labels=4, seed=2), model.sample(10, labels=4, seed=2))


def test_the_iwae_objective_trains_the_k_sample_bound_given_the_labels(labelled, tmp_path):
    """objective="iwae": the training loss is the model's own 5-draw bound on -log p(x | y) on the same draws, below the
    ELBO; training lowers the bound, and the choice survives a reload."""
    images, labels, held_out, held_out_labels = labelled
    x, y = (images[:64] > 0.5).astype("float32"), labels[:64]
    keras.utils.set_random_seed(0)
    model = small_model(objective="iwae", samples=5)
    state = model.seed_generator.state.numpy()
    loss = np.asarray(model.loss_terms(x, training=True, y=y)["loss"])
    model.seed_generator.state.assign(state)
    np.testing.assert_allclose(loss, model.importance_weighted_bound(x, y, samples=5, seed=model.seed_generator), rtol=1e-5)

    test_x, test_y = (held_out[:256] > 0.5).astype("float32"), held_out_labels[:256]
    before = float(np.mean(model.importance_weighted_bound(test_x, test_y, samples=20)))
    model.compile(optimizer=keras.optimizers.Adam(2e-3))
    history = model.fit((images[:1024] > 0.5).astype("float32"), labels[:1024], batch_size=64, epochs=2, verbose=0)
    after = float(np.mean(model.importance_weighted_bound(test_x, test_y, samples=20)))
    assert after < before - 100 and history.history["loss"][-1] < history.history["loss"][0]
    trained_loss = float(np.mean(model.loss_terms(test_x, training=False, y=test_y)["loss"]))
    elbo = np.mean([np.mean(model.negative_elbo(test_x, test_y, seed=seed)) for seed in range(5)])
    assert trained_loss < elbo - 5.0  # the 5-draw bound, well below the one-draw ELBO the "elbo" objective trains

    model.save(tmp_path / "iwae_cvae.keras")
    again = keras.saving.load_model(tmp_path / "iwae_cvae.keras", safe_mode=True)
    assert (again.objective, again.samples, again.num_classes) == ("iwae", 5, 10)
    assert keras_ae.ConditionalVAE.from_config(model.get_config()).objective == "iwae"
    np.testing.assert_array_equal(again.importance_weighted_bound(x, y, samples=5), model.importance_weighted_bound(x, y, samples=5))


RELOAD_WITHOUT_KERAS_AE = """
import json, sys
import numpy as np
import tensorflow as tf
served = tf.saved_model.load(sys.argv[1])
x, labels = np.load(sys.argv[2]), np.load(sys.argv[3])
assert "keras_ae" not in sys.modules
asked = tf.constant([3, 3, 7, 0, 9], tf.int32)
first, again = served.sample(asked, tf.constant(1)), served.sample(asked, tf.constant(1))
other = served.sample(tf.constant([8, 8, 8, 8, 8], tf.int32), tf.constant(1))
try:
    served.serve(x, tf.constant(np.full(len(x), 10), tf.int32))
    refused = False
except tf.errors.InvalidArgumentError as error:
    refused = "label outside" in str(error)
print(json.dumps({
    "serve": served.serve(x, labels).numpy().tolist(),
    "anomaly_score": served.anomaly_score(x, labels).numpy().tolist(),
    "z_mean": served.encode(x, labels)["z_mean"].numpy().tolist(),
    "sample": first.numpy().tolist(),
    "repeatable": bool(np.array_equal(first.numpy(), again.numpy())),
    "labels_matter": float(np.abs(first.numpy() - other.numpy()).mean()),
    "refused": refused,
}))
"""


def test_export_takes_labels_and_reloads_without_keras_ae(trained, labelled, tmp_path):
    model, _ = trained
    _, _, held_out, held_out_labels = labelled
    x, y = held_out[:8], held_out_labels[:8].astype("int32")
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "labels.npy", y)
    keras_ae.export(model, tmp_path / "served")
    result = subprocess.run(
        [sys.executable, "-c", RELOAD_WITHOUT_KERAS_AE, str(tmp_path / "served"), str(tmp_path / "x.npy"), str(tmp_path / "labels.npy")],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    served = json.loads(result.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(served["serve"], model(x, y), atol=1e-5)
    np.testing.assert_allclose(served["anomaly_score"], model.anomaly_score(x, y), rtol=1e-5)
    np.testing.assert_allclose(served["z_mean"], model.embed(x, y), atol=1e-5)
    assert np.shape(served["sample"]) == (5, 28, 28, 1) and 0.0 <= np.min(served["sample"]) <= np.max(served["sample"]) <= 1.0
    assert served["repeatable"] and served["labels_matter"] > 0.02 and served["refused"]


def test_keras_ae_train_and_measure_a_card_with_labels(data_root, tmp_path):
    card = cards.model_card("cvae_mnist")
    assert card["data"]["with_labels"] and card["model"]["config"]["num_classes"] == 10
    model, history, stats = keras_ae.train(card, epochs=1, train_split="train[:2000]", validation_split="test[:500]", verbose=0)
    assert type(model) is keras_ae.ConditionalVAE and {"loss", "val_loss", "val_kl_loss"} <= set(history.history)
    metrics = evaluate.measure(card, model, limit=500, iwae_samples=5)
    assert metrics["test_examples"] == 500 and metrics["iwae_samples"] == 5
    assert 0 < metrics["reconstruction_mse"] < 0.2 and metrics["psnr_db"] > 5
    assert 0 < metrics["iwae_nll_nats"] <= metrics["negative_elbo_nats"] + 1.0
    task = keras_ae.models.task_for(model)
    assert task.headline(metrics).startswith("-log p(x given the label)")
    images, labels = data.bundled_sample("mnist")
    pictures = task(model).draw(images, labels, tmp_path, "cvae_mnist")
    assert set(pictures) == {"Reconstructions", "Samples by class"}
    assert all(Path(path).stat().st_size > 1000 for path in pictures.values())
    assert "cvae" not in keras_ae.models.by_short_name() and "sample" in task.commands()  # --data cards carry no labels


def test_the_benchmark_classifier_judges_samples(trained, data_root, tmp_path):
    model, _ = trained
    classifier, accuracy = conditional_benchmark.train_classifier(
        "mnist", epochs=3, train_split="train[:4000]", test_split="test[:500]"
    )
    assert accuracy > 0.9
    per_class = conditional_benchmark.class_accuracy(classifier, model, samples_per_class=30, seed=0, batch_size=16)
    assert per_class.shape == (10,) and np.all((0 <= per_class) & (per_class <= 1)) and per_class.mean() > 0.5
    np.testing.assert_array_equal(per_class, conditional_benchmark.class_accuracy(classifier, model, 30, seed=0, batch_size=16))
    summary = conditional_benchmark.summarize([{"per_class": per_class.tolist()}, {"per_class": (per_class * 0.5).tolist()}])
    assert summary["mean"]["mean"] == pytest.approx(0.75 * per_class.mean())
    untrained = tmp_path / "untrained"
    untrained.mkdir()
    card = cards.model_card("cvae_mnist")
    (untrained / "card.json").write_text(json.dumps({**card, "weights": {**card["weights"], "sha256": None}}))
    results = conditional_benchmark.main([str(untrained), "--output", str(tmp_path / "conditional.json")])
    assert results["skipped"] == {str(untrained): "no trained weights yet"} and not results["entries"]
    assert json.loads((tmp_path / "conditional.json").read_text())["command"].endswith(f"--output {tmp_path / 'conditional.json'}")
    entries = {"cvae_mnist": {"summary": summary}}
    assert "| **mean** | **" in conditional_benchmark.table({"mnist": {"test_accuracy": accuracy}}, entries)
