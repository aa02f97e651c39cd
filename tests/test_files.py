"""keras_ae.files on real MNIST / Fashion-MNIST images written as folders, the real ECG5000 tables, and .npy/.npz files."""

import os
import pathlib
import warnings

import numpy as np
import pytest
from PIL import Image

from keras_ae import data, files

CLASSES = {"seven": 7, "one": 1, "four": 4}  # sorted: four, one, seven
PER_CLASS = 20
EXACT_FORMATS = ("png", "bmp", "gif")


@pytest.fixture(scope="module")
def digits(data_root):
    """The MNIST test images, uint8 (n, 28, 28), and their labels."""
    images, labels = data.load_arrays("mnist", "test")
    return images[..., 0], labels


@pytest.fixture(scope="module")
def fashion(data_root):
    images, _ = data.load_arrays("fashion_mnist", "test")
    return images[:PER_CLASS, ..., 0]


def write_images(folder, images, extension):
    """Save images as folder/000.<extension>, ...; returns {path: image}."""
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for index, image in enumerate(images):
        path = folder / f"{index:03d}.{extension}"
        Image.fromarray(image).save(path)
        written[str(path)] = image
    return written


def class_tree(root, digits, extension):
    """3 class folders of 20 real digits each (one nested a level deeper); returns {path: uint8 image}."""
    images, labels = digits
    written = {}
    for name, digit in CLASSES.items():
        chosen = images[labels == digit][:PER_CLASS]
        written.update(write_images(root / name, chosen[:15], extension))
        written.update(write_images(root / name / "more", chosen[15:], extension))
    write_images(root, images[:2], extension)  # beside class folders: ignored
    (root / "one" / "notes.txt").write_text("not an image")
    (root / "one" / ".hidden.png").write_bytes(b"AppleDouble junk")
    return written


def read_images(folder, **options):
    """A folder whole, as the stream lists and decodes it: (images, labels, class names, paths)."""
    found = files.list_images(folder, **options)
    images = [files.decode_image(path, found.image_size, found.color_mode).numpy() for path in found.paths]
    return np.stack(images), found.labels, found.class_names, found.paths


def read_array(path):
    """An array file whole, as the stream converts it: (float32 examples, labels)."""
    examples, labels = files.open_array(path)
    return files.as_float32(examples), labels


