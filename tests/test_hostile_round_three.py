"""Hostile input, round three, through the real entry points (`keras_ae.cli.main`, `keras_ae.save_preset`,
`keras_ae.data.load`): image sizes that cannot fit, files that are not files, two writers of one preset, and outputs
that would replace the user's own files. Every refusal is one line; the command's exit status is 2."""

import hashlib
import json
import os
import threading
import time

import numpy as np
import pytest
from PIL import Image

import keras_ae
from keras_ae import cards, cli, data, files, networks, training

DIGITS, _ = data.bundled_sample("mnist")


def run(capsys, *argv, seconds=120):
    """`keras-ae ARGV` in this process, in a thread so that a command that blocks fails the test instead of hanging it;
    (exit status, stdout, stderr, seconds taken)."""
    result = {}
    start = time.perf_counter()
    worker = threading.Thread(target=lambda: result.setdefault("code", cli.main([str(argument) for argument in argv])), daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"keras-ae {' '.join(map(str, argv))} still running after {seconds} s"
    captured = capsys.readouterr()
    return result["code"], captured.out, captured.err, time.perf_counter() - start


def assert_refused(outcome, *expected):
    code, _, err, _ = outcome
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, (code, err)
    for text in expected:
        assert text in lines[0], (text, lines[0])
    return lines[0]


def digit_folder(folder, count=40):
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        Image.fromarray(np.round(DIGITS[index, ..., 0] * 255).astype("uint8")).save(folder / f"{index:02d}.png")
    return folder


def tree(folder):
    """{relative path: bytes} of every file under `folder`."""
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


# 1. An image size whose tensor cannot fit is refused before any image is read.

def test_a_huge_image_size_is_refused_before_any_image_is_read(tmp_path, capsys, monkeypatch):
    folder = digit_folder(tmp_path / "digits")
    opened = []
    original_open = Image.open
    monkeypatch.setattr(files.Image, "open", lambda *args, **kwargs: opened.append(args) or original_open(*args, **kwargs))
    outcome = run(capsys, "train", "--data", folder, "--image-size", "100000x100000", "--output", tmp_path / "out")
    line = assert_refused(outcome, "40 images", "100000x100000 pixels (--image-size)", "pass a smaller --image-size")
    assert "(image_size)" not in line and "image_size=" not in line and opened == [] and outcome[3] < 5 and not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match=r"40 images .* 100000x100000 pixels \(image_size\).* image_size=\(64, 64\)"):
        data.load(str(folder), image_size=(100000, 100000))
    assert opened == []
    monkeypatch.setattr(files, "available_memory", lambda: 100_000)  # without image_size: the first header's size counts
    with pytest.raises(ValueError, match="40 images .* of 28x28 pixels \\(the size of .*00.png\\)"):
        data.load(str(folder))
    assert len(opened) == 1
    monkeypatch.undo()
    assert next(iter(data.load(str(folder), image_size=(32, 32), batch_size=40))).shape == (40, 32, 32, 1)


# 5. Only regular files and folders are read; broken links and loops are unreadable files like any other.

def test_a_fifo_is_refused_and_broken_links_fail_like_any_unreadable_file(tmp_path, capsys):
    os.mkfifo(tmp_path / "readings.csv")
    assert_refused(run(capsys, "train", "--data", tmp_path / "readings.csv", "--output", tmp_path / "out", seconds=60),
                   "readings.csv is a FIFO (named pipe), not a regular file")
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="is a FIFO"):
        data.load(str(tmp_path / "readings.csv"))
    os.symlink("missing.npy", tmp_path / "broken.npy")
    with pytest.raises(ValueError, match="Cannot read .*broken.npy as a NumPy .* No such file"):
        data.load(str(tmp_path / "broken.npy"))

    folder = digit_folder(tmp_path / "digits", count=3)
    os.symlink("b.png", folder / "a.png")
    os.symlink("a.png", folder / "b.png")  # a loop
    (folder / "empty.png").write_bytes(b"")
    os.mkfifo(folder / "pipe.png")
    with pytest.raises(ValueError, match=r"Cannot read image .*a\.png \(OSError: .*Too many levels of symbolic links.*\); "
                                         r"4 of 7 files are unreadable"):
        data.load(str(folder))
    with pytest.warns(UserWarning, match=r"Skipped 4 unreadable image files of 7 .*: a\.png, b\.png, empty\.png, \.\.\."):
        assert next(iter(data.load(str(folder), on_error="skip", batch_size=8))).shape == (3, 28, 28, 1)
    (folder / "empty.png").unlink()
    (folder / "a.png").unlink()
    (folder / "b.png").unlink()
    with pytest.raises(ValueError, match=r"pipe\.png \(a FIFO \(named pipe\), not a regular file\)"):
        data.load(str(folder))
    (folder / "pipe.png").unlink()
    os.symlink("nowhere.png", folder / "gone.png")
    assert_refused(run(capsys, "train", "--data", folder, "--output", tmp_path / "out"), "Cannot read image", "gone.png")


