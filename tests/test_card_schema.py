"""Cards are checked against keras_ae.schema before anything is built: each error is one line naming the file and the field."""

import functools
import http.server
import json
import os
import subprocess

import numpy as np
import pytest

import keras_ae
from keras_ae import cards, files, networks, schema, weights
from keras_ae.training import card_for_data
from conftest import console_script
from http_server import running
from hub_server import serve_hub


VAE_CARD = cards.card_path("vae_mnist").read_text()


def zoo_card():
    """A fresh copy of vae_mnist's card: every section there is."""
    return json.loads(VAE_CARD)


BAD_CARDS = {  # what is wrong: (how to make it so, what the one line says after the file's name)
    "weights a string": (lambda card: card.update(weights="model.weights.h5"),
                         ': weights must be an object with file, sha256, size, url; got a string ("model.weights.h5").'),
    "no network": (lambda card: card.pop("network"), " lacks the field network: a card needs a network section"),
    "no data.dataset": (lambda card: card["data"].pop("dataset"),
                        " lacks the fields ['data.dataset']; data needs ['dataset', 'train_split', 'test_split']."),
    "huge latent_dim": (lambda card: card["network"].update(latent_dim=10**9),
                        ": network.latent_dim must be an integer from 1 to 65536; got 1000000000."),
    "batch_size 0": (lambda card: card["recipe"].update(batch_size=0),
                     ": recipe.batch_size must be an integer from 1 to 1048576; got 0."),
    "epochs -1": (lambda card: card["recipe"].update(epochs=-1), ": recipe.epochs must be an integer from 1 to 100000; got -1."),
    "empty input_shape": (lambda card: card["network"].update(input_shape=[]),
                          ": network.input_shape must be a list of at least 1 item; got an empty list."),
    "empty filters": (lambda card: card["network"].update(filters=[]), ": network.filters must be a list of at least 1 item"),
    "../ dataset": (lambda card: card["data"].update(dataset="../../etc"), ': data.dataset must be a dataset name'),
    "relative path dataset": (lambda card: card["data"].update(dataset="photos/cats"), ': data.dataset must be a dataset name'),
    "too many weights": (lambda card: card["network"].update(input_shape=[2048, 2048, 1]),
                         ": network (input_shape [2048, 2048, 1], latent_dim 32) would build about 4.83e+09 weights"),
    "too many input values": (lambda card: card["network"].update(input_shape=[4096, 4096, 3]),
                              ": network.input_shape [4096, 4096, 3] is 50331648 values per example"),
    "an argument the builder lacks": (lambda card: card["network"].update(hidden_units=[64]),
                                      ": network.hidden_units is not an argument of the conv network"),
    "model a string": (lambda card: card.update(model="VAE"), ': model must be an object with class_name, config; got a string'),
    "latent_dim a string": (lambda card: card["network"].update(latent_dim="32"), ': network.latent_dim must be an integer'),
}


@pytest.fixture
def nothing_is_built(monkeypatch):
    """Fail the test if a network is built: validation must come first."""
    def build(*args, **kwargs):
        raise AssertionError("a network was built before the card was validated")

    monkeypatch.setattr(networks, "build", build)


def bad_preset(folder, mutate):
    card = zoo_card()
    mutate(card)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "card.json").write_text(json.dumps(card, indent=2))
    return folder / "card.json"


def assert_one_line(message, source, complaint):
    assert "\n" not in message and message.startswith(str(source)) and complaint in message, message


@pytest.mark.parametrize("mutate, complaint", BAD_CARDS.values(), ids=BAD_CARDS)
def test_a_bad_card_is_one_line_naming_the_file_and_the_field(mutate, complaint, tmp_path, nothing_is_built):
    path = bad_preset(tmp_path / "preset", mutate)
    with pytest.raises(ValueError) as error:
        keras_ae.load(tmp_path / "preset")
    assert_one_line(str(error.value), path, complaint)


