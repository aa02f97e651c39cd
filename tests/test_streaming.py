"""Users' own files streamed (keras_ae.data.open_path, keras_ae.files): image folders decoded in the graph, tables parsed a
chunk at a time, .npy memory-mapped; and the commands that score, embed and denoise a batch at a time, written whole or
not at all. Real ECG5000 beats and MNIST digits."""

import csv
import os

import numpy as np
import pytest
from PIL import Image

import keras_ae
from keras_ae import cli, data, files, networks


@pytest.fixture(scope="module")
def beats(data_root):
    """The first 2,500 rows of the real ecg.csv: 140 values and the label last."""
    return np.loadtxt(os.path.join(data_root, "ecg5000", "ecg.csv"), delimiter=",", dtype=np.float64)[:2500]


@pytest.fixture(scope="module")
def digits(data_root):
    images, labels = data.load_arrays("mnist", "test")
    return images[:60], labels[:60]


def write_table(path, rows):
    np.savetxt(path, rows, fmt="%.17g", delimiter=",")  # every float64 as it is
    return path


def digit_classes(folder, digits):
    """Two class folders ("even", "odd") of real digits, named by their index."""
    images, labels = digits
    for index, (image, label) in enumerate(zip(images, labels)):
        target = folder / ("even" if label % 2 == 0 else "odd") / f"{index:03d}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image[..., 0]).save(target)
    return folder


def test_a_table_streams_in_chunks_equal_to_the_whole_and_its_faults_name_the_line(tmp_path, beats, monkeypatch):
    path = write_table(tmp_path / "beats.csv", beats)
    table = files.open_table(path, label_column=-1)
    exact = []
    monkeypatch.setattr(files, "_checked_rows", lambda *args: exact.append(1) or files_checked_rows(*args))
    monkeypatch.setattr(files, "_table_rows", lambda path: pytest.fail("a clean table was read a second time, row by row"))
    chunks = list(files.table_chunks(table, rows=700))
    assert [len(features) for features, _ in chunks] == [700, 700, 700, 400] and not exact  # pandas' parser, all clean
    monkeypatch.undo()
    monkeypatch.setattr(files, "_checked_rows", lambda *args: exact.append(1) or files_checked_rows(*args))
    np.testing.assert_allclose(np.concatenate([features for features, _ in chunks]), beats[:, :-1].astype(np.float32), rtol=1e-7)
    assert files.label_values([cell for _, cells in chunks for cell in cells]).tolist() == beats[:, -1].astype(int).tolist()
    lines = path.read_text().splitlines()
    cells = lines[2399].split(",")
    cells[1] = "oops"
    lines[2399] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    seen = []
    with pytest.raises(ValueError, match=r'beats.csv line 2400, column "1": \'oops\' is not a number'):
        for features, _ in files.table_chunks(files.open_table(path, label_column=-1), rows=700):
            seen.append(len(features))
    assert seen == [700, 700, 700] and exact  # the clean chunks came first, from the fast parser; the exact reader named the fault


files_checked_rows = files._checked_rows


def test_load_of_a_table_is_a_stream_in_file_order_with_its_labels_and_names(tmp_path, beats):
    path = str(write_table(tmp_path / "beats.csv", beats))
    validation = data.load(path, split="validation", validation_split=0.2, label_column=-1, batch_size=256, with_labels=True)
    examples, labels = (np.concatenate(part) for part in zip(*validation.as_numpy_iterator()))
    rows = [int(name) for name in data.names(path, split="validation", validation_split=0.2, label_column=-1)]
    assert rows == sorted(rows) and len(rows) == 500 == data.count(path, "validation", validation_split=0.2, label_column=-1)
    np.testing.assert_allclose(examples, beats[rows, :-1].astype(np.float32), rtol=1e-7)
    np.testing.assert_array_equal(labels, beats[rows, -1].astype(np.int64))
    train = data.load(path, split="train", validation_split=0.2, label_column=-1, batch_size=300, shuffle=True)
    shuffled = np.concatenate(list(train.as_numpy_iterator()))
    train_rows = sorted(set(range(2500)) - set(rows))
    assert len(shuffled) == 2000 and not np.array_equal(shuffled, beats[train_rows, :-1].astype(np.float32))
    np.testing.assert_allclose(np.sort(shuffled, axis=0), np.sort(beats[train_rows, :-1].astype(np.float32), axis=0), rtol=1e-7)


