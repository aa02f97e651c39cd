"""Parquet and TFRecord files as streams of float32 rows: their layout read first, their rows a chunk at a time, every
fault one error naming the file, row (or record) and column (or feature), as `keras_ae.files` does for CSV tables."""

import re
from pathlib import Path
from typing import NamedTuple

import numpy as np

from keras_ae import files
from keras_ae.errors import InputError, MissingExtraError

PARQUET_SUFFIXES = (".parquet", ".pq")
TFRECORD_SUFFIXES = (".tfrecord", ".tfrecords")
READ_ROWS = 8192  # rows (or records) read and checked at a time


def _refuse_header(path, header):
    """Refuse a CSV header option for a file that names its columns (or features) itself."""
    if isinstance(header, (list, tuple)):  # a table's layout, as a card records it, that a TFRecord file cannot be checked against
        raise InputError(f"{path} is a TFRecord file, but the header given (or recorded by the preset's card) names a table's "
                         f"columns, {files.listed(list(header))}: give these rows as a CSV or Parquet table.")
    if header != "infer":
        raise InputError(f"header is for CSV/TSV tables; {path} names its columns itself, so header={header!r} would do "
                         "nothing: drop it.")


def _pyarrow():
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise MissingExtraError('Parquet files need the pyarrow package: pip install "keras-ae[parquet]"') from None
    return pyarrow


def parquet_columns(path):
    """A Parquet file's column names, from its metadata: the layout a card records as its `header`."""
    pyarrow = _pyarrow()
    try:
        return list(pyarrow.parquet.read_schema(path).names)
    except (pyarrow.ArrowException, OSError) as error:
        raise InputError(f"Cannot read {path} as a Parquet file ({type(error).__name__}: {error}).") from None


class ParquetTable(NamedTuple):
    """A Parquet file's layout, from its metadata alone: what `parquet_chunks` reads."""

    path: Path
    count: int
    feature_names: list
    label_name: object  # str, or None


def open_parquet(path, label_column=None, columns=None, header="infer"):
    """A Parquet file's layout (see `keras_ae.files.read_table` for `label_column` and `columns`, names or indices);
    numeric (integer or float) feature columns only. `header` names the columns a table must have, as a card records
    them; True or False mean nothing for a file that names its columns, and are refused."""
    pyarrow = _pyarrow()
    path = Path(path)
    try:
        parquet = pyarrow.parquet.ParquetFile(path)
    except (pyarrow.ArrowException, OSError) as error:
        raise InputError(f"Cannot read {path} as a Parquet file ({type(error).__name__}: {error}).") from None
    schema = parquet.schema_arrow
    names = list(schema.names)
    if isinstance(header, (list, tuple)):
        if names != list(header):
            raise InputError(f"{path}: expected the columns {files.listed(list(header))}; found {files.listed(names)}. "
                             "Give the table those columns, in that order.")
    else:
        _refuse_header(path, header)
    if not parquet.metadata.num_rows:
        raise InputError(f"{path} holds no rows; expected a table of numbers, one example per row.")
    feature_indices, label_index = files.chosen_columns(path, names, label_column, columns)
    for index in feature_indices:
        kind = schema.field(index).type
        if not (pyarrow.types.is_integer(kind) or pyarrow.types.is_floating(kind)):
            raise InputError(f'{path}, column "{names[index]}": holds {kind} values; expected numbers (integers or floats): '
                             "convert it, or leave it out with columns=.")
    if label_index is not None:
        kind = schema.field(label_index).type
        if not (pyarrow.types.is_integer(kind) or pyarrow.types.is_floating(kind) or pyarrow.types.is_string(kind)
                or pyarrow.types.is_large_string(kind)):
            raise InputError(f'{path}, column "{names[label_index]}": labels of type {kind}; expected integers, floats or text.')
    return ParquetTable(path, parquet.metadata.num_rows, [names[index] for index in feature_indices],
                        None if label_index is None else names[label_index])


def _first_null(path, column, name, start):
    """Refuse a column of a batch of rows that holds a null, naming its first row."""
    if column.null_count:
        rows = np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))
        raise InputError(f'{path} row {start + rows[0]}, column "{name}": the cell is missing (null); expected a value in '
                         "every row (fill or drop missing values).")


