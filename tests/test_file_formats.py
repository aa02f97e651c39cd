"""Parquet and TFRecord files (keras_ae.file_formats) through the one data path: read in file order with their labels, the
same as the CSV of the same rows; names, count and validation parts; every fault one line naming the file, row or record,
column or feature; and the command's score, embed and train --data. Real ECG5000 beats."""

import os
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow as tf

from keras_ae import cli, data, file_formats
from keras_ae.errors import InputError, MissingExtraError

ROWS = 600


@pytest.fixture(scope="module")
def beats(data_root):
    """The first 600 rows of the real ecg.csv: 140 values and the label (1 normal, 0 not) last."""
    return np.loadtxt(os.path.join(data_root, "ecg5000", "ecg.csv"), delimiter=",", dtype=np.float64)[:ROWS]


def example(**features):
    """A serialized tf.train.Example of float, int64 or bytes lists."""
    kinds = {float: "float_list", int: "int64_list", bytes: "bytes_list"}
    lists = {"float_list": tf.train.FloatList, "int64_list": tf.train.Int64List, "bytes_list": tf.train.BytesList}
    made = {name: tf.train.Feature(**{kinds[type(values[0])]: lists[kinds[type(values[0])]](value=values)})
            for name, values in features.items()}
    return tf.train.Example(features=tf.train.Features(feature=made)).SerializeToString()


def write_records(path, records):
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(example(**record))
    return path


@pytest.fixture(scope="module")
def files_of(beats, tmp_path_factory):
    """The beats as a headerless CSV, a Parquet file (row groups of 250 rows) and a TFRecord file, each with its label."""
    folder = tmp_path_factory.mktemp("formats")
    np.savetxt(folder / "beats.csv", beats, fmt="%.17g", delimiter=",")
    np.savetxt(folder / "values.csv", beats[:, :-1], fmt="%.17g", delimiter=",")
    frame = pd.DataFrame(beats[:, :-1], columns=[f"v{index}" for index in range(140)]).assign(label=beats[:, -1].astype(int))
    frame.to_parquet(folder / "beats.parquet", row_group_size=250)
    frame.drop(columns="label").to_parquet(folder / "values.pq")
    write_records(folder / "beats.tfrecord", [{"x": row[:-1].tolist(), "y": [int(row[-1])]} for row in beats])
    return folder


LABELLED = {"beats.csv": {"label_column": -1}, "beats.parquet": {"label_column": "label"}, "beats.tfrecord": {"label_column": "y"}}


def read(path, split, **options):
    batches = data.load(str(path), split=split, validation_split=0.2, batch_size=128, with_labels=True, **options)
    examples, labels = (np.concatenate(part) for part in zip(*batches.as_numpy_iterator()))
    return examples, labels, data.names(str(path), split=split, validation_split=0.2, **options)


@pytest.mark.parametrize("name", ["beats.parquet", "beats.tfrecord"])
def test_each_format_reads_in_file_order_with_its_labels_equal_to_the_csv(files_of, beats, name):
    for split in ("train", "validation"):
        examples, labels, names = read(files_of / name, split, **LABELLED[name])
        expected = read(files_of / "beats.csv", split, label_column=-1)
        rows = [int(row) for row in names]
        assert names == expected[2] and rows == sorted(rows) and len(rows) == (120 if split == "validation" else 480)
        np.testing.assert_array_equal(examples, expected[0])
        np.testing.assert_array_equal(examples, beats[rows, :-1].astype(np.float32))
        np.testing.assert_array_equal(labels, beats[rows, -1].astype(np.int64))
        assert labels.dtype == np.int64
    path = str(files_of / name)
    assert data.count(path, **LABELLED[name]) == ROWS
    normal = int(np.sum(beats[:, -1] == 1))
    assert data.count(path, only_label=1, **LABELLED[name]) == normal == data.count(str(files_of / "beats.csv"), only_label=1, label_column=-1)
    shuffled = np.concatenate(list(data.load(path, batch_size=100, shuffle=True, **LABELLED[name]).as_numpy_iterator()))
    assert not np.array_equal(shuffled, beats[:, :-1].astype(np.float32))
    np.testing.assert_array_equal(np.sort(shuffled, axis=0), np.sort(beats[:, :-1].astype(np.float32), axis=0))


