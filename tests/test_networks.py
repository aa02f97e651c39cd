"""The network builders: images of any size, signals, dropout, and input scaling that travels as weights."""

import numpy as np
import pytest
import tensorflow as tf

import keras
import keras_ae
from keras_ae import networks

IMAGE_SHAPES = [(28, 28, 1), (32, 32, 3), (64, 64, 3), (96, 96, 3), (30, 30, 1), (27, 33, 3)]
SIGNAL_SHAPES = [(140,), (140, 1), (99, 3)]
FEATURES = 140


def check_reconstructs_and_trains(model, shape, run_eagerly=True):
    """Reconstructions (and samples, where the family samples) have the input's shape; one fit step gives a finite loss.

    Eager by default: tracing the step would take most of this file's time.
    """
    x = np.random.default_rng(0).random((4, *shape), dtype=np.float32)
    assert model(x).shape == (4, *shape)
    if "sample" in keras_ae.models.task_for(model).commands():
        assert model.sample(2, seed=0).shape == (2, *shape)
    model.compile(optimizer="adam", run_eagerly=run_eagerly)
    assert np.isfinite(model.fit(x, epochs=1, batch_size=4, verbose=0).history["loss"][0])


@pytest.mark.parametrize("variational", [False, True], ids=["autoencoder", "vae"])
@pytest.mark.parametrize("shape", IMAGE_SHAPES, ids=lambda shape: "x".join(map(str, shape)))
def test_conv_takes_images_of_any_size_and_channels(shape, variational):
    family = keras_ae.VAE if variational else keras_ae.Autoencoder
    check_reconstructs_and_trains(family(*networks.conv(shape, 4, filters=(4, 8), variational=variational)), shape)


@pytest.mark.parametrize("variational", [False, True], ids=["autoencoder", "vae"])
@pytest.mark.parametrize("shape", SIGNAL_SHAPES, ids=lambda shape: "x".join(map(str, shape)))
def test_conv1d_takes_signals_of_any_length(shape, variational):
    family = keras_ae.VAE if variational else keras_ae.Autoencoder
    check_reconstructs_and_trains(family(*networks.conv1d(shape, 4, filters=(4, 8), variational=variational)), shape)


def test_images_that_fit_keep_the_zoo_layers():
    encoder, decoder = networks.build(
        kind="conv", input_shape=[28, 28, 1], latent_dim=32, filters=[32, 64], kernel_size=3, strides=2,
        dense_units=256, variational=True,
    )
    assert [layer.name for layer in encoder.layers] == [
        "x", "encoder_conv_0", "encoder_conv_1", "flatten", "encoder_dense", "z_mean", "z_log_var",
    ]
    assert [layer.name for layer in decoder.layers] == [
        "z", "decoder_dense", "decoder_reshape", "decoder_conv_transpose_0", "decoder_conv_transpose_1", "decoder_output",
        "reconstruction",
    ]
    assert (encoder.count_params(), decoder.count_params()) == (838336, 159169)


def test_odd_sizes_are_padded_evenly_and_cropped_back():
    encoder, decoder = networks.conv((27, 33, 3), 4, filters=(4, 8))
    assert encoder.get_layer("encoder_padding").padding == ((0, 1), (1, 2))
    assert decoder.get_layer("decoder_cropping").cropping == ((0, 1), (1, 2))
    assert decoder.get_layer("decoder_output").output.shape == (None, 28, 36, 3)
    check_reconstructs_and_trains(keras_ae.Autoencoder(encoder, decoder), (27, 33, 3), run_eagerly=False)


def test_a_feature_map_code_on_an_odd_size_round_trips(tmp_path):
    shape = (27, 33, 3)
    model = keras_ae.VAE(*networks.conv(shape, 4, filters=(4, 8), variational=True, spatial_code=True))
    assert model.code_shape == (7, 9, 4)
    x = np.random.default_rng(0).random((2, *shape), dtype=np.float32)
    assert model.decode(model.embed(x)).shape == (2, *shape)
    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    np.testing.assert_array_equal(reloaded.decode(reloaded.embed(x)), model.decode(model.embed(x)))


def test_conv_dropout_follows_every_hidden_block():
    encoder, decoder = networks.conv((28, 28, 1), 4, filters=(4, 8), dense_units=16, dropout=0.5)
    names = {layer.name for network in (encoder, decoder) for layer in network.layers}
    assert {
        "encoder_conv_0_dropout", "encoder_conv_1_dropout", "encoder_dense_dropout",
        "decoder_dense_dropout", "decoder_conv_transpose_0_dropout", "decoder_conv_transpose_1_dropout",
    } <= names
    model = keras_ae.Autoencoder(encoder, decoder)
    x = np.full((2, 28, 28, 1), 0.5, "float32")
    np.testing.assert_array_equal(model.predict(x, verbose=0), model.predict(x, verbose=0))


def raw_table(rows=64):
    """A table in raw units: every feature around 1000 with its own spread, the first one constant."""
    rng = np.random.default_rng(0)
    x = 1000 + 100 * rng.normal(size=FEATURES) + rng.uniform(1, 50, FEATURES) * rng.normal(size=(rows, FEATURES))
    x[:, 0] = 5.0
    return x.astype("float32")


