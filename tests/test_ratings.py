"""MovieLens ratings: the real ml-latest-small counts, Liang et al.'s user split, explicit splits, batches, bad files."""

import hashlib
import resource
import warnings

import numpy as np
import pytest
from scipy import sparse

from keras_ae import ratings as movielens


@pytest.fixture(scope="module")
def small(data_root):
    return movielens.read_ratings("ml-latest-small")


@pytest.fixture(scope="module")
def split(small):
    return movielens.split_strong_generalization(small, seed=0)


def rows_of(matrix, user_ids):
    """{user id: set of column indices} of a CSR matrix."""
    return {user: set(matrix.indices[matrix.indptr[row]:matrix.indptr[row + 1]]) for row, user in enumerate(user_ids)}


def test_real_counts(small, data_root):
    assert len(small) == 100_836
    assert len(np.unique(small.users)) == 610 and len(np.unique(small.items)) == 9_724
    assert np.count_nonzero(small.ratings >= 3.5) == 61_716 and np.count_nonzero(small.ratings >= 4.0) == 48_580
    assert (small.users.dtype, small.items.dtype, small.ratings.dtype, small.timestamps.dtype) == (np.int64, np.int64, np.float32, np.int64)
    assert movielens.positive_threshold(small) == 3.5
    by_path = movielens.read_ratings(f"{data_root}/ml-latest-small/ratings.csv")
    assert np.array_equal(by_path.items, small.items) and np.array_equal(by_path.timestamps, small.timestamps)


def test_strong_generalization_split(small, split):
    train, validation, test = (set(ids.tolist()) for ids in (split.train_user_ids, split.validation_user_ids, split.test_user_ids))
    assert not (train & validation or train & test or validation & test)
    assert train | validation | test == set(np.unique(small.users[small.ratings >= 3.5]).tolist())
    assert len(validation) == len(test) == 61
    positive = small.ratings >= 3.5
    assert np.array_equal(split.item_ids, np.unique(small.items[positive & np.isin(small.users, split.train_user_ids)]))
    assert split.train.shape == (len(train), len(split.item_ids)) and set(split.train.data) == {1.0}
    assert rows_of(split.train, split.train_user_ids)[split.train_user_ids[0]] == set(
        np.searchsorted(split.item_ids, small.items[positive & (small.users == split.train_user_ids[0])]))
    held_total = fold_in_total = 0
    for part in ("validation", "test"):
        ids = getattr(split, f"{part}_user_ids")
        fold_in, held_out = rows_of(getattr(split, f"{part}_fold_in"), ids), rows_of(getattr(split, f"{part}_held_out"), ids)
        for user in ids:
            mine = small.items[positive & (small.users == user)]
            expected = set(np.searchsorted(split.item_ids, mine[np.isin(mine, split.item_ids)]))
            assert not fold_in[user] & held_out[user] and fold_in[user] | held_out[user] == expected
            assert len(held_out[user]) == (int(0.2 * len(expected) + 1e-9) if len(expected) >= 5 else 0)
            held_total, fold_in_total = held_total + len(held_out[user]), fold_in_total + len(fold_in[user])
    assert 0.17 < held_total / (held_total + fold_in_total) < 0.21
    everyone = ",".join(str(user) for user in sorted(validation | test))
    assert split.heldout_hash == hashlib.sha256(everyone.encode("ascii")).hexdigest()


def test_split_is_reproducible(small, split):
    again = movielens.split_strong_generalization(small, seed=0)
    other = movielens.split_strong_generalization(small, seed=1)
    assert again.heldout_hash == split.heldout_hash != other.heldout_hash
    for name in ("train", "validation_fold_in", "validation_held_out", "test_fold_in", "test_held_out"):
        assert (getattr(again, name) != getattr(split, name)).nnz == 0
    assert not np.array_equal(other.test_user_ids, split.test_user_ids)
    counted = movielens.split_strong_generalization(small, heldout_users=50, seed=3, threshold=4.0)
    assert len(counted.validation_user_ids) == len(counted.test_user_ids) == 50 and counted.threshold == 4.0
    with pytest.raises(ValueError, match="heldout_users"):
        movielens.split_strong_generalization(small, heldout_users=305)


