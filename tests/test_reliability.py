"""Faults and bad input: broken files, killed training, a full or read-only disk, crafted archives, fuzzed inputs."""

import contextlib
import json
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import keras
import keras_ae
from keras_ae import cards, data, networks, weights

SHAPE = (28, 28, 1)
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


@pytest.fixture(scope="module")
def small_model():
    model = keras_ae.Autoencoder(*networks.dense(SHAPE, 4))
    model.compile(optimizer="adam")
    return model


@contextlib.contextmanager
def mounted_tmpfs(path, options):
    """A real tmpfs at `path` (size-limited or read-only); skips where mounting is not permitted."""
    path.mkdir(parents=True, exist_ok=True)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True).returncode:
        pytest.skip("mounting a tmpfs is not permitted here")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=False)


# --- Non-finite, badly typed and badly shaped inputs --------------------------------------------------------------


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_arrays_are_refused_everywhere(small_model, value):
    x = np.full((4, *SHAPE), 0.5, "float32")
    x[1, 3, 3, 0] = value
    for call in (small_model.encode, small_model.predict, small_model.evaluate, small_model.fit, small_model.anomaly_score):
        with pytest.raises(ValueError, match="NaN or Inf"):
            call(x)


def test_non_finite_batch_inside_a_dataset_stops_fit_with_the_message(small_model):
    x = np.full((64, *SHAPE), 0.5, "float32")
    x[40] = np.nan
    dataset = tf.data.Dataset.from_tensor_slices(x).batch(16)
    with pytest.raises(tf.errors.InvalidArgumentError, match="NaN or Inf in its inputs"):
        small_model.fit(dataset, verbose=0)


array_shapes = st.lists(st.integers(0, 30), min_size=1, max_size=5).map(tuple)
dtypes = st.sampled_from(["float16", "float32", "float64", "uint8", "int32", "int64", "bool"])


@FUZZ
@given(shape=array_shapes, dtype=dtypes, fill=st.sampled_from([0.0, 0.5, -3.0, 7.0, np.nan, np.inf]))
def test_fuzzed_inputs_give_a_result_of_the_right_shape_or_a_value_error(small_model, shape, dtype, fill):
    with np.errstate(invalid="ignore"):
        x = np.full(shape, fill).astype(dtype)
    right_shape = len(shape) == 4 and shape[1:] == SHAPE
    acceptable = right_shape and dtype.startswith("float") and np.isfinite(fill) and np.all(np.isfinite(x))
    for call in (small_model.encode, lambda batch: small_model.predict(batch, verbose=0)):
        if acceptable:
            result = np.asarray(call(x))
            assert result.shape[0] == shape[0] and np.all(np.isfinite(result))
        else:
            with pytest.raises(ValueError, match="expects|NaN or Inf"):
                call(x)


@FUZZ
@given(shape=array_shapes, dtype=dtypes)
def test_fuzzed_codes_into_decode(small_model, shape, dtype):
    z = np.ones(shape).astype(dtype)
    if len(shape) == 2 and shape[1] == 4 and dtype.startswith("float"):
        assert np.asarray(small_model.decode(z)).shape == (shape[0], *SHAPE)
    else:
        with pytest.raises((ValueError, TypeError)):
            small_model.decode(z)


@FUZZ
@given(
    split=st.sampled_from(["train[:64]", "test[:100]", "test[5%:6%]", "dev", "train[x:]", "", "validation", "test[-50:]"]),
    batch_size=st.integers(1, 70),
    binarize=st.sampled_from([None, "static", "dynamic", "otsu"]),
    flatten=st.booleans(),
)
def test_fuzzed_data_loader_arguments(data_root, split, batch_size, binarize, flatten):
    try:
        dataset = data.load("mnist", split=split, batch_size=batch_size, binarize=binarize, flatten=flatten)
    except ValueError as error:
        assert "expected" in str(error) or "validation_split" in str(error)
        return
    batch = next(iter(dataset)).numpy()
    assert batch.shape[1:] == ((784,) if flatten else SHAPE) and 0 < len(batch) <= batch_size
    assert batch.dtype == np.float32 and 0.0 <= batch.min() and batch.max() <= 1.0


# --- Untrusted files ------------------------------------------------------------------------------------------------


def test_a_keras_archive_with_a_lambda_layer_is_refused_in_safe_mode(tmp_path):
    encoder, _ = networks.dense(SHAPE, 4)
    code = keras.Input((4,))
    outputs = keras.layers.Reshape(SHAPE)(keras.layers.Lambda(lambda z: keras.ops.tile(z, (1, 196)))(code))
    model = keras_ae.Autoencoder(encoder, keras.Model(code, outputs))
    model.save(tmp_path / "lambda.keras")
    with pytest.raises(ValueError, match="safe_mode"):
        keras.saving.load_model(tmp_path / "lambda.keras", safe_mode=True)


