import gzip
import time

import numpy as np
import pytest
import tensorflow as tf

from keras_ae import data

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def labels_of(dataset):
    return np.concatenate([labels.numpy() for _, labels in dataset])


@pytest.mark.parametrize(
    "name, split, counts",
    [
        ("mnist", "train", MNIST_TRAIN_COUNTS),
        ("mnist", "test", MNIST_TEST_COUNTS),
        ("fashion_mnist", "train", [6000] * 10),
        ("fashion_mnist", "test", [1000] * 10),
    ],
)
def test_real_files_have_the_known_label_counts(name, split, counts, data_root):
    dataset = data.load(name, split=split, batch_size=2000, with_labels=True)
    assert np.bincount(labels_of(dataset)).tolist() == counts


def test_images_are_float32_in_unit_range_with_the_right_shapes(data_root):
    images, labels = next(iter(data.load("fashion_mnist", split="test", batch_size=256, with_labels=True)))
    assert images.dtype == tf.float32 and images.shape == (256, 28, 28, 1) and labels.dtype == tf.int64
    assert float(tf.reduce_min(images)) == 0.0 and float(tf.reduce_max(images)) == 1.0
    flat = next(iter(data.load("mnist", split="test", batch_size=8, flatten=True)))
    assert flat.shape == (8, 784)
    raw, _ = data.load_arrays("mnist", "test")
    np.testing.assert_allclose(next(iter(data.load("mnist", split="test", batch_size=8)))[..., 0], raw[:8, ..., 0] / 255.0)


def test_dynamic_binarization_is_fresh_each_epoch_and_seeded(data_root):
    def two_epochs(seed):
        dataset = data.load("mnist", split="test[:512]", batch_size=512, binarize="dynamic", seed=seed)
        return [next(iter(dataset)).numpy() for _ in range(2)]

    first, second = two_epochs(seed=5)
    assert set(np.unique(first)) == {0.0, 1.0}
    assert np.mean(first != second) > 0.01
    again = two_epochs(seed=5)
    np.testing.assert_array_equal(first, again[0])
    np.testing.assert_array_equal(second, again[1])
    assert np.mean(first != two_epochs(seed=6)[0]) > 0.01
    static = next(iter(data.load("mnist", split="test[:64]", batch_size=64, binarize="static"))).numpy()
    raw, _ = data.load_arrays("mnist", "test")
    np.testing.assert_array_equal(static, (raw[:64] / 255.0 >= 0.5).astype("float32"))


def test_shuffling_is_seeded_and_reshuffles_every_epoch(data_root):
    def epoch_labels(dataset):
        return labels_of(dataset)

    dataset = data.load("mnist", split="train[:2000]", batch_size=500, with_labels=True, seed=1)
    first, second = epoch_labels(dataset), epoch_labels(dataset)
    assert not np.array_equal(first, second) and sorted(first) == sorted(second)
    again = data.load("mnist", split="train[:2000]", batch_size=500, with_labels=True, seed=1)
    np.testing.assert_array_equal(first, epoch_labels(again))


def test_validation_split_is_carved_reproducibly_and_disjoint(data_root):
    def images(split):
        dataset = data.load("mnist", split=split, batch_size=6000, validation_split=0.1, shuffle=False, seed=3, flatten=True)
        return np.concatenate([batch.numpy() for batch in dataset])

    train, validation = images("train"), images("validation")
    assert len(train) == 54000 and len(validation) == 6000
    train_rows = {row.tobytes() for row in train[:20000]}
    overlap = sum(row.tobytes() in train_rows for row in validation)
    assert overlap <= 5  # MNIST holds a handful of exact duplicate images; index sets are disjoint.
    np.testing.assert_array_equal(validation, images("validation"))
    np.testing.assert_allclose(images("test[:100]"), data.load_arrays("mnist", "test")[0][:100].reshape(100, -1) / 255.0, atol=1e-6)


