"""Faults and bad input: broken files, killed training, a full or read-only disk, crafted archives, fuzzed inputs."""

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

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
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True)
    if mounted.returncode:
        if os.environ.get("KERAS_AE_REQUIRE_TMPFS"):  # set by .ci/run where a tmpfs can be mounted: no silent skip
            pytest.fail(f"mounting a tmpfs failed where CI could mount one: {mounted.stderr.strip()}")
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
    steps = int(small_model.optimizer.iterations.numpy())
    for call in (small_model.encode, small_model.predict, small_model.evaluate, small_model.fit, small_model.anomaly_score):
        with pytest.raises(ValueError, match="NaN or Inf"):
            call(x)
    assert int(small_model.optimizer.iterations.numpy()) == steps  # refused before any step ran


def test_non_finite_batch_inside_a_dataset_stops_fit_with_the_message(small_model):
    x = np.full((64, *SHAPE), 0.5, "float32")
    x[40] = np.nan
    dataset = tf.data.Dataset.from_tensor_slices(x).batch(16)
    finished = []
    record = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: finished.append(batch))
    with pytest.raises(tf.errors.InvalidArgumentError, match="NaN or Inf in its inputs"):
        small_model.fit(dataset, verbose=0, callbacks=[record])
    assert finished == [0, 1]  # raised at batch 2, the one holding example 40
    assert all(np.all(np.isfinite(weight.numpy())) for weight in small_model.weights)  # nothing of it was applied


FLOATS = ("float16", "float32", "float64")
NOT_FLOATS = ("uint8", "int32", "int64", "bool")
array_shapes = st.lists(st.integers(0, 30), min_size=1, max_size=5).map(tuple)


def arrays(shape, dtypes, low=-3.0, high=7.0):
    """Arrays of `shape` with finite values drawn in [low, high] (every value its own draw) in one of `dtypes`."""
    return st.sampled_from(dtypes).flatmap(lambda dtype: hnp.arrays(
        dtype, shape, elements=st.floats(low, high, width=16 if dtype == "float16" else 32) if dtype in FLOATS
        else st.integers(0, 1) if dtype == "bool" else st.integers(0, 255)))


valid_batches = st.integers(0, 8).flatmap(lambda n: arrays((n, *SHAPE), FLOATS))
wrong_shapes = array_shapes.filter(lambda shape: not (len(shape) == 4 and shape[1:] == SHAPE))


@FUZZ
@given(x=valid_batches)
def test_fuzzed_valid_inputs_give_finite_results_of_the_right_shape(small_model, x):
    """Every right-shaped float16/32/64 batch, values outside [0, 1] included, goes through."""
    assert np.asarray(small_model.encode(x)).shape == (len(x), 4)
    reconstruction = np.asarray(small_model.predict(x, verbose=0))
    assert reconstruction.shape == x.shape and np.all(np.isfinite(reconstruction))


@FUZZ
@given(x=st.one_of(
    wrong_shapes.flatmap(lambda shape: arrays(shape, FLOATS)).map(lambda x: ("shape", x)),
    st.integers(0, 8).flatmap(lambda n: arrays((n, *SHAPE), NOT_FLOATS)).map(lambda x: ("dtype", x)),
    st.tuples(valid_batches.filter(len), st.sampled_from([np.nan, np.inf, -np.inf]), st.integers(0, 783)).map(
        lambda case: ("finite", poke(*case))),
))
def test_fuzzed_invalid_inputs_are_refused_saying_what_was_wrong(small_model, x):
    fault, x = x
    complaint = re.escape({"shape": f"expects inputs scaled to [0, 1] of shape (batch, 28, 28, 1); got {x.shape}.",
                           "dtype": f"expects floating-point inputs scaled to [0, 1]; got dtype {x.dtype}.",
                           "finite": "got NaN or Inf in its inputs"}[fault])
    for call in (small_model.encode, lambda batch: small_model.predict(batch, verbose=0)):
        with pytest.raises(ValueError, match=complaint):
            call(x)


def poke(x, value, position):
    """`x` with one pixel of its last example set to `value`."""
    x = x.copy()
    x[-1].reshape(-1)[position] = value
    return x