def test_a_keras_archive_naming_an_unknown_class_is_refused(tmp_path):
    keras_ae.Autoencoder(*networks.dense(SHAPE, 4)).save(tmp_path / "model.keras")
    with zipfile.ZipFile(tmp_path / "model.keras") as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["config.json"])
    config["class_name"], config["registered_name"] = "EvilModel", "evil>EvilModel"
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(tmp_path / "crafted.keras", "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    with pytest.raises(TypeError, match="EvilModel"):
        keras.saving.load_model(tmp_path / "crafted.keras", safe_mode=True)


@pytest.mark.parametrize("field, value, complaint", [
    ("name", "../etc", "must match"),
    ("name", "VAE-MNIST", "must match"),
    ("file", "../../outside.weights.h5", "plain file name"),
    ("file", "/abs/path.weights.h5", "plain file name"),
    ("sha256", "abc", "64 lowercase hex"),
    ("sha256", "Z" * 64, "64 lowercase hex"),
    ("size", -1, "non-negative integer"),
    ("size", "12", "non-negative integer"),
])
def test_card_fields_are_validated(field, value, complaint):
    card = json.loads(json.dumps(keras_ae.model_card("ae_mnist")))
    (card if field == "name" else card["weights"])[field] = value
    with pytest.raises(ValueError, match=complaint):
        cards.validate(card)


def test_a_weights_file_given_by_path_is_checked_against_the_card(tmp_path):
    model = keras_ae.load("ae_mnist", weights=None)
    model.save_weights(tmp_path / "other.weights.h5")
    with pytest.raises(weights.ChecksumError, match="expects"):
        keras_ae.load("ae_mnist", weights=tmp_path / "other.weights.h5")
    loaded = keras_ae.load("ae_mnist", weights=tmp_path / "other.weights.h5", verify=False)
    for mine, theirs in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())


# --- Disks that fail --------------------------------------------------------------------------------------------------


def test_disk_full_while_saving_weights_keeps_the_previous_file(tmp_path):
    card = keras_ae.model_card("deep_ae_mnist")
    model = keras_ae.load("deep_ae_mnist", weights=None)
    with mounted_tmpfs(tmp_path / "small", "size=256k") as disk:
        target = disk / "model.weights.h5"
        target.write_bytes(b"previous weights")
        with pytest.raises(OSError, match=f"Could not write {target}: No space left"):
            cards.save_weights(model, card, target)
        assert target.read_bytes() == b"previous weights"
        assert [path.name for path in disk.iterdir()] == ["model.weights.h5"]


def test_read_only_cache_gives_a_clear_error_naming_it(tmp_path, monkeypatch):
    from http_server import serve

    payload = b"x" * 1000
    digest = __import__("hashlib").sha256(payload).hexdigest()
    with mounted_tmpfs(tmp_path / "cache", "ro,size=64k") as cache, serve(payload) as (url, _):
        with pytest.raises(PermissionError, match=f"Cannot write to the weight cache {cache}"):
            weights.download(f"{url}/good/x", cache / "tiny" / "w.weights.h5", digest)
        with pytest.raises(OSError, match="read-only|Read-only"):
            weights.atomic_copy(lambda temporary: None, cache / "w.weights.h5")


def test_unwritable_export_target_is_a_clear_error(tmp_path):
    (tmp_path / "a_file").write_text("not a folder")
    with pytest.raises(OSError):
        keras_ae.export(keras_ae.Autoencoder(*networks.dense(SHAPE, 4)), tmp_path / "a_file" / "served")
    assert (tmp_path / "a_file").read_text() == "not a folder"


# --- Killed training ------------------------------------------------------------------------------------------------


def test_training_killed_mid_epoch_resumes_and_finishes_all_epochs(tmp_path, data_root):
    card = keras_ae.model_card("ae_mnist")
    card["recipe"].update(epochs=4, batch_size=32, steps_per_execution=1)
    (tmp_path / "card.json").write_text(json.dumps(card))
    command = [
        sys.executable, "-m", "keras_ae.cli", "train", "--card", str(tmp_path / "card.json"),
        "--output", str(tmp_path / "out"), "--backup-dir", str(tmp_path / "backup"),
    ]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    while not (tmp_path / "backup" / "training_metadata.json").exists():
        assert time.time() < deadline and first.poll() is None, "no epoch finished in time"
        time.sleep(0.2)
    time.sleep(1.0)  # into the second epoch
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=60)
    assert not (tmp_path / "out" / "card.json").exists()
    second = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "Epoch 1/4" not in second.stdout and "Epoch 4/4" in second.stdout
    written = json.loads((tmp_path / "out" / "card.json").read_text())
    assert written["training"]["epochs"] == 4 and written["training"]["resumed_from_epoch"] >= 1
