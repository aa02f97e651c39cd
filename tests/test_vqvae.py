"""VQ-VAE on real MNIST: its objective, EMA codebook and dead-code restarts, compression, saving and export; the codecs
of scripts/compression_benchmark.py."""

import json
import math
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

import keras_ae
from keras_ae import cards, evaluate
from keras_ae.models.vqvae import DEAD_CODE_USAGE, LAPLACE_EPSILON
from keras_ae.training import card_for_data

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import compression_benchmark as benchmark  # noqa: E402

CARD = {
    "name": "vqvae_test",
    "model": {"class_name": "VQVAE", "config": {"num_embeddings": 64, "seed": 0}},
    "network": {"kind": "conv", "input_shape": [28, 28, 1], "latent_dim": 8, "filters": [16, 32], "spatial_code": True,
                "code_activation": "linear"},
    "data": {"dataset": "mnist", "train_split": "train[:3000]", "test_split": "test[:500]",
             "monitor_split": "train[3000:3500]", "binarize": None},
    "recipe": {"epochs": 3, "batch_size": 64, "optimizer": {"class_name": "Adam", "config": {"learning_rate": 0.002}}, "seed": 0},
    "weights": {"file": "model.weights.h5"},
}

RELOAD_WITHOUT_KERAS_AE = """
import json, sys
import numpy as np
import tensorflow as tf
served = tf.saved_model.load(sys.argv[1])
x = np.load(sys.argv[2])
indices = served.compress(x)
try:
    served.decompress(tf.fill(tf.shape(indices), 64))
    refused = False
except tf.errors.InvalidArgumentError:
    refused = True
assert "keras_ae" not in sys.modules
print(json.dumps({"indices": indices.numpy().tolist(), "images": served.decompress(indices).numpy().tolist(),
                  "serve": served.serve(x).numpy().tolist(), "refused": refused}))
"""


@pytest.fixture(scope="module")
def trained(data_root):
    model, history, _ = keras_ae.train(CARD, precision="float32", verbose=0)  # compared exactly below
    return model, history


def copy_of(model):
    """A compiled copy, so a test's training steps leave the shared model alone."""
    twin = cards.build_model(CARD)
    twin.set_weights(model.get_weights())
    twin.compile(optimizer=keras.optimizers.Adam(1e-3))
    return twin


def test_it_trains_on_real_mnist_and_uses_several_codes(trained):
    model, history = trained
    assert {"loss", "reconstruction_loss", "commitment_loss", "perplexity", "val_perplexity"} <= set(history.history)
    assert history.history["loss"][-1] < 0.3 * history.history["loss"][0]
    assert history.history["perplexity"][-1] > 4 and history.history["val_perplexity"][-1] > 4
    metrics = evaluate.measure(CARD, model, limit=500)
    assert metrics["psnr_db"] > 17 and metrics["bits_per_image"] == 7 * 7 * 6 and metrics["code_perplexity"] > 4
    assert keras_ae.models.task_for(model).headline(metrics) == f"PSNR {metrics['psnr_db']:.2f} dB at 294 bits/image"
    assert keras_ae.models.task_for(model).card_columns()["PSNR dB at bits/image"](metrics) == f"{metrics['psnr_db']:.2f} at 294"


def test_the_straight_through_gradient_reaches_the_encoder(trained, mnist_images):
    model, _ = trained
    x = mnist_images[:16]
    _, quantized = model.nearest_codes(model.encoder(x))
    with tf.GradientTape() as tape:
        tape.watch(quantized)
        at_codes = ops.mean(model.squared_error(x, model.decoder(quantized)))
    decoder_input_gradient = tape.gradient(at_codes, quantized)
    with tf.GradientTape(persistent=True) as tape:
        reconstruction = ops.mean(model.loss_terms(x, training=False)["reconstruction_loss"])
        copied_through = ops.sum(model.encoder(x) * decoder_input_gradient)  # what the identity straight through gives
    weights = model.encoder.trainable_weights
    for got, expected in zip(tape.gradient(reconstruction, weights), tape.gradient(copied_through, weights)):
        assert float(tf.norm(got)) > 0
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


def test_the_codebook_moves_by_moving_averages_and_no_gradient_moves_it(trained, mnist_images):
    model = copy_of(trained[0])
    x = mnist_images[:64]
    assert not any(variable is model.codebook for variable in model.trainable_weights)
    with tf.GradientTape() as tape:
        loss = ops.mean(model.loss_terms(x, training=False)["loss"])
    assert tape.gradient(loss, model.codebook) is None
    vectors = np.asarray(model.encoder(x)).reshape(-1, 8)
    assignments = np.eye(64)[np.asarray(model.compress(x)).ravel()]
    cluster_size = 0.99 * np.asarray(model.ema_cluster_size) + 0.01 * assignments.sum(axis=0)
    embedding_sum = 0.99 * np.asarray(model.ema_embedding_sum) + 0.01 * assignments.T @ vectors
    total = cluster_size.sum()
    expected = embedding_sum / ((cluster_size + LAPLACE_EPSILON) / (total + 64 * LAPLACE_EPSILON) * total)[:, None]
    before = np.asarray(model.codebook).copy()
    model.train_on_batch(x)
    live = cluster_size >= DEAD_CODE_USAGE
    assert live.sum() > 4 and not np.allclose(np.asarray(model.codebook)[live], before[live])
    np.testing.assert_allclose(np.asarray(model.codebook)[live], expected[live], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(model.ema_cluster_size)[live], cluster_size[live], rtol=1e-5)