# 6. Two writers of one preset: one wins whole, the other is refused; no card ever names other weights.

def tiny_model(seed):
    return keras_ae.Autoencoder(*networks.dense((8, 8, 1), 2, seed=seed))


def test_two_threads_saving_one_preset_never_mix_their_files(tmp_path):
    models = [tiny_model(1), tiny_model(2)]
    folder = tmp_path / "preset"
    refusals, rounds = [], 20
    for _ in range(rounds):
        barrier, outcomes = threading.Barrier(2), [None, None]

        def save(index):
            barrier.wait()
            try:
                outcomes[index] = keras_ae.save_preset(models[index], folder)["weights"]["sha256"]
            except ValueError as error:
                outcomes[index] = error

        threads = [threading.Thread(target=save, args=(index,)) for index in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        written = [outcome for outcome in outcomes if isinstance(outcome, str)]
        failed = [outcome for outcome in outcomes if not isinstance(outcome, str)]
        assert written, outcomes
        for error in failed:
            assert isinstance(error, ValueError) and "is being written by another keras-ae process or thread" in str(error)
            assert len(str(error).splitlines()) == 1
        refusals += failed
        card = json.loads((folder / "card.json").read_text())
        assert card["weights"]["sha256"] == sha256(folder / "model.weights.h5") in written
        assert sorted(path.name for path in folder.iterdir()) == ["card.json", "model.weights.h5"]
        assert sorted(path.name for path in tmp_path.iterdir()) == ["preset"]  # no lock, staging or replaced folder left
    assert refusals, "the two writers never overlapped"
    print(f"{len(refusals)} of {rounds} rounds refused the second writer")
    loaded = keras_ae.load(folder)
    assert any(all(np.array_equal(a, b) for a, b in zip(loaded.get_weights(), model.get_weights())) for model in models)


def test_save_preset_replaces_only_a_preset(tmp_path):
    model = tiny_model(3)
    keras_ae.save_preset(model, tmp_path / "empty_already")  # an empty folder is fine
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"holds files that are not a preset's \(notes.txt\)"):
        keras_ae.save_preset(model, tmp_path / "mine")
    assert tree(tmp_path / "mine") == {"notes.txt": b"mine"}
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        keras_ae.save_preset(model, tmp_path / "file")


def tiny_table(path):
    rng = np.random.default_rng(0)
    np.savez(path, x=rng.random((64, 16)).astype("float32"), y=np.repeat([0, 1], 32))
    return path