@pytest.mark.parametrize("content, complaint", [
    (b'{"name": "x",\n  "model": }', ": line 2, column 12: not valid JSON (Expecting value)."),
    (b'{"name": "x"', ": line 1, column 13: not valid JSON (Expecting ',' delimiter)."),
    (b"", ": line 1, column 1: not valid JSON (Expecting value)."),
    (b'{"name": "\xff"}', ": not valid JSON (byte 10 is not UTF-8)."),
    (b"[" * 100_000, ": not valid JSON (nested too deeply)."),
    (b"[1, 2]", " must hold a JSON object (a card); got a list."),
])
def test_a_card_that_is_not_json_names_the_file_line_and_column(content, complaint, tmp_path):
    (tmp_path / "card.json").write_bytes(content)
    with pytest.raises(ValueError) as error:
        cards.read_card(tmp_path / "card.json")
    assert_one_line(str(error.value), tmp_path / "card.json", complaint)


@pytest.mark.parametrize("name", cards.list_models())
def test_every_zoo_card_validates_names_its_dataset_and_estimates_its_size(name):
    card = cards.read_card(cards.card_path(name))
    assert schema.DATASET_NAME.fullmatch(card.data.dataset)  # the zoo names datasets, never paths
    model = cards.build_model(card)
    built = model.encoder.count_params() + model.decoder.count_params()
    assert 0.9 * built <= schema.parameter_estimate(card.network.arguments()) <= built  # weights without biases


@pytest.mark.parametrize("network", [
    {"kind": "conv1d", "input_shape": [140], "latent_dim": 8},
    {"kind": "conv1d", "input_shape": [100, 3], "latent_dim": 4, "filters": [8, 16, 32], "dense_units": 16, "variational": True},
    {"kind": "conv", "input_shape": [30, 20, 3], "latent_dim": 6, "kernel_size": [5, 3], "strides": 3, "spatial_code": True},
])
def test_the_size_estimate_holds_for_other_networks(network):
    encoder, decoder = networks.build(**network)
    built = encoder.count_params() + decoder.count_params()
    assert 0.9 * built <= schema.parameter_estimate(network) <= built


def test_paths_from_keras_ae_train_data_and_unknown_keys_stay_valid(tmp_path):
    np.save(tmp_path / "digits.npy", np.random.default_rng(0).random((20, 8, 8, 1), dtype="float32"))
    card = card_for_data(str(tmp_path / "digits.npy"), latent_dim=4)
    assert card["data"]["dataset"] == str((tmp_path / "digits.npy").resolve())
    card.update(future_section={"anything": [1, 2]})
    card["data"]["future_option"] = "kept"
    assert cards.Card.from_json(card).to_json() == card
    for dataset in ("digits.npy", "./digits.npy", "~/digits.npy", f"{tmp_path}/../digits.npy"):
        with pytest.raises(ValueError, match="data.dataset must be a dataset name"):
            cards.Card.from_json({**card, "data": {**card["data"], "dataset": dataset}})


def test_zoo_and_url_cards_are_validated_too(tmp_path, monkeypatch, nothing_is_built):
    monkeypatch.setenv("KERAS_AE_HOME", str(tmp_path / "cache"))
    zoo = tmp_path / "zoo"
    path = bad_preset(zoo / "bad_entry", BAD_CARDS["batch_size 0"][0])
    monkeypatch.setattr(weights, "ZOO_DIR", zoo)
    with pytest.raises(ValueError) as error:
        keras_ae.load("bad_entry")
    assert_one_line(str(error.value), path, BAD_CARDS["batch_size 0"][1])
    served = tmp_path / "served"
    bad_preset(served / "preset", BAD_CARDS["weights a string"][0])
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    with running(handler) as (url, _):
        with pytest.raises(ValueError) as error:
            keras_ae.model_card(f"{url}/preset")
        assert_one_line(str(error.value), f"{url}/preset/card.json", BAD_CARDS["weights a string"][1])
        (served / "preset" / "card.json").write_text(json.dumps(zoo_card()))  # fixed on the server: not stuck in the cache
        assert keras_ae.model_card(f"{url}/preset")["name"] == "vae_mnist"