def test_an_image_folder_streams_with_labels_in_file_order(tmp_path, digits):
    folder = digit_classes(tmp_path / "digits", digits)
    dataset = data.load(str(folder), batch_size=16, with_labels=True)
    images, labels = (np.concatenate(part) for part in zip(*dataset.as_numpy_iterator()))
    names = data.names(str(folder))
    assert len(names) == 60 and labels.tolist() == [0 if name.startswith("even") else 1 for name in names]
    for image, name in zip(images, names):
        index = int(name.split("/")[1][:3])
        np.testing.assert_array_equal(image, digits[0][index] / np.float32(255))
    odd = data.load(str(folder), only_label=1, batch_size=64, validation_split=0.25, split="validation")
    assert next(iter(odd)).shape[0] == data.count(str(folder), "validation", validation_split=0.25, only_label=1) > 0


def test_image_files_named_outside_ascii_stream_shuffled_or_not(tmp_path, digits):
    folder = tmp_path / "photos" / "café"
    folder.mkdir(parents=True)
    for index, name in enumerate(["ümlaut.png", "日本.png", "plain.png"]):
        Image.fromarray(digits[0][index][..., 0]).save(folder / name)
    names = data.names(str(tmp_path / "photos"))
    assert names == sorted(names) and len(names) == 3
    in_order = np.concatenate(list(data.load(str(tmp_path / "photos"), batch_size=2).as_numpy_iterator()))
    shuffled = np.concatenate(list(data.load(str(tmp_path / "photos"), batch_size=2, shuffle=True).as_numpy_iterator()))
    expected = {name: digits[0][index][..., 0] / np.float32(255) for index, name in enumerate(["ümlaut.png", "日本.png", "plain.png"])}
    for image, name in zip(in_order, names):
        np.testing.assert_array_equal(image[..., 0], expected[name.split("/")[-1]])
    assert sorted(map(bytes, shuffled)) == sorted(map(bytes, in_order))


def truncate(path):
    path.write_bytes(path.read_bytes()[:-12])


def test_a_large_folder_streams_while_its_headers_are_read_and_stops_at_a_fault_with_the_same_error(tmp_path, digits, monkeypatch):
    folder = digit_classes(tmp_path / "digits", digits)
    clean = np.concatenate(list(data.load(str(folder), batch_size=16).as_numpy_iterator()))
    monkeypatch.setattr(files, "PROBED_BEFORE_STREAMING", 4)  # a "large" folder: 4 headers read before the stream starts
    monkeypatch.setattr(data, "CHECKED_CHUNK", 8)
    assert data.open_path(folder).found.check is not None
    np.testing.assert_array_equal(np.concatenate(list(data.load(str(folder), batch_size=16).as_numpy_iterator())), clean)
    names = data.names(str(folder))
    truncate(folder / names[50])
    monkeypatch.setattr(files.HeaderCheck, "start", lambda check: None)  # no thread: the stream's own reads find it
    expected = f"Cannot read image {folder / names[50]} (OSError: image file is truncated"
    stream = data.load(str(folder), batch_size=16).as_numpy_iterator()
    assert next(stream).shape == (16, 28, 28, 1)  # the faulty file is not among the first
    with pytest.raises(Exception) as raised:
        list(stream)
    assert str(keras_ae.errors.carried_input_error(raised.value)).startswith(expected)
    with pytest.raises(keras_ae.errors.InputError, match="1 of 60 files are unreadable"):
        list(data.open_path(folder).batches(16))
    with pytest.raises(Exception) as raised:
        list(data.load(str(folder), batch_size=16, shuffle=True).as_numpy_iterator())
    assert str(keras_ae.errors.carried_input_error(raised.value)).startswith(expected)
    out = tmp_path / "scores.csv"
    assert cli.main(["score", "conv_ae_mnist", str(folder), "--out", str(out)]) == 2 and not out.exists()
    assert cli.main(["train", "--data", str(folder), "--epochs", "1", "--output", str(tmp_path / "model")]) == 2
    assert not (tmp_path / "model").exists()
    monkeypatch.setattr(files, "PROBED_BEFORE_STREAMING", 100)  # a small folder: refused before the stream starts
    with pytest.raises(keras_ae.errors.InputError, match="1 of 60 files are unreadable"):
        data.load(str(folder))