def test_slices_and_drop_remainder(data_root):
    sizes = [len(batch) for batch in data.load("mnist", split="test[:1000]", batch_size=300)]
    assert sizes == [300, 300, 300, 100]
    sizes = [len(batch) for batch in data.load("mnist", split="test[10%:20%]", batch_size=300, drop_remainder=True)]
    assert sizes == [300, 300, 300]


def test_distributed_entry_point_under_mirrored_strategy(data_root, mirrored_strategy):
    strategy = mirrored_strategy
    distributed = data.distribute(strategy, "mnist", global_batch_size=64, split="test[:256]", shuffle=False)
    batches = list(distributed)
    assert len(batches) == 4
    per_replica = strategy.experimental_local_results(batches[0])
    assert [len(part) for part in per_replica] == [32, 32]
    seen = np.concatenate([part.numpy() for batch in batches for part in strategy.experimental_local_results(batch)])
    assert seen.shape == (256, 28, 28, 1)
    also = strategy.experimental_distribute_dataset(data.load("mnist", split="test[:256]", batch_size=64))
    assert sum(1 for _ in also) == 4


def test_tfds_source_offline_with_mock_data(monkeypatch, tmp_path):
    import tensorflow_datasets as tfds

    monkeypatch.delenv("KERAS_AE_DATA", raising=False)
    monkeypatch.setattr(data, "DEBIAN_DATASETS", tmp_path / "none")
    monkeypatch.setattr(data, "network_reachable", lambda: True)  # mock_data stands in for the download
    with tfds.testing.mock_data(num_examples=40):
        dataset = data.load("mnist", split="train", batch_size=16, with_labels=True, binarize="dynamic", flatten=True)
        batches = list(dataset)
    assert [len(images) for images, _ in batches] == [16, 16, 8]
    images, labels = batches[0]
    assert images.shape == (16, 784) and images.dtype == tf.float32 and labels.dtype == tf.int64
    assert set(np.unique(images.numpy())) <= {0.0, 1.0}


def test_no_source_gives_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_AE_DATA", str(tmp_path))
    monkeypatch.setattr(data, "DEBIAN_DATASETS", tmp_path / "none")
    with pytest.raises(data.DatasetNotFoundError) as error:
        data.load("mnist", data_dir=str(tmp_path), download=False)
    message = str(error.value)
    for fix in ("KERAS_AE_DATA", "download=False", "~/tensorflow_datasets", str(tmp_path / "mnist")):
        assert fix in message
    assert "Traceback" not in message and "\n" not in message and "apt-get" not in message
    with pytest.raises(data.DatasetNotFoundError, match="apt-get install dataset-fashion-mnist"):
        data.load("fashion_mnist", data_dir=str(tmp_path), download=False)


