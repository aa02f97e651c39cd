"""A recipe with `initial_weights` fine-tunes a preset of the same network, pinned by its weights' sha256."""

import copy

import numpy as np
import pytest

import keras_ae

TINY = dict(batch_size=128, train_split="train[:256]", validation_split="test[:128]", verbose=0)


def fine_tuning_card(learning_rate=1e-3, **start):
    """ae_mnist's card, one epoch, starting from ae_mnist's own weights (or from `start`)."""
    card = copy.deepcopy(keras_ae.model_card("ae_mnist"))
    card["recipe"].update(epochs=1, steps_per_execution=1, learning_rate_schedule=None,
                          optimizer={"class_name": "SGD", "config": {"learning_rate": learning_rate}})
    card["recipe"]["initial_weights"] = {"preset": "ae_mnist", "sha256": card["weights"]["sha256"], **start}
    return card


def test_training_starts_from_the_presets_weights(data_root):
    pretrained = keras_ae.load("ae_mnist").get_weights()
    unmoved, _, _ = keras_ae.train(fine_tuning_card(learning_rate=0.0), data_dir=data_root, **TINY)
    assert all(np.array_equal(a, b) for a, b in zip(unmoved.get_weights(), pretrained))
    tuned, history, _ = keras_ae.train(fine_tuning_card(), data_dir=data_root, **TINY)
    assert any(not np.array_equal(a, b) for a, b in zip(tuned.get_weights(), pretrained))
    fresh_card = fine_tuning_card()
    del fresh_card["recipe"]["initial_weights"]
    _, fresh_history, _ = keras_ae.train(fresh_card, data_dir=data_root, **TINY)
    assert history.history["val_loss"][-1] < 0.5 * fresh_history.history["val_loss"][-1]


def test_a_retrained_preset_is_refused_by_its_pinned_sha256(data_root):
    with pytest.raises(ValueError) as refused:
        keras_ae.train(fine_tuning_card(sha256="0" * 64), data_dir=data_root, **TINY)
    message = str(refused.value)
    assert "\n" not in message and "recipe.initial_weights.preset 'ae_mnist'" in message and "0" * 64 in message
    assert keras_ae.model_card("ae_mnist")["weights"]["sha256"] in message


def test_a_preset_of_another_network_is_refused(data_root):
    card = fine_tuning_card()
    card["network"]["latent_dim"] = 16
    with pytest.raises(ValueError, match=r"has network .*\"latent_dim\": 32.* but this card's is .*\"latent_dim\": 16"):
        keras_ae.train(card, data_dir=data_root, **TINY)


def test_initial_weights_need_a_preset_and_a_sha256():
    card = fine_tuning_card()
    del card["recipe"]["initial_weights"]["sha256"]
    with pytest.raises(ValueError, match=r"lacks the fields \['recipe.initial_weights.sha256'\]"):
        keras_ae.cards.Card.from_json(card)
    card["recipe"]["initial_weights"]["sha256"] = "abc"
    with pytest.raises(ValueError, match="recipe.initial_weights.sha256 must be 64 lowercase hex digits"):
        keras_ae.cards.Card.from_json(card)


@pytest.mark.parametrize("name, start", [("iwae_mnist", "vae_mnist"), ("iwae50_mnist", "iwae_mnist")])
def test_each_iwae_stage_fine_tunes_its_start_as_it_is_to_a_better_likelihood(name, start):
    """Each stage's recipe starts from its start's current weights (retraining the start breaks the pin, and this test
    says so); it was kept because its validation bound is below its start's, and its card's test bounds, each re-measured
    by tests/test_zoo.py, are below its start's too."""
    tuned, base = keras_ae.model_card(name), keras_ae.model_card(start)
    validation = [card["training"]["validation_metrics"]["iwae_nll_nats"] for card in (tuned, base)]
    assert validation[0] < validation[1], validation
    assert tuned["recipe"]["initial_weights"] == {"preset": start, "sha256": base["weights"]["sha256"]}
    assert tuned["network"] == base["network"] and tuned["model"]["config"]["objective"] == "iwae"
    assert tuned["metrics"]["iwae_samples"] == base["metrics"]["iwae_samples"] == 1000
    assert tuned["metrics"]["iwae_nll_nats"] < base["metrics"]["iwae_nll_nats"] - 0.15  # k = 1000 on all 10,000 test images
    assert tuned["subset_metrics"]["iwae_nll_nats"] < base["subset_metrics"]["iwae_nll_nats"]  # k = 50: a looser bound