def test_a_dead_code_restarts_at_an_encoder_output_of_the_batch(trained, mnist_images):
    model = copy_of(trained[0])
    x = mnist_images[:64]
    codebook, cluster_size = np.array(model.codebook), np.array(model.ema_cluster_size)
    codebook[5], cluster_size[5] = 1e3, 0.0  # code 5: far from every encoder output, and unused
    model.codebook.assign(codebook)
    model.ema_cluster_size.assign(cluster_size)
    assert not np.any(np.asarray(model.compress(x)) == 5)
    vectors = np.asarray(model.encoder(x)).reshape(-1, 8)
    model.train_on_batch(x)
    restarted = np.asarray(model.codebook)[5]
    assert np.min(np.abs(vectors - restarted).max(axis=1)) < 1e-5
    assert float(model.ema_cluster_size[5]) == 1.0


def test_it_trains_under_mixed_bfloat16_with_a_float32_codebook(mnist_images):
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    model = cards.build_model(CARD)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    logs = model.train_on_batch(mnist_images[:64], return_dict=True)
    assert np.isfinite(logs["loss"]) and model.codebook.dtype == "float32"
    assert np.all(np.isfinite(np.asarray(model.codebook))) and model.compress(mnist_images[:4]).dtype == "int32"


def test_compress_and_decompress_give_the_model_output(trained, mnist_images):
    model, _ = trained
    x = mnist_images[:32]
    indices = model.compress(x)
    assert indices.dtype == "int32" and tuple(indices.shape) == (32, 7, 7)
    assert 0 <= int(ops.min(indices)) and int(ops.max(indices)) < 64
    np.testing.assert_array_equal(np.asarray(model.decompress(indices)), np.asarray(model(x)))
    np.testing.assert_array_equal(np.asarray(model.decompress(np.asarray(indices, "uint8"))), np.asarray(model(x)))
    assert model.bits_per_image == 7 * 7 * math.log2(64)
    vector_code = keras_ae.VQVAE(*keras_ae.networks.dense((28, 28, 1), 4, code_activation="linear"), num_embeddings=16)
    assert vector_code.bits_per_image == 4 and tuple(vector_code.compress(x).shape) == (32,)


@pytest.mark.parametrize("indices, got", [
    (np.zeros((2, 7, 7), "float32"), "got dtype float32"),
    (np.zeros((2, 7, 6), "int32"), "got shape (2, 7, 6)"),
    (np.zeros((7, 7), "int64"), "got shape (7, 7)"),
    (np.full((2, 7, 7), 64), "got values from 64 to 64"),
    (np.full((2, 7, 7), -1), "got values from -1 to -1"),
])
def test_bad_indices_are_refused_in_one_line(trained, indices, got):
    model, _ = trained
    with pytest.raises(ValueError) as error:
        model.decompress(indices)
    message = str(error.value)
    assert message == f"VQVAE.decompress expects integer code indices of shape (batch, 7, 7) in [0, 64); {got}."


def test_decompress_inside_an_xla_function_is_refused_not_clamped():
    """XLA drops the range assertion and clamps the gather: a bad index would silently decode as code 63."""
    decompress = tf.function(cards.build_model(CARD).decompress, jit_compile=True)
    with pytest.raises(Exception) as error:  # autograph hands keras_ae's InputError on inside its StagingError
        decompress(tf.fill((2, 7, 7), 64))
    assert str(error.value).splitlines()[-1].strip() == (
        "InputError: VQVAE.decompress expects integer code indices of shape (batch, 7, 7) in [0, 64); "
        "got a call inside an XLA-compiled function, which skips that check: call it outside one."
    )  # the last line: tf.function puts the call's traceback above it


def test_keras_file_and_preset_round_trips_restore_identical_outputs(trained, mnist_images, tmp_path):
    model, _ = trained
    x = mnist_images[:16]
    model.save(tmp_path / "vqvae.keras")
    restored = keras.saving.load_model(tmp_path / "vqvae.keras", safe_mode=True)
    keras_ae.save_preset(model, tmp_path / "preset")
    loaded = keras_ae.load(tmp_path / "preset")
    for other in (restored, loaded):
        assert type(other) is keras_ae.VQVAE and other.get_config()["num_embeddings"] == 64
        np.testing.assert_array_equal(np.asarray(other.codebook), np.asarray(model.codebook))
        np.testing.assert_array_equal(np.asarray(other.ema_cluster_size), np.asarray(model.ema_cluster_size))
        np.testing.assert_array_equal(np.asarray(other(x)), np.asarray(model(x)))
        np.testing.assert_array_equal(np.asarray(other.compress(x)), np.asarray(model.compress(x)))


