"""Recommenders as zoo entries on the real ml-latest-small: cards that train, measure, save and recommend by name."""

import json
import subprocess

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_ae
from keras_ae import cards, evaluate, kinds, networks, ratings
from keras_ae.training import finish
from conftest import console_script

ENTRIES = ("multvae_ml_latest_small", "autorec_ml_latest_small")


@pytest.fixture(scope="module", params=ENTRIES)
def short_run(request, data_root, tmp_path_factory):
    """The entry's own card, trained for two epochs through keras_ae.train and finished as a preset folder."""
    card = cards.model_card(request.param)
    model, history, stats = keras_ae.train(card, epochs=2, data_dir=data_root, verbose=0)
    folder = tmp_path_factory.mktemp(request.param)
    return card, model, finish(model, card, history, stats, folder, data_dir=data_root), folder


def test_the_card_rebuilds_its_split_and_checks_its_hash(data_root):
    card = cards.model_card("multvae_ml_latest_small")
    split = ratings.card_split(card["data"], data_root)
    assert split.heldout_hash == card["data"]["heldout_hash"]
    assert split.train.shape[1] == card["network"]["input_shape"][0]
    with pytest.raises(ValueError, match="not the one the card was made from"):
        ratings.card_split({**card["data"], "heldout_hash": "0" * 64}, data_root)
    with pytest.raises(ValueError, match="data.ratings must be one of"):
        ratings.card_split({**card["data"], "ratings": "both"}, data_root)


def test_explicit_targets_are_the_held_out_ratings_of_items_that_have_some(data_root):
    spec = cards.model_card("autorec_ml_latest_small")["data"]
    explicit = ratings.card_split(spec, data_root)
    inputs, targets = ratings.split_matrices(spec, "test", data_root)
    users, items, values = explicit.test
    assert targets.nnz == len(values) and np.isclose(targets.sum(), values.sum())
    assert np.all(targets.getnnz(axis=1) > 0) and inputs.shape == targets.shape == (len(np.unique(items)), len(explicit.user_ids))
    assert inputs.multiply(targets).nnz == 0  # nothing to predict is in the input
    assert kinds.Ratings().count(spec, "test[:10]", data_dir=data_root) == 10


def test_an_entry_trains_measures_saves_and_loads_from_its_card(short_run):
    card, model, written, folder = short_run
    metrics = evaluate.measure(card, model, data_dir=None)
    key = "ndcg@100" if card["model"]["class_name"] == "MultVAE" else "rmse"
    assert np.isfinite(metrics[key]) and metrics["test_examples"] > 0
    again = keras_ae.load(folder)
    history = [1, 260, 1196]
    np.testing.assert_allclose(again.recommend([history], k=5)[1], model.recommend([history], k=5)[1], rtol=1e-5)
    assert written["training"]["epochs"] == 2 and "metrics" not in written


def test_the_command_recommends_with_titles_and_refuses_bad_input(short_run, data_root):
    card, model, _, folder = short_run
    run = lambda *args: subprocess.run([console_script(), "recommend", str(folder), *args], capture_output=True, text=True,
                                       env={"KERAS_AE_DATA": data_root, "PATH": ""})
    result = run("--items", "1,260,1196", "-k", "5")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 5 and lines[0].lstrip().startswith("1.")
    titles = ratings.item_titles("ml-latest-small", data_dir=data_root)
    assert all(any(line.endswith(title) for title in titles.values()) for line in lines)
    assert not any(f" {item} " in line for line in lines for item in (1, 260, 1196))  # seen items are not recommended
    for args, message in ((["--items", "1,99999999"], "Unknown item ids [99999999]"),
                          (["--items", "1", "-k", "100000"], "k must be between 1 and the number of items"),
                          (["--items", "1:5,x"], "--items must be comma-separated item ids")):
        bad = run(*args)
        assert bad.returncode == 2 and message in bad.stderr and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    empty = run("--items", "", "-k", "3")
    if card["model"]["class_name"] == "MultVAE":
        assert empty.returncode == 0 and "most popular" in empty.stdout.splitlines()[0]
        popular = np.argsort(-model.item_popularity.numpy())[:3]
        assert [int(line.split()[1]) for line in empty.stdout.splitlines()[1:]] == model.item_ids.numpy()[popular].tolist()
    else:
        assert empty.returncode == 2 and "needs at least one rating" in empty.stderr


def test_autorec_folds_a_new_user_in_by_ridge_regression():
    keras.utils.set_random_seed(0)
    model = keras_ae.AutoRec(*networks.dense((7,), 4, activation="sigmoid", output_activation="linear"), items=12, fold_in_l2=0.5)
    codes = np.random.default_rng(0).normal(size=(12, 4)).astype("float32")
    model.item_codes.assign(codes)
    model.item_ids.assign(np.arange(100, 112))
    history = {101: 5.0, 104: 2.0, 110: 4.0}
    rated = np.array([1, 4, 10])
    # Independent closed form: w = (A^T A + l2 I)^-1 A^T r over the rated items' codes A.
    weights = np.linalg.solve(codes[rated].T @ codes[rated] + 0.5 * np.eye(4), codes[rated].T @ np.array([5.0, 2.0, 4.0]))
    expected = codes @ weights
    item_ids, scores = model.recommend([history], k=9)
    order = np.argsort(-np.where(np.isin(np.arange(12), rated), -np.inf, expected))[:9]
    assert item_ids[0].tolist() == (100 + order).tolist()
    np.testing.assert_allclose(scores[0], expected[order], rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="needs at least one rating"):
        model.recommend([[]])


def test_autorec_export_recommends_as_the_model_does(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras_ae.AutoRec(*networks.dense((7,), 4, activation="sigmoid", output_activation="linear"), items=12)
    model.item_codes.assign(np.random.default_rng(1).normal(size=(12, 4)).astype("float32"))
    model.item_ids.assign(np.arange(100, 112))
    keras_ae.export(model, tmp_path / "saved")
    rows = np.zeros((1, 12), "float32")
    rows[0, [2, 5]] = [4.0, 1.0]
    served = tf.saved_model.load(str(tmp_path / "saved")).signatures["recommend"](ratings=tf.constant(rows), k=tf.constant(4))
    item_ids, scores = model.recommend(rows, k=4)
    assert served["item_ids"].numpy().tolist() == item_ids.tolist()
    np.testing.assert_allclose(served["scores"].numpy(), scores, rtol=1e-5)


@pytest.mark.parametrize("name", ENTRIES)
def test_the_committed_entries_measure_what_their_cards_say(name, data_root):
    card = cards.model_card(name)
    model = keras_ae.load(name)
    measured = evaluate.measure(card, model, data_dir=data_root)
    for key in ("ndcg@100", "recall@20", "recall@50", "rmse"):
        if key in card["metrics"]:
            assert measured[key] == pytest.approx(card["metrics"][key], abs=1e-4), key
    assert json.dumps(card["terms"]).count("research use only") == 1