def test_offline_an_unknown_or_undownloadable_dataset_fails_at_once(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_AE_DATA", str(tmp_path))
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    monkeypatch.setattr(data, "DEBIAN_DATASETS", tmp_path / "none")
    monkeypatch.setattr(data, "TFDS_HOST", ("127.0.0.1", 9))  # nothing listens: refused at once, as offline
    start = time.perf_counter()
    with pytest.raises(data.DatasetNotFoundError) as error:
        data.load("cifar10")
    message = str(error.value)
    assert "no network" in message and "127.0.0.1 unreachable" in message and "cifar10/" in message and "\n" not in message
    assert "Fashion" not in message and "apt-get" not in message
    with pytest.raises(data.DatasetNotFoundError, match="nor a local dataset, nor one TensorFlow Datasets knows"):
        data.count("no_such_dataset_anywhere")
    with pytest.raises(data.DatasetNotFoundError, match="no network"):
        data.count("cifar10", split="test")
    assert time.perf_counter() - start < 30


def write_idx(path, payload, compress=True):
    (gzip.open if compress else open)(path, "wb").write(payload)


@pytest.mark.parametrize(
    "payload, compress, complaint",
    [
        (b"\x00\x00\x0d\x03" + b"\x00" * 12, True, "magic bytes"),
        (b"\x00\x00\x08\x03\x00\x00\x00\x02\x00\x00\x00\x1c\x00\x00\x00\x1c" + b"\x00" * 100, True, "truncated or corrupt"),
        (b"\x1f\x8b\x08\x00garbage", False, "Cannot read IDX file"),
    ],
)
def test_corrupted_idx_files_name_the_file_and_the_fault(tmp_path, payload, compress, complaint):
    folder = tmp_path / "mnist"
    folder.mkdir()
    write_idx(folder / "train-images-idx3-ubyte.gz", payload, compress)
    write_idx(folder / "train-labels-idx1-ubyte.gz", b"\x00\x00\x08\x01\x00\x00\x00\x02\x01\x02")
    with pytest.raises(ValueError, match=complaint) as error:
        data.load("mnist", data_dir=str(tmp_path))
    assert "train-images-idx3-ubyte.gz" in str(error.value)


@pytest.mark.parametrize(
    "kwargs, complaint",
    [
        ({"split": "dev"}, "expected one of"),
        ({"split": "train[a:b]"}, "'train', 'test' or 'validation'"),
        ({"split": "validation"}, "validation_split"),
        ({"binarize": "otsu"}, "'static', 'dynamic'"),
    ],
)
def test_bad_arguments_list_the_valid_ones(kwargs, complaint, data_root):
    with pytest.raises(ValueError, match=complaint):
        data.load("mnist", **kwargs)


def test_fixed_binarization_is_one_draw_per_example_whatever_the_batching_slice_or_epoch(data_root):
    def images(split, batch_size):
        dataset = data.load("mnist", split=split, batch_size=batch_size, binarize="fixed", shuffle=False, seed=4)
        return np.concatenate([batch.numpy() for batch in dataset])

    whole = images("test[:600]", 600)
    assert set(np.unique(whole)) == {0.0, 1.0}
    np.testing.assert_array_equal(whole, images("test[:600]", 7))
    np.testing.assert_array_equal(whole[100:300], images("test[100:300]", 50))
    shuffled = data.load("mnist", split="test[:600]", batch_size=600, binarize="fixed", seed=4, shuffle=True, with_labels=True)
    raw, _ = data.load_arrays("mnist", "test")
    grey = raw[:600].astype("float32") / 255.0
    np.testing.assert_array_equal(np.asarray(data.binarize_images(grey, "fixed", seed=4)), whole)
    # A draw, not a threshold: pixels of middling grey come out both ways, in proportion to their value.
    middling = (grey > 0.3) & (grey < 0.7)
    assert 0.3 < whole[middling].mean() < 0.7
    assert np.mean(whole != np.asarray(data.binarize_images(grey, "fixed", seed=5))) > 0.001
    for epoch in range(2):
        batch, _ = next(iter(shuffled))
        assert {tuple(row) for row in batch.numpy().reshape(600, -1)[:50]} <= {tuple(row) for row in whole.reshape(600, -1)}


@pytest.mark.parametrize("split, validation_split, expected", [
    ("train", None, 60000), ("test", None, 10000), ("train[:5000]", None, 5000), ("test[10%:20%]", None, 1000),
    ("train", 0.1, 54000), ("validation", 0.1, 6000), ("test", 0.1, 10000),  # the test split is never carved
])
def test_count_reads_no_images(split, validation_split, expected, data_root):
    assert data.count("mnist", split, validation_split=validation_split) == expected
    dataset = data.load("mnist", split=split, batch_size=5000, validation_split=validation_split, shuffle=False)
    assert sum(len(batch) for batch in dataset) == expected


def test_pipelines_run_without_autotunings_model_thread(data_root):
    # fit makes one iterator per epoch; with the model thread, destroying one stalled training, CPU idle, for up to a
    # minute (seen in scripts/benchmark.py's sections 8 and 9)
    dataset = data.load("mnist", split="train[:256]", batch_size=128, binarize="dynamic", data_dir=data_root)
    assert dataset.options().autotune.enabled is False
    assert [batch.shape[0] for batch in dataset] == [128, 128]