def one_line_error(call, *fragments):
    with pytest.raises(ValueError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert str(fragment) in message, (fragment, message)
    return message


@pytest.mark.parametrize("extension", ["png", "jpg", "bmp", "gif", "JPEG"])
def test_class_folders_give_sorted_classes_labels_and_exact_pixels(tmp_path, digits, extension):
    written = class_tree(tmp_path, digits, extension)
    images, labels, class_names, paths = read_images(tmp_path)
    assert class_names == ["four", "one", "seven"]
    assert images.shape == (3 * PER_CLASS, 28, 28, 1) and images.dtype == np.float32 and labels.dtype == np.int64
    assert sorted(paths) == sorted(written) and np.bincount(labels).tolist() == [PER_CLASS] * 3
    assert list(labels) == sorted(labels)
    for path, label in zip(paths, labels):
        assert pathlib.Path(path).relative_to(tmp_path).parts[0] == class_names[label]
    expected = np.stack([written[path] for path in paths])[..., np.newaxis] / np.float32(255)
    if extension.lower() in EXACT_FORMATS:
        np.testing.assert_array_equal(images, expected)
    else:
        assert np.abs(images - expected).mean() < 0.02 and images.min() >= 0.0 and images.max() <= 1.0


def test_a_flat_folder_has_no_labels_and_rgb_mode_repeats_gray(tmp_path, digits):
    written = write_images(tmp_path, digits[0][:12], "png")
    images, labels, class_names, paths = read_images(tmp_path, color_mode="rgb")
    assert labels is None and class_names == [] and paths == sorted(written)
    assert images.shape == (12, 28, 28, 3)
    for channel in range(3):
        np.testing.assert_array_equal(images[..., channel], digits[0][:12] / np.float32(255))


@pytest.mark.parametrize("extension", ["png", "bmp"])
def test_colour_images_keep_three_channels_and_grayscale_mode_converts(tmp_path, fashion, extension):
    colour = np.stack([fashion, fashion // 2, (fashion * 0.25).astype(np.uint8)], axis=-1)
    write_images(tmp_path, colour, extension)
    images, _, _, _ = read_images(tmp_path, color_mode="rgb")
    np.testing.assert_array_equal(images, colour / np.float32(255))
    gray, _, _, _ = read_images(tmp_path)
    luma = colour @ np.array([0.299, 0.587, 0.114])  # ITU-R 601-2, as Pillow's "L" conversion
    assert gray.shape == (PER_CLASS, 28, 28, 1) and np.abs(gray[..., 0] - luma / 255).max() <= 1.01 / 255


def test_non_square_images_with_and_without_image_size(tmp_path, digits):
    tall = [np.asarray(Image.fromarray(image).resize((24, 40), Image.Resampling.BILINEAR)) for image in digits[0][:10]]
    write_images(tmp_path, tall, "png")
    images, _, _, _ = read_images(tmp_path)
    assert images.shape == (10, 40, 24, 1)
    np.testing.assert_array_equal(images[..., 0], np.stack(tall) / np.float32(255))
    small, _, _, _ = read_images(tmp_path, image_size=(20, 12))
    reference = [np.asarray(Image.fromarray(image).resize((12, 20), Image.Resampling.BILINEAR)) / 255 for image in tall]
    assert small.shape == (10, 20, 12, 1) and np.abs(small[..., 0] - np.stack(reference)).max() <= 1.01 / 255
    same, _, _, _ = read_images(tmp_path, image_size=[40, 24])
    np.testing.assert_array_equal(same, images)


def test_sixteen_bit_png_is_scaled_by_its_own_depth(tmp_path, digits):
    full = digits[0][:5].astype(np.uint16) * 257  # 0..65535
    faint = digits[0][5:10].astype(np.uint16) * 4  # 0..1020: saturates if read as 8-bit
    written = write_images(tmp_path, np.concatenate([full, faint]), "png")
    assert Image.open(next(iter(written))).mode == "I;16"
    images, _, _, _ = read_images(tmp_path)
    np.testing.assert_allclose(images[:5, ..., 0], digits[0][:5] / 255, atol=1e-6)
    np.testing.assert_allclose(images[5:, ..., 0], faint / 65535, atol=1e-7)
    assert images[:5].max() == 1.0 and 0.0 < images[5:].max() <= 1020 / 65535 + 1e-7
    rgb, _, _, _ = read_images(tmp_path, color_mode="rgb", image_size=(14, 14))
    assert rgb.shape == (10, 14, 14, 3) and np.array_equal(rgb[..., 0], rgb[..., 2]) and rgb[5:].max() < 0.02


def test_broken_images_are_named_or_skipped_with_one_warning(tmp_path, digits):
    write_images(tmp_path, digits[0][:6], "png")
    write_images(tmp_path / "jpeg", digits[0][:1], "jpg")
    whole = (tmp_path / "000.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(whole[: len(whole) // 2])
    jpeg = (tmp_path / "jpeg" / "000.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (tmp_path / "notes.png").write_text("a text file named like an image\n")
    (tmp_path / "jpeg" / "000.jpg").unlink()
    (tmp_path / "jpeg").rmdir()
    message = one_line_error(lambda: read_images(tmp_path), "cut.jpg", "3 of 9", "on_error='skip'")
    assert "truncated" in message.lower()
    with pytest.warns(UserWarning, match=r"Skipped 3 unreadable image files of 9 .*cut.jpg, cut.png, notes.png"):
        images, labels, _, paths = read_images(tmp_path, on_error="skip")
    assert images.shape == (6, 28, 28, 1) and labels is None and [os.path.basename(path) for path in paths][0] == "000.png"
    np.testing.assert_array_equal(images[..., 0], digits[0][:6] / np.float32(255))
    for bad, fault in [("cut.png", "truncated"), ("notes.png", "cannot identify image")]:
        alone = tmp_path / bad.replace(".", "_")
        write_images(alone, digits[0][:2], "png")
        (alone / bad).write_bytes((tmp_path / bad).read_bytes())
        assert fault in one_line_error(lambda: read_images(alone), bad, "1 of 3").lower()


def test_every_file_broken_empty_folders_mixed_sizes_and_bad_choices(tmp_path, digits):
    (tmp_path / "empty").mkdir()
    one_line_error(lambda: read_images(tmp_path / "empty"), "empty", ".png", ".jpeg", ".gif")
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "readme.txt").write_text("no images here")
    one_line_error(lambda: read_images(tmp_path / "text"), "text", "no image files", ".bmp")
    (tmp_path / "classes" / "a").mkdir(parents=True)
    write_images(tmp_path / "classes", digits[0][:2], "png")
    one_line_error(lambda: read_images(tmp_path / "classes"), "['a']", "ignored")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.png").write_text("not a png")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one_line_error(lambda: read_images(tmp_path / "junk", on_error="skip"), "x.png", "1 of 1")
    mixed = tmp_path / "mixed"
    write_images(mixed, digits[0][:2], "png")
    Image.fromarray(digits[0][2]).resize((24, 40)).save(mixed / "tall.png")
    one_line_error(lambda: read_images(mixed), "000.png is 28x28", "tall.png is 40x24", "image_size=(height, width)")
    assert read_images(mixed, image_size=(28, 28))[0].shape == (3, 28, 28, 1)
    one_line_error(lambda: read_images(mixed, color_mode="rgba"), "'grayscale', 'rgb'")
    one_line_error(lambda: read_images(mixed, on_error="ignore"), "'raise', 'skip'")
    one_line_error(lambda: read_images(mixed, image_size=28), "(height, width)")
    one_line_error(lambda: read_images(tmp_path / "nowhere"), "nowhere", "not a folder")


@pytest.fixture(scope="module")
def ecg_csv(data_root):
    return os.path.join(data_root, "ecg5000", "ecg.csv")


def test_ecg_csv_label_last(ecg_csv):
    features, labels, names = files.read_table(ecg_csv, label_column=-1)
    assert features.shape == (4998, 140) and features.dtype == np.float32 and names == [str(i) for i in range(140)]
    assert labels.dtype == np.int64 and np.bincount(labels).tolist() == [2079, 2919]
    np.testing.assert_array_equal(features[0], np.loadtxt(ecg_csv, delimiter=",", max_rows=1)[:140].astype(np.float32))
    same, same_labels, _ = files.read_table(ecg_csv, label_column=140, header=False)
    np.testing.assert_array_equal(same, features)
    np.testing.assert_array_equal(same_labels, labels)


def test_ecg5000_tsv_label_first(data_root):
    path = os.path.join(data_root, "ecg5000", "ECG5000_TRAIN.tsv")
    features, labels, names = files.read_table(path, label_column=0)
    assert features.shape == (500, 140) and names[0] == "1" and names[-1] == "140"
    assert dict(zip(*np.unique(labels, return_counts=True))) == {1: 292, 2: 177, 3: 10, 4: 19, 5: 2}
    first = np.loadtxt(path, delimiter="\t", max_rows=1)
    np.testing.assert_array_equal(features[0], first[1:].astype(np.float32))
    everything, no_labels, _ = files.read_table(path)
    assert everything.shape == (500, 141) and no_labels is None
    np.testing.assert_array_equal(everything[:, 0], labels)


def ecg_rows(ecg_csv, count=6):
    with open(ecg_csv) as handle:
        return [next(handle).strip().split(",") for _ in range(count)]


def test_a_csv_with_a_header_crlf_and_named_columns(tmp_path, ecg_csv):
    rows = ecg_rows(ecg_csv)
    path = tmp_path / "beats.csv"
    lines = ["a,b,c,label"] + [f"{row[0]},{row[1]},{row[2]},{'normal' if row[-1] == '1.0' else 'abnormal'}" for row in rows]
    path.write_bytes(("\r\n".join(lines) + "\r\n\r\n").encode())
    features, labels, names = files.read_table(path, label_column="label", columns=["a", "b"])
    assert names == ["a", "b"] and features.shape == (6, 2)
    np.testing.assert_array_equal(features, np.array([row[:2] for row in rows], dtype=np.float32))
    assert labels.dtype.kind == "U" and labels.tolist() == ["normal" if row[-1] == "1.0" else "abnormal" for row in rows]
    by_index, _, names = files.read_table(path, label_column=-1, columns=[2, 0])
    assert names == ["c", "a"] and np.array_equal(by_index[:, 1], features[:, 0])
    text = tmp_path / "beats.txt"
    text.write_text("\n".join("  ".join(row[:3] + [row[-1]]) for row in rows) + "\n")
    spaced, spaced_labels, _ = files.read_table(text, label_column=3)
    np.testing.assert_array_equal(spaced[:, :2], features)
    assert spaced_labels.dtype == np.int64
    iris_like = tmp_path / "classes.csv"
    iris_like.write_text("".join(f"{row[0]},{row[1]},{'normal' if row[-1] == '1.0' else 'abnormal'}\n" for row in rows))
    unnamed, named_labels, names = files.read_table(iris_like, label_column=-1)
    assert names == ["0", "1"] and unnamed.shape == (6, 2) and named_labels.tolist() == labels.tolist()
    decimal = tmp_path / "decimal.tsv"
    decimal.write_text("".join(f"{row[0]}\t{row[1]}\n" for row in rows))
    assert files.read_table(decimal, label_column=0)[1].dtype == np.float64


@pytest.mark.parametrize(
    "name, content, arguments, fragments",
    [
        ("text.csv", "x,y,label\n1,2,0\n3,abc,1\n", {"label_column": "label"}, ["text.csv line 3", 'column "y"', "'abc' is not a number"]),
        ("gap.csv", "1,2,0\n3,,1\n", {"label_column": -1}, ["gap.csv line 2", 'column "1"', "empty"]),
        ("nan.tsv", "0\t1.5\t2\n1\tnan\t3\n", {"label_column": 0}, ["nan.tsv line 2", 'column "1"', "'nan' is not a finite"]),
        ("ragged.csv", "1,2,0\r\n3,4\r\n", {"label_column": -1}, ["ragged.csv line 2", "expected 3 cells", "got 2"]),
        ("labels.csv", "a,b\n1,2\n", {"label_column": "label"}, ["labels.csv", "'label'", "'a', 'b'"]),
        ("wide.csv", "1,2\n3,4\n", {"label_column": 5}, ["wide.csv", "no column 5", "0..1", "no header"]),
        ("unlabelled.csv", "1,2,0\n3,4,\n", {"label_column": -1}, ["unlabelled.csv line 2", 'column "2"', "missing"]),
        ("table.xlsx", "1,2\n", {}, ["table.xlsx", ".csv", ".tsv", ".txt"]),
        ("header.csv", "a,b\n", {}, ["header.csv", "no data rows"]),
        ("flag.csv", "1,2\n", {"header": "yes"}, ["'infer', True, False"]),
    ],
)
def test_bad_tables_name_file_line_and_column(tmp_path, name, content, arguments, fragments):
    path = tmp_path / name
    path.write_text(content)
    one_line_error(lambda: files.read_table(path, **arguments), *fragments)


def test_arrays_from_npy_and_npz(tmp_path, digits):
    images, labels = digits[0][:500, ..., np.newaxis], digits[1][:500]
    np.save(tmp_path / "digits.npy", images)
    examples, none = read_array(tmp_path / "digits.npy")
    assert none is None and examples.dtype == np.float32 and examples.shape == (500, 28, 28, 1)
    np.testing.assert_array_equal(examples, images / np.float32(255))
    floats = images.astype(np.float64) / 255
    np.save(tmp_path / "floats.npy", floats)
    np.testing.assert_array_equal(read_array(tmp_path / "floats.npy")[0], floats.astype(np.float32))
    np.save(tmp_path / "half.npy", floats.astype(np.float16))
    assert read_array(tmp_path / "half.npy")[0].dtype == np.float32
    np.savez(tmp_path / "xy.npz", x=images, y=labels)
    examples, read_labels = read_array(tmp_path / "xy.npz")
    np.testing.assert_array_equal(examples, images / np.float32(255))
    np.testing.assert_array_equal(read_labels, labels)
    np.savez_compressed(tmp_path / "named.npz", images=floats, labels=labels)
    np.testing.assert_array_equal(read_array(tmp_path / "named.npz")[1], labels)
    np.savez(tmp_path / "only.npz", beats=floats[:, :, :, 0])
    assert read_array(tmp_path / "only.npz")[0].shape == (500, 28, 28)


class TouchOnUnpickle:
    """Unpickling this creates a marker file: proof that a reader ran pickled code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (pathlib.Path(self.marker),)


def test_bad_arrays_are_refused_with_one_line(tmp_path):
    def refused(name, *fragments, **arrays):
        path = tmp_path / name
        np.savez(path, **arrays) if name.endswith(".npz") else np.save(path, arrays["array"])
        one_line_error(lambda: read_array(path), name, *fragments)

    refused("counts.npy", "int32", "float", "uint8", array=np.arange(12, dtype=np.int32).reshape(3, 4))
    refused("wide.npy", "uint16", array=np.ones((2, 3), np.uint16))
    refused("mask.npy", "bool", array=np.ones((2, 3), bool))
    refused("empty.npy", "empty", array=np.zeros((0, 4), np.float32))
    bad = np.zeros((4, 3, 2), np.float32)
    bad[2, 1, 0] = np.nan
    refused("holes.npy", "nan", "(2, 1, 0)", array=bad)
    refused("keys.npz", "['data', 'target']", "'x'", data=bad, target=np.arange(4))
    refused("short.npz", "4 examples", "(3,)", x=np.zeros((4, 2)), y=np.arange(3))
    marker = tmp_path / "unpickled"
    np.save(tmp_path / "objects.npy", np.array([TouchOnUnpickle(marker)], dtype=object), allow_pickle=True)
    one_line_error(lambda: read_array(tmp_path / "objects.npy"), "objects.npy", "pickled")
    np.savez(tmp_path / "objects.npz", x=np.array([TouchOnUnpickle(marker)], dtype=object))
    one_line_error(lambda: read_array(tmp_path / "objects.npz"), "objects.npz", "pickled")
    assert not marker.exists()
    (tmp_path / "broken.npy").write_bytes(b"\x93NUMPY garbage")
    one_line_error(lambda: read_array(tmp_path / "broken.npy"), "broken.npy")
    one_line_error(lambda: read_array(tmp_path / "table.csv"), "table.csv", ".npy or .npz")
