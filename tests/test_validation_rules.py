"""The test split is for the final number only: zoo recipes monitor validation data, training never falls back to the
test split, the kept epoch's losses are recorded, and a threshold is set from what users load."""

import copy

import numpy as np
import pytest

import keras_ae
from keras_ae import cards, kinds
from keras_ae.training import THRESHOLD_RULES, anomaly_threshold, finish

TINY = dict(batch_size=128, train_split="train[:512]", verbose=0)


@pytest.mark.parametrize("name", cards.list_models())
def test_every_zoo_recipe_monitors_a_validation_part_of_its_training_data(name):
    spec = keras_ae.model_card(name)["data"]
    assert spec["monitor_split"] == "validation" and spec["monitor_split"] != spec["test_split"]
    assert spec.get("validation_split") or spec.get("ratings"), f"{name} carves no validation part"


def test_a_card_that_monitors_its_test_split_is_refused():
    card = copy.deepcopy(keras_ae.model_card("ae_mnist"))
    card["data"]["monitor_split"] = "test"
    with pytest.raises(ValueError) as refused:
        cards.Card.from_json(card)
    assert "\n" not in str(refused.value) and "data.monitor_split" in str(refused.value) and "final number only" in str(refused.value)


def test_training_without_a_monitor_split_has_no_validation_data(data_root):
    card = copy.deepcopy(keras_ae.model_card("ae_mnist"))
    del card["data"]["monitor_split"]
    card["recipe"].update(epochs=1, early_stopping_patience=None)
    _, history, stats = keras_ae.train(card, data_dir=data_root, **TINY)
    assert not any(key.startswith("val_") for key in history.history) and "best_epoch" not in stats
    card["recipe"]["early_stopping_patience"] = 3
    with pytest.raises(ValueError, match="early_stopping_patience needs validation data"):
        keras_ae.train(card, data_dir=data_root, **TINY)


def test_early_stopping_records_the_kept_epochs_losses(data_root):
    card = copy.deepcopy(keras_ae.model_card("ae_mnist"))
    card["recipe"].update(epochs=4, early_stopping_patience=1,
                          optimizer={"class_name": "Adam", "config": {"learning_rate": 0.05}})  # noisy, so an early best
    _, history, stats = keras_ae.train(card, data_dir=data_root, validation_split="validation[:256]", **TINY)
    kept = int(np.argmin(history.history["val_loss"]))
    assert stats["best_epoch"] == history.epoch[kept] + 1
    assert stats["final_losses"]["val_loss"] == round(float(history.history["val_loss"][kept]), 4)


def test_the_threshold_comes_from_the_float32_preset_users_load(data_root, tmp_path):
    card = copy.deepcopy(keras_ae.model_card("ae_ecg5000"))
    card["recipe"].update(epochs=2, precision="mixed_bfloat16")
    model, history, stats = keras_ae.train(card, data_dir=data_root, verbose=0)
    written = finish(model, card, history, stats, tmp_path / "preset", data_dir=data_root)
    loaded = keras_ae.load(tmp_path / "preset")
    assert loaded.compute_dtype == "float32" and model.encoder.layers[-1].compute_dtype == "bfloat16"
    assert written["anomaly"] == {**written["anomaly"], **anomaly_threshold(loaded, written, data_root)}
    assert written["anomaly"]["threshold_source"] == THRESHOLD_RULES["best_accuracy"].format(split="train", percentile=99.0)


@pytest.mark.parametrize("rule", ["percentile", "mean_plus_std"])
def test_an_unlabelled_threshold_reads_only_the_normal_training_examples(data_root, rule):
    card = copy.deepcopy(keras_ae.model_card("ae_ecg5000"))
    card["anomaly"] = {"normal_label": 1, "threshold_rule": rule, "percentile": 95.0}
    model = keras_ae.load("ae_ecg5000")
    normal = kinds.Examples().arrays(card, "train", data_dir=data_root, every_label=False)[0]
    scores = np.asarray(model.anomaly_score(normal))
    expected = np.percentile(scores, 95.0) if rule == "percentile" else scores.mean() + scores.std()
    assert anomaly_threshold(model, card, data_root)["threshold"] == pytest.approx(expected, rel=1e-5)