@FUZZ
@given(z=st.integers(0, 8).flatmap(lambda n: arrays((n, 4), FLOATS, -50.0, 50.0)))
def test_fuzzed_valid_codes_decode_to_finite_images(small_model, z):
    images = np.asarray(small_model.decode(z))
    assert images.shape == (len(z), *SHAPE) and np.all(np.isfinite(images))


@FUZZ
@given(z=st.one_of(
    array_shapes.filter(lambda shape: not (len(shape) == 2 and shape[1] == 4)).flatmap(lambda shape: arrays(shape, FLOATS)),
    st.integers(0, 8).flatmap(lambda n: arrays((n, 4), NOT_FLOATS)),
))
def test_fuzzed_invalid_codes_are_refused_saying_what_was_wrong(small_model, z):
    complaint = re.escape(f"expects floating-point codes; got dtype {z.dtype}." if z.dtype.kind in "biu"
                          else f"expects codes of shape (batch, 4); got {z.shape}.")
    with pytest.raises(ValueError, match=complaint):
        small_model.decode(z)


SPLITS = {"train[:64]": 64, "test[:100]": 100, "test[5%:6%]": 100, "test[-50:]": 50}  # valid splits and their sizes
BAD_SPLITS = ["dev", "train[x:]", "", "validation", "train[:5", "TEST"]


@FUZZ
@given(split=st.sampled_from(list(SPLITS)), batch_size=st.integers(1, 70),
       binarize=st.sampled_from([None, "static", "dynamic", "fixed"]), flatten=st.booleans())
def test_fuzzed_valid_loader_arguments_give_the_batches_asked_for(data_root, split, batch_size, binarize, flatten):
    batches = [batch.numpy() for batch in data.load("mnist", split=split, batch_size=batch_size, binarize=binarize,
                                                   flatten=flatten, shuffle=False)]
    assert [len(batch) for batch in batches] == [batch_size] * (SPLITS[split] // batch_size) + (
        [SPLITS[split] % batch_size] if SPLITS[split] % batch_size else [])
    for batch in batches:
        assert batch.shape[1:] == ((784,) if flatten else SHAPE) and batch.dtype == np.float32
        assert 0.0 <= batch.min() and batch.max() <= 1.0
        assert binarize is None or set(np.unique(batch)) <= {0.0, 1.0}


@FUZZ
@given(argument=st.sampled_from(["split", "binarize", "batch_size"]), split=st.sampled_from(BAD_SPLITS),
       binarize=st.sampled_from(["otsu", "Static", "yes"]), batch_size=st.integers(-5, 0))
def test_fuzzed_invalid_loader_arguments_name_the_argument_and_the_choices(data_root, argument, split, binarize, batch_size):
    arguments = {"split": "test[:10]", "binarize": None, "batch_size": 8}
    arguments[argument] = {"split": split, "binarize": binarize, "batch_size": batch_size}[argument]
    complaint = {"split": "split", "binarize": "Unknown binarize", "batch_size": "batch_size"}[argument]
    with pytest.raises(ValueError, match=complaint):
        data.load("mnist", **arguments)


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
        cards.Card.from_json(card)


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
        with pytest.raises(PermissionError, match=f"Cannot write to the weight cache {cache}.*point KERAS_AE_HOME at a writable folder"):
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
    for line in first.stdout:  # Keras prints "Epoch 2/4" once the first epoch (and its backup) is done
        if "Epoch 2/4" in line:
            break
    else:
        pytest.fail(f"the first run ended before its second epoch (exit {first.wait()})")
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=60)
    finished = json.loads((tmp_path / "backup" / "training_metadata.json").read_text())["epoch"]
    assert finished == 1  # killed in its second epoch
    assert not (tmp_path / "out" / "card.json").exists()
    second = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-2000:]
    epochs_run = re.findall(r"Epoch (\d)/4", second.stdout)
    assert epochs_run[0] == "2" and epochs_run[-1] == "4", epochs_run  # resumed after the last finished epoch
    written = json.loads((tmp_path / "out" / "card.json").read_text())
    assert written["training"]["epochs"] == 4 and written["training"]["resumed_from_epoch"] == finished