def test_explicit_split(small, split):
    explicit = movielens.explicit_split(small, split)
    train = explicit.train.tocoo()
    train_pairs = set(zip(explicit.user_ids[train.row].tolist(), explicit.item_ids[train.col].tolist()))
    assert len(train_pairs) == explicit.train.nnz and np.all(explicit.train.data > 0)
    mean = explicit.train.data.mean()
    for part, ids in (("validation", split.validation_user_ids), ("test", split.test_user_ids)):
        users, items, values = getattr(explicit, part)
        assert set(explicit.user_ids[users].tolist()) <= set(ids.tolist()) and len(users) > 1000
        assert not train_pairs & set(zip(explicit.user_ids[users].tolist(), explicit.item_ids[items].tolist()))
        assert 0.8 < np.sqrt(np.mean((values - mean) ** 2)) < 1.2
    assert len(train_pairs) + len(explicit.validation[0]) + len(explicit.test[0]) <= len(small)


def test_batches_are_the_rows(split):
    matrix, targets = split.validation_fold_in, split.validation_held_out
    pairs = list(movielens.batches(matrix, 16, targets=targets))
    assert [rows.shape[0] for rows, _ in pairs] == [16, 16, 16, 13]
    assert np.array_equal(np.concatenate([rows for rows, _ in pairs]), matrix.toarray())  # small enough to densify here
    assert np.array_equal(np.concatenate([held for _, held in pairs]), targets.toarray())
    shuffled = movielens.batches(matrix, 61, shuffle=True, seed=5)
    first, second = (next(iter(shuffled)).numpy() for _ in range(2))
    replay = next(iter(movielens.batches(matrix, 61, shuffle=True, seed=5))).numpy()
    assert np.array_equal(first, replay) and not np.array_equal(first, second)
    assert sorted(map(tuple, first)) == sorted(map(tuple, matrix.toarray()))


def test_batches_never_densify_the_matrix():
    matrix = sparse.random(138_000, 27_000, density=0.005, format="csr", dtype=np.float32, rng=np.random.default_rng(0))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    for index, rows in enumerate(movielens.batches(matrix, 512, shuffle=True)):
        assert rows.shape == (512, 27_000) and rows.dtype == "float32"
        if index == 5:
            break
    growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    assert growth < 1.5e9, f"peak RSS grew {growth / 1e9:.2f} GB; the dense matrix would be {138_000 * 27_000 * 4 / 1e9:.1f} GB"


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


HEADER = "userId,movieId,rating,timestamp\r\n"


@pytest.mark.parametrize("text, expected", [
    ("userId,rating,timestamp\n1,4.0,5\n", 'line 1: the header .* lacks movieId'),
    (HEADER + "1,2,4.0,5\r\n1,abc,4.0,6\r\n", r'line 3, column 2 \("movieId"\): \'abc\' is not a non-negative integer id'),
    (HEADER + "1,2,0,5\r\n", r'line 2, column 3 \("rating"\): \'0\' is not a rating in \(0, 10\]'),
    (HEADER + "1,2,4,5\r\n\r\n1,3,11,5\r\n", r'line 4, column 3 \("rating"\): \'11\' is not a rating'),
    (HEADER + "1,2,4,5\r\n1,3,4\r\n", "line 3: 3 fields; expected at least 4"),
    ("", "is empty"),
    (HEADER, "holds no ratings"),
])
def test_bad_files_are_one_line(tmp_path, text, expected):
    path = write(tmp_path / "ratings.csv", text)
    with pytest.raises(ValueError, match=expected) as caught:
        movielens.read_ratings(path)
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)


