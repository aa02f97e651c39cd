"""tf.data input pipelines: datasets by name, or the user's own files, ready for fit and tf.distribute.

    train = keras_ae.data.load("mnist", split="train", batch_size=128, binarize="dynamic")
    photos = keras_ae.data.load("./photos", image_size=(64, 64), color_mode="rgb", validation_split=0.1)
    beats = keras_ae.data.load("readings.csv", label_column="label")

Named datasets, in order: `data_dir/<name>/`, `$KERAS_AE_DATA/<name>/`, Debian's
`/usr/share/datasets/<name-with-dashes>/` (IDX `.gz` files, or the table of a dataset in
`TABLE_DATASETS`), then `tfds.load`. A path (a folder of images, a `.npy`/`.npz` array or a
`.csv`/`.tsv` table, read by `keras_ae.files`; a Parquet or TFRecord file, by `keras_ae.file_formats`) is
one set: `split="train"` is all of it, and `validation_split` carves a seeded validation part. uint8 images
stay uint8 in memory (one copy); each batch is converted to float32 in [0, 1] inside the pipeline.
"""

import gzip
import os
import warnings
from pathlib import Path

import numpy as np
import tensorflow as tf

from keras_ae import file_formats, files, ratings
from keras_ae.card_types import as_data
from keras_ae.errors import InputError
from keras_ae.schema import BINARIZE_MODES, DATASET_NAME, SPLIT_PATTERN, positive_count

DEBIAN_DATASETS = Path("/usr/share/datasets")
IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
# Named datasets that are one table, with the split their reference publication uses.
DEBIAN_PACKAGES = {"fashion_mnist": "dataset-fashion-mnist"}  # packages that fill DEBIAN_DATASETS
TABLE_DATASETS = {
    # TensorFlow's "Intro to autoencoders" ECG example: ecg.csv, 140 values then the label (1.0 normal),
    # split by sklearn's train_test_split(test_size=0.2, random_state=21).
    "ecg5000": {"file": "ecg.csv", "label_column": -1, "test_size": 0.2, "random_state": 21},
    # The UCR archive's own split of the same beats (500 train, 4,500 test; label first, 1 normal, 2-5 abnormal). ecg.csv
    # holds these beats too: 3,598 of UCR's 4,500 test beats fall in the tutorial's training split.
    "ecg5000_ucr": {"folder": "ecg5000", "file": "ECG5000_TRAIN.tsv", "test_file": "ECG5000_TEST.tsv", "label_column": 0},
}
TABLE_SUFFIXES = (".csv", ".tsv", ".tab", ".txt")
ARRAY_SUFFIXES = (".npy", ".npz")
COLUMN_SUFFIXES = file_formats.PARQUET_SUFFIXES + file_formats.TFRECORD_SUFFIXES  # files of named columns or features


class DatasetNotFoundError(FileNotFoundError):
    """No local copy and no usable TensorFlow Datasets source."""


def read_idx(path):
    """Read one IDX file (gzip or plain) into a numpy array without an extra copy of the data."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        raise InputError(f"Cannot read IDX file {path}: {error}") from error
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise InputError(
            f"{path} is not an IDX file of uint8 data: expected magic bytes 00 00 08 <rank>, got {raw[:4].hex(' ')}."
        )
    rank = raw[3]
    header_size = 4 + 4 * rank
    if len(raw) < header_size:
        raise InputError(f"{path} is truncated: the header needs {header_size} bytes, the file has {len(raw)}.")
    shape = tuple(int(dim) for dim in np.frombuffer(raw, dtype=">u4", count=rank, offset=4))
    expected = header_size + int(np.prod(shape))
    if len(raw) != expected:
        raise InputError(
            f"{path} holds {len(raw)} bytes but its header (shape {shape}) says {expected}: the file is truncated or corrupt."
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape(shape)


def candidate_directories(name, data_dir=None):
    """The local folders searched for `name`'s IDX files (or its table's), in order."""
    name = TABLE_DATASETS.get(name, {}).get("folder", name)
    folders = [Path(data_dir) / name] if data_dir else []
    if os.environ.get("KERAS_AE_DATA"):
        folders.append(Path(os.environ["KERAS_AE_DATA"]) / name)
    folders.append(DEBIAN_DATASETS / name.replace("_", "-"))
    return folders


def local_directory(name, data_dir=None):
    """The first local folder that holds `name`'s files (IDX, or its table), or None."""
    marker = TABLE_DATASETS[name]["file"] if name in TABLE_DATASETS else IDX_FILES["train"][0]
    return next((folder for folder in candidate_directories(name, data_dir) if (folder / marker).exists()), None)


def searched_directories(name, data_dir=None):
    """The searched folders as text, saying when KERAS_AE_DATA is unset."""
    unset = [] if os.environ.get("KERAS_AE_DATA") else ["$KERAS_AE_DATA (unset)"]
    return [str(folder) for folder in candidate_directories(name, data_dir)] + unset


