"""Presets: save a model as a folder, load it back from the folder, an http(s) URL or hf://, by library and command."""

import contextlib
import functools
import http.server
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import keras_ae
from keras_ae import cards, cli, weights
from conftest import console_script
from http_server import running
from hub_server import serve_hub

X = keras_ae.data.bundled_sample("mnist")[0][:8]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_AE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def preset(tmp_path_factory):
    """The zoo's conv_ae_mnist saved as a preset folder with its full card."""
    folder = tmp_path_factory.mktemp("presets") / "conv_ae_mnist"
    keras_ae.save_preset(keras_ae.load("conv_ae_mnist"), folder, keras_ae.model_card("conv_ae_mnist"))
    return folder


@contextlib.contextmanager
def serve_folder(root):
    """A static file server for `root` on 127.0.0.1; yields (base URL, list of requested paths)."""
    requests = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):  # noqa: N802 (the http.server API)
            requests.append(self.path)
            super().do_GET()

    with running(functools.partial(Handler, directory=str(root))) as (url, _):
        yield url, requests


def same_model(model, reference=None):
    reference = reference or keras_ae.load("conv_ae_mnist")
    np.testing.assert_array_equal(model.predict(X, verbose=0), reference.predict(X, verbose=0))


def test_a_preset_folder_holds_card_weights_and_hash_and_loads_back(preset):
    card = json.loads((preset / "card.json").read_text())
    assert sorted(path.name for path in preset.iterdir()) == ["card.json", "model.weights.h5"]
    assert card["weights"]["sha256"] == weights.sha256(preset / "model.weights.h5")
    assert card["metrics"] == keras_ae.model_card("conv_ae_mnist")["metrics"]
    same_model(keras_ae.load(str(preset)))
    same_model(keras_ae.load(preset))
    assert keras_ae.model_card(str(preset))["name"] == "conv_ae_mnist"


def test_a_tampered_preset_is_refused(preset, tmp_path):
    copy = tmp_path / "tampered"
    shutil.copytree(preset, copy)
    with open(copy / "model.weights.h5", "r+b") as handle:
        handle.seek(-1, os.SEEK_END)
        last = handle.read(1)
        handle.seek(-1, os.SEEK_END)
        handle.write(bytes([last[0] ^ 0xFF]))
    with pytest.raises(weights.ChecksumError, match="the card expects"):
        keras_ae.load(str(copy))
    assert keras_ae.load(str(copy), weights=None).count_params() > 0


def test_a_url_preset_downloads_verified_into_the_cache_and_then_works_offline(preset, cache):
    with serve_folder(preset.parent) as (url, requests):
        model = keras_ae.load(f"{url}/conv_ae_mnist")
        assert requests == ["/conv_ae_mnist/card.json", "/conv_ae_mnist/model.weights.h5"]
        keras_ae.load(f"{url}/conv_ae_mnist/")
        assert requests[2:] == ["/conv_ae_mnist/card.json"]  # the card is checked afresh, the weights come from the cache
    same_model(model)
    folder = weights.url_cache_folder(f"{url}/conv_ae_mnist")
    cached = sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())
    by_content = f"{weights.sha256(preset / 'model.weights.h5')}/model.weights.h5"
    assert folder.parent == cache / "presets" and cached == sorted(["card.json", by_content])
    with pytest.warns(cards.CachedCardWarning, match="Connection refused"):  # the server is gone: the cache answers
        same_model(keras_ae.load(f"{url}/conv_ae_mnist"))


def test_a_url_preset_whose_weights_do_not_match_its_card_leaves_nothing(preset, cache, tmp_path):
    served = tmp_path / "served" / "bad"
    shutil.copytree(preset, served)
    (served / "model.weights.h5").write_bytes(b"not the weights")
    with serve_folder(served.parent) as (url, _):
        with pytest.raises(weights.DownloadError, match="sha256"):
            keras_ae.load(f"{url}/bad")
    assert not (weights.url_cache_folder(f"{url}/bad") / "model.weights.h5").exists()


HUB_SCRIPT = """
import json, sys
import numpy as np
import keras_ae
model = keras_ae.load(sys.argv[1])
x = keras_ae.data.bundled_sample("mnist")[0][:8]
print(json.dumps({"name": keras_ae.model_card(sys.argv[1])["name"], "output": np.asarray(model(x)).tolist()}))
"""


