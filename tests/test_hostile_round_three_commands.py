"""Hostile input, round three, groups 9-15, through the real `keras-ae` command (`keras_ae.cli.main`, or the installed
script in a subprocess): inputs of another shape, ratings out of range, names that break a CSV, cards whose config the
class does not take, messages that name the wrong cause or option, too little data, and options that do nothing.
Every refusal is one line on standard error with exit status 2, and comes before any training or writing."""

import csv
import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import warnings

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import keras_ae
from keras_ae import cards, cli, data, networks
from keras_ae.models.task import FewerItemsWarning
from conftest import console_script

DIGITS, _ = data.bundled_sample("mnist")  # real MNIST test digits, (n, 28, 28, 1) in [0, 1]


def run(capsys, *argv):
    code = cli.main([str(argument) for argument in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def refused(outcome, *expected, absent=()):
    """The one line of a refusal, checked for every text in `expected` and none in `absent`."""
    code, _, err = outcome
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, (code, err)
    for text in expected:
        assert text in lines[0], (text, lines[0])
    for text in absent:
        assert text not in lines[0], (text, lines[0])
    return lines[0]


def save_png(path, pixels):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.round(np.asarray(pixels) * 255).astype("uint8")).save(path)
    return path


def write_table(path, rows, delimiter=","):
    with open(path, "w", newline="") as handle:
        csv.writer(handle, delimiter=delimiter).writerows(rows)
    return path


@pytest.fixture(scope="module")
def table_model(tmp_path_factory):
    """A dense autoencoder of 8-column table rows, saved as a preset folder (untrained: only its shape matters here)."""
    folder = tmp_path_factory.mktemp("table_model")
    keras_ae.save_preset(keras_ae.Autoencoder(*networks.dense((8,), 4, seed=0)), folder)
    return folder


# 9. reconstruct takes only inputs of the model's own shape, never a reshaped count of values (images of another size are
# resized to the model's, with a note: issue 34, tested below).

@pytest.mark.parametrize("input_name, source, expected", [
    ("digit.png", "TABLE", ["is an image", "takes examples of shape (8,), not images", "(n, 8)"]),
    ("rgb.npy", "conv_ae_mnist", ["shape (3, 28, 28, 3)", "28x28 pixels, 1 channel", "(n, 28, 28, 1)"]),
    ("one_digit.npy", "conv_ae_mnist", ["shape (28, 28, 1)", "for one example, give array[None]"]),
    ("rows.npy", "TABLE", ["shape (3, 16)", "(n, 8)"]),
])
def test_reconstruct_refuses_inputs_of_another_shape(input_name, source, expected, table_model, tmp_path, capsys):
    save_png(tmp_path / "digit.png", DIGITS[0, ..., 0])
    np.save(tmp_path / "rgb.npy", np.repeat(DIGITS[:3], 3, axis=-1))  # 3 colour digits: was 9 scrambled grey ones
    np.save(tmp_path / "one_digit.npy", DIGITS[0])  # was one digit; a (28, 28, 2) array became two
    np.save(tmp_path / "rows.npy", np.random.default_rng(0).random((3, 16), dtype="float32"))  # was 6 rows of 8
    source = table_model if source == "TABLE" else source
    refused(run(capsys, "reconstruct", source, tmp_path / input_name, "--out", tmp_path / "out.npy"), *expected)
    assert not (tmp_path / "out.npy").exists()


def test_reconstruct_takes_inputs_of_the_models_shape(tmp_path, capsys):
    np.save(tmp_path / "two.npy", DIGITS[:2])
    np.save(tmp_path / "no_channel.npy", DIGITS[:2, ..., 0])  # grayscale images without their channel axis of 1
    for name in ("two.npy", "no_channel.npy"):
        code, _, err = run(capsys, "reconstruct", "conv_ae_mnist", tmp_path / name, "--out", tmp_path / f"{name}.out.npy")
        assert code == 0, err
        assert np.load(tmp_path / f"{name}.out.npy").shape == (2, 28, 28, 1)
    np.save(tmp_path / "scores_no_channel.npy", DIGITS[:2, ..., 0])
    refused(run(capsys, "score", "conv_ae_mnist", tmp_path / "scores_no_channel.npy", "--out", tmp_path / "s.csv"),
            "shape (2, 28, 28)", "add the channel axis: array[..., None]")


# 10. recommend: ratings out of the card's range or not finite are refused; fewer unseen items give fewer, never seen ones.

@pytest.mark.parametrize("entry, items, expected", [
    ("autorec_ml_latest_small", "1:nan,260:4", "--items: item 1 has the rating nan, which is not a finite number"),
    ("autorec_ml_latest_small", "1:inf", "not a finite number"),
    ("autorec_ml_latest_small", "1:-50,260:4", "item 1 has the rating -50, which lies outside this model's rating range, 0.5 to 5"),
    ("autorec_ml_latest_small", "1:100", "rating 100, which lies outside this model's rating range, 0.5 to 5"),
    ("multvae_ml_latest_small", "1:-inf", "not a finite number"),
    ("multvae_ml_latest_small", "1:5,260:4.5", "--items: item 1 has the rating 5, which is not 1: this model's histories are implicit"),
    ("multvae_ml_latest_small", "1:-50", "give item ids without ratings"),
])
def test_recommend_refuses_ratings_the_model_does_not_take(entry, items, expected, data_root, capsys):
    refused(run(capsys, "recommend", entry, "--items", items), expected)


def unseen_lines(printed):
    return [line for line in printed.splitlines() if not line.startswith("(")]


@pytest.mark.parametrize("entry", ["multvae_ml_latest_small", "autorec_ml_latest_small"])
def test_recommend_lists_fewer_items_rather_than_seen_ones(entry, data_root, capsys):
    item_ids = keras_ae.load(entry).item_ids.numpy().tolist()
    for left in (2, 0):
        history = item_ids[left:]
        code, printed, err = run(capsys, "recommend", entry, "--items", ",".join(map(str, history)), "-k", "5")
        assert code == 0, err
        assert f"leaves {f'only {left}' if left else 'none'} of the {len(item_ids)} items unseen: recommending {left}, not 5" in printed
        listed = [int(line.split()[1]) for line in unseen_lines(printed)]
        assert sorted(listed) == sorted(item_ids[:left]) and not set(listed) & set(history)
    code, printed, err = run(capsys, "recommend", entry, "--items", "1,260", "-k", "5")  # plenty left: k, and no note
    assert code == 0 and len(unseen_lines(printed)) == 5 and "unseen" not in printed, (printed, err)


def test_the_models_recommend_warns_and_returns_only_unseen_items(data_root):
    model = keras_ae.load("multvae_ml_latest_small")
    item_ids = model.item_ids.numpy()
    with pytest.warns(FewerItemsWarning, match=r"Histories \[0\] leave fewer than 10 .*only 3\): recommending 3 for each, not 10"):
        best, scores = model.recommend([item_ids[3:].tolist(), [1, 260]], k=10)
    assert best.shape == scores.shape == (2, 3) and set(best[0]) == set(item_ids[:3].tolist()) and np.isfinite(scores).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to warn about
        assert model.recommend([[1, 260]], k=10)[0].shape == (1, 10)
    rows = np.zeros((1, len(item_ids)), "float32")
    rows[0, 0] = np.nan
    with pytest.raises(ValueError, match="History 0: item .* has the rating nan, which is not a finite number"):
        model.recommend(rows)
    autorec = keras_ae.load("autorec_ml_latest_small")
    with pytest.raises(ValueError, match="rating 60, which lies outside this model's rating range, 0.5 to 5"):
        autorec.recommend([{1: 60.0}])
    with pytest.raises(ValueError, match="k must be between 1 and the number of items"):
        autorec.recommend([{1: 4.0}], k=len(autorec.item_ids.numpy()) + 1)


# 11. score writes its CSV with the csv module, formulas neutralised, atomically.

HOSTILE_NAMES = ["a,b.png", "line\nbreak.png", '=HYPERLINK("http:x","click").png', "+1.png", "-2.png", "@SUM(A1).png",
                 'quote".png', "plain.png"]


def test_score_writes_names_that_break_a_csv_or_start_a_formula_as_text(tmp_path, capsys):
    folder = tmp_path / "images"
    for index, name in enumerate(HOSTILE_NAMES):
        save_png(folder / name, DIGITS[index, ..., 0])
    out = tmp_path / "scores.csv"
    out.write_text("the previous scores\n")
    code, printed, err = run(capsys, "score", "ae_mnist", folder, "--out", out)
    assert code == 0 and f"wrote {len(HOSTILE_NAMES)} scores" in printed, err
    with open(out, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["input", "score"] and all(len(row) == 2 for row in rows)
    safe = {name if name[0] not in "=+-@" else f"'{name}" for name in HOSTILE_NAMES}
    assert {row[0] for row in rows[1:]} == safe and len(rows) == len(HOSTILE_NAMES) + 1
    assert all(np.isfinite(float(row[1])) for row in rows[1:])
    assert not [path for path in tmp_path.iterdir() if path.name.startswith(".partial")]


# 12. A card's model.config holds arguments of its class only.

def preset_with_config(tmp_path, **config):
    folder = tmp_path / "preset"
    shutil.copytree(cards.card_path("ae_mnist").parent, folder)
    card = json.loads((folder / "card.json").read_text())
    card["model"]["config"].update(config)
    (folder / "card.json").write_text(json.dumps(card))
    return folder


@pytest.mark.parametrize("config, expected", [
    ({"encoder": {"class_name": "Sequential"}}, "model.config.encoder is given, but the card's network section builds"),
    ({"decoder": None}, "model.config.decoder is given"),
    ({"latent": 3}, "model.config.latent is not an argument of Autoencoder; it takes ["),
])
def test_a_card_config_the_class_does_not_take_is_one_line(config, expected, tmp_path, capsys):
    folder = preset_with_config(tmp_path, **config)
    save_png(tmp_path / "digit.png", DIGITS[0, ..., 0])
    line = refused(run(capsys, "reconstruct", folder, tmp_path / "digit.png", "--out", tmp_path / "out.png"), "card.json", expected)
    assert "TypeError" not in line and not (tmp_path / "out.png").exists()
    refused(run(capsys, "train", "--card", folder / "card.json", "--epochs", "1", "--output", tmp_path / "trained"), expected)
    assert not (tmp_path / "trained").exists()


def test_keras_base_arguments_and_the_classes_own_are_accepted(tmp_path, capsys):
    folder = preset_with_config(tmp_path, name="mine", trainable=True, seed=3, reconstruction="bce")
    save_png(tmp_path / "digit.png", DIGITS[0, ..., 0])
    code, _, err = run(capsys, "reconstruct", folder, tmp_path / "digit.png", "--out", tmp_path / "out.png")
    assert code == 0, err


# 13. Messages name the real cause, in the options of the command that was run, before any training.

def test_images_of_another_size_are_resized_to_the_models_with_one_note(tmp_path, capsys):
    """Issue 34: a 64x64 RGB folder given to a 28x28 grayscale model is resized and converted, with one note."""
    rgb = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    (tmp_path / "rgb").mkdir()
    for index in range(3):
        Image.fromarray(rgb[index]).save(tmp_path / "rgb" / f"{index}.png")
    code, out, err = run(capsys, "embed", "conv_ae_mnist", tmp_path / "rgb", "--out", tmp_path / "codes.npy")
    assert code == 0, err
    assert err.strip().splitlines() == ["note: resized images of 64x64 to 28x28 (grayscale), the size conv_ae_mnist takes"]
    model = keras_ae.load("conv_ae_mnist")
    expected = tf.image.resize(tf.image.rgb_to_grayscale(rgb / 255.0), (28, 28), antialias=True).numpy()
    np.testing.assert_allclose(np.load(tmp_path / "codes.npy"), model.embed(expected.astype("float32")), atol=2e-2)
    code, _, err = run(capsys, "score", "conv_ae_mnist", tmp_path / "rgb", "--out", tmp_path / "same.csv", "--image-size", "28x28")
    assert code == 0 and "resized images of 64x64" in err, err
    refused(run(capsys, "score", "conv_ae_mnist", tmp_path / "rgb", "--out", tmp_path / "s.csv", "--image-size", "32x32"),
            "--image-size 32x32", "takes images of 28x28 pixels", "leave --image-size out")
    assert not (tmp_path / "s.csv").exists()
    np.save(tmp_path / "digits.npy", DIGITS[:2])
    for verb, out in (("score", "s.csv"), ("reconstruct", "r.npy")):  # accepted and unused on an array: refused instead
        refused(run(capsys, verb, "conv_ae_mnist", tmp_path / "digits.npy", "--out", tmp_path / out, "--image-size", "28x28"),
                "--image-size is for images", "leave --image-size out")
        assert not (tmp_path / out).exists()
    save_png(tmp_path / "small.png", DIGITS[0, 2:-2, 2:-2, 0])
    code, _, err = run(capsys, "reconstruct", "conv_ae_mnist", tmp_path / "small.png", "--out", tmp_path / "r.png")
    assert code == 0 and "resized images of 24x24 to 28x28" in err, err


def test_score_names_the_real_shape_fault(table_model, tmp_path, capsys):
    for index in range(3):
        save_png(tmp_path / "big" / f"{index}.png", np.pad(DIGITS[index, ..., 0], 2))
    code, _, err = run(capsys, "score", "ae_mnist", tmp_path / "big", "--out", tmp_path / "resized.csv")
    assert code == 0 and "resized images of 32x32 to 28x28" in err, err
    rows = np.random.default_rng(0).random((5, 9)).round(4)
    refused(run(capsys, "score", table_model, write_table(tmp_path / "nine.csv", rows), "--out", tmp_path / "s.csv"),
            "has 9 feature columns", "takes 8", "pass --label-column")
    refused(run(capsys, "score", table_model, write_table(tmp_path / "five.csv", rows[:, :5]), "--out", tmp_path / "s.csv"),
            "has 5 feature columns", "takes 8", absent=["label"])
    assert not (tmp_path / "s.csv").exists()


def test_mixed_sizes_name_the_option_of_the_command(tmp_path, capsys):
    save_png(tmp_path / "mixed" / "a.png", np.pad(DIGITS[0, ..., 0], 2))
    for index in range(1, 8):
        save_png(tmp_path / "mixed" / f"{index}.png", DIGITS[index, ..., 0])
    code, _, err = run(capsys, "score", "ae_mnist", tmp_path / "mixed", "--out", tmp_path / "s.csv")  # resized to the model's
    assert code == 0 and "resized images of 32x32 to 28x28" in err, err
    refused(run(capsys, "train", "--data", tmp_path / "mixed", "--output", tmp_path / "trained"),
            "pass --image-size HEIGHTxWIDTH to resize them all", absent=["image_size="])
    assert not (tmp_path / "trained").exists()


def test_train_into_a_file_is_refused_before_training(tmp_path, capsys):
    rows = np.random.default_rng(0).random((20, 8)).round(4)
    (tmp_path / "afile").write_text("mine")
    refused(run(capsys, "train", "--data", write_table(tmp_path / "t.csv", rows), "--output", tmp_path / "afile"),
            "--output", "is a file", absent=["Errno"])
    assert (tmp_path / "afile").read_text() == "mine"


def test_a_one_dimensional_array_is_named_as_such(tmp_path, capsys):
    np.save(tmp_path / "flat.npy", np.random.default_rng(0).random(50, dtype="float32"))
    refused(run(capsys, "train", "--data", tmp_path / "flat.npy", "--output", tmp_path / "trained"),
            "flat.npy is a 1-D array of 50 values", "2 or more dimensions, one example per row", absent=["network.input_shape"])
    assert not (tmp_path / "trained").exists()


def test_a_semicolon_csv_is_named_as_such(tmp_path, capsys):
    rows = [["a", "b", "c"], *np.random.default_rng(0).random((20, 3)).round(3).tolist()]
    table = write_table(tmp_path / "semi.csv", rows, delimiter=";")
    refused(run(capsys, "train", "--data", table, "--output", tmp_path / "trained"),
            "semi.csv line 1", "separated by semicolons", "read as separated by commas", absent=["not a number"])
    refused(run(capsys, "score", "ae_ecg5000", table, "--out", tmp_path / "s.csv"), "separated by semicolons")
    tsv = write_table(tmp_path / "commas.tsv", rows)
    refused(run(capsys, "train", "--data", tsv, "--output", tmp_path / "trained"), "separated by commas", "rename it to .csv")
    assert not (tmp_path / "trained").exists()


class PresetHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_info_of_a_url_prints_no_tensorflow_start_up_lines(tmp_path):
    shutil.copytree(cards.card_path("ae_mnist").parent, tmp_path / "site" / "ae_mnist")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(PresetHandler, directory=tmp_path / "site"))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/ae_mnist"
    environment = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    environment["KERAS_AE_HOME"] = str(tmp_path / "cache")
    try:
        shown = subprocess.run([console_script(), "info", url], capture_output=True, text=True, timeout=120, env=environment)
        probe = ("import sys; from keras_ae import cli; assert cli.main(['info', sys.argv[1]]) == 0; "
                 "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules")
        imported = subprocess.run([sys.executable, "-c", probe, url], capture_output=True, text=True, timeout=120, env=environment)
    finally:
        server.shutdown()
        server.server_close()
    assert shown.returncode == 0 and shown.stderr == "" and shown.stdout.startswith("ae_mnist: "), shown
    assert imported.returncode == 0, imported.stderr


# 14. Too few examples for a held-out part and a threshold are refused with the numbers.

def test_too_few_examples_are_refused_with_the_numbers(tmp_path, capsys):
    rng = np.random.default_rng(0)
    refused(run(capsys, "train", "--data", write_table(tmp_path / "one.csv", rng.random((1, 8)).round(4)),
                "--output", tmp_path / "trained"), "one.csv holds 1 example", "10% of them (at least 1)", "at least 6 examples")
    save_png(tmp_path / "one_image" / "0.png", DIGITS[0, ..., 0])
    refused(run(capsys, "train", "--data", tmp_path / "one_image", "--output", tmp_path / "trained"),
            "holds 1 example", "at least 6 examples")
    labelled = np.c_[rng.random((30, 5)).round(4), [0] + [1] * 8 + [2] * 21]
    table = write_table(tmp_path / "labelled.csv", labelled)
    for label in ("0", "1"):  # 1 and 8 rows, of which 1 and 7 or 8 in the training part
        line = refused(run(capsys, "train", "--data", table, "--label-column", "-1", "--normal-label", label,
                           "--output", tmp_path / "trained"), f"label '{label}' marks ", "of the 27 training examples",
                       "the anomaly threshold (the 99th percentile of their scores) needs at least 10")
        assert int(line.split(" marks ")[1].split()[0]) == (1 if label == "0" else len(data.kept_indices(
            labelled[:, -1].astype("int64"), data.local_split_indices(30, "train", None, None, 0.1, 0), 1, "")))
    assert not (tmp_path / "trained").exists()
    code, _, err = run(capsys, "train", "--data", table, "--label-column", "-1", "--normal-label", "2", "--epochs", "1",
                       "--output", tmp_path / "trained")
    assert code == 0, err  # 21 rows of label 2: enough


# 15. Options that would do nothing are refused, and never written into a card.

@pytest.mark.parametrize("options, expected", [
    (["--data", "TABLE", "--threshold-percentile", "90"], "is set for a detector of --normal-label's examples"),
    (["--data", "TABLE", "--image-size", "8x8"], "--image-size is for a folder of images; "),
    (["--data", "TABLE", "--color-mode", "rgb"], "--color-mode is for a folder of images; "),
    (["--data", "FOLDER", "--label-column", "0"], "--label-column is for a table; "),
    (["--data", "ARRAY", "--label-column", "0"], "--label-column is for a table; "),
    (["ae_mnist", "--label-column", "0"], "--label-column is for --data"),
    (["ae_mnist", "--threshold-percentile", "90"], "--threshold-percentile is for --data"),
])
def test_options_that_would_do_nothing_are_refused(options, expected, tmp_path, capsys):
    paths = {"TABLE": write_table(tmp_path / "t.csv", np.random.default_rng(0).random((20, 8)).round(4)),
             "FOLDER": tmp_path / "images", "ARRAY": tmp_path / "a.npy"}
    for index in range(10):
        save_png(paths["FOLDER"] / f"{index}.png", DIGITS[index, ..., 0])
    np.save(paths["ARRAY"], DIGITS[:10])
    refused(run(capsys, "train", *[paths.get(option, option) for option in options], "--output", tmp_path / "trained"), expected,
            "drop")
    assert not (tmp_path / "trained").exists()


def test_the_library_refuses_them_in_its_own_terms(tmp_path):
    from keras_ae.training import card_for_data

    table = write_table(tmp_path / "t.csv", np.random.default_rng(0).random((20, 8)).round(4))
    with pytest.raises(ValueError, match="^image_size is for a folder of images; .*t.csv is a table"):
        card_for_data(str(table), image_size=(8, 8))
    with pytest.raises(ValueError, match="^a threshold .* is set for a detector of normal_label's examples"):
        card_for_data(str(table), threshold_percentile=95.0)
    card = card_for_data(str(table))
    assert "image_size" not in card["data"] and "anomaly" not in card
