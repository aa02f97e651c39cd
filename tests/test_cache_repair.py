"""A corrupt file in the weight cache is moved aside and repaired from the next source; written files get umask permissions."""

import dataclasses
import hashlib
import json
import os
import stat
import subprocess
import warnings

import numpy as np
import pytest

import keras_ae
from keras_ae import weights
from conftest import console_script
from http_server import serve

GARBAGE = b"not an HDF5 file, flipped bits on a bad disk" * 100
GARBAGE_SHA256 = hashlib.sha256(GARBAGE).hexdigest()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_AE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("KERAS_AE_MIRROR", raising=False)
    return tmp_path / "cache"


def corrupt(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(GARBAGE)
    return path


def aside_of(path):
    return path.with_name(f"{path.name}.corrupt-{GARBAGE_SHA256[:12]}")


def url_only_card(url=None):
    """The ae_mnist card under a name the zoo does not have, so its weights come only from a URL or mirror."""
    card = keras_ae.cards.find_preset("ae_mnist").card
    return dataclasses.replace(card, name="url_only_ae", weights=dataclasses.replace(card.weights, url=url))


def test_a_corrupt_cached_zoo_file_is_moved_aside_and_the_bundled_copy_loads(cache):
    card = keras_ae.cards.find_preset("ae_mnist").card
    cached, bundled = weights.locations(card)
    corrupt(cached)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = keras_ae.load("ae_mnist")
    repairs = [str(warning.message) for warning in caught if issubclass(warning.category, weights.CacheRepairWarning)]
    assert len(repairs) == 1, repairs
    assert str(aside_of(cached)) in repairs[0] and GARBAGE_SHA256 in repairs[0] and card.weights.sha256 in repairs[0]
    assert aside_of(cached).read_bytes() == GARBAGE and not cached.exists()
    reference = keras_ae.load("ae_mnist", weights=bundled)
    for mine, theirs in zip(model.weights, reference.weights):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())


def test_fill_cache_repairs_a_corrupt_file_of_a_url_only_card(cache):
    payload = weights.ZOO_DIR.joinpath("ae_mnist", "model.weights.h5").read_bytes()
    with serve(payload) as (url, server):
        card = url_only_card(f"{url}/good/url_only_ae/model.weights.h5")
        cached = corrupt(weights.locations(card)[0])
        message = weights.fill_cache(card)
    assert server.requests == ["/good/url_only_ae/model.weights.h5"]
    assert cached.read_bytes() == payload and aside_of(cached).read_bytes() == GARBAGE
    assert message == (
        f"url_only_ae: moved the corrupt cached copy aside to {aside_of(cached)} "
        f"(sha256 {GARBAGE_SHA256}, expected {card.weights.sha256}), then downloaded to {cached}"
    )
    assert sorted(path.name for path in cached.parent.iterdir()) == [cached.name, aside_of(cached).name]


def test_keras_ae_download_repairs_a_corrupt_cached_file_from_the_mirror(cache, tmp_path):
    payload = weights.ZOO_DIR.joinpath("ae_mnist", "model.weights.h5").read_bytes()
    card = url_only_card()
    (tmp_path / "preset").mkdir()
    (tmp_path / "preset" / "card.json").write_text(json.dumps(card.to_json()))
    cached = corrupt(weights.locations(card)[0])
    environment = {key: value for key, value in os.environ.items() if key != "KERAS_AE_MIRROR"}
    with serve(payload) as (url, server):
        result = subprocess.run([console_script(), "download", str(tmp_path / "preset"), "--mirror", f"{url}/good"],
                                capture_output=True, text=True, timeout=300, env=environment)
    assert result.returncode == 0, result.stdout + result.stderr
    assert server.requests == ["/good/url_only_ae/model.weights.h5"]
    assert f"url_only_ae: moved the corrupt cached copy aside to {aside_of(cached)}" in result.stdout
    assert f"then downloaded to {cached}" in result.stdout
    assert cached.read_bytes() == payload and aside_of(cached).read_bytes() == GARBAGE


def test_with_no_good_source_left_the_error_names_both_hashes_and_the_moved_file(cache, tmp_path, monkeypatch):
    monkeypatch.setattr(weights, "ZOO_DIR", tmp_path / "zoo")
    card = keras_ae.cards.Card(name="tiny", model=keras_ae.cards.KerasClass(class_name="Autoencoder"),
                               weights=keras_ae.cards.Weights(file="model.weights.h5", sha256="0" * 64))
    cached, bundled = weights.locations(card)
    corrupt(cached)
    corrupt(bundled)
    with pytest.warns(weights.CacheRepairWarning) as caught, pytest.raises(weights.ChecksumError) as error:
        weights.resolve(card)
    assert len(caught) == 2 and "bundled copy was not used" in str(caught[1].message)
    assert str(aside_of(cached)) in str(error.value) and GARBAGE_SHA256 in str(error.value) and "0" * 64 in str(error.value)
    assert aside_of(cached).read_bytes() == GARBAGE and bundled.read_bytes() == GARBAGE  # the package's file is left alone


def test_a_mismatching_weights_file_given_by_path_raises_and_is_not_moved(cache, tmp_path):
    mine = corrupt(tmp_path / "mine.weights.h5")
    with pytest.raises(weights.ChecksumError, match="the card expects"):
        keras_ae.load("ae_mnist", weights=mine)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["mine.weights.h5"]
    assert mine.read_bytes() == GARBAGE


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomic_copy_gives_new_files_the_umask_permissions(tmp_path, umask):
    previous = os.umask(umask)
    try:
        path = weights.atomic_copy(lambda temporary: open(temporary, "w").write("text"), tmp_path / "out" / "card.json")
        plain = tmp_path / "plain.json"
        open(plain, "w").close()
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask == stat.S_IMODE(plain.stat().st_mode)
    assert path.read_text() == "text"


def test_atomic_copy_keeps_the_permissions_of_the_file_it_replaces(tmp_path):
    path = tmp_path / "results.csv"
    path.write_text("old")
    path.chmod(0o640)
    weights.atomic_copy(lambda temporary: open(temporary, "w").write("new"), path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640 and path.read_text() == "new"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["results.csv"]