def hub_environment(endpoint, tmp_path):
    environment = {key: value for key, value in os.environ.items() if not key.startswith("HF_")}
    environment.update(HF_ENDPOINT=endpoint, HF_HOME=str(tmp_path / "hf_home"), HF_HUB_DISABLE_TELEMETRY="1",
                       HF_HUB_DISABLE_PROGRESS_BARS="1", KERAS_AE_HOME=str(tmp_path / "cache"))
    return environment


def test_hf_presets_load_through_huggingface_hub_from_a_stand_in_hub(preset, tmp_path):
    files = {name: (preset / name).read_bytes() for name in ("card.json", "model.weights.h5")}
    other = keras_ae.save_preset(keras_ae.load("dae_mnist"), tmp_path / "dae", keras_ae.model_card("dae_mnist"))
    older = {name: (tmp_path / "dae" / name).read_bytes() for name in ("card.json", "model.weights.h5")}
    with serve_hub({"someone/autoencoders": {"main": files, "v1": older}}) as (endpoint, server):
        environment = hub_environment(endpoint, tmp_path)

        def load(source):
            result = subprocess.run([sys.executable, "-c", HUB_SCRIPT, source], env=environment, capture_output=True,
                                    text=True, timeout=300)
            assert result.returncode == 0, result.stderr[-2000:]
            return json.loads(result.stdout.strip().splitlines()[-1])

        main, revision = load("hf://someone/autoencoders"), load("hf://someone/autoencoders@v1")
        assert ("GET", "/someone/autoencoders/resolve/main/model.weights.h5") in server.requests
        assert main["name"] == "conv_ae_mnist" and revision["name"] == other["name"] == "dae_mnist"
        np.testing.assert_allclose(main["output"], keras_ae.load("conv_ae_mnist")(X), atol=1e-6)
        np.testing.assert_allclose(revision["output"], keras_ae.load("dae_mnist")(X), atol=1e-6)
        result = subprocess.run([console_script(), "info", "hf://someone/missing"], env=environment, capture_output=True,
                                text=True, timeout=300)
        assert result.returncode == 2 and result.stderr.count("\n") == 1
        assert "hf://someone/missing: could not get card.json (RepositoryNotFoundError" in result.stderr


@pytest.mark.parametrize("source, reason", [
    ("ftp://host/model", "the scheme ftp:// is not supported"),
    ("hf://just-a-name", "a Hub address is hf://owner/repo"),
    ("no/such/folder", "no such folder"),
    ("vae_mnsit", "no zoo entry has that name"),
    ("", "not a non-empty string"),
])
def test_an_unknown_source_gets_one_error_listing_every_form(source, reason):
    with pytest.raises(ValueError) as error:
        keras_ae.load(source)
    message = str(error.value)
    assert reason in message and "\n" not in message
    for form in ("a zoo name", "a folder holding card.json", "https:// or http:// URL", "hf://owner/repo@revision"):
        assert form in message


def test_a_folder_without_a_card_is_named(tmp_path):
    with pytest.raises(ValueError, match="the folder holds no card.json"):
        keras_ae.load(str(tmp_path))


def test_the_command_takes_every_form(preset, cache, tmp_path, capsys, data_root):
    with serve_folder(preset.parent) as (url, _):
        for source in (str(preset), f"{url}/conv_ae_mnist"):
            assert cli.main(["info", source]) == 0 and "conv_ae_mnist" in capsys.readouterr().out
            assert cli.main(["evaluate", source, "--limit", "200"]) == 0 and "test_examples: 200" in capsys.readouterr().out
        assert cli.main(["export", f"{url}/conv_ae_mnist", str(tmp_path / "served")]) == 0
        assert (tmp_path / "served" / "saved_model.pb").exists()
    np.save(tmp_path / "digits.npy", X)
    assert cli.main(["reconstruct", str(preset), str(tmp_path / "digits.npy"), "--out", str(tmp_path / "r.png")]) == 0
    vae = tmp_path / "vae"
    keras_ae.save_preset(keras_ae.load("vae2d_mnist"), vae, keras_ae.model_card("vae2d_mnist"))
    assert cli.main(["sample", str(vae), "-n", "4", "--out", str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").stat().st_size > 1000
    capsys.readouterr()
    assert cli.main(["sample", str(preset)]) == 2 and "does not support `keras-ae sample`" in capsys.readouterr().err
    assert cards.task_of(cards.model_card(str(vae))).commands()[-1] == "sample"