def test_a_folder_read_while_streaming_refuses_a_second_size_and_a_fifo_without_blocking(tmp_path, digits, monkeypatch):
    folder = digit_classes(tmp_path / "digits", digits)
    names = data.names(str(folder))
    monkeypatch.setattr(files, "PROBED_BEFORE_STREAMING", 4)
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(folder / names[40])
    with pytest.raises(Exception) as raised:
        list(data.load(str(folder), batch_size=16).as_numpy_iterator())
    assert "Images differ in size" in str(keras_ae.errors.carried_input_error(raised.value))
    assert len(list(data.load(str(folder), batch_size=16, image_size=(28, 28)).as_numpy_iterator())) == 4  # resized: fine
    os.remove(folder / names[40])
    os.mkfifo(folder / names[40])  # decoding it would block forever: its header is read first, without blocking
    with pytest.raises(Exception) as raised:
        list(data.load(str(folder), batch_size=16).as_numpy_iterator())
    assert "a FIFO (named pipe), not a regular file" in str(keras_ae.errors.carried_input_error(raised.value))
    with pytest.warns(UserWarning, match="Skipped 1 unreadable image files of 60"):  # skipping reads every header first
        source = data.open_path(folder, on_error="skip")
    assert source.count == 59 and source.found.check is None


def test_a_npy_file_is_memory_mapped_and_streams_in_any_order(tmp_path, digits):
    path = tmp_path / "digits.npy"
    np.save(path, digits[0])
    found = data.open_path(path)
    assert isinstance(found.array, np.memmap) and found.example_shape == (28, 28, 1) and found.count == 60
    ordered = np.concatenate(list(data.load(str(path), batch_size=7).as_numpy_iterator()))
    np.testing.assert_array_equal(ordered, digits[0] / np.float32(255))
    shuffled = np.concatenate(list(data.load(str(path), batch_size=7, shuffle=True, seed=1).as_numpy_iterator()))
    assert not np.array_equal(shuffled, ordered)
    np.testing.assert_array_equal(np.sort(shuffled.reshape(60, -1), axis=0), np.sort(ordered.reshape(60, -1), axis=0))
    floats = digits[0].astype(np.float64) / 255
    floats[41, 3, 4, 0] = np.nan
    np.save(tmp_path / "nan.npy", floats)
    with pytest.raises(ValueError, match=r"nan.npy holds nan at index \(41, 3, 4, 0\)"):
        data.open_path(tmp_path / "nan.npy")


