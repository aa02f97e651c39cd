"""A --backup-dir is bound to the run it backs up, and train() refuses counts and resumes that cannot be right."""

import copy
import hashlib
import json
import os
import shutil
import subprocess

import keras
import pytest

import keras_ae
from keras_ae.training import BoundBackup, finish
from conftest import console_script

TINY = dict(batch_size=128, train_split="train[:512]", validation_split="test[:256]", verbose=0)


def small_card(dataset="mnist", latent_dim=32):
    """ae_mnist with a two-epoch recipe, on `dataset`, with a code of `latent_dim`."""
    card = copy.deepcopy(keras_ae.model_card("ae_mnist"))
    card["recipe"].update(epochs=2, steps_per_execution=1)
    card["data"]["dataset"], card["network"]["latent_dim"] = dataset, latent_dim
    return card


class InterruptInSecondEpoch(keras.callbacks.Callback):
    """Stands for a killed run: fails as the second epoch begins, after the first one's backup was written."""

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            raise RuntimeError("interrupted")


def contents(folder):
    """Every file under `folder` with the sha256 of its bytes."""
    return {
        os.path.relpath(os.path.join(root, name), folder): hashlib.sha256(open(os.path.join(root, name), "rb").read()).hexdigest()
        for root, _, names in os.walk(folder) for name in names
    }


@pytest.fixture(scope="module")
def interrupted_backup(tmp_path_factory, data_root):
    """The backup folder of small_card() interrupted after one of its two epochs (made in an empty folder, which is fine)."""
    folder = tmp_path_factory.mktemp("interrupted") / "backup"
    folder.mkdir()
    with pytest.raises(RuntimeError, match="interrupted"):
        keras_ae.train(small_card(), data_dir=data_root, backup_dir=folder, callbacks=[InterruptInSecondEpoch()], **TINY)
    assert json.loads((folder / "training_metadata.json").read_text())["epoch"] == 1
    assert (folder / "latest.weights.h5").exists() and (folder / "backup.json").exists()
    return folder


@pytest.fixture
def backup(interrupted_backup, tmp_path):
    """A fresh copy of the interrupted backup for one test."""
    return shutil.copytree(interrupted_backup, tmp_path / "backup")


@pytest.mark.parametrize("other, section", [
    (small_card(dataset="fashion_mnist"), "data"),
    (small_card(latent_dim=16), "network"),
], ids=["other_dataset", "other_architecture"])
def test_a_backup_of_another_card_is_refused_and_left_as_it_was(backup, data_root, other, section):
    before = contents(backup)
    with pytest.raises(ValueError) as refused:
        keras_ae.train(other, data_dir=data_root, backup_dir=backup, **TINY)
    message = str(refused.value)
    assert "\n" not in message and str(backup) in message and f"differs in: {section}" in message
    assert "--backup-dir" in message and "delete" in message
    assert contents(backup) == before


def test_a_backup_with_another_batch_size_or_without_a_fingerprint_is_refused(backup, data_root):
    with pytest.raises(ValueError, match="differs in: recipe"):
        keras_ae.train(small_card(), data_dir=data_root, backup_dir=backup, **{**TINY, "batch_size": 64})
    (backup / "backup.json").unlink()
    with pytest.raises(ValueError, match="Keras backup without backup.json"):
        keras_ae.train(small_card(), data_dir=data_root, backup_dir=backup, **TINY)


def test_a_folder_of_other_files_is_refused_since_training_deletes_it(tmp_path, data_root):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="notes.txt"):
        keras_ae.train(small_card(), data_dir=data_root, backup_dir=tmp_path, **TINY)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_the_chief_leaves_a_worker_folder_to_its_worker_and_the_last_one_done_removes_the_folder(tmp_path):
    chief, worker = tmp_path / "backup", tmp_path / "backup" / "worker-1"
    for folder in (chief, worker):
        folder.mkdir(exist_ok=True)
        for name in ("backup.json", "latest.weights.h5", "training_metadata.json"):
            (folder / name).write_text("{}")
    BoundBackup(str(chief)).on_train_end()
    assert sorted(path.name for path in chief.iterdir()) == ["worker-1"]
    BoundBackup(str(worker)).on_train_end()
    assert not chief.exists()


@pytest.mark.parametrize("epochs", [1, None])  # None: the card's recipe, here 1 epoch
def test_resuming_with_no_more_epochs_than_done_is_refused(backup, data_root, epochs):
    before = contents(backup)
    card = small_card()
    card["recipe"]["epochs"] = 1
    with pytest.raises(ValueError) as refused:
        keras_ae.train(card, data_dir=data_root, backup_dir=backup, epochs=epochs, **TINY)
    message = str(refused.value)
    assert "\n" not in message and str(backup) in message and "already done 1 epochs" in message and "more than 1" in message
    assert contents(backup) == before


def test_resuming_with_more_epochs_finishes_them_and_says_so(backup, data_root, tmp_path):
    card = small_card()
    model, history, stats = keras_ae.train(card, data_dir=data_root, backup_dir=backup, epochs=3, **TINY)
    assert history.epoch == [1, 2] and stats["epochs"] == 3 and stats["resumed_from_epoch"] == 1
    assert not backup.exists()
    written = finish(model, card, history, stats, tmp_path / "preset")
    assert written["training"]["epochs"] == 3
    assert json.loads((tmp_path / "preset" / "card.json").read_text())["training"]["epochs"] == 3


def test_a_scheduled_run_resumes_only_with_the_epochs_its_decay_spans(tmp_path, data_root):
    card = small_card()
    card["recipe"].update(learning_rate_schedule="cosine", final_learning_rate_fraction=0.05)
    folder = tmp_path / "backup"
    with pytest.raises(RuntimeError, match="interrupted"):
        keras_ae.train(card, data_dir=data_root, backup_dir=folder, callbacks=[InterruptInSecondEpoch()], **TINY)
    before = contents(folder)
    with pytest.raises(ValueError) as refused:
        keras_ae.train(card, data_dir=data_root, backup_dir=folder, epochs=3, **TINY)
    message = str(refused.value)
    assert "\n" not in message and "decays over 2 epochs" in message and "--epochs 2" in message
    assert contents(folder) == before
    _, history, stats = keras_ae.train(card, data_dir=data_root, backup_dir=folder, **TINY)
    assert history.epoch == [1] and stats["resumed_from_epoch"] == 1


@pytest.mark.parametrize("argument, value", [("epochs", 0), ("epochs", -2), ("batch_size", 0), ("batch_size", -1), ("epochs", 2.5)])
def test_counts_must_be_positive_integers(argument, value):
    with pytest.raises(ValueError) as refused:
        keras_ae.train(small_card(), **{argument: value})
    assert str(refused.value) == f"{argument} must be a positive integer; got {value!r}"


def test_a_recipe_count_is_checked_too():
    card = small_card()
    card["recipe"]["batch_size"] = 0
    with pytest.raises(ValueError, match=r"^card: recipe.batch_size must be an integer from 1 to 1048576; got 0\.$"):  # checked with the card
        keras_ae.train(card)


def test_the_command_refuses_a_mismatched_backup_in_one_line(backup, data_root, tmp_path):
    (tmp_path / "other.json").write_text(json.dumps(small_card(dataset="fashion_mnist")))
    before = contents(backup)
    environment = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run(
        [console_script(), "train", "--card", str(tmp_path / "other.json"), "--data-dir", data_root,
         "--backup-dir", str(backup), "--output", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300, env=environment,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("keras-ae train: error: The backup folder"), result.stderr
    assert "differs in: data" in result.stderr
    assert contents(backup) == before and not (tmp_path / "out").exists()