def parse_split(split):
    """Split a TFDS-style split string like `train[:5000]` or `test[10%:]` into (base, start, stop)."""
    match = SPLIT_PATTERN.match(split) if isinstance(split, str) else None
    if not match:
        raise InputError(f"Unknown split {split!r}; expected 'train', 'test' or 'validation', optionally sliced like 'train[:5000]'.")
    return match["base"], match["start"], match["stop"]


def slice_bound(bound, size):
    if bound is None:
        return None
    if bound.endswith("%"):
        return int(round(size * int(bound[:-1]) / 100))
    return int(bound)


def local_split_indices(size, base, start, stop, validation_split, seed):
    """Indices of a split of a local source; `validation` is a seeded fraction carved from train."""
    indices = np.arange(size)
    if validation_split and base != "test":  # carved from train; a separate test split is left whole
        if not 0.0 < validation_split < 1.0:
            raise InputError(f"validation_split must lie between 0 and 1; got {validation_split!r}.")
        indices = np.random.default_rng(seed).permutation(size)
        held_out = int(round(size * validation_split))
        indices = indices[size - held_out:] if base == "validation" else indices[: size - held_out]
    elif base == "validation":
        raise InputError("split 'validation' needs validation_split > 0 (the local files have only train and test).")
    return indices[slice_bound(start, len(indices)):slice_bound(stop, len(indices))]


def table_split(name, split, folder):
    """Examples and labels of a `TABLE_DATASETS` split, with the split its reference uses, and their row numbers."""
    from sklearn.model_selection import train_test_split

    spec = TABLE_DATASETS[name]
    if "test_file" in spec:  # a table with its own split in two files
        examples, labels, _ = files.read_table(folder / spec["file" if split == "train" else "test_file"], label_column=spec["label_column"])
        return examples, labels, np.arange(len(examples))
    examples, labels, _ = files.read_table(folder / spec["file"], label_column=spec["label_column"])
    rows = np.arange(len(examples))
    train_rows, test_rows = train_test_split(rows, test_size=spec["test_size"], random_state=spec["random_state"])
    chosen = train_rows if split == "train" else test_rows
    return examples[chosen], labels[chosen], chosen


def load_arrays(name, split="train", data_dir=None):
    """Examples (images `[n, height, width, channels]` uint8, or table rows float32) and labels `[n]` of a local dataset's split."""
    folder = local_directory(name, data_dir)
    if folder is None:
        raise DatasetNotFoundError(f"No local copy of {name!r}; looked in {searched_directories(name, data_dir)}.")
    if split not in IDX_FILES:
        raise InputError(f"Unknown split {split!r} for local files; expected one of {sorted(IDX_FILES)}.")
    if name in TABLE_DATASETS:
        return table_split(name, split, folder)[:2]
    image_file, label_file = (folder / file for file in IDX_FILES[split])
    images, labels = read_idx(image_file), read_idx(label_file)
    if images.ndim == 3:
        images = images[..., np.newaxis]
    if len(images) != len(labels):
        raise InputError(f"{image_file} has {len(images)} images but {label_file} has {len(labels)} labels.")
    return images, labels


def path_kind(path):
    """What a path is, by its suffix: "a folder of images", "a table" (CSV/TSV, Parquet and TFRecord files), "an
    array", or None (none of these)."""
    path = Path(path).expanduser()
    suffix = path.suffix.lower()
    return ("a folder of images" if path.is_dir() else "a table" if suffix in TABLE_SUFFIXES + COLUMN_SUFFIXES
            else "an array" if suffix in ARRAY_SUFFIXES else None)


def is_path(source, data_dir=None):
    """Whether `source` is read as a path rather than a dataset name: a `Path`; text with a folder separator, a leading
    . or ~, or a file suffix we read; or a bare name of an existing file or folder (`"photos"`). A bare name that is also
    a local dataset is read as the path (`source_of` says so when it reads it)."""
    if isinstance(source, os.PathLike):
        return True
    if not isinstance(source, str):
        return False
    if "/" in source or os.sep in source or source.startswith((".", "~")):
        return True
    if Path(source).suffix.lower() in TABLE_SUFFIXES + ARRAY_SUFFIXES + COLUMN_SUFFIXES:
        return True
    return Path(source).exists()


# tf.data's maps here are plain graph code (tf.cond where they branch): not rewritten by AutoGraph, which took 1.4 s of
# an image folder's 2 s to its first batch.
plain = tf.autograph.experimental.do_not_convert

SHUFFLE_EXAMPLES = 10_000  # the shuffle buffer of a streamed table (parsed rows); images and arrays shuffle their indices
CHECKED_CHUNK = 1_024  # files whose headers a stream checks at once while the rest are still being read
HELD_BATCHES = 4  # decoded batches a stream holds at once (one being filled, prefetched ones): what must fit in memory