def parquet_chunks(table, rows=READ_ROWS):
    """(features float32 (m, features), label cells or None) of a Parquet file's rows, `rows` at a time, in file order. A
    null, NaN or infinite cell (or a value beyond float32) is one error naming the file, row (from 0) and column."""
    pyarrow = _pyarrow()
    parquet = pyarrow.parquet.ParquetFile(table.path, pre_buffer=False)  # pre-buffered reads were held to the end: 1.75 GB for 1M rows
    wanted = table.feature_names + ([table.label_name] if table.label_name is not None else [])
    start = 0
    for batch in parquet.iter_batches(batch_size=rows, columns=list(dict.fromkeys(wanted))):
        for name in table.feature_names:
            _first_null(table.path, batch.column(name), name, start)
        values = np.column_stack([batch.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
                                  for name in table.feature_names] or [np.empty((batch.num_rows, 0))])
        with np.errstate(invalid="ignore"):
            faulty = ~np.isfinite(values) | (np.abs(values) > files.FLOAT32_MAX)
        if faulty.any():
            row, column = np.argwhere(faulty)[0]
            raise InputError(f'{table.path} row {start + row}, column "{table.feature_names[column]}": {float(values[row, column])} '
                             "is not a finite float32 number; expected a finite number (fill or drop missing values).")
        labels = None
        if table.label_name is not None:
            column = batch.column(table.label_name)
            _first_null(table.path, column, table.label_name, start)
            labels = [str(cell) for cell in column.to_pylist()]
            fault = next((row for row, cell in enumerate(labels) if files.label_fault(cell)), None)
            if fault is not None:
                raise InputError(f'{table.path} row {start + fault}, column "{table.label_name}": label {labels[fault]!r} is not '
                                 "finite; expected a label in every row (drop unlabelled rows).")
        yield values.astype(np.float32), labels
        start += len(values)


class RecordLayout(NamedTuple):
    """A TFRecord file's feature spec, read from its first `tf.train.Example`: what `record_batches` parses."""

    path: Path
    feature_names: list
    lengths: list  # values of each feature in every record
    kinds: list  # "float_list" or "int64_list"
    label_name: object  # str, or None
    label_kind: object  # "float_list", "int64_list" or "bytes_list", or None

    def spec(self, with_label=True):
        """The `tf.io.parse_example` features of this layout."""
        import tensorflow as tf

        dtypes = {"float_list": tf.float32, "int64_list": tf.int64, "bytes_list": tf.string}
        spec = {name: tf.io.FixedLenFeature([length], dtypes[kind])
                for name, length, kind in zip(self.feature_names, self.lengths, self.kinds)}
        if with_label and self.label_name is not None:
            spec[self.label_name] = tf.io.FixedLenFeature([], dtypes[self.label_kind])
        return spec

    @property
    def width(self):
        return sum(self.lengths)


def _described(found):
    return ", ".join(f"{name!r} ({kind.split('_')[0]} x {length})" for name, (kind, length) in sorted(found.items()))


def _first_record(path):
    """{feature name: (kind, length)} of a TFRecord file's first `tf.train.Example`."""
    import tensorflow as tf

    try:
        first = next(iter(tf.data.TFRecordDataset(str(path)).take(1)), None)
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as error:
        raise InputError(f"Cannot read {path} as a TFRecord file ({_tensorflow_reason(error)}); expected an uncompressed "
                         "TFRecord file of tf.train.Example records.") from None
    if first is None:
        raise InputError(f"{path} holds no records; expected a TFRecord file of tf.train.Example records.")
    try:
        example = tf.train.Example.FromString(first.numpy())
    except Exception as error:  # protobuf's DecodeError, whose module differs between protobuf's implementations
        raise InputError(f"{path} record 0 is not a tf.train.Example ({type(error).__name__}); expected a TFRecord file of "
                         "tf.train.Example records.") from None
    found = {}
    for name, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        found[name] = (kind, len(getattr(feature, kind).value) if kind else 0)
    if not found:
        raise InputError(f"{path} record 0 has no features; expected a tf.train.Example of named features.")
    return found


def _feature_name(path, key, found, argument):
    if isinstance(key, str) and key in found:
        return key
    index = "; features are named, not numbered" if isinstance(key, (int, np.integer)) else ""
    raise InputError(f"{path} has no feature {key!r} ({argument}){index}: its features (record 0) are {_described(found)}.")


def open_records(path, label_column=None, columns=None, header="infer"):
    """A TFRecord file's layout: `columns` names the numeric features (float or int64, each of the length record 0 gives
    it) whose values, in that order, make an example; `label_column` the feature holding each record's label (one value).
    Without `columns`, the one float feature besides the label; with several, the call must name them."""
    path = Path(path)
    _refuse_header(path, header)
    found = _first_record(path)
    label_name = None if label_column is None else _feature_name(path, label_column, found, "label_column")
    if label_name is not None and found[label_name][1] != 1:
        raise InputError(f"{path}: label_column {label_name!r} holds {found[label_name][1]} values in record 0; expected one "
                         "label per record.")
    if columns is None:
        floats = [name for name, (kind, _) in sorted(found.items()) if kind == "float_list" and name != label_name]
        if len(floats) != 1:
            raise InputError(f"{path} holds the features {_described(found)}; which make an example is ambiguous: name them "
                             "with columns= (the command's --columns), and the label with label_column=.")
        names = floats
    else:
        keys = [columns] if isinstance(columns, (str, int, np.integer)) else columns
        names = [_feature_name(path, key, found, "columns") for key in keys]
    if label_name in names:
        raise InputError(f"{path}: feature {label_name!r} is both label_column and in columns; leave the label out of columns.")
    for name in names:
        kind, length = found[name]
        if kind not in ("float_list", "int64_list") or not length:
            what = "no values" if not length else "bytes"
            raise InputError(f'{path} record 0, feature "{name}": holds {what}; expected numbers (a float or int64 list).')
    return RecordLayout(path, names, [found[name][1] for name in names], [found[name][0] for name in names], label_name,
                        None if label_name is None else found[label_name][0])