def keras_ae_command(*argv, environment=None):
    """The installed console script, without the tests' TF_CPP_MIN_LOG_LEVEL."""
    environment = environment or {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run([console_script(), *argv], capture_output=True, text=True, timeout=300, env=environment)


def assert_exit_2_in_one_line(result, command, source, complaint):
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert_one_line(result.stderr.strip().removeprefix(f"keras-ae {command}: error: "), source, complaint)


def test_the_command_says_what_is_wrong_with_a_card_in_one_line(tmp_path):
    mutate, complaint = BAD_CARDS["batch_size 0"]
    path = bad_preset(tmp_path / "train", mutate)
    result = keras_ae_command("train", "--card", str(path), "--output", str(tmp_path / "out"))
    assert_exit_2_in_one_line(result, "train", path, complaint)
    assert not (tmp_path / "out").exists()
    mutate, complaint = BAD_CARDS["weights a string"]
    path = bad_preset(tmp_path / "preset", mutate)
    assert_exit_2_in_one_line(keras_ae_command("info", str(tmp_path / "preset")), "info", path, complaint)


def test_a_hub_card_is_validated_and_named_by_its_address(tmp_path):
    card = zoo_card()
    BAD_CARDS["huge latent_dim"][0](card)
    with serve_hub({"someone/bad": {"main": {"card.json": json.dumps(card).encode()}}}) as (endpoint, _):
        environment = {key: value for key, value in os.environ.items() if not key.startswith(("HF_", "TF_CPP"))}
        environment.update(HF_ENDPOINT=endpoint, HF_HOME=str(tmp_path / "hf_home"), HF_HUB_DISABLE_TELEMETRY="1",
                           HF_HUB_DISABLE_PROGRESS_BARS="1", KERAS_AE_HOME=str(tmp_path / "cache"))
        result = keras_ae_command("info", "hf://someone/bad", environment=environment)
    assert_exit_2_in_one_line(result, "info", "card.json of hf://someone/bad", BAD_CARDS["huge latent_dim"][1])


def test_a_zoo_name_in_capitals_gets_the_lowercase_one():
    with pytest.raises(ValueError, match=r"zoo names are lowercase; this one is 'vae_mnist'\. Close matches: \['vae_mnist'"):
        keras_ae.model_card("Vae_Mnist")
    result = keras_ae_command("info", "VAE_MNIST")
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "Unknown model source 'VAE_MNIST': zoo names are lowercase; this one is 'vae_mnist'." in result.stderr


def test_the_published_schema_names_what_the_code_takes():
    properties = schema.card_schema()["properties"]
    assert sorted(schema.NETWORK_KINDS) == sorted(networks.BUILDERS) == sorted(properties["network"]["properties"]["kind"]["enum"])
    assert properties["network"]["properties"]["scaling"]["enum"] == [*networks.SCALINGS, None]
    assert properties["recipe"]["properties"]["precision"]["enum"] == list(schema.PRECISIONS)
    assert properties["data"]["properties"]["binarize"]["enum"] == list(schema.BINARIZE_MODES)
    assert properties["data"]["properties"]["ratings"]["enum"] == list(schema.RATINGS_KINDS)
    assert properties["data"]["properties"]["color_mode"]["enum"] == [*files.CHANNELS, None]


def test_a_card_with_nan_is_refused_naming_the_field():
    card = zoo_card()
    card["recipe"]["final_learning_rate_fraction"] = float("nan")
    with pytest.raises(ValueError, match=r"^card: recipe.final_learning_rate_fraction must be a finite number"):
        cards.Card.from_json(card)
