"""I-AutoRec on the real MovieLens ml-latest-small: it predicts held-out ratings well beyond the global mean."""

import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_ae
from keras_ae import evaluate, networks, ratings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from recommend_baselines import fit_biased_mf, global_mean, predict_biased_mf  # noqa: E402

L2 = 0.03  # with the per-item summed loss; 1e-3 overfits after ~5 epochs, 0.3 underfits
EPOCHS = 10


def build(users, l2=L2, rating_range=(0.5, 5.0)):
    pair = networks.dense((users,), 500, activation="sigmoid", output_activation="linear",
                          kernel_regularizer=keras.regularizers.L2(l2))
    return keras_ae.AutoRec(*pair, rating_range=rating_range, seed=0)


@pytest.fixture(scope="module")
def explicit(data_root):
    r = ratings.read_ratings("ml-latest-small", data_dir=data_root)
    return ratings.explicit_split(r, ratings.split_strong_generalization(r, seed=0))


@pytest.fixture(scope="module")
def trained(explicit):
    keras.utils.set_random_seed(0)
    train = explicit.train
    model = build(train.shape[0], rating_range=(train.data.min(), train.data.max()))
    model.set_user_ids(explicit.user_ids)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    start = time.perf_counter()
    history = model.fit(ratings.batches(train.T.tocsr(), 64, shuffle=True), epochs=EPOCHS, verbose=0)
    return model, history, time.perf_counter() - start


def test_it_predicts_held_out_ratings_well_beyond_the_global_mean(trained, explicit):
    model, history, seconds = trained
    users, items, actual = explicit.test
    assert history.history["loss"][-1] < history.history["loss"][0]
    predicted = model.predict_ratings(explicit.train, users, items)
    assert predicted.shape == actual.shape
    assert predicted.min() >= 0.5 and predicted.max() <= 5.0
    autorec = evaluate.rmse(predicted, actual)
    train = explicit.train.tocoo()
    mean = evaluate.rmse(np.full(len(actual), global_mean(train.data)), actual)
    mf = evaluate.rmse(predict_biased_mf(fit_biased_mf(train.row, train.col, train.data, *train.shape, seed=0), users, items), actual)
    print(f"\nheld-out test RMSE over {len(actual)} ratings: AutoRec {autorec:.4f} ({EPOCHS} epochs, {seconds:.1f} s), "
          f"biased MF {mf:.4f}, global mean {mean:.4f}")
    assert autorec < mean - 0.05, (autorec, mean, mf)


def test_measure_and_headline_speak_of_observed_ratings(trained, explicit):
    model, _, _ = trained
    items = explicit.train.T.tocsr()[:300]
    task = keras_ae.models.task_for(model)(model)
    metrics = task.measure(items, items)
    assert set(metrics) == {"observed_rmse"} and 0 < metrics["observed_rmse"] < 1.5
    assert "RMSE" in task.headline(metrics)
    assert task.draw(None, None, "unused", "x") == {}


def test_the_loss_ignores_unobserved_entries():
    model = build(4, l2=0.0)
    x = np.array([[4.0, 0.0, 3.0, 0.0]], "float32")
    base = np.asarray(model(x))
    observed = x != 0
    moved = np.where(observed, base, base + 10.0)  # only the unobserved predictions change
    from keras_ae.models.autorec import masked_squared_error

    np.testing.assert_allclose(masked_squared_error(x, base), masked_squared_error(x, moved), rtol=1e-6)
    changed = masked_squared_error(x, np.where(observed, base + 10.0, base))  # an observed one changes it
    assert abs(float(changed[0]) - float(masked_squared_error(x, base)[0])) > 1.0
    with tf.GradientTape() as tape:
        reconstruction = tf.convert_to_tensor(base)
        tape.watch(reconstruction)
        loss = masked_squared_error(x, reconstruction)
    np.testing.assert_array_equal(tape.gradient(loss, reconstruction).numpy()[~observed], 0.0)
    expected = np.sum(((x - base) ** 2)[observed])
    np.testing.assert_allclose(np.asarray(model.loss_terms(x, training=False)["loss"]), [expected], rtol=1e-5)


def test_masking_noise_hides_observed_ratings_from_the_input_but_keeps_them_in_the_loss():
    pair = networks.dense((200,), 8, activation="sigmoid", output_activation="linear")
    model = keras_ae.AutoRec(*pair, input_dropout=0.5, seed=0)
    x = np.zeros((1, 200), "float32")
    x[0, ::2] = 4.0  # 100 observed ratings
    seen = []
    model.encoder.call = (lambda call: lambda inputs, **kwargs: seen.append(np.asarray(inputs)) or call(inputs, **kwargs))(model.encoder.call)
    noisy = float(model.loss_terms(x, training=True)["loss"][0])
    clean = float(model.loss_terms(x, training=False)["loss"][0])
    hidden = (x != 0) & (seen[0] == 0)
    assert 30 < hidden.sum() < 70 and np.all(seen[0][seen[0] != 0] == 4.0)  # hidden, not rescaled
    assert np.all(seen[1] == x)  # nothing hidden outside training
    decoded = np.asarray(model.decoder(model.encoder(seen[0])))
    np.testing.assert_allclose(noisy, np.sum(((x - decoded) ** 2)[x != 0]), rtol=1e-5)  # the hidden ones still count
    assert noisy != clean
    with pytest.raises(ValueError, match=r"code_dropout must lie in \[0, 1\)"):
        keras_ae.AutoRec(*networks.dense((4,), 2), code_dropout=1.0)
    again = keras_ae.AutoRec.from_config(keras_ae.AutoRec(*networks.dense((4,), 2), input_dropout=0.25, code_dropout=0.5).get_config())
    assert (again.input_dropout, again.code_dropout) == (0.25, 0.5)


def test_weight_decay_is_in_the_model_losses():
    model = build(6, l2=0.5)
    assert len(model.losses) >= 2 and float(sum(model.losses)) > 0
    assert float(sum(build(6, l2=0.0).losses)) == 0.0


def test_saving_a_preset_and_export_keep_user_ids_and_rating_range(tmp_path):
    model = build(5, rating_range=(1.0, 5.0))
    model.set_user_ids([10, 20, 30, 40, 50])
    matrix = np.array([[4, 0], [0, 3], [5, 1], [0, 0], [2, 2]], "float32")  # 5 users x 2 items
    expected = model.predict_ratings(matrix, [0, 1, 2, 4], [0, 1, 0, 1])
    assert expected.min() >= 1.0 and expected.max() <= 5.0
    with pytest.raises(ValueError, match="5 users"):
        model.set_user_ids([1, 2])

    model.save(tmp_path / "autorec.keras")
    loaded = keras.saving.load_model(tmp_path / "autorec.keras")
    keras_ae.save_preset(model, tmp_path / "preset")
    preset = keras_ae.load(tmp_path / "preset")
    for copy in (loaded, preset):
        assert isinstance(copy, keras_ae.AutoRec) and copy.rating_range == (1.0, 5.0)
        np.testing.assert_array_equal(copy.user_ids.numpy(), [10, 20, 30, 40, 50])
        np.testing.assert_allclose(copy.predict_ratings(matrix, [0, 1, 2, 4], [0, 1, 0, 1]), expected, rtol=1e-5)

    keras_ae.export(model, tmp_path / "served")
    served = tf.saved_model.load(str(tmp_path / "served"))
    items = matrix.T.copy()
    np.testing.assert_allclose(served.serve(items).numpy(), np.asarray(model(items)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(served.anomaly_score(items).numpy(), np.asarray(model.anomaly_score(items)), rtol=1e-5)