def test_a_parquet_file_is_counted_from_its_metadata_and_its_columns_chosen_by_name_or_index(files_of, beats, monkeypatch):
    path = str(files_of / "beats.parquet")
    monkeypatch.setattr(file_formats, "parquet_chunks", lambda *args, **kwargs: pytest.fail("count read the rows"))
    assert data.count(path, split="validation", validation_split=0.2) == 120
    monkeypatch.undo()
    chosen = np.concatenate(list(data.load(path, columns=["v3", 0, -2], label_column="label").as_numpy_iterator()))
    np.testing.assert_array_equal(chosen, beats[:, [3, 0, 139]].astype(np.float32))


def test_a_tfrecord_spec_is_inferred_from_one_float_feature_or_named_in_order(tmp_path):
    path = write_records(tmp_path / "two.tfrecord", [{"x": [1.0, 2.0], "z": [3.0], "n": [7], "y": [b"a"]},
                                                     {"x": [4.0, 5.0], "z": [6.0], "n": [8], "y": [b"b"]}])
    batches = data.load(str(path), columns=["z", "n", "x"], label_column="y", with_labels=True)
    examples, labels = next(iter(batches.as_numpy_iterator()))
    np.testing.assert_array_equal(examples, [[3, 7, 1, 2], [6, 8, 4, 5]])
    assert labels.tolist() == [b"a", b"b"]
    with pytest.raises(InputError, match=r"two.tfrecord holds the features 'n' \(int64 x 1\), 'x' \(float x 2\), 'y' \(bytes x 1\), "
                                         r"'z' \(float x 1\); which make an example is ambiguous: name them with columns="):
        data.load(str(path))
    one = write_records(tmp_path / "one.tfrecord", [{"x": [1.0, 2.0], "y": [1]}, {"x": [3.0, 4.0], "y": [0]}])
    assert np.concatenate(list(data.load(str(one)).as_numpy_iterator())).tolist() == [[1, 2], [3, 4]]  # y is an int, not a feature
    assert data.count(str(one)) == 2 and data.names(str(one)) == ["0", "1"]


def records_with_a_fault(path, fault, width=2):
    good = [{"x": [0.5] * width, "y": [1]}] * 5
    return write_records(path, good + [fault] + good)


def parquet_of(path, table):
    pq.write_table(pa.table(table), path)
    return path


