"""Typed cards: every zoo card round-trips through `Card`, errors stay one line naming the field, public functions take
a `Card` or its JSON form, and a card without a network section refuses a dtype policy its config does not hold."""

import dataclasses
import json
import random
import re
from pathlib import Path

import numpy as np
import pytest

import keras_ae
from keras_ae import cards, evaluate, networks, weights


def zoo_json(name):
    return json.loads(cards.card_path(name).read_text())


@pytest.mark.parametrize("name", cards.list_models())
def test_every_zoo_card_round_trips_exactly(name):
    raw = zoo_json(name)
    card = cards.Card.from_json(raw, source=name, complete=False)
    assert json.dumps(card.to_json()) == json.dumps(raw)  # the same keys, values and order
    assert card.name == name and card.weights.file == raw["weights"]["file"] and card.data.dataset == raw["data"]["dataset"]


def test_attributes_defaults_and_the_keys_a_card_did_not_give():
    raw = zoo_json("multvae_ml_latest_small")  # its recipe names no steps_per_execution, schedule or patience
    card = cards.Card.from_json(raw)
    assert card.recipe.optimizer.class_name == "Adam" and card.recipe.optimizer.config["learning_rate"] == 0.001
    assert (card.recipe.seed, card.recipe.steps_per_execution, card.recipe.learning_rate_schedule) == (0, 1, None)
    assert card.data.ratings == "implicit" and card.data.heldout_users == 0.2 and card.data.monitor_split == "validation"
    assert card.network.input_shape == [6596] and card.network.filters is None and card.weights.url is None
    assert "steps_per_execution" not in card.to_json()["recipe"] and card.to_json()["weights"]["url"] is None
    assert isinstance(card.metrics, dict) and card.metrics == raw["metrics"]


def test_unknown_keys_survive_and_changes_are_written():
    raw = zoo_json("ae_mnist")
    raw["future_section"] = {"anything": [1, 2]}
    raw["data"]["future_option"] = "kept"
    raw["recipe"]["optimizer"]["future"] = None
    card = cards.Card.from_json(raw)
    assert card.to_json() == raw and card.extra == {"future_section": {"anything": [1, 2]}}
    changed = dataclasses.replace(card, recipe=dataclasses.replace(card.recipe, epochs=3, initial_weights=cards.InitialWeights(
        preset="ae_mnist", sha256=card.weights.sha256))).without("metrics", "future_section")
    written = changed.to_json()
    assert written["recipe"]["epochs"] == 3 and list(written["recipe"])[-1] == "initial_weights"
    assert "metrics" not in written and "future_section" not in written and written["data"]["future_option"] == "kept"
    assert cards.Card.from_json(written) == changed
    raw["data"]["dataset"] = "changed"
    assert card.data.dataset == "mnist"  # the card holds a copy of its JSON, not the JSON itself


@pytest.mark.parametrize("field, value, complaint", [
    ("recipe.batch_size", 0, "card.json: recipe.batch_size must be an integer from 1 to 1048576; got 0."),
    ("data.binarize", "always", "card.json: data.binarize must be one of"),
    ("weights.file", "../x.h5", "card.json: weights.file must be a plain file name"),
])
def test_a_wrong_field_is_one_line_naming_it(field, value, complaint):
    raw = zoo_json("ae_mnist")
    section, key = field.split(".")
    raw[section][key] = value
    for complete in (True, False):
        with pytest.raises(keras_ae.errors.InputError) as error:
            cards.Card.from_json(raw, source="card.json", complete=complete)
        assert str(error.value).startswith(complaint) and "\n" not in str(error.value)


def test_the_family_checks_run_on_the_typed_card():
    raw = zoo_json("ae_mnist")
    raw["model"]["config"]["latent"] = 3
    with pytest.raises(ValueError, match=r"^card: model.config.latent is not an argument of Autoencoder"):
        cards.Card.from_json(raw)
    assert cards.Card.from_json(raw, complete=False).model.config["latent"] == 3  # the form alone is fine


def test_public_functions_take_a_card_or_its_json_form_and_return_the_json_form(tmp_path):
    raw = keras_ae.model_card("ae_mnist")
    assert isinstance(raw, dict) and raw == zoo_json("ae_mnist")
    raw["recipe"]["epochs"] = 1  # the dict is the caller's own: changing it changes no later read
    assert keras_ae.model_card("ae_mnist")["recipe"]["epochs"] == zoo_json("ae_mnist")["recipe"]["epochs"]
    typed = cards.Card.from_json(raw)
    from_dict, from_card = cards.build_model(raw, seed=0), cards.build_model(typed, seed=0)
    for mine, theirs in zip(from_dict.weights, from_card.weights):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
    model = keras_ae.load("ae_mnist")
    assert evaluate.measure(raw, model, limit=20) == evaluate.measure(typed, model, limit=20)
    written = keras_ae.save_preset(model, tmp_path / "preset", typed)
    assert isinstance(written, dict) and written["weights"]["sha256"] == weights.sha256(tmp_path / "preset" / "model.weights.h5")
    assert json.loads((tmp_path / "preset" / "card.json").read_text()) == written


def test_a_card_without_a_network_takes_its_own_dtype_and_refuses_another(tmp_path):
    model = keras_ae.Autoencoder(*networks.dense((6,), 2, hidden_units=[4], seed=0))
    card = cards.describe(model, "hand_built")
    assert card.network is None and "network" not in card.to_json()
    for options in ({}, {"seed": 0}, {"dtype": "float32"}):
        assert cards.build_model(card, **options).count_params() == model.count_params()
    with pytest.raises(keras_ae.errors.InputError, match=r"^card 'hand_built' has no network section: .* cannot be applied") as error:
        cards.build_model(card, dtype="mixed_bfloat16")
    assert "\n" not in str(error.value)
    keras_ae.save_preset(model, tmp_path / "hand_built")
    assert keras_ae.load(tmp_path / "hand_built", dtype="float32").count_params() == model.count_params()
    with pytest.raises(keras_ae.errors.InputError, match="has no network section"):
        keras_ae.load(tmp_path / "hand_built", dtype="mixed_bfloat16")
    trainable = dataclasses.replace(card, data=cards.Data(dataset="mnist", train_split="train[:10]", test_split="test"),
                                    recipe=cards.Recipe(epochs=1, batch_size=5))
    with pytest.raises(keras_ae.errors.InputError, match="has no network section"):
        keras_ae.train(trainable, precision="mixed_bfloat16", verbose=0)


def test_a_card_without_a_network_seeds_its_initial_weights_and_leaves_the_callers_random_state():
    card = cards.describe(keras_ae.Autoencoder(*networks.dense((6,), 2, hidden_units=[4])), "hand_built")
    state = random.getstate()
    first, again, other = (cards.build_model(card, seed=seed).get_weights() for seed in (1, 1, 2))
    assert random.getstate() == state
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


def test_only_the_families_and_the_data_kinds_read_a_cards_data_keys():
    package = Path(keras_ae.__file__).parent
    pattern = re.compile(r'card\["data"\]|\.get\("ratings"\)|labels_optional')
    readers = [f"{path.relative_to(package)}:{number}" for path in sorted(package.rglob("*.py"))
               if path.name != "kinds.py" and path.parent.name != "models"
               for number, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert readers == []