def test_scaling_statistics_from_batches_equal_those_of_the_whole_array(beats):
    examples = beats[:, :-1].astype(np.float32)
    for kind in ("minmax", "standard"):
        whole, streamed = (networks.Scaling(kind) for _ in range(2))
        for layer in (whole, streamed):
            layer.build((None, 140))
        whole.adapt(examples)
        streamed.adapt(iter(np.array_split(examples, 7)))
        np.testing.assert_allclose(streamed.offset.numpy(), whole.offset.numpy(), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(streamed.scale.numpy(), whole.scale.numpy(), rtol=1e-6, atol=1e-7)
    reference = networks.Scaling("standard")
    reference.build((None, 140))
    reference.adapt(examples)
    np.testing.assert_allclose(reference.scale.numpy(), examples.astype(np.float64).std(axis=0), rtol=1e-6)


def test_score_streams_a_table_into_the_same_scores_and_writes_whole_or_not_at_all(tmp_path, beats, capsys, monkeypatch):
    path = write_table(tmp_path / "beats.csv", beats[:, :-1])
    out = tmp_path / "scores.csv"
    monkeypatch.setattr(cli, "PROGRESS_EXAMPLES", 100)
    assert cli.main(["score", "ae_ecg5000", str(path), "--out", str(out)]) == 0
    assert "score: 2,500 examples" in capsys.readouterr().err  # the count is unknown until read: no total is shown
    with open(out, newline="") as handle:
        rows = list(csv.reader(handle))
    expected = np.asarray(keras_ae.load("ae_ecg5000").anomaly_score(beats[:, :-1].astype(np.float32)), np.float64)
    assert rows[0] == ["input", "score", "is_anomaly"] and [row[0] for row in rows[1:]] == [str(row) for row in range(2500)]
    np.testing.assert_allclose([float(row[1]) for row in rows[1:]], expected, rtol=1e-5)
    before = out.read_bytes()
    lines = path.read_text().splitlines()
    lines[2299] = "," + lines[2299].split(",", 1)[1]  # an empty cell in the third batch
    path.write_text("\n".join(lines) + "\n")
    assert cli.main(["score", "ae_ecg5000", str(path), "--out", str(out)]) == 2
    assert 'beats.csv line 2300, column "0"' in capsys.readouterr().err
    assert out.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["beats.csv", "scores.csv"]


def test_denoise_streams_a_folder_and_leaves_nothing_when_it_fails(tmp_path, digits, capsys, monkeypatch):
    folder = digit_classes(tmp_path / "noisy", digits)
    out = tmp_path / "clean"
    original_save = Image.Image.save
    saved = []

    def failing_save(image, *args, **kwargs):
        saved.append(1)
        if len(saved) == 30:
            raise OSError(28, "No space left on device")
        return original_save(image, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", failing_save)
    assert cli.main(["denoise", "dae_mnist", str(folder), "--out", str(out)]) == 2
    assert "No space left on device" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["noisy"]  # no output folder, no staging folder
    monkeypatch.undo()
    assert cli.main(["denoise", "dae_mnist", str(folder), "--out", str(out)]) == 0
    written = sorted(str(path.relative_to(out)) for path in out.rglob("*.png"))
    assert written == data.names(str(folder)) and sorted(os.listdir(tmp_path)) == ["clean", "noisy"]
    model = keras_ae.load("dae_mnist")
    first = np.asarray(Image.open(out / written[0]), np.float32) / 255
    expected = np.asarray(model.denoise(data.open_path(folder).batches(60).__next__()[:1]))[0, ..., 0]
    assert np.abs(first - expected).max() <= 0.5 / 255 + 1e-6


def test_embed_streams_into_npy_with_the_codes_of_the_whole(tmp_path, digits):
    path = tmp_path / "digits.npy"
    np.save(path, digits[0][:, :, :, 0])  # grayscale without its channel axis, as `reconstruct` takes too
    np.save(tmp_path / "with_channel.npy", digits[0])
    assert cli.main(["embed", "conv_ae_mnist", str(tmp_path / "with_channel.npy"), "--out", str(tmp_path / "codes.npy")]) == 0
    codes = np.load(tmp_path / "codes.npy")
    expected = np.asarray(keras_ae.load("conv_ae_mnist").embed(digits[0] / np.float32(255)))
    assert codes.shape == expected.shape
    np.testing.assert_allclose(codes, expected, rtol=1e-5, atol=1e-6)
    assert cli.main(["reconstruct", "conv_ae_mnist", str(path), "--out", str(tmp_path / "back.npy")]) == 0
    assert np.load(tmp_path / "back.npy").shape == (60, 28, 28, 1)


def test_the_memory_check_counts_the_images_a_stream_holds_at_once(tmp_path, digits, monkeypatch):
    folder = digit_classes(tmp_path / "digits", digits)
    monkeypatch.setattr(files, "available_memory", lambda: 30_000)
    with pytest.raises(ValueError, match=r"16 images at once \(a few batches\) of the 60 in .* of 28x28 pixels"):
        data.load(str(folder), batch_size=4)
    monkeypatch.setattr(files, "available_memory", lambda: 1_000_000)
    assert sum(len(batch) for batch in data.load(str(folder), batch_size=4)) == 60
