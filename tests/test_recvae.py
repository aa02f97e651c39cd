"""RecVAE on a tiny synthetic ratings matrix: its network, its composite prior and KL weight, alternating updates, the
prior's refresh, config and preset round trips, and recommending unseen items."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

import keras_ae
from keras_ae import losses, networks
from keras_ae.models.recvae import PRIOR_WEIGHTS, WIDE_LOG_VARIANCE

USERS, ITEMS = 64, 40


@pytest.fixture(scope="module")
def histories():
    """Two tastes: users like the first or the second half of the items, each user a random part of it."""
    random = np.random.default_rng(0)
    taste = np.arange(USERS) % 2
    liked = (np.arange(ITEMS)[None] < ITEMS // 2) == (taste[:, None] == 0)
    return (liked & (random.random((USERS, ITEMS)) < 0.5)).astype("float32")


def build(**kwargs):
    pair = networks.summed_dense((ITEMS,), 4, hidden_units=(16, 16, 16), variational=True, output_activation="linear", seed=0)
    return keras_ae.RecVAE(*pair, seed=0, **kwargs)


def test_the_network_sums_every_earlier_hidden_output():
    encoder, decoder = networks.summed_dense((ITEMS,), 4, hidden_units=(16, 16, 16), variational=True)
    sums = [layer for layer in encoder.layers if isinstance(layer, keras.layers.Add)]
    assert [len(layer.input) for layer in sums] == [2, 3]  # the second layer adds the first's output, the third both
    assert sum(isinstance(layer, keras.layers.LayerNormalization) for layer in encoder.layers) == 3
    assert [output.shape[-1] for output in encoder.outputs] == [4, 4]
    assert [layer.name for layer in decoder.layers if layer.weights] == ["decoder_output"]
    with pytest.raises(ValueError, match="hidden_units of one width"):
        networks.summed_dense((ITEMS,), 4, hidden_units=(16, 8))


def test_the_composite_prior_is_the_scipy_mixture_and_the_kl_weight_grows_with_the_history(histories):
    random = np.random.default_rng(1)
    z, mean, log_var = (random.normal(size=(5, 4)) for _ in range(3))
    expected = np.log(sum(weight * stats.norm.pdf(z, loc, np.exp(0.5 * spread)) for weight, (loc, spread) in
                          zip(PRIOR_WEIGHTS, [(0.0, 0.0), (mean, log_var), (0.0, WIDE_LOG_VARIANCE)]))).sum(axis=-1)
    components = [(0.0, 0.0), (mean, log_var), (0.0, WIDE_LOG_VARIANCE)]
    np.testing.assert_allclose(losses.gaussian_mixture_log_density(z, components, PRIOR_WEIGHTS), expected, rtol=1e-5)
    terms = build(gamma=0.01).loss_terms(tf.constant(histories[:8]), training=False)
    weighted = np.asarray(terms["loss"]) - np.asarray(terms["reconstruction_loss"])
    np.testing.assert_allclose(weighted, 0.01 * histories[:8].sum(axis=1) * np.asarray(terms["kl_loss"]), rtol=1e-4, atol=1e-4)


def test_it_trains_by_alternating_updates_and_refreshes_the_prior_each_epoch(histories):
    model = build()
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    networks_of = {"encoder": model.encoder, "decoder": model.decoder, "old_encoder": model.old_encoder}
    start = {name: [np.array(weight) for weight in network.weights] for name, network in networks_of.items()}
    history = model.fit(histories, batch_size=16, epochs=8, verbose=0)
    assert history.history["loss"][-1] < 0.9 * history.history["loss"][0]
    assert {"loss", "reconstruction_loss", "kl_loss"} <= set(history.history)
    assert int(model.training_steps.numpy()) == 8 * 4
    assert int(model.optimizer.iterations.numpy()) == 8 * 4 * (3 + 1)  # 3 encoder updates and 1 decoder update a batch
    for old, new in zip(model.old_encoder.weights, model.encoder.weights):
        np.testing.assert_array_equal(old, new)  # refreshed at the end of the last epoch
    for name, network in networks_of.items():
        assert not all(np.array_equal(weight, before) for weight, before in zip(network.weights, start[name])), name
    assert not model.old_encoder.trainable_weights
    same_taste = model.recommend(histories[:2], k=5)[0]
    assert np.all(same_taste[0] <= ITEMS // 2) and np.all(same_taste[1] > ITEMS // 2)  # item ids default to 1..ITEMS


def test_it_recommends_only_unseen_items(histories):
    model = build()
    item_ids, scores = model.recommend(histories[:6], k=10)
    assert item_ids.shape == scores.shape == (6, 10) and np.all(np.diff(scores, axis=1) <= 0)
    for row, recommended in zip(histories[:6], item_ids):
        assert not set(recommended.tolist()) & set(model.item_ids.numpy()[row > 0].tolist())


def test_config_and_preset_round_trips_keep_the_model_and_its_prior(histories, tmp_path):
    model = build(gamma=0.02, encoder_updates=2, input_dropout=0.3)
    model.compile(optimizer="adam")
    model.fit(histories, batch_size=32, epochs=1, verbose=0)
    config = model.get_config()
    assert {key: config[key] for key in ("gamma", "encoder_updates", "input_dropout")} == {
        "gamma": 0.02, "encoder_updates": 2, "input_dropout": 0.3}
    assert "beta_cap" not in config and "total_anneal_steps" not in config
    again = keras_ae.RecVAE.from_config(config)
    again.set_weights(model.get_weights())
    np.testing.assert_allclose(again(histories), model(histories), atol=1e-6)
    keras_ae.save_preset(model, tmp_path / "preset")
    loaded = keras_ae.load(tmp_path / "preset")
    assert type(loaded) is keras_ae.RecVAE and loaded.gamma == 0.02 and loaded.encoder_updates == 2
    np.testing.assert_allclose(loaded(histories), model(histories), atol=1e-6)
    for old, saved in zip(model.old_encoder.weights, loaded.old_encoder.weights):
        np.testing.assert_array_equal(old, saved)
    np.testing.assert_array_equal(loaded.recommend(histories[:3], k=4)[0], model.recommend(histories[:3], k=4)[0])


def test_mixed_precision_trains_with_float32_losses(histories):
    """As Mult-VAE: the layers compute in float16, the loss scale optimizer steps each half, the terms are float32."""
    pair = networks.summed_dense((ITEMS,), 4, hidden_units=(16, 16), variational=True, output_activation="linear", seed=0,
                                 dtype="mixed_float16")
    model = keras_ae.RecVAE(*pair, seed=0, dtype="mixed_float16")
    model.compile(optimizer=keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(3e-3)))
    history = model.fit(histories, batch_size=16, epochs=4, verbose=0)
    assert all(np.isfinite(history.history["loss"])) and history.history["loss"][-1] < history.history["loss"][0]
    assert all(value.dtype == "float32" for value in model.loss_terms(tf.constant(histories[:4]), training=False).values())


@pytest.mark.parametrize("options, message", [
    ({"beta_cap": 0.2}, "takes no beta_cap"),
    ({"gamma": -1.0}, "gamma must be a number >= 0"),
    ({"encoder_updates": 0}, "encoder_updates must be an integer >= 1"),
    ({"input_dropout": 1.0}, "input_dropout"),
])
def test_bad_options_are_refused(options, message):
    with pytest.raises(keras_ae.errors.InputError, match=message):
        build(**options)
