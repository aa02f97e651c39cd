"""Mult-DAE and Mult-VAE on the real MovieLens ml-latest-small, on Liang et al.'s split by users."""

import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_ae
from keras_ae import evaluate, networks, ratings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from recommend_baselines import popularity_scores  # noqa: E402


@pytest.fixture(scope="module")
def split(data_root):
    return ratings.split_strong_generalization(ratings.read_ratings("ml-latest-small", data_dir=data_root), seed=0)


def build(family, items):
    if family == "vae":
        pair = networks.dense((items,), 200, hidden_units=(600,), activation="tanh", variational=True)
        return keras_ae.MultVAE(*pair, total_anneal_steps=100, seed=0)
    return keras_ae.MultDAE(*networks.dense((items,), 200, hidden_units=(600,), activation="tanh", output_activation="linear"), seed=0)


@pytest.fixture(scope="module", params=["dae", "vae"])
def trained(request, split):
    keras.utils.set_random_seed(0)
    model = build(request.param, split.train.shape[1])
    model.set_item_ids(split.item_ids)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = model.fit(ratings.batches(split.train, 100, shuffle=True), epochs=30, verbose=0)
    return model, history


def ndcg_at_100(scores, split):
    return float(evaluate.ndcg_at_k(scores, split.validation_held_out, 100, exclude=split.validation_fold_in).mean())


def test_it_learns_taste_well_beyond_popularity(trained, split):
    model, history = trained
    assert history.history["loss"][-1] < history.history["loss"][0]
    learned = ndcg_at_100(np.asarray(model.predict(split.validation_fold_in.toarray(), verbose=0)), split)
    popular = ndcg_at_100(popularity_scores(split.train, split.validation_fold_in), split)
    assert learned > 1.5 * popular, (learned, popular)


def test_recommend_speaks_the_datasets_ids_and_skips_what_was_seen(trained, split):
    model, _ = trained
    star_wars = [1, 260, 1196]  # Toy Story, Star Wars IV and V
    item_ids, scores = model.recommend([star_wars], k=10)
    assert item_ids.shape == scores.shape == (1, 10) and np.all(np.diff(scores[0]) <= 0)
    assert set(item_ids[0]) <= set(split.item_ids.tolist()) and not set(item_ids[0]) & set(star_wars)
    with_seen, _ = model.recommend([star_wars], k=10, exclude_seen=False)
    assert set(with_seen[0]) & set(star_wars)
    rows = split.validation_fold_in[:4]
    from_matrix, _ = model.recommend(rows, k=5)
    assert from_matrix.shape == (4, 5)
    with pytest.raises(ValueError, match=r"Unknown item ids \[999999999\]"):
        model.recommend([[1, 999999999]])
    with pytest.raises(ValueError, match=f"between 1 and the number of items \\({len(split.item_ids)}\\)"):
        model.recommend([star_wars], k=len(split.item_ids) + 1)


def test_the_export_recommends_the_same_and_a_preset_keeps_the_item_ids(trained, split, tmp_path):
    model, _ = trained
    rows = split.test_fold_in[:3].toarray()
    expected, _ = model.recommend(rows, k=7)
    keras_ae.export(model, tmp_path / "served")
    served = tf.saved_model.load(str(tmp_path / "served"))
    np.testing.assert_array_equal(served.recommend(rows, tf.constant(7))["item_ids"].numpy(), expected)
    keras_ae.save_preset(model, tmp_path / "preset")
    loaded = keras_ae.load(tmp_path / "preset")
    np.testing.assert_array_equal(loaded.item_ids.numpy(), split.item_ids)
    np.testing.assert_array_equal(loaded.recommend(rows, k=7)[0], expected)


def test_the_kl_weight_anneals_to_its_cap(split):
    model = build("vae", split.train.shape[1])
    model.compile(optimizer="adam")
    assert float(model.current_beta()) == 0.0
    model.fit(ratings.batches(split.train[:500], 50), epochs=3, verbose=0)  # 10 batches an epoch
    assert int(model.training_steps.numpy()) == 30 and float(model.current_beta()) == pytest.approx(0.2)
    assert float(build("vae", split.train.shape[1]).beta_cap) == 0.2


def test_bad_options_and_item_ids_are_refused(split):
    items = split.train.shape[1]
    with pytest.raises(ValueError, match="input_dropout"):
        keras_ae.MultDAE(*networks.dense((items,), 8), input_dropout=1.0)
    with pytest.raises(ValueError, match="z_mean, z_log_var"):
        keras_ae.MultVAE(*networks.dense((items,), 8))
    with pytest.raises(ValueError, match=f"has {items} items; got 3 item ids"):
        build("dae", items).set_item_ids([1, 2, 3])