def parse_records(layout, indices, serialized, with_label=False):
    """(float32 examples, labels if asked) of a batch of serialized records, parsed in the graph; `indices` (their record
    numbers) name a record that does not match the layout in the error."""
    import tensorflow as tf

    parsed = tf.io.parse_example(serialized, layout.spec(with_label), example_names=tf.strings.as_string(indices))
    examples = tf.concat([tf.cast(parsed[name], tf.float32) for name in layout.feature_names], axis=1)
    return (examples, parsed[layout.label_name]) if with_label else examples


def _tensorflow_reason(error):
    """The part of a tf.data error that says what is wrong, without TensorFlow's node and op names."""
    text = re.sub(r"\{\{function_node [^}]*\}\}|\[\[.*?\]\]|\[Op:\w+\]( name: \S*)?", "", error.message)
    text = text.split("Iterator::Root::")[-1]
    return " ".join(re.sub(r"^\w+(V\d)?: ", "", text.split("transformation with iterator: ")[-1]).split()).rstrip(" .")


def _record_fault(layout, error):
    """A parse error of `record_batches` as one line naming the file, the record and the feature."""
    import tensorflow as tf

    text = _tensorflow_reason(error)
    where = re.search(r"Name: (\d+), (?:Key|Feature): (.+?)(?:, Index: \d+\.|\s\(data type: \w+\))\s*(.*)", text)
    if isinstance(error, tf.errors.DataLossError) or where is None:
        return InputError(f"Cannot read {layout.path} as a TFRecord file ({text}); expected an uncompressed TFRecord file of "
                          "tf.train.Example records.")
    record, name, reason = where.groups()
    size = re.search(r"Values size: (\d+) but output shape: \[(\d+)\]", reason)
    types = re.search(r"Data type: (\w+) but expected type: (\w+)", reason)
    if size:
        reason = f"holds {size[1]} values; expected {size[2]}, as in record 0"
    elif types:
        reason = f"holds {types[1]} values; expected {types[2]}, as in record 0"
    elif "could not be found" in reason:
        reason = "is missing; expected it in every record, as in record 0"
    return InputError(f'{layout.path} record {record}, feature "{name}": {reason}.')


def record_batches(layout, rows=READ_ROWS, with_label=False):
    """(record numbers, float32 examples, label cells or None) of a TFRecord file, `rows` records at a time, in file
    order, parsed in the graph; a record that does not match the layout, or a NaN or infinite value, is one error
    naming the file, record and feature."""
    import tensorflow as tf

    with_label = with_label and layout.label_name is not None
    dataset = tf.data.TFRecordDataset(str(layout.path)).enumerate().batch(rows)
    dataset = dataset.map(tf.autograph.experimental.do_not_convert(
        lambda indices, serialized: (indices, parse_records(layout, indices, serialized, with_label))))
    iterator = dataset.prefetch(2).as_numpy_iterator()  # the next batch parsed while this one is used
    while True:
        try:
            indices, parsed = next(iterator)
        except StopIteration:
            return
        except (tf.errors.InvalidArgumentError, tf.errors.DataLossError) as error:
            raise _record_fault(layout, error) from None
        examples, labels = parsed if with_label else (parsed, None)
        faulty = ~np.isfinite(examples)
        if faulty.any():
            row, column = np.argwhere(faulty)[0]
            ends = np.cumsum(layout.lengths)
            name = layout.feature_names[int(np.searchsorted(ends, column, side="right"))]
            raise InputError(f'{layout.path} record {indices[row]}, feature "{name}": holds {float(examples[row, column])}; expected '
                             "finite numbers (fill or drop missing values).")
        if labels is not None:
            labels = [cell.decode("utf-8", "replace") if isinstance(cell, bytes) else str(cell) for cell in labels.tolist()]
            fault = next((row for row, cell in enumerate(labels) if files.label_fault(cell)), None)
            if fault is not None:
                raise InputError(f'{layout.path} record {indices[fault]}, feature "{layout.label_name}": label {labels[fault]!r} '
                                 "is not finite; expected a label in every record.")
        yield indices, examples, labels