def test_duplicates_keep_the_latest(tmp_path):
    path = write(tmp_path / "ratings.csv", HEADER + "1,10,3.0,100\n1,10,5.0,200\n1,10,4.0,150\n2,10,1.0,5\n2,10,2.0,5\n2,11,1.5,1\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        read = movielens.read_ratings(path)
    assert [str(warning.message) for warning in caught] == [
        f"{path} rates 3 (user, item) pairs more than once; kept the latest by timestamp (ties: the last in file order)."]
    assert read.users.tolist() == [1, 2, 2] and read.items.tolist() == [10, 10, 11] and read.ratings.tolist() == [5.0, 2.0, 1.5]


def test_other_layouts(tmp_path):
    write(tmp_path / "ml-100k" / "u.data", "196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t377\t1\t878887116\n")
    dat = write(tmp_path / "ml-1m" / "ratings.dat", "1::1193::5::978300760\n1::661::3::978302109\n2::1357::5::978298709\n")
    for name, first in (("ml-100k", (196, 242, 3.0, 881250949)), ("ml-1m", (1, 1193, 5.0, 978300760))):
        read = movielens.read_ratings(name, data_dir=tmp_path)
        assert len(read) == 3 and (read.users[0], read.items[0], read.ratings[0], read.timestamps[0]) == first
        assert movielens.positive_threshold(read) == 4.0
    assert movielens.read_ratings(dat.parent).items.tolist() == [1193, 661, 1357]
    write(dat, "1::1193::5::978300760\n1::x::3::978302109\n")
    with pytest.raises(ValueError, match=r"ratings.dat line 2, column 2 \(items\): 'x'"):
        movielens.read_ratings(dat)


def test_no_copy_anywhere_is_one_error(tmp_path, monkeypatch):
    import tensorflow_datasets as tfds

    def offline(*args, **kwargs):
        raise ConnectionError("no network\nsecond line")

    monkeypatch.setenv("KERAS_AE_DATA", str(tmp_path))
    monkeypatch.setattr(tfds, "load", offline)
    for name, fix in (("ml-latest-small", "download=True"), ("ml-32m", "it has no ml-32m")):
        with pytest.raises(FileNotFoundError) as caught:
            movielens.read_ratings(name, download=False)
        message = str(caught.value)
        assert "\n" not in message and str(tmp_path / name) in message and "set KERAS_AE_DATA" in message and fix in message
    with pytest.raises(FileNotFoundError, match="neither a MovieLens name"):
        movielens.read_ratings(tmp_path / "nothing.csv")


def test_tensorflow_datasets_fallback(tmp_path, monkeypatch):
    import tensorflow as tf
    import tensorflow_datasets as tfds

    def load(name, split, data_dir, download):
        assert (name, split) == ("movielens/100k-ratings", "train")
        return tf.data.Dataset.from_tensor_slices({"user_id": [b"7", b"7", b"9"], "movie_id": [b"12", b"12", b"3"],
                                                   "user_rating": [2.0, 4.0, 5.0], "timestamp": [10, 20, 5]})

    monkeypatch.setenv("KERAS_AE_DATA", str(tmp_path))
    monkeypatch.setattr(tfds, "load", load)
    with pytest.warns(UserWarning, match="rates 1 .* kept the latest"):
        read = movielens.read_ratings("ml-100k")
    assert read.source == "tfds:movielens/100k-ratings" and read.users.tolist() == [7, 9] and read.ratings.tolist() == [4.0, 5.0]


def test_users_with_fewer_than_five_keep_everything_as_fold_in():
    counts = {1: 2, 2: 4, 3: 5, 4: 10}
    users = np.repeat(list(counts), list(counts.values()))
    items = np.concatenate([np.arange(count) for count in counts.values()])
    fold_in, held_out = movielens._fold_in_split(users, items, np.array(list(counts)), 0, 0.5)
    assert np.bincount(users[held_out], minlength=5).tolist() == [0, 0, 0, 2, 5]
    assert sorted(np.concatenate([fold_in, held_out]).tolist()) == list(range(len(users)))
