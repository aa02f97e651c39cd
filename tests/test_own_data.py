"""Users' own data: folders of images, arrays and tables into keras_ae.data, the command's train --data, score and denoise,
and the ECG5000 entry on TensorFlow's own split."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import keras_ae
from keras_ae import cards, cli, data, kinds, models

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ecg_csv(data_root):
    return Path(data_root) / "ecg5000" / "ecg.csv"


def test_an_image_folder_loads_as_batches_with_class_labels_and_a_seeded_validation_part(digit_folder):
    images, labels = next(iter(data.load(str(digit_folder), batch_size=90, with_labels=True, shuffle=False)))
    assert images.shape == (90, 28, 28, 1) and images.dtype == tf.float32
    assert np.bincount(labels.numpy()).tolist() == [30, 30, 30]
    original = np.asarray(Image.open(digit_folder / "class_0" / sorted(p.name for p in (digit_folder / "class_0").iterdir())[0]))
    np.testing.assert_array_equal(images[0, ..., 0].numpy(), (original / 255.0).astype("float32"))

    def labels_of(split):
        dataset = data.load(digit_folder, split=split, batch_size=100, validation_split=0.2, seed=3, with_labels=True)
        return np.concatenate([batch_labels.numpy() for _, batch_labels in dataset])

    assert len(labels_of("train")) == 72 and len(labels_of("validation")) == 18
    assert data.count(digit_folder, "validation", validation_split=0.2, seed=3) == 18
    ones = data.load(digit_folder, batch_size=100, only_label=1, with_labels=True)
    assert set(next(iter(ones))[1].numpy()) == {1}
    rgb = next(iter(data.load(digit_folder, batch_size=4, color_mode="rgb", image_size=(40, 24))))
    assert rgb.shape == (4, 40, 24, 3)


def test_arrays_and_tables_load_and_bad_sources_say_what_was_expected(ecg_csv, tmp_path):
    beats = next(iter(data.load(str(ecg_csv), batch_size=4998, label_column=-1, with_labels=True, shuffle=False)))
    assert beats[0].shape == (4998, 140) and sorted(np.unique(beats[1].numpy()).tolist()) == [0, 1]
    np.testing.assert_allclose(beats[0][0].numpy(), np.loadtxt(ecg_csv, delimiter=",", max_rows=1)[:-1], rtol=1e-6)
    np.save(tmp_path / "pixels.npy", (np.arange(2 * 28 * 28) % 256).astype("uint8").reshape(2, 28, 28, 1))
    pixels = next(iter(data.load(str(tmp_path / "pixels.npy"), batch_size=2, shuffle=False))).numpy()
    assert pixels.max() == 1.0 and pixels[0, 0, 1, 0] == pytest.approx(1 / 255)
    with pytest.raises(ValueError, match="is one set"):
        data.load(str(ecg_csv), split="test", label_column=-1)
    assert next(iter(data.load(str(tmp_path / "pixels.npy"), with_labels=True)))[1].numpy().tolist() == [-1, -1]  # unlabelled
    with pytest.raises(ValueError, match="has no labels"):
        data.load(str(tmp_path / "pixels.npy"), only_label=3)
    with pytest.raises(ValueError, match=r"Label 7 does not occur in .*ecg.csv; its labels are \[0, 1\]"):
        data.load(str(ecg_csv), label_column=-1, only_label=7)
    with pytest.raises(FileNotFoundError, match="No such file or folder"):
        data.load("./no/such/folder")


def test_the_ecg5000_dataset_is_the_tensorflow_tutorials_split(ecg_csv):
    from ecg_tutorial import split

    tutorial = split(ecg_csv)
    train, train_labels = data.load_arrays("ecg5000", "train")
    test, test_labels = data.load_arrays("ecg5000", "test")
    np.testing.assert_allclose(train, tutorial["train_data"], rtol=1e-6)
    np.testing.assert_allclose(test, tutorial["test_data"], rtol=1e-6)
    np.testing.assert_array_equal(test_labels == 1, tutorial["test_labels"])
    assert data.count("ecg5000", "train", only_label=1) == 2359 == int(tutorial["train_labels"].sum())


def test_the_ecg_entry_scores_raw_beats_the_same_after_a_reload_and_from_its_export(ecg_csv, tmp_path):
    model = keras_ae.load("ae_ecg5000")
    card = keras_ae.model_card("ae_ecg5000")
    test, labels = data.load_arrays("ecg5000", "test")
    scores = np.asarray(model.anomaly_score(test))
    assert card["anomaly"]["threshold"] > 0 and np.mean((scores <= card["anomaly"]["threshold"]) == (labels == 1)) > 0.97
    train = kinds.Examples().arrays(card, card["data"]["train_split"], every_label=False)[0]  # the normal training beats
    scaled = np.asarray(model.encoder.get_layer("scaling")(train))  # min-max of what it trained on (not its validation part)
    np.testing.assert_allclose(scaled.min(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(scaled.max(axis=0), 1.0, atol=1e-5)
    keras_ae.export(model, tmp_path / "served")
    served = tf.saved_model.load(str(tmp_path / "served"))
    np.testing.assert_allclose(served.anomaly_score(test).numpy(), scores, rtol=1e-5, atol=1e-7)
    preset = tmp_path / "preset"
    keras_ae.save_preset(model, preset, card)
    np.testing.assert_array_equal(np.asarray(keras_ae.load(preset).anomaly_score(test)), scores)


def run(capsys, *argv):
    code = cli.main([str(argument) for argument in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_train_on_a_table_with_a_normal_label_then_score_it(ecg_csv, tmp_path, capsys):
    out = tmp_path / "beats"
    code, printed, err = run(capsys, "train", "--data", ecg_csv, "--label-column", "-1", "--normal-label", "1",
                             "--epochs", "5", "--latent-dim", "8", "--output", out)
    assert code == 0, err
    card = json.loads((out / "card.json").read_text())
    assert card["name"] == "beats" and card["network"]["scaling"] == "minmax" and card["anomaly"]["percentile"] == 99.0
    assert "anomaly threshold (from the training data)" in printed and (out / "training_curves.png").exists()
    model = keras_ae.load(out)
    assert model.input_shape_per_example == (140,)
    code, printed, err = run(capsys, "score", out, ecg_csv, "--label-column", "-1", "--out", tmp_path / "scores.csv")
    assert code == 0, err
    with open(tmp_path / "scores.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4998 and set(rows[0]) == {"input", "score", "is_anomaly"} and rows[0]["input"] == "0"
    flagged = np.array([row["is_anomaly"] == "1" for row in rows])
    labels = np.loadtxt(ecg_csv, delimiter=",", usecols=140)
    assert flagged[labels == 0].mean() > flagged[labels == 1].mean() + 0.3  # even after 5 epochs, anomalies stand out


def test_a_preset_scores_tables_of_the_layout_it_was_trained_on_by_itself(ecg_csv, tmp_path, capsys):
    """The card records the table's header and label column: score needs no --label-column, and a table with other columns
    is one error line naming the expected and the found ones."""
    beats = np.loadtxt(ecg_csv, delimiter=",", max_rows=48, usecols=(0, 1, 140, 2, 3))
    header = ["t0", "t1", "beat", "t2", "t3"]

    def write_table(name, columns, values):
        lines = [",".join(columns)] + [",".join(f"{value:g}" for value in row) for row in values]
        (tmp_path / name).write_text("\n".join(lines) + "\n")
        return tmp_path / name

    table = write_table("beats.csv", header, beats)
    out = tmp_path / "beats"
    code, _, err = run(capsys, "train", "--data", table, "--label-column", "beat", "--epochs", "2", "--batch-size", "16",
                       "--latent-dim", "2", "--output", out)
    assert code == 0, err
    card = json.loads((out / "card.json").read_text())
    assert card["data"]["header"] == header and card["data"]["label_column"] == "beat" and card["network"]["input_shape"] == [4]
    code, _, err = run(capsys, "score", out, table, "--out", tmp_path / "scores.csv")
    assert code == 0, err
    code, _, err = run(capsys, "score", out, table, "--label-column", "beat", "--out", tmp_path / "given.csv")
    assert code == 0, err
    scores = (tmp_path / "scores.csv").read_text()
    assert scores == (tmp_path / "given.csv").read_text() and len(scores.splitlines()) == 49
    np.testing.assert_allclose([float(line.split(",")[1]) for line in scores.splitlines()[1:]],
                               keras_ae.load(out).anomaly_score(np.loadtxt(table, "float32", delimiter=",", skiprows=1)[:, [0, 1, 3, 4]]),
                               rtol=1e-6)
    renamed = write_table("renamed.csv", ["t0", "T1", "beat", "t2", "t3"], beats)
    missing = write_table("missing.csv", ["t0", "t1", "beat", "t2"], beats[:, :4])
    for other, found in ((renamed, "'t0', 'T1', 'beat', 't2', 't3'"), (missing, "'t0', 't1', 'beat', 't2'")):
        code, _, err = run(capsys, "score", out, other, "--out", tmp_path / "other.csv")
        assert code == 2 and err.count("\n") == 1, err
        assert "expected the header 't0', 't1', 'beat', 't2', 't3'" in err and f"found {found}" in err, err
    assert not (tmp_path / "other.csv").exists()


def test_an_unlabelled_array_trains_and_its_preset_evaluates_on_its_held_out_part(mnist_images, tmp_path, capsys):
    np.save(tmp_path / "digits.npy", mnist_images[:600, ..., 0])
    code, _, err = run(capsys, "train", "--data", tmp_path / "digits.npy", "--epochs", "2", "--output", tmp_path / "out")
    assert code == 0, err
    code, printed, err = run(capsys, "evaluate", tmp_path / "out")
    assert code == 0, err
    assert "test_examples: 60" in printed and "psnr_db: " in printed  # 10% of 600 held out, seeded


def test_a_class_folder_name_is_a_normal_label(digit_folder, tmp_path, capsys):
    out = tmp_path / "ones"
    code, _, err = run(capsys, "train", "--data", digit_folder, "--normal-label", "class_1", "--epochs", "40", "--batch-size", "9",
                       "--threshold-percentile", "95", "--output", out)
    assert code == 0, err
    card = json.loads((out / "card.json").read_text())
    assert card["data"]["only_label"] == 1 and card["anomaly"]["normal_label"] == 1 and card["anomaly"]["threshold"] > 0
    code, _, err = run(capsys, "score", out, digit_folder, "--out", tmp_path / "scores.csv")
    with open(tmp_path / "scores.csv") as handle:
        rows = {row["input"]: row for row in csv.DictReader(handle)}
    assert len(rows) == 90 and any(name.startswith("class_1/") for name in rows)
    flagged = {digit: np.mean([row["is_anomaly"] == "1" for name, row in rows.items() if name.startswith(f"class_{digit}/")])
               for digit in (0, 1, 2)}
    assert flagged[1] < 0.2 and flagged[0] > 0.8 and flagged[2] > 0.8  # ones are normal, zeros and twos stand out


def test_train_on_an_image_folder_and_denoise_and_reconstruct_folders(digit_folder, tmp_path, capsys):
    out = tmp_path / "digits_dae"
    code, _, err = run(capsys, "train", "--data", digit_folder, "--family", "dae", "--network", "conv", "--epochs", "1",
                       "--output", out)
    assert code == 0, err
    assert type(keras_ae.load(out)).__name__ == "DenoisingAutoencoder"
    code, printed, err = run(capsys, "denoise", "dae_mnist", digit_folder, "--out", tmp_path / "denoised")
    assert code == 0, err
    written = sorted(path.relative_to(tmp_path / "denoised") for path in (tmp_path / "denoised").rglob("*.png"))
    assert len(written) == 90 and written[0].parts[0] == "class_0"
    assert np.asarray(Image.open(tmp_path / "denoised" / written[0])).shape == (28, 28)
    code, _, err = run(capsys, "reconstruct", "conv_ae_mnist", digit_folder, "--out", tmp_path / "reconstructed")
    assert code == 0 and len(list((tmp_path / "reconstructed").rglob("*.png"))) == 90
    code, _, err = run(capsys, "denoise", "conv_ae_mnist", digit_folder, "--out", tmp_path / "nope")
    assert code == 2 and "does not support `keras-ae denoise`" in err and not (tmp_path / "nope").exists()


@pytest.mark.parametrize("content, complaint", [
    ("1,2,3\n4,abc,6\n", 'line 2, column "1": \'abc\' is not a number'),
    ("1,2,3\n4,,6\n", "line 2"),
])
def test_bad_tables_are_one_line_errors_and_leave_no_output(content, complaint, tmp_path, capsys):
    (tmp_path / "bad.csv").write_text(content)
    code, _, err = run(capsys, "train", "--data", tmp_path / "bad.csv", "--epochs", "1", "--output", tmp_path / "out")
    assert code == 2 and complaint in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


def test_bad_folders_and_labels_are_one_line_errors(tmp_path, digit_folder, ecg_csv, capsys):
    (tmp_path / "empty").mkdir()
    code, _, err = run(capsys, "train", "--data", tmp_path / "empty", "--output", tmp_path / "out")
    assert code == 2 and "holds no image files" in err
    code, _, err = run(capsys, "train", "--data", ecg_csv, "--label-column", "beat_type", "--output", tmp_path / "out")
    assert code == 2 and "beat_type" in err and err.count("\n") == 1
    code, _, err = run(capsys, "train", "--data", ecg_csv, "--label-column", "-1", "--normal-label", "3", "--output", tmp_path / "out")
    assert code == 2 and "Label '3' does not occur" in err
    code, _, err = run(capsys, "train", "--data", digit_folder, "--family", "gan", "--output", tmp_path / "out")
    assert code == 2 and f"expected one of {sorted(models.by_short_name())}" in err and "'vae'" in err
    assert not (tmp_path / "out").exists()
    assert cards.task_of(cards.model_card("dae_mnist")).commands()[-1] == "denoise"
    code, _, err = run(capsys, "score", "ae_ecg5000", ecg_csv, "--out", tmp_path / "scores.csv")  # the label column left in
    assert code == 2 and "has 141 feature columns; ae_ecg5000 takes 140" in err and "--label-column" in err
    assert not (tmp_path / "scores.csv").exists()


def test_a_bare_folder_name_is_a_path_and_a_name_that_is_neither_says_both_were_tried(digit_folder, data_root, tmp_path,
                                                                                         monkeypatch, capsys):
    data_root = Path(data_root).resolve()  # before the working folder moves
    monkeypatch.setenv("KERAS_AE_DATA", str(data_root))
    monkeypatch.chdir(digit_folder.parent)
    images = next(iter(data.load(digit_folder.name, batch_size=90, shuffle=False)))
    assert images.shape == (90, 28, 28, 1)
    code, _, err = run(capsys, "train", "--data", digit_folder.name, "--epochs", "1", "--output", tmp_path / "preset")
    assert code == 0, err
    assert json.loads((tmp_path / "preset" / "card.json").read_text())["data"]["dataset"] == str(digit_folder.resolve())
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mnist").mkdir()
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "mnist" / "blank.png")
    with pytest.warns(UserWarning, match="both a file or folder here and a dataset"):
        assert next(iter(data.load("mnist", batch_size=4, data_dir=data_root))).shape == (1, 28, 28, 1)
    with pytest.raises(data.DatasetNotFoundError, match="neither a file or folder here .* nor a local dataset"):
        data.count("photos_that_do_not_exist", download=False)


def test_a_folder_is_read_in_file_order_and_its_names_map_codes_back_to_files(digit_folder):
    batches = data.load(str(digit_folder), batch_size=32, with_labels=True)  # no shuffle: a path keeps its order
    labels = np.concatenate([batch_labels.numpy() for _, batch_labels in batches])
    names = data.names(str(digit_folder))
    assert len(names) == len(labels) == 90 and names == sorted(names) and names[0].startswith("class_0/")
    assert [int(name.split("/")[0][-1]) for name in names] == labels.tolist()
    assert np.array_equal(np.concatenate([batch.numpy() for batch, _ in batches]),
                          np.concatenate([batch.numpy() for batch, _ in batches]))  # the same order every pass
    validation = data.names(str(digit_folder), "validation", validation_split=0.1)
    assert len(validation) == 9 and not set(validation) & set(data.names(str(digit_folder), "train", validation_split=0.1))


def test_ucr_s_own_ecg5000_split_is_a_named_table_and_overlaps_the_tutorial_s_training_rows(data_root):
    train, train_labels = data.load_arrays("ecg5000_ucr", "train", data_root)
    test, _ = data.load_arrays("ecg5000_ucr", "test", data_root)
    assert train.shape == (500, 140) and test.shape == (4500, 140) and np.bincount(train_labels.astype(int)).tolist() == [0, 292, 177, 10, 19, 2]
    assert data.count("ecg5000_ucr", "test", data_dir=data_root) == 4500
    tutorial_train = {row.tobytes() for row in np.round(data.load_arrays("ecg5000", "train", data_root)[0], 4)}
    assert sum(row.tobytes() in tutorial_train for row in np.round(test, 4)) == 3598  # ae_ecg5000's card says so
    assert "3,598" in keras_ae.model_card("ae_ecg5000")["description"]