def test_the_export_compresses_and_decompresses_without_keras_ae(trained, mnist_images, tmp_path):
    model, _ = trained
    x = mnist_images[:8]
    np.save(tmp_path / "x.npy", x)
    keras_ae.export(model, tmp_path / "served")
    result = subprocess.run([sys.executable, "-c", RELOAD_WITHOUT_KERAS_AE, str(tmp_path / "served"), str(tmp_path / "x.npy")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    served = json.loads(result.stdout.strip().splitlines()[-1])
    np.testing.assert_array_equal(served["indices"], model.compress(x))
    np.testing.assert_allclose(served["images"], model.decompress(model.compress(x)), atol=1e-5)
    np.testing.assert_allclose(served["serve"], model(x), atol=1e-5)
    assert served["refused"]


def test_the_family_declares_itself_and_the_zoo_cards_build_a_7x7_code():
    task = keras_ae.models.task_for(keras_ae.VQVAE)
    assert task.short_name == "vqvae" and task.commands() == ("info", "evaluate", "export", "reconstruct", "score", "embed")
    for name in ("vqvae_mnist", "vqvae_fashion_mnist"):
        model = cards.build_model(keras_ae.model_card(name))
        assert model.code_positions == (7, 7) and model.bits_per_image == 392
    with pytest.raises(ValueError, match="A VQVAE encoder must return one code"):
        keras_ae.VQVAE(*keras_ae.networks.dense((28, 28, 1), 4, variational=True))


# --- The codecs of scripts/compression_benchmark.py ---------------------------------------------------------------------


def digit(mnist_images, index=0):
    return np.round(mnist_images[index] * 255).astype("uint8")


def test_jpeg_payload_is_the_scan_data_after_the_hand_found_sos_segment(mnist_images):
    data = benchmark.encode(digit(mnist_images), "JPEG", 50)
    # Pillow's grayscale baseline JPEG, segment by segment: SOI 2 + APP0 18 + DQT 69 + SOF0 13 + DHT 33 (DC) + DHT 183 (AC)
    # = 318 bytes, then the SOS segment (marker and 8 bytes) at 318..327: the scan data starts at byte 328.
    assert data[318:320] == b"\xff\xda" and int.from_bytes(data[320:322], "big") == 8
    assert benchmark.jpeg_scan_data(data) == data[328:-2] and data[-2:] == b"\xff\xd9"
    assert benchmark.payload(data) == data[328:-2]


def test_webp_payload_is_the_vp8_chunk_and_both_payloads_are_smaller(mnist_images):
    for index in range(3):
        for codec in benchmark.CODECS:
            data = benchmark.encode(digit(mnist_images, index), codec, 10)
            assert 0 < len(benchmark.payload(data)) < len(data)
    data = benchmark.encode(digit(mnist_images), "WEBP", 10)
    vp8 = benchmark.webp_chunk_payload(data)
    assert data[12:16] == b"VP8 " and len(data) - len(vp8) == 20 and vp8[3:6] == b"\x9d\x01\x2a"  # VP8's start code


def test_codec_points_psnr_and_the_same_or_more_bytes_rule(mnist_images):
    images = np.round(mnist_images[:20] * 255).astype("uint8")
    assert benchmark.psnr_db(0.0) == math.inf and benchmark.psnr_db(0.01) == pytest.approx(20.0)
    low, high = (benchmark.codec_point(images, "JPEG", quality) for quality in (5, 90))
    assert low["payload_bytes"] < high["payload_bytes"] and low["psnr_db"] < high["psnr_db"] < math.inf
    decoded = np.stack([benchmark.decode(benchmark.encode(image, "JPEG", 90)) for image in images])
    assert high["mse"] == pytest.approx(np.mean(np.square(decoded / 255.0 - images / 255.0)))
    curve = [{"quality": 1, "payload_bytes": 40.0}, {"quality": 2, "payload_bytes": 49.0}, {"quality": 3, "payload_bytes": 60.0}]
    assert benchmark.at_same_or_more_bytes(curve, 49.0)["quality"] == 2
    assert benchmark.at_same_or_more_bytes(curve, 61.0) is None
    with pytest.raises(ValueError, match="Codecs take uint8 images"):
        benchmark.encode(mnist_images[0], "JPEG", 50)


def test_train_data_with_a_conv_network_gives_vqvae_a_grid_of_codes(tmp_path):
    images = np.random.default_rng(0).random((16, 28, 28, 1), dtype="float32")
    np.save(tmp_path / "images.npy", images)
    conv = cards.build_model(card_for_data(str(tmp_path / "images.npy"), family="vqvae", network="conv", latent_dim=8))
    dense = cards.build_model(card_for_data(str(tmp_path / "images.npy"), family="vqvae", network="dense", latent_dim=8))
    assert conv.code_positions == (7, 7) and conv.bits_per_image == 49 * 8
    assert dense.code_positions == ()
    vae = card_for_data(str(tmp_path / "images.npy"), family="vae", network="conv")
    assert vae["network"]["variational"] and "spatial_code" not in vae["network"]