FAULTS = [
    ("t.parquet", lambda path: parquet_of(path, {"a": [1.0, 2.0], "t": ["x", "y"]}), {},
     't.parquet, column "t": holds string values; expected numbers'),
    ("null.parquet", lambda path: parquet_of(path, {"a": [1.0, 2.0, None]}), {}, 'null.parquet row 2, column "a": the cell is missing'),
    ("nan.parquet", lambda path: parquet_of(path, {"a": [1.0, float("nan"), 3.0]}), {},
     'nan.parquet row 1, column "a": nan is not a finite float32 number'),
    ("big.parquet", lambda path: parquet_of(path, {"a": [1.0, 1e300]}), {}, 'big.parquet row 1, column "a": 1e\\+300 is not a finite'),
    ("label.parquet", lambda path: parquet_of(path, {"a": [1.0, 2.0], "y": pa.array([1, None])}), {"label_column": "y"},
     'label.parquet row 1, column "y": the cell is missing'),
    ("column.parquet", lambda path: parquet_of(path, {"a": [1.0]}), {"columns": ["b"]},
     r"column.parquet has no column 'b' \(columns\): its columns are 'a'"),
    ("header.parquet", lambda path: parquet_of(path, {"a": [1.0]}), {"header": True},
     "header is for CSV/TSV tables; .*header.parquet names its columns itself, so header=True would do nothing: drop it."),
    ("layout.parquet", lambda path: parquet_of(path, {"a": [1.0]}), {"header": ["a", "b"]},
     "layout.parquet: expected the columns 'a', 'b'; found 'a'"),
    ("junk.parquet", lambda path: path.write_bytes(b"not parquet"), {}, "Cannot read .*junk.parquet as a Parquet file"),
    ("empty.parquet", lambda path: parquet_of(path, {"a": pa.array([], pa.float32())}), {}, "empty.parquet holds no rows"),
    ("short.tfrecord", lambda path: records_with_a_fault(path, {"x": [1.0], "y": [1]}), {},
     'short.tfrecord record 5, feature "x": holds 1 values; expected 2, as in record 0.'),
    ("missing.tfrecord", lambda path: records_with_a_fault(path, {"x": [1.0, 2.0]}), {"label_column": "y"},
     'missing.tfrecord record 5, feature "y": is missing; expected it in every record, as in record 0.'),
    ("type.tfrecord", lambda path: records_with_a_fault(path, {"x": [1, 2], "y": [1]}), {},
     'type.tfrecord record 5, feature "x": holds int64 values; expected float, as in record 0.'),
    ("nan.tfrecord", lambda path: records_with_a_fault(path, {"x": [1.0, float("inf")], "y": [1]}), {},
     'nan.tfrecord record 5, feature "x": holds inf; expected finite numbers'),
    ("bytes.tfrecord", lambda path: write_records(path, [{"x": [b"ab"]}]), {"columns": "x"},
     'bytes.tfrecord record 0, feature "x": holds bytes; expected numbers'),
    ("index.tfrecord", lambda path: write_records(path, [{"x": [1.0]}]), {"label_column": 0},
     "index.tfrecord has no feature 0 \\(label_column\\); features are named, not numbered: its features \\(record 0\\) are 'x'"),
    ("header.tfrecord", lambda path: write_records(path, [{"x": [1.0]}]), {"header": False}, "header is for CSV/TSV tables"),
    ("junk.tfrecord", lambda path: path.write_bytes(b"no record here, only text"), {},
     r"Cannot read .*junk.tfrecord as a TFRecord file \(corrupted record at 0"),
    ("empty.tfrecord", lambda path: path.write_bytes(b""), {}, "empty.tfrecord holds no records"),
]


@pytest.mark.parametrize("name, make, options, complaint", FAULTS, ids=[fault[0] for fault in FAULTS])
def test_each_fault_is_one_line_naming_the_file_row_and_column_before_any_batch(name, make, options, complaint, tmp_path):
    make(tmp_path / name)
    with pytest.raises(InputError, match=complaint) as raised:
        data.load(str(tmp_path / name), **options)  # the counted pass finds it: no batch is read
    assert "\n" not in str(raised.value)


def test_a_fault_met_while_streaming_unchecked_batches_is_one_line_too(tmp_path):
    found = data.open_path(records_with_a_fault(tmp_path / "short.tfrecord", {"x": [1.0], "y": [1]}), counted=False)
    assert found.count is None
    with pytest.raises(InputError, match='short.tfrecord record 5, feature "x": holds 1 values; expected 2'):
        list(found.batches(4))