class ImageFolderSource:
    """A folder of images, streamed: listed (and every header read) once, each image decoded in the graph when used."""

    def __init__(self, path, image_size=None, color_mode="grayscale", on_error="raise", held=None):
        self.found = files.list_images(path, image_size=image_size, color_mode=color_mode, on_error=on_error, held=held)
        self.count, self.labels = len(self.found.paths), self.found.labels
        root = len(str(path).rstrip(os.sep)) + 1
        self.names = [name[root:] for name in self.found.paths]
        self.example_shape = (*self.found.image_size, files.CHANNELS[color_mode])

    def examples(self, indices, shuffle_seed=None):
        indices = np.asarray(indices, np.int64)  # with their paths as the stream's elements: a graph constant of every
        paths = tf.constant([os.fsencode(self.found.paths[index]) for index in indices], tf.string)  # path took a second
        dataset = tf.data.Dataset.from_tensor_slices((indices, paths))  # to make each iterator
        if shuffle_seed is not None:
            dataset = dataset.shuffle(len(indices), seed=shuffle_seed, reshuffle_each_iteration=True)
        if self.found.check is not None:  # headers still being read: each chunk waits for its own, and stops at a fault
            self.found.check.start()
            dataset = dataset.batch(CHECKED_CHUNK).map(plain(self._checked)).unbatch()
        return dataset.map(plain(lambda index, path: (index, files.decode_image(path, self.found.image_size, self.found.color_mode))),
                           num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    def _checked(self, indices, paths):
        indices = tf.numpy_function(self.found.check.check, [indices], tf.int64, stateful=True)
        return tf.ensure_shape(indices, paths.shape), paths

    def batches(self, batch_size):
        dataset = self.examples(np.arange(self.count)).map(plain(lambda _, image: image)).batch(batch_size)
        try:
            yield from dataset.prefetch(2).as_numpy_iterator()
        except tf.errors.InvalidArgumentError:  # a header read while streaming was at fault: its one-line error
            if self.found.check is not None:
                self.found.check.verdict()
            raise


class ArraySource:
    """A .npy array, memory-mapped (an .npz one read whole): examples are gathered a batch at a time when used."""

    def __init__(self, path):
        self.array, self.labels = files.open_array(path)
        self.count, self.example_shape = len(self.array), tuple(self.array.shape[1:])
        self.names = range(self.count)

    def examples(self, indices, shuffle_seed=None):
        def gather(chosen):  # rows read in file order from the mapped file, returned in the order asked
            order = np.argsort(chosen)
            rows = np.empty((len(chosen), *self.example_shape), np.float32)
            rows[order] = files.as_float32(self.array[chosen[order]])
            return rows

        shape = (None, *self.example_shape)
        batched = _indexed(indices, shuffle_seed).batch(READ_ROWS)
        batched = batched.map(plain(lambda chosen: (chosen, tf.ensure_shape(tf.numpy_function(gather, [chosen], tf.float32), shape))))
        return batched.unbatch().apply(tf.data.experimental.assert_cardinality(len(indices)))

    def batches(self, batch_size):
        return (files.as_float32(self.array[start:start + batch_size]) for start in range(0, self.count, batch_size))


class TableSource:
    """A CSV/TSV table, streamed: parsed a chunk at a time when used. `counted` makes one pass at once, for the count
    and the labels (and every fault, raised before any batch); without it they are unknown (None) until read."""

    def __init__(self, path, label_column=None, columns=None, header="infer", counted=True):
        self.table = files.open_table(path, label_column=label_column, columns=columns, header=header)
        self.example_shape = (len(self.table.feature_indices),)
        self.count = self.labels = None
        if counted:
            self.count, cells = 0, []
            for features, labels in files.table_chunks(self.table):
                self.count += len(features)
                cells.extend(labels or ())
            self.labels = files.label_values(cells) if self.table.label_index is not None else None
        self.names = None if self.count is None else range(self.count)

    def examples(self, indices, shuffle_seed=None):
        return _chosen_rows(lambda: files.table_chunks(self.table), self.count, indices, self.example_shape, shuffle_seed)

    def batches(self, batch_size):
        return _rebatched((features for features, _ in files.table_chunks(self.table)), batch_size)


class ParquetSource:
    """A Parquet file (through pyarrow), streamed a batch of rows at a time; its count from the file's metadata, its
    labels from the label column alone. `counted` reads every used column once, at once, so that every fault is
    raised before any batch."""

    def __init__(self, path, label_column=None, columns=None, header="infer", counted=True):
        self.table = file_formats.open_parquet(path, label_column=label_column, columns=columns, header=header)
        self.count, self.names = self.table.count, range(self.table.count)
        self.example_shape = (len(self.table.feature_names),)
        self.labels = None
        if counted or self.table.label_name is not None:
            read = self.table if counted else self.table._replace(feature_names=[])  # the label column alone
            cells = [cell for _, labels in file_formats.parquet_chunks(read) for cell in labels or ()]
            self.labels = files.label_values(cells) if self.table.label_name is not None else None

    def examples(self, indices, shuffle_seed=None):
        return _chosen_rows(lambda: file_formats.parquet_chunks(self.table), self.count, indices, self.example_shape, shuffle_seed)

    def batches(self, batch_size):
        return _rebatched((features for features, _ in file_formats.parquet_chunks(self.table)), batch_size)


class TFRecordSource:
    """A TFRecord file of `tf.train.Example` records, parsed in the graph as it streams. `counted` makes one pass at
    once, for the count and the labels (and every fault, raised before any batch); without it they are unknown (None)
    until read."""

    def __init__(self, path, label_column=None, columns=None, header="infer", counted=True):
        self.layout = file_formats.open_records(path, label_column=label_column, columns=columns, header=header)
        self.example_shape = (self.layout.width,)
        self.count = self.labels = None
        if counted:
            self.count, cells = 0, []
            for indices, _, labels in file_formats.record_batches(self.layout, with_label=True):
                self.count += len(indices)
                cells.extend(labels or ())
            self.labels = files.label_values(cells) if self.layout.label_name is not None else None
        self.names = None if self.count is None else range(self.count)

    def examples(self, indices, shuffle_seed=None):
        kept = tf.constant(_kept(self.count, indices))
        dataset = tf.data.TFRecordDataset(str(self.layout.path)).enumerate().filter(plain(lambda index, _: tf.gather(kept, index)))
        dataset = dataset.batch(file_formats.READ_ROWS).map(
            plain(lambda chosen, serialized: (chosen, file_formats.parse_records(self.layout, chosen, serialized)))).unbatch()
        return _shuffled(dataset.apply(tf.data.experimental.assert_cardinality(len(indices))), len(indices), shuffle_seed)

    def batches(self, batch_size):
        return _rebatched((examples for _, examples, _ in file_formats.record_batches(self.layout)), batch_size)


def _rebatched(chunks, batch_size):
    """Arrays of `batch_size` rows (the last may be shorter) cut from `chunks` of any lengths: a file is parsed in large
    chunks (parsing 1,000 rows at a time cost pandas a third more), batches are what the model is given."""
    pending, held = [], 0
    for chunk in chunks:
        pending.append(chunk)
        held += len(chunk)
        if held >= batch_size:
            joined = np.concatenate(pending) if len(pending) > 1 else pending[0]
            whole = held - held % batch_size
            yield from (joined[start:start + batch_size] for start in range(0, whole, batch_size))
            pending, held = [joined[whole:]], held - whole
    if held:
        yield np.concatenate(pending)


def _chosen_rows(chunks, count, indices, example_shape, shuffle_seed):
    """The rows at `indices` (sorted, as a path's splits are) of a file read as `chunks()` (features, labels) in file
    order; shuffled in a buffer of `SHUFFLE_EXAMPLES` rows with `shuffle_seed`."""
    kept = _kept(count, indices)

    def rows():
        start = 0
        for features, _ in chunks():
            chosen = np.flatnonzero(kept[start:start + len(features)])
            yield chosen + start, features[chosen]
            start += len(features)

    signature = (tf.TensorSpec((None,), tf.int64), tf.TensorSpec((None, *example_shape), tf.float32))
    dataset = tf.data.Dataset.from_generator(rows, output_signature=signature).unbatch()
    return _shuffled(dataset.apply(tf.data.experimental.assert_cardinality(len(indices))), len(indices), shuffle_seed)


def _kept(count, indices):
    """A mask of `count` rows, True at `indices`."""
    kept = np.zeros(count, bool)
    kept[indices] = True
    return kept


def _shuffled(dataset, size, shuffle_seed):
    """A stream of `size` rows shuffled in a buffer of `SHUFFLE_EXAMPLES` with `shuffle_seed` (None: as it is)."""
    if shuffle_seed is None:
        return dataset
    return dataset.shuffle(max(1, min(size, SHUFFLE_EXAMPLES)), seed=shuffle_seed, reshuffle_each_iteration=True)


READ_ROWS = 1024  # array rows gathered from a memory-mapped file at a time


def _indexed(indices, shuffle_seed):
    """A dataset of example indices, wholly reshuffled each epoch with `shuffle_seed` (None: in order)."""
    dataset = tf.data.Dataset.from_tensor_slices(np.asarray(indices, np.int64))
    if shuffle_seed is None:
        return dataset
    return dataset.shuffle(len(indices), seed=shuffle_seed, reshuffle_each_iteration=True)


def open_path(path, image_size=None, color_mode="grayscale", on_error="raise", label_column=None, columns=None, header="infer",
              held=None, counted=True):
    """A user's folder of images, `.npy`/`.npz` array, `.csv`/`.tsv` table, Parquet or TFRecord file as a streamed
    source: its `count`, `labels` (None without), `names` (file paths relative to a folder, else row numbers),
    `example_shape`, `examples(indices)` (a tf.data.Dataset of float32 examples) and `batches(batch_size)` (numpy
    batches in file order)."""
    path = Path(path).expanduser()
    suffix = path.suffix.lower()
    if path.is_dir():
        return ImageFolderSource(path, image_size=image_size, color_mode=color_mode, on_error=on_error, held=held)
    if not path.exists() and not path.is_symlink():  # a broken link or a loop is read, and fails as an unreadable file
        raise FileNotFoundError(f"No such file or folder: {path}")
    files.refuse_special_file(path)  # a FIFO would block forever, a device never end
    if suffix in ARRAY_SUFFIXES:
        return ArraySource(path)
    sources = {**dict.fromkeys(TABLE_SUFFIXES, TableSource), **dict.fromkeys(file_formats.PARQUET_SUFFIXES, ParquetSource),
               **dict.fromkeys(file_formats.TFRECORD_SUFFIXES, TFRecordSource)}
    if suffix in sources:
        return sources[suffix](path, label_column=label_column, columns=columns, header=header, counted=counted)
    raise InputError(
        f"{path}: expected a folder of images, a {'/'.join(ARRAY_SUFFIXES)} array, a {'/'.join(TABLE_SUFFIXES)} table, a "
        f"{'/'.join(file_formats.PARQUET_SUFFIXES)} Parquet file or a {'/'.join(file_formats.TFRECORD_SUFFIXES)} TFRecord file."
    )


def source_arrays(source, base, data_dir=None):
    """Examples and labels of a named local dataset's split, or None for a TensorFlow Datasets source."""
    if local_directory(source, data_dir) is None:
        return None
    return load_arrays(source, "train" if base == "validation" else base, data_dir)


def source_of(source, base, data_dir=None, **read_options):
    """The streamed source of a path (after refusing a test split of it), or None for a dataset name."""
    if not is_path(source, data_dir):
        return None
    if base == "test":
        raise InputError(f"{source} is one set: use split 'train' (all of it), or 'validation' with validation_split.")
    dataset = isinstance(source, str) and DATASET_NAME.fullmatch(source) and local_directory(source, data_dir)
    if dataset:  # a bare name, both a file or folder here and a local dataset: the path is read
        warnings.warn(f"{source!r} is both a file or folder here and a dataset in {dataset}: reading the path "
                      f"{Path(source).resolve()}; pass ./{source} or the dataset's folder to be explicit.", stacklevel=3)
    return open_path(source, **read_options)


def path_split_indices(found, base, start, stop, validation_split, seed, only_label, source):
    """The rows of a path's split, in file order (a split is carved by a seeded draw, then kept in the file's order)."""
    if found.labels is None and only_label is not None:
        raise InputError(f"{source} has no labels (no class subfolders, label_column or labels array); drop only_label.")
    indices = np.sort(local_split_indices(found.count, base, start, stop, validation_split, seed))
    return kept_indices(path_labels(found), indices, only_label, source)


def path_labels(found):
    """A path's labels, -1 for every example of an unlabelled one."""
    return np.full(found.count, -1, np.int64) if found.labels is None else found.labels


TFDS_HOST = ("storage.googleapis.com", 443)  # where TensorFlow Datasets downloads from


def network_reachable(address=TFDS_HOST, timeout=3.0):
    """Whether a TCP connection to `address` opens within `timeout` seconds (no network fails in milliseconds)."""
    import socket

    try:
        socket.create_connection(address, timeout=timeout).close()
        return True
    except OSError:
        return False


def local_fixes(name):
    """How to give keras-ae a dataset it cannot find or download, in words for that dataset."""
    if name in TABLE_DATASETS:
        where = f"a folder holding {name}/{TABLE_DATASETS[name]['file']}"
    else:
        where = f"a folder holding {name}/ with the four IDX .gz files in MNIST's layout ({IDX_FILES['train'][0]}, ...)"
    debian = f"; or `apt-get install {DEBIAN_PACKAGES[name]}`" if name in DEBIAN_PACKAGES else ""
    return (f"Fixes: set KERAS_AE_DATA (or pass data_dir) to {where}{debian}; or prepare it with TensorFlow Datasets on a machine "
            "with network and copy ~/tensorflow_datasets here; or pass your own copy as a path (a folder of images, a "
            ".npy/.npz array or a .csv table).")


def _tfds_builder(name, data_dir, download, local_error):
    """The TensorFlow Datasets builder of `name`, prepared, or one clear error at once: an unknown name, no download
    allowed, or no network (checked in milliseconds, before TFDS retries for minutes)."""
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as error:  # TFDS raises its own DatasetNotFoundError, and others for malformed names
        raise DatasetNotFoundError(
            f"{name!r} is neither a file or folder here ({Path.cwd()}), nor a local dataset, nor one TensorFlow Datasets "
            f"knows ({type(error).__name__}). {local_error} {local_fixes(name)}"
        ) from None
    if not builder.is_prepared():
        if not download:
            raise DatasetNotFoundError(f"{local_error} TensorFlow Datasets has not prepared {name!r} and download=False. {local_fixes(name)}")
        if not network_reachable():
            raise DatasetNotFoundError(
                f"{local_error} TensorFlow Datasets would download {name!r}, but there is no network "
                f"({TFDS_HOST[0]} unreachable). {local_fixes(name)}"
            )
    return builder


def _tfds_source(name, split, data_dir, download, local_error):
    """A dataset of (uint8 image, label) from TensorFlow Datasets, or one clear error."""
    import tensorflow_datasets as tfds

    _tfds_builder(name, data_dir, download, local_error)
    try:
        dataset = tfds.load(name, split=split, data_dir=data_dir, download=download, as_supervised=True)
    except Exception as error:  # TFDS raises many types (network, registry, assertion); report them as one.
        raise DatasetNotFoundError(
            f"Could not load dataset {name!r} split {split!r}. {local_error} "
            f"TensorFlow Datasets failed too: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''} "
            f"{local_fixes(name)}"
        ) from None
    return dataset


def binarize_images(images, mode, seed=0, indices=None, batch_seed=None):
    """Binarize float images in [0, 1].

    Args:
        mode: None (unchanged), `"static"` (threshold at 0.5), `"fixed"` (one Bernoulli draw per example,
            keyed by `(seed, example index)`: the same in every epoch, batching and slice, as a test set
            is measured) or `"dynamic"` (fresh draws for each batch from `batch_seed`, as training wants).
        indices: example indices of the batch (default 0..n-1), for `"fixed"`.
        batch_seed: an int64 scalar tensor, fresh per batch and epoch, for `"dynamic"`.
    """
    if mode not in BINARIZE_MODES:
        raise InputError(f"Unknown binarize {mode!r}; expected one of {list(BINARIZE_MODES)}.")
    images = tf.convert_to_tensor(images, tf.float32)
    if mode == "static":
        return tf.cast(images >= 0.5, tf.float32)
    if mode == "dynamic":
        noise = tf.random.stateless_uniform(tf.shape(images), seed=tf.stack([batch_seed, tf.constant(0, tf.int64)]))
    elif mode == "fixed":
        indices = tf.range(tf.shape(images, out_type=tf.int64)[0]) if indices is None else tf.cast(indices, tf.int64)
        seeds = tf.stack([tf.fill(tf.shape(indices), tf.constant(seed, tf.int64)), indices], axis=1)
        shape = tf.shape(images)[1:]
        noise = tf.map_fn(lambda pair: tf.random.stateless_uniform(shape, seed=pair), seeds, fn_output_signature=tf.float32)
    else:
        return images
    return tf.cast(noise < images, tf.float32)


def load(
    source,
    split="train",
    batch_size=128,
    binarize=None,
    with_labels=False,
    flatten=False,
    shuffle=None,
    seed=0,
    validation_split=None,
    drop_remainder=None,
    cache=False,
    data_dir=None,
    download=True,
    input_context=None,
    only_label=None,
    **read_options,
):
    """A batched, prefetched `tf.data.Dataset` of examples (float32; images in [0, 1]) or `(example, label)` pairs.

    Args:
        source: a dataset name (`mnist`, `fashion_mnist`, `ecg5000`, or any TFDS image dataset), or a path:
            a folder of images (class subfolders give labels), a `.npy`/`.npz` array, a `.csv`/`.tsv` table, a
            `.parquet` file or a `.tfrecord` file of `tf.train.Example` records.
        split: `train`, `test`, `validation` (with `validation_split`), optionally sliced: `train[:5000]`.
            A path is one set, its `train` split.
        batch_size: examples per batch (the per-replica size when `input_context` is given).
        binarize: None, `"static"` (threshold 0.5), `"dynamic"` (fresh Bernoulli draws each epoch, seeded) or
            `"fixed"` (one seeded draw per example, the same every epoch); see `binarize_images`.
        with_labels: yield `(image, label)` instead of images (label -1 for a path without labels).
        flatten: flatten each image to a vector, for dense models.
        shuffle: shuffle every epoch (seeded); default True for a named dataset's train split, False for a path (a
            user's folder or table keeps its order, the order of `names`) and for every other split.
        seed: seed of shuffling, validation carving and dynamic binarization.
        validation_split: fraction of train held out (reproducibly) as `validation`.
        drop_remainder: drop the last partial batch; default True under a TPU strategy (static shapes).
        cache: cache the decoded source in memory (useful for TFDS sources).
        data_dir: a folder holding `<name>/` IDX files, also passed to `tfds.load`.
        download: let TensorFlow Datasets download when there is no local copy.
        input_context: a `tf.distribute.InputContext`; shards by input pipeline.
        only_label: keep only the examples with this label (the one-class set-up of anomaly detection).
        read_options: for a path, `image_size`, `color_mode`, `on_error` (images) or `label_column`,
            `columns`, `header` (tables; Parquet and TFRecord files take `label_column` and `columns`, names of their
            columns or features); see `keras_ae.files` and `keras_ae.file_formats`.

    Raises:
        InputError: an unknown `binarize` or `split`, `batch_size` not a positive integer, `validation_split` outside
            (0, 1) or missing for `validation`, `only_label` for a TFDS source or a label not there, or a path that is
            no folder of images, array or table (or holds malformed data).
        FileNotFoundError: no such path, or a dataset with no local copy that TensorFlow Datasets cannot give
            (`DatasetNotFoundError`).
    """
    if binarize not in BINARIZE_MODES:
        raise InputError(f"Unknown binarize {binarize!r}; expected one of {list(BINARIZE_MODES)}.")
    positive_count(batch_size, "batch_size")
    base, start, stop = parse_split(split)
    shuffle = base == "train" and not is_path(source, data_dir) if shuffle is None else shuffle
    if drop_remainder is None:
        drop_remainder = isinstance(tf.distribute.get_strategy(), (tf.distribute.TPUStrategy,))

    found = source_of(source, base, data_dir, held=HELD_BATCHES * batch_size, **read_options)
    arrays = None if found is not None else source_arrays(source, base, data_dir)
    if found is not None:  # a user's path, streamed: examples decoded or parsed as the batches are made
        indices = path_split_indices(found, base, start, stop, validation_split, seed, only_label, source)
        if input_context is not None and input_context.num_input_pipelines > 1:
            indices = indices[input_context.input_pipeline_id::input_context.num_input_pipelines]
        labels = tf.constant(path_labels(found))
        dataset = found.examples(indices, seed if shuffle and not cache else None)
        scale = 1.0

        def gather(batch):
            return batch[0], batch[1], tf.gather(labels, batch[0])

    elif arrays is not None:
        examples, labels = arrays
        labels = labels.astype(np.int64) if labels.dtype.kind in "iu" else labels  # IDX labels are uint8
        indices = kept_indices(labels, local_split_indices(len(examples), base, start, stop, validation_split, seed), only_label, source)
        scale = 255.0 if examples.dtype == np.uint8 else 1.0
        examples, labels = tf.constant(examples), tf.constant(labels)
        dataset = tf.data.Dataset.from_tensor_slices(indices)

        def gather(index):
            return index, tf.gather(examples, index), tf.gather(labels, index)

    else:
        if only_label is not None:
            raise InputError("only_label needs a local dataset or a path, not a TensorFlow Datasets source.")
        local_error = f"No local copy (looked in {searched_directories(source, data_dir)})."
        dataset = _tfds_source(source, split, data_dir, download, local_error).enumerate()

        def gather(batch):
            return batch[0], *batch[1]

        scale = 255.0

    if input_context is not None and input_context.num_input_pipelines > 1 and found is None:
        dataset = dataset.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    if cache:
        dataset = dataset.cache()
    if shuffle and (found is None or cache):  # a path's source shuffles its own stream, unless it is cached
        dataset = dataset.shuffle(10_000 if arrays is None and found is None else len(indices), seed=seed,
                                  reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    dataset = tf.data.Dataset.zip(dataset, tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True))

    def prepare(batch, batch_seed):
        batch_indices, batch_images, batch_labels = gather(batch)
        batch_images = binarize_images(tf.cast(batch_images, tf.float32) / scale, binarize, seed, batch_indices, batch_seed)
        if flatten:
            batch_images = tf.reshape(batch_images, (tf.shape(batch_images)[0], -1))
        return (batch_images, batch_labels) if with_labels else batch_images

    dataset = dataset.map(plain(prepare), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    # Without autotuning's model thread: destroying an epoch's iterator waited for it, CPU idle, for up to a minute
    # (`fit` makes one iterator per epoch). AUTOTUNE parallelism then means one call per core.
    options.autotune.enabled = False
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)


def names(source, split="train", validation_split=None, seed=0, data_dir=None, only_label=None, **read_options):
    """The name of each example of a path's split, in the order `load(..., shuffle=False)` gives them: file paths
    relative to a folder, row numbers of a table or array. So codes and scores map back to their files.

    Takes `load`'s arguments as they are (those that do not change which examples are read are ignored).

    Raises:
        InputError: `source` is a dataset name, or a path that is no folder of images, array or table; an unknown
            `split`; `validation_split` outside (0, 1) or missing for `validation`; or `only_label` the path has no
            labels for, or a label not there.
        FileNotFoundError: no such file or folder.
    """
    if not is_path(source, data_dir):
        raise InputError(f"names are for a path (a folder, table or array); {source!r} is a dataset name.")
    base, start, stop = parse_split(split)
    read_options = {key: value for key, value in read_options.items() if key in ("image_size", "color_mode", "on_error",
                                                                              "label_column", "columns", "header")}
    found = open_path(source, **read_options)
    return [str(found.names[index]) for index in path_split_indices(found, base, start, stop, validation_split, seed, only_label, source)]


def count(
    source, split="train", validation_split=None, seed=0, data_dir=None, only_label=None, binarize=None, flatten=False,
    with_labels=False, download=True, **read_options
):
    """Examples in a split: from the IDX label file, the table or path, or the TFDS metadata, without a pass over images
    (a CSV table or a TFRecord file is read once; a Parquet file's metadata has its count).

    Takes `load`'s arguments as they are; `binarize`, `flatten` and `with_labels` do not change the count.

    Raises:
        InputError: an unknown `split`, `validation_split` outside (0, 1) or missing for `validation`, `only_label` with
            no such label, or a path that is no folder of images, array or table.
        FileNotFoundError: no such path, or a dataset with no local copy that TensorFlow Datasets cannot give
            (`DatasetNotFoundError`).
    """
    base, start, stop = parse_split(split)
    folder = None if is_path(source, data_dir) else local_directory(source, data_dir)
    if folder is not None and source not in TABLE_DATASETS:
        file_split = "train" if base == "validation" else base
        if file_split not in IDX_FILES:
            raise InputError(f"Unknown split {split!r} for local files; expected one of {sorted(IDX_FILES)}.")
        labels = read_idx(folder / IDX_FILES[file_split][1])
    elif folder is not None:
        labels = source_arrays(source, base, data_dir)[1]
    elif is_path(source, data_dir):
        found = source_of(source, base, data_dir, counted=False, **read_options)  # a Parquet file's count is in its metadata
        if found.count is None:  # a CSV or TFRecord file is counted by one pass
            found = source_of(source, base, data_dir, **read_options)
        return len(path_split_indices(found, base, start, stop, validation_split, seed, only_label, source))
    else:
        local_error = f"No local copy (looked in {searched_directories(source, data_dir)})."
        return _tfds_builder(source, data_dir, download, local_error).info.splits[split].num_examples
    indices = local_split_indices(len(labels), base, start, stop, validation_split, seed)
    return len(kept_indices(labels, indices, only_label, source))


def kept_indices(labels, indices, only_label, source):
    """`indices` whose label is `only_label` (all of them when it is None); an absent label is an error naming those present."""
    if only_label is None:
        return indices
    try:
        target = np.asarray(str(only_label) if labels.dtype.kind == "U" else only_label, dtype=labels.dtype)
    except ValueError:
        target = None
    wanted = labels == target if target is not None else np.zeros(len(labels), bool)
    if not wanted.any():
        raise InputError(f"Label {only_label!r} does not occur in {source}; its labels are {np.unique(labels).tolist()[:20]}.")
    return indices[wanted[indices]]


# Ratings (MovieLens layouts, implicit positives, Liang et al.'s split by users) have their own module; this is its door.
load_ratings = ratings.read_ratings


CARD_OPTIONS = ("binarize", "flatten", "validation_split", "only_label", "image_size", "color_mode", "label_column", "columns",
                "header")  # a labelled family's data kind adds with_labels; ratings are read by keras_ae.kinds.Ratings


def card_options(spec):
    """The `load` arguments a card's `data` section (a `keras_ae.cards.Data`, or its JSON form) sets (all but the source
    and splits), for training and evaluation alike."""
    spec = as_data(spec)
    values = {key: getattr(spec, key) for key in CARD_OPTIONS}
    return {key: tuple(value) if key == "image_size" else value for key, value in values.items() if value is not None}


def distribute(strategy, source, global_batch_size, **kwargs):
    """A distributed dataset for `strategy`: each input pipeline builds its own shard with the per-replica batch."""

    def dataset_fn(input_context):
        batch_size = input_context.get_per_replica_batch_size(global_batch_size)
        return load(source, batch_size=batch_size, input_context=input_context, **kwargs)

    return strategy.distribute_datasets_from_function(dataset_fn)


def has_bundled_sample(name):
    """Whether the package ships a sample of the dataset `name` (`bundled_sample`)."""
    return (Path(__file__).resolve().parent / "samples" / f"{name}.npz").exists()


def bundled_sample(name):
    """The small sample of real test data shipped with the package: (float32 examples, images in [0, 1]; labels)."""
    path = Path(__file__).resolve().parent / "samples" / f"{name}.npz"
    if not path.exists():
        available = sorted(file.stem for file in path.parent.glob("*.npz"))
        raise InputError(f"No bundled sample named {name!r}; available: {available}.")
    with np.load(path) as sample:
        examples = sample["examples"]
        return examples.astype("float32") / (255.0 if examples.dtype == np.uint8 else 1.0), sample["labels"]