def test_a_second_train_onto_a_preset_being_written_is_refused_at_once(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(training, "train", lambda *args, **kwargs: pytest.fail("training started"))
    holding, release = threading.Event(), threading.Event()

    def other_run():  # what a concurrent `keras-ae train --output` holds from its start to its written preset
        with cards.preset_lock(tmp_path / "out"):
            holding.set()
            release.wait(60)

    holder = threading.Thread(target=other_run)
    holder.start()
    holding.wait(60)
    try:
        outcome = run(capsys, "train", "--data", tiny_table(tmp_path / "t.npz"), "--epochs", "1", "--output", tmp_path / "out")
    finally:
        release.set()
        holder.join(60)
    assert_refused(outcome, "out is being written by another keras-ae process or thread")
    assert outcome[3] < 5 and not (tmp_path / "out").exists()


# 7. `train --output` onto a preset needs --overwrite, and never replaces a folder of other files.

def test_train_output_refuses_a_preset_without_overwrite_and_other_files_always(tmp_path, capsys):
    table = tiny_table(tmp_path / "t.npz")
    common = ["train", "--data", table, "--epochs", "1", "--batch-size", "32", "--normal-label", "0"]
    code, out, err, _ = run(capsys, *common, "--output", tmp_path / "out")
    assert code == 0, err
    first = json.loads((tmp_path / "out" / "card.json").read_text())
    assert first["anomaly"]["threshold"] > 0 and first["weights"]["sha256"] == sha256(tmp_path / "out" / "model.weights.h5")
    assert sorted(tree(tmp_path / "out")) == ["card.json", "model.weights.h5", "training_curves.png"]

    outcome = run(capsys, *common, "--latent-dim", "3", "--output", tmp_path / "out")
    assert_refused(outcome, "--output", "already holds a preset", "pass --overwrite")
    assert "Epoch" not in outcome[1] and json.loads((tmp_path / "out" / "card.json").read_text()) == first

    code, _, err, _ = run(capsys, *common, "--latent-dim", "3", "--output", tmp_path / "out", "--overwrite")
    assert code == 0, err
    second = json.loads((tmp_path / "out" / "card.json").read_text())
    assert second["network"]["latent_dim"] == 3 and second["anomaly"]["threshold"] > 0
    assert second["weights"]["sha256"] == sha256(tmp_path / "out" / "model.weights.h5")
    assert keras_ae.load(tmp_path / "out").encoder.output_shape[-1] == 3
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out", "t.npz"]

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    (mine / "card.json").write_text("{}")
    for extra in ([], ["--overwrite"]):
        outcome = run(capsys, *common, "--output", mine, *extra)
        assert_refused(outcome, "--output", "holds files that are not a preset's (thesis.tex)")
        assert "Epoch" not in outcome[1]
    (mine / "thesis.tex").unlink()  # a card without its weights is no preset either
    assert_refused(run(capsys, *common, "--output", mine, "--overwrite"), "a partial preset (no model.weights.h5)")
    assert tree(mine) == {"card.json": b"{}"}


# 8. denoise and reconstruct never write into their input, nor over existing files without --overwrite.

def test_denoise_and_reconstruct_never_overwrite_their_input(tmp_path, capsys):
    folder = digit_folder(tmp_path / "noisy", count=4)
    before = tree(folder)
    for verb, model in (("denoise", "dae_mnist"), ("reconstruct", "conv_ae_mnist")):
        for out, where in ((folder, "is"), (folder / "clean", "lies inside"), (tmp_path, "holds")):
            outcome = run(capsys, verb, model, folder, "--out", out, "--overwrite")
            assert_refused(outcome, f"--out {out} {where} the input folder {folder}")
            assert outcome[3] < 5
    twins = digit_folder(tmp_path / "twins", count=2)
    (twins / "01.png").rename(twins / "00.jpg")  # 00.png and 00.jpg would both become 00.png
    assert_refused(run(capsys, "denoise", "dae_mnist", twins, "--out", tmp_path / "clean"), "would both be written to")
    assert tree(folder) == before and not (tmp_path / "clean").exists()

    code, out, err, _ = run(capsys, "denoise", "dae_mnist", folder, "--out", tmp_path / "clean")
    assert code == 0 and "wrote 4 images" in out, err
    denoised = tree(tmp_path / "clean")
    (tmp_path / "clean" / "02.png").write_bytes(b"keep me")
    assert_refused(run(capsys, "denoise", "dae_mnist", folder, "--out", tmp_path / "clean"),
                   "00.png and 3 more of the 4 files to write exist already; pass --overwrite")
    assert (tmp_path / "clean" / "02.png").read_bytes() == b"keep me"
    code, _, err, _ = run(capsys, "denoise", "dae_mnist", folder, "--out", tmp_path / "clean", "--overwrite")
    assert code == 0 and tree(tmp_path / "clean") == denoised, err

    digit = folder / "00.png"
    assert_refused(run(capsys, "reconstruct", "conv_ae_mnist", digit, "--out", digit, "--overwrite"), "is the input file")
    (tmp_path / "grid.png").write_bytes(b"an older grid")
    assert_refused(run(capsys, "reconstruct", "conv_ae_mnist", digit, "--out", tmp_path / "grid.png"),
                   "grid.png exists already; pass --overwrite")
    assert (tmp_path / "grid.png").read_bytes() == b"an older grid"
    code, _, err, _ = run(capsys, "reconstruct", "conv_ae_mnist", digit, "--out", tmp_path / "grid.png", "--overwrite")
    assert code == 0 and (tmp_path / "grid.png").read_bytes()[:4] == b"\x89PNG", err
    assert tree(folder) == before