def run(capsys, *argv):
    code = cli.main([str(argument) for argument in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_score_and_embed_of_each_format_equal_those_of_the_csv(files_of, tmp_path, capsys):
    outputs = {}
    for name, options in [("values.csv", []), ("values.pq", []), ("beats.parquet", ["--label-column", "label"]),
                          ("beats.tfrecord", ["--label-column", "y"]), ("beats.tfrecord", ["--columns", "x"])]:
        out = tmp_path / f"{name}{len(options)}{options[-1] if options else ''}.csv"
        code, printed, err = run(capsys, "score", "ae_ecg5000", files_of / name, *options, "--out", out)
        assert code == 0 and f"wrote {ROWS} scores" in printed, err
        outputs[out.name] = out.read_text()
    assert len(set(outputs.values())) == 1 and len(next(iter(outputs.values())).splitlines()) == ROWS + 1
    for name, options in [("values.csv", []), ("beats.tfrecord", ["--label-column", "y"]), ("beats.parquet", ["--label-column", "label"])]:
        code, _, err = run(capsys, "embed", "ae_ecg5000", files_of / name, *options, "--out", tmp_path / f"{name}.npy")
        assert code == 0, err
    codes = np.load(tmp_path / "values.csv.npy")
    np.testing.assert_array_equal(codes, np.load(tmp_path / "beats.tfrecord.npy"))
    np.testing.assert_array_equal(codes, np.load(tmp_path / "beats.parquet.npy"))


def test_refusals_on_the_command_line_exit_2_in_one_line_and_write_nothing(files_of, tmp_path, capsys):
    out = tmp_path / "scores.csv"
    out.write_text("old scores\n")
    short = records_with_a_fault(tmp_path / "short.tfrecord", {"x": [0.5] * 139, "y": [1]}, width=140)
    for arguments, complaint in [
        ((files_of / "beats.parquet",), "beats.parquet has 141 feature columns; ae_ecg5000 takes 140; one column too many: "
                                        "if one is a label, pass --label-column"),
        ((files_of / "beats.tfrecord", "--columns", "x,y"), "beats.tfrecord has 141 feature columns; ae_ecg5000 takes 140"),
        ((files_of / "beats.tfrecord", "--label-column", "label"), "beats.tfrecord has no feature 'label' (--label-column)"),
        ((short,), 'short.tfrecord record 5, feature "x": holds 139 values; expected 140'),
    ]:
        code, _, err = run(capsys, "score", "ae_ecg5000", *arguments, "--out", out)
        assert code == 2 and complaint in err and err.count("\n") == 1, err
    assert out.read_text() == "old scores\n" and sorted(os.listdir(tmp_path)) == ["scores.csv", "short.tfrecord"]
    np.save(tmp_path / "rows.npy", np.zeros((2, 140), np.float32))
    for option in ("--columns", "--label-column"):  # accepted and ignored before
        code, _, err = run(capsys, "embed", "ae_ecg5000", tmp_path / "rows.npy", option, "x", "--out", tmp_path / "codes.csv")
        assert code == 2 and f"{option} is for a table (CSV/TSV, Parquet or TFRecord file)" in err and err.count("\n") == 1, err
    assert not (tmp_path / "codes.csv").exists()
    code, _, err = run(capsys, "train", "--data", short, "--epochs", "1", "--output", tmp_path / "preset")
    assert code == 2 and "record 5" in err and err.count("\n") == 1 and not (tmp_path / "preset").exists()


def test_train_data_on_each_format_records_its_layout_and_its_preset_scores_it(files_of, tmp_path, capsys):
    for name, options in [("beats.parquet", ["--label-column", "label"]), ("beats.tfrecord", ["--columns", "x", "--label-column", "y"])]:
        preset = tmp_path / name.replace(".", "_")
        code, _, err = run(capsys, "train", "--data", files_of / name, *options, "--normal-label", "1", "--epochs", "1",
                           "--batch-size", "64", "--output", preset)
        assert code == 0, err
        code, printed, err = run(capsys, "score", preset, files_of / name, "--out", tmp_path / "scores.csv")  # the card's layout
        assert code == 0 and f"wrote {ROWS} scores" in printed, err
    code, _, err = run(capsys, "score", tmp_path / "beats_parquet", files_of / "values.pq", "--out", tmp_path / "other.csv")
    assert code == 2 and "values.pq: expected the columns 'v0'" in err and "found 'v0'" in err and err.count("\n") == 1


def test_without_pyarrow_a_parquet_file_is_one_line_naming_the_extra(files_of, monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(MissingExtraError, match=r'pip install "keras-ae\[parquet\]"'):
        data.load(str(files_of / "beats.parquet"))
    code, _, err = run(capsys, "score", "ae_ecg5000", files_of / "values.pq", "--out", tmp_path / "scores.csv")
    assert code == 2 and "Parquet files need the pyarrow package" in err and not (tmp_path / "scores.csv").exists()
