"""A new user's everyday jobs through the real command: embed a folder, fine-tune a zoo entry on their own data, choose a
threshold rule, read a preset's threshold with `info`, and ask the version."""

import csv
import json
import subprocess

import numpy as np
import pytest
from PIL import Image

import keras_ae
from keras_ae import cli, data
from conftest import console_script


def run(capsys, *argv):
    code = cli.main([str(argument) for argument in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def photos(data_root, tmp_path_factory):
    """40 real MNIST test digits as PNG files, in two class folders."""
    folder = tmp_path_factory.mktemp("photos")
    images, labels = data.load_arrays("mnist", "test")
    for digit in (3, 7):
        (folder / f"class_{digit}").mkdir()
        for index in np.flatnonzero(labels == digit)[:20]:
            Image.fromarray(images[index, ..., 0]).save(folder / f"class_{digit}" / f"{index:05d}.png")
    return folder


def test_embed_writes_one_row_per_file_with_its_name_in_file_order(photos, tmp_path, capsys):
    code, _, err = run(capsys, "embed", "conv_ae_mnist", photos, "--out", tmp_path / "codes.csv")
    assert code == 0, err
    with open(tmp_path / "codes.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0][:2] == ["input", "code_0"] and len(rows[0]) == 33 and len(rows) == 41
    assert [row[0] for row in rows[1:]] == data.names(str(photos))
    model = keras_ae.load("conv_ae_mnist")
    first = np.asarray(Image.open(photos / rows[1][0]), "float32")[None, ..., None] / 255
    np.testing.assert_allclose([float(value) for value in rows[1][1:]], np.asarray(model.embed(first))[0], rtol=1e-5, atol=1e-6)
    code, _, err = run(capsys, "embed", "vae_mnist", photos, "--out", tmp_path / "codes.npy")
    assert code == 0, err and np.load(tmp_path / "codes.npy").shape == (40, 32)
    code, _, err = run(capsys, "embed", "conv_ae_mnist", photos, "--out", tmp_path / "codes.txt")
    assert code == 2 and "--out must end in .csv" in err and err.count("\n") == 1


def test_fine_tune_a_zoo_entry_on_a_folder_and_the_card_says_from_what(photos, tmp_path, capsys):
    code, _, err = run(capsys, "train", "--data", photos, "--from", "conv_ae_mnist", "--epochs", "1", "--output", tmp_path / "tuned")
    assert code == 0, err
    card = json.loads((tmp_path / "tuned" / "card.json").read_text())
    start = keras_ae.model_card("conv_ae_mnist")
    assert card["recipe"]["initial_weights"] == {"preset": "conv_ae_mnist", "sha256": start["weights"]["sha256"]}
    assert card["network"] == start["network"] and "weights" in card and card["training"]["epochs"] == 1
    tuned, original = keras_ae.load(tmp_path / "tuned"), keras_ae.load("conv_ae_mnist")
    assert any(not np.array_equal(a, b) for a, b in zip(tuned.get_weights(), original.get_weights()))
    code, _, err = run(capsys, "train", "--data", photos, "--from", "ae_ecg5000", "--output", tmp_path / "wrong")
    assert code == 2 and "takes examples of shape (140,)" in err and not (tmp_path / "wrong").exists()


@pytest.mark.parametrize("options, rule", [(["--threshold-rule", "best-accuracy"], "best_accuracy"),
                                           (["--threshold-rule", "mean-plus-std"], "mean_plus_std"),
                                           (["--contamination", "0.05"], "percentile")])
def test_threshold_rules_and_contamination_and_info_shows_the_threshold(data_root, tmp_path, capsys, options, rule):
    table = tmp_path / "beats.csv"
    rows = np.loadtxt(f"{data_root}/ecg5000/ecg.csv", delimiter=",")[:400]
    np.savetxt(table, rows, delimiter=",")
    code, _, err = run(capsys, "train", "--data", table, "--label-column", "-1", "--normal-label", "1", "--epochs", "2",
                       *options, "--output", tmp_path / "detector")
    assert code == 0, err
    anomaly = json.loads((tmp_path / "detector" / "card.json").read_text())["anomaly"]
    assert anomaly["threshold_rule"] == rule and anomaly["threshold"] > 0 and anomaly["threshold_source"]
    assert anomaly.get("percentile") == (95.0 if "--contamination" in options else None)
    code, out, _ = run(capsys, "info", tmp_path / "detector")
    assert code == 0 and f"anomaly threshold: {anomaly['threshold']:.6g} ({rule}" in out


def test_contamination_with_another_rule_and_the_version(data_root, tmp_path, capsys):
    code, _, err = run(capsys, "train", "--data", f"{data_root}/ecg5000/ecg.csv", "--label-column", "-1", "--normal-label", "1",
                       "--contamination", "0.1", "--threshold-rule", "best-accuracy", "--output", tmp_path / "out")
    assert code == 2 and err.count("\n") == 1 and "contamination sets the percentile threshold" in err
    assert not (tmp_path / "out").exists()
    result = subprocess.run([console_script(), "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == f"keras-ae {keras_ae.__version__}"