def scaled_autoencoder(scaling, x):
    model = keras_ae.Autoencoder(*networks.dense((FEATURES,), 8, scaling=scaling))
    networks.adapt_scaling(model.encoder, model.decoder, x)
    return model


def test_minmax_scaling_maps_each_feature_to_the_unit_range_and_back_to_raw_units():
    x = raw_table()
    model = scaled_autoencoder("minmax", x)
    scaled = np.asarray(model.encoder.get_layer("scaling")(x))
    np.testing.assert_allclose(scaled[:, 1:].min(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(scaled[:, 1:].max(axis=0), 1.0, atol=1e-5)
    np.testing.assert_array_equal(scaled[:, 0], 0.0)
    reconstruction = model.predict(x, verbose=0)[:, 1:]
    assert np.all(reconstruction >= x[:, 1:].min(axis=0) - 1e-2) and np.all(reconstruction <= x[:, 1:].max(axis=0) + 1e-2)
    assert reconstruction.min() > 500
    model.compile(optimizer="adam")
    assert np.isfinite(model.fit(x, epochs=1, batch_size=32, verbose=0).history["loss"][0])


def test_standard_scaling_gives_each_feature_mean_zero_and_unit_deviation():
    x = raw_table()
    model = scaled_autoencoder("standard", x)
    scaled = np.asarray(model.encoder.get_layer("scaling")(x))
    np.testing.assert_allclose(scaled.mean(axis=0), 0.0, atol=1e-3)
    np.testing.assert_allclose(scaled[:, 1:].std(axis=0), 1.0, atol=1e-3)
    assert model.decoder.get_layer("reconstruction").activation.__name__ == "linear"
    assert model.decoder.layers[-1].name == "unscaling"


def test_conv1d_scales_raw_signals_per_feature():
    x = 1000 + 10 * np.random.default_rng(0).normal(size=(32, 99, 3)).astype("float32")
    card_network = {"kind": "conv1d", "input_shape": [99, 3], "latent_dim": 4, "filters": [4, 8], "scaling": "standard"}
    model = keras_ae.Autoencoder(*networks.build(**card_network))
    networks.adapt_scaling(model.encoder, model.decoder, x)
    scaled = np.asarray(model.encoder.get_layer("scaling")(x))
    np.testing.assert_allclose(scaled.std(axis=0), 1.0, atol=1e-3)
    assert model.predict(x, verbose=0).shape == x.shape


def test_scaling_statistics_travel_in_weights_archives_and_saved_models(tmp_path):
    x = raw_table()
    model = scaled_autoencoder("minmax", x)
    expected = model.predict(x, verbose=0)

    model.save_weights(tmp_path / "model.weights.h5")
    fresh = keras_ae.Autoencoder(*networks.dense((FEATURES,), 8, scaling="minmax"))
    fresh.load_weights(tmp_path / "model.weights.h5")
    np.testing.assert_array_equal(fresh.decoder.get_layer("unscaling").offset, x.min(axis=0))
    np.testing.assert_allclose(fresh.predict(x, verbose=0), expected, rtol=1e-6)

    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), expected, rtol=1e-6)

    keras_ae.export(model, tmp_path / "served")
    served = tf.saved_model.load(str(tmp_path / "served"))  # kept referenced: its variables die with it
    np.testing.assert_allclose(served.serve(tf.constant(x)), expected, rtol=1e-4)


def test_scaling_runs_in_float32_under_mixed_precision():
    keras.mixed_precision.set_dtype_policy("mixed_float16")
    x = raw_table()
    model = scaled_autoencoder("standard", x)
    assert model.encoder.get_layer("code").compute_dtype == "float16"
    assert model.decoder.get_layer("decoder_output").compute_dtype == "float16"
    assert model.decoder.get_layer("reconstruction").compute_dtype == "float32"  # the output activation, as Keras advises
    assert model.decoder.get_layer("unscaling").compute_dtype == "float32"
    reconstruction = model.predict(x, verbose=0)
    assert reconstruction.dtype == np.float32 and np.all(np.isfinite(reconstruction))
    assert reconstruction[:, 1:].min() > 500


def test_adapting_networks_without_scaling_changes_nothing():
    encoder, decoder = networks.dense((FEATURES,), 8)
    before = [np.array(weight) for weight in encoder.weights + decoder.weights]
    networks.adapt_scaling(encoder, decoder, raw_table())
    for old, new in zip(before, encoder.weights + decoder.weights):
        np.testing.assert_array_equal(old, new)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: networks.dense((FEATURES,), 8, scaling="log"), r"scaling 'log'; expected one of \['minmax', 'standard'\]"),
        (lambda: networks.conv1d((28, 28, 1), 8), r"\(length,\) or \(length, channels\); got \(28, 28, 1\)"),
        (lambda: networks.conv((28, 28), 8), r"\(height, width, channels\); got \(28, 28\)"),
        (
            lambda: scaled_autoencoder("minmax", np.zeros((4, 3), "float32")),
            r"examples of shape \(batch >= 1, 140\); got \(4, 3\)",
        ),
    ],
)
def test_bad_options_say_what_was_expected(build, message):
    with pytest.raises(ValueError, match=message):
        build()
