"""MovieLens ratings for recommendation autoencoders (Mult-VAE/DAE, AutoRec): read, split by users, batch as dense rows.

    ratings = keras_ae.ratings.read_ratings("ml-latest-small")       # data_dir, $KERAS_AE_DATA or a path, then TFDS
    split = keras_ae.ratings.split_strong_generalization(ratings)    # implicit positives, held-out users (Liang et al. 2018)
    train = keras_ae.ratings.batches(split.train, 500, shuffle=True) # dense float32 rows, densified one batch at a time

GroupLens data is for research use only: it is never bundled.
"""

import functools
import hashlib
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import sparse

from keras_ae.card_types import as_data
from keras_ae.errors import InputError
from keras_ae.schema import RATINGS_KINDS

LAYOUTS = {"ratings.csv": (",", True), "u.data": ("\t", False), "ratings.dat": ("::", False)}  # file: (delimiter, header)
DATASET_FILES = {**dict.fromkeys(("ml-latest-small", "ml-latest", "ml-20m", "ml-25m", "ml-32m"), "ratings.csv"),
                 "ml-100k": "u.data", "ml-1m": "ratings.dat", "ml-10m": "ratings.dat"}
TFDS_NAMES = {name: f"movielens/{name[3:]}-ratings" for name in ("ml-100k", "ml-1m", "ml-20m", "ml-25m", "ml-latest-small")}
HEADER_COLUMNS = ("userId", "movieId", "rating", "timestamp")  # timestamp optional: all 0, so ties keep file order
FIELDS = {"users": "i8", "items": "i8", "ratings": "f8", "timestamps": "i8"}
EXPECTED = {"users": "a non-negative integer id", "items": "a non-negative integer id", "ratings": "a rating in (0, 10]",
            "timestamps": "an integer timestamp"}
MIN_ENTRIES_TO_SPLIT = 5  # Liang et al.: held-out users with fewer positives keep them all as fold-in


@dataclass(frozen=True, eq=False)
class Ratings:
    """Equal-length arrays, one entry per (user, item) pair: original ids, the rating, its Unix time."""

    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray
    timestamps: np.ndarray
    source: str

    def __len__(self):
        return len(self.ratings)


@dataclass(frozen=True, eq=False)
class RatingsSplit:
    """Implicit feedback split by users: CSR matrices of 1.0 at positives, rows the `*_user_ids`, columns `item_ids`."""

    item_ids: np.ndarray
    train: sparse.csr_matrix
    validation_fold_in: sparse.csr_matrix
    validation_held_out: sparse.csr_matrix
    test_fold_in: sparse.csr_matrix
    test_held_out: sparse.csr_matrix
    train_user_ids: np.ndarray
    validation_user_ids: np.ndarray
    test_user_ids: np.ndarray
    seed: int
    threshold: float
    heldout_hash: str


@dataclass(frozen=True, eq=False)
class ExplicitSplit:
    """Ratings for AutoRec: `train` (CSR, rows `user_ids`, columns `item_ids`); held-out (user_index, item_index, rating)."""

    train: sparse.csr_matrix
    user_ids: np.ndarray
    item_ids: np.ndarray
    validation: tuple
    test: tuple
    seed: int


def _first_bad_cell(path, delimiter, columns, names):
    """Scan `path` for the first malformed row and raise one ValueError naming its line and column (None if all are fine)."""
    with open(path, encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, 1):
            cells = [cell.strip() for cell in line.split(delimiter)]
            if (names and number == 1) or not "".join(cells):
                continue
            if len(cells) <= max(columns.values()):
                raise InputError(f"{path} line {number}: {len(cells)} fields; expected at least {max(columns.values()) + 1} "
                                 f"separated by {delimiter!r} ({', '.join(names or FIELDS)}).")
            for field, index in columns.items():
                try:
                    value = float(cells[index]) if field == "ratings" else int(cells[index])
                except ValueError:
                    value = None
                if value is None or (field == "ratings" and not 0 < value <= 10) or (field != "timestamps" and value < 0):
                    column = f'"{names[index]}"' if names else field
                    raise InputError(f"{path} line {number}, column {index + 1} ({column}): {cells[index]!r} is not {EXPECTED[field]}.")


def _read_file(path, layout):
    """(users, items, ratings, timestamps) of a GroupLens file: a fast C parse, and a line scan to name any fault."""
    delimiter, has_header = LAYOUTS[layout]
    try:
        with open(path, encoding="utf-8-sig") as handle:
            first = handle.readline()
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"Cannot read {path} ({type(error).__name__}: {error}); expected a UTF-8 text file of ratings.") from None
    if not first.strip():
        raise InputError(f"{path} is empty; expected {'a header line, then ' if has_header else ''}one rating per line.")
    names = [name.strip().strip('"') for name in first.split(delimiter)] if has_header else None
    if names and not set(HEADER_COLUMNS[:3]) <= set(names):
        missing = ", ".join(name for name in HEADER_COLUMNS[:3] if name not in names)
        raise InputError(f"{path} line 1: the header {names} lacks {missing}; expected columns {', '.join(HEADER_COLUMNS)} "
                         "(timestamp optional), as in GroupLens' ratings.csv.")
    columns = {field: names.index(name) if names else index
               for index, (field, name) in enumerate(zip(FIELDS, HEADER_COLUMNS)) if not names or name in names}
    step = 2 if delimiter == "::" else 1  # "a::b" split at ":" is "a", "", "b"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # loadtxt's "input contained no data": refused below
            table = np.loadtxt(path, delimiter=delimiter[0], dtype=[(field, FIELDS[field]) for field in columns], ndmin=1,
                               skiprows=int(has_header), usecols=[index * step for index in columns.values()], encoding="utf-8-sig")
        valid = np.all((table["users"] >= 0) & (table["items"] >= 0) & (table["ratings"] > 0) & (table["ratings"] <= 10))
    except ValueError as error:
        table, valid, parse_error = None, False, error
    if not valid:
        _first_bad_cell(path, delimiter, columns, names)
        if table is None:
            raise InputError(f"Cannot read {path} as {layout} ratings ({parse_error}).")
    if not len(table):
        raise InputError(f"{path} holds no ratings; expected one rating per line after the header.")
    timestamps = table["timestamps"] if "timestamps" in columns else np.zeros(len(table), np.int64)
    return table["users"], table["items"], table["ratings"], timestamps


def _from_tfds(name, data_dir, download, looked):
    """Columns from TensorFlow Datasets, or one FileNotFoundError saying where we looked and how to fix it."""
    try:
        tfds_name = TFDS_NAMES[name]  # a KeyError when TFDS has no copy of this name
        import tensorflow_datasets as tfds

        parts = list(tfds.as_numpy(tfds.load(tfds_name, split="train", data_dir=data_dir, download=download).batch(1 << 16)))
    except Exception as error:  # TFDS raises many types (network, registry, assertion); report them as one.
        first_line = str(error).splitlines()[0] if str(error) else ""
        reason = f"{type(error).__name__}: {first_line}" if name in TFDS_NAMES else f"it has no {name}"
        tfds_fix = "; or allow TensorFlow Datasets to download (download=True, network needed)" if name in TFDS_NAMES else ""
        raise FileNotFoundError(
            f"No ratings for {name!r}: looked in {looked} for {DATASET_FILES[name]}; TensorFlow Datasets failed too ({reason}). "
            f"Fix: set KERAS_AE_DATA to a folder holding {name}/{DATASET_FILES[name]} (GroupLens' zip, unpacked); "
            f"or pass read_ratings a path to that file or its folder{tfds_fix}.") from None
    merged = [np.concatenate([part[key] for part in parts]) for key in ("user_id", "movie_id", "user_rating", "timestamp")]
    return [column.astype(kind) for column, kind in zip(merged, FIELDS.values())]  # ids come as bytes: int(b"12") == 12


def _local_file(source, data_dir):
    """(file, layout) of a dataset name or path; (None, the folders searched) for a name with no local copy."""
    if source in DATASET_FILES:
        roots = [root for root in (data_dir, os.environ.get("KERAS_AE_DATA")) if root]
        found = [Path(root) / source / DATASET_FILES[source] for root in roots]
        found = [path for path in found if path.is_file()]
        unset = [] if os.environ.get("KERAS_AE_DATA") else ["$KERAS_AE_DATA (unset)"]
        return (found[0], DATASET_FILES[source]) if found else (None, [str(Path(root) / source) for root in roots] + unset)
    path = Path(source).expanduser()
    if path.is_dir():
        found = [path / name for name in LAYOUTS if (path / name).is_file()]
        if not found:
            raise FileNotFoundError(f"{path} holds none of {', '.join(LAYOUTS)}; expected a MovieLens folder or ratings file.")
        return found[0], found[0].name
    if not path.is_file():
        raise FileNotFoundError(f"{source!r} is neither a MovieLens name ({', '.join(DATASET_FILES)}) nor a file or folder.")
    return path, {".csv": "ratings.csv", ".dat": "ratings.dat"}.get(path.suffix.lower(), "u.data")  # other names: tabs


def read_ratings(source, data_dir=None, download=True):
    """A MovieLens ratings file as `Ratings`, one entry per (user, item) pair.

    Args:
        source: a GroupLens name (`ml-latest-small`, `ml-latest`, `ml-20m`, `ml-25m`, `ml-32m` read `ratings.csv`;
            `ml-100k` reads `u.data`; `ml-1m`, `ml-10m` read `ratings.dat`), found in `data_dir/<name>/`, then
            `$KERAS_AE_DATA/<name>/`, then TensorFlow Datasets; or a path to such a file or a folder holding one
            (other file names: `.csv` with a header, `.dat` with "::", else tab-separated).
        data_dir: a folder holding `<name>/`, also passed to `tfds.load`.
        download: let TensorFlow Datasets download when there is no local copy.

    A pair rated more than once keeps its latest rating by timestamp (ties: the last in the file), with one warning.
    """
    path, layout = _local_file(source, data_dir)
    if path is None:
        columns, origin = _from_tfds(source, data_dir, download, layout), f"tfds:{TFDS_NAMES[source]}"
    else:
        columns, origin = _read_file(path, layout), str(path)
    users, items, values, timestamps = columns
    order = np.lexsort((np.arange(len(users)), timestamps, items, users))
    last = np.append((np.diff(users[order]) != 0) | (np.diff(items[order]) != 0), True)  # the last of each (user, item) run
    if not last.all():
        warnings.warn(f"{origin} rates {np.count_nonzero(~last)} (user, item) pairs more than once; "
                      "kept the latest by timestamp (ties: the last in file order).", stacklevel=2)
    kept = np.sort(order[last])
    return Ratings(users[kept], items[kept], values[kept].astype(np.float32), timestamps[kept], origin)


def item_titles(source, data_dir=None):
    """{item id: title} from the `movies.csv` (or ml-100k `u.item`, ml-1m `movies.dat`) beside a dataset's ratings; {} if none."""
    import csv

    try:
        path, _ = _local_file(source, data_dir)
    except FileNotFoundError:
        return {}
    if path is None:
        return {}
    for name, delimiter in (("movies.csv", ","), ("movies.dat", "::"), ("u.item", "|")):
        file = path.parent / name
        if file.is_file():
            with open(file, encoding="utf-8" if name == "movies.csv" else "latin-1", newline="") as handle:
                rows = csv.reader(handle) if delimiter == "," else (line.rstrip("\r\n").split(delimiter) for line in handle)
                return {int(row[0]): row[1] for row in rows if len(row) > 1 and row[0].strip().isdigit()}
    return {}


def positive_threshold(ratings):
    """The rating counted as a positive: 3.5 on a half-star scale, 4.0 on a whole-star 1-5 scale."""
    values = np.asarray(ratings.ratings if isinstance(ratings, Ratings) else ratings)
    if np.any(values != np.round(values)):
        return 3.5
    if values.max() <= 5:
        return 4.0
    raise InputError(f"Ratings are whole numbers up to {values.max()}, not a 1-5 scale; pass threshold= explicitly.")


def _matrix(users, items, values, user_ids, item_ids):
    """A float32 CSR (len(user_ids) x len(item_ids)) of `values` at the rows and columns of the given (sorted) ids."""
    rows, columns = np.searchsorted(user_ids, users), np.searchsorted(item_ids, items)
    return sparse.csr_matrix((np.asarray(values, np.float32), (rows, columns)), shape=(len(user_ids), len(item_ids)))


def _fold_in_split(users, items, ids, seed, fold_in_fraction):
    """Indices of the entries of users `ids`, split per user into (fold-in, held-out) as Liang et al. do: a user with
    n >= 5 entries holds out floor((1 - fold_in_fraction) * n) (their int(0.2 * n)), drawn without replacement from the
    entries sorted by item by `default_rng([seed, user id])`; a user with fewer holds out nothing."""
    if not 0 < fold_in_fraction < 1:
        raise InputError(f"fold_in_fraction must lie between 0 and 1; got {fold_in_fraction!r}.")
    chosen = np.flatnonzero(np.isin(users, ids))
    chosen = chosen[np.lexsort((items[chosen], users[chosen]))]
    fold_in = np.ones(len(chosen), bool)
    for user, start, count in zip(*np.unique(users[chosen], return_index=True, return_counts=True)):
        if count >= MIN_ENTRIES_TO_SPLIT:
            held = math.floor((1 - fold_in_fraction) * count + 1e-9)  # 1 - 0.8 is 0.19999999999999996
            fold_in[start + np.random.default_rng([seed, int(user)]).choice(count, held, replace=False)] = False
    return chosen[fold_in], chosen[~fold_in]


def split_strong_generalization(ratings, heldout_users=0.2, seed=0, fold_in_fraction=0.8, threshold=None):
    """Liang et al. 2018's strong generalization: users with a positive (rating >= threshold) shuffled, some held out whole.

    Args:
        heldout_users: a fraction of those users held out in all, half validation and half test; or an int, that many each.
        seed: seeds the user shuffle (`np.random.default_rng(seed).permutation`) and each held-out user's fold-in draw.
        fold_in_fraction: the share of each held-out user's positives given as history: n >= 5 positives hold out
            floor((1 - fold_in_fraction) * n), drawn by `default_rng([seed, user id])`; fewer hold out none (Liang et al.).
        threshold: the lowest positive rating; default `positive_threshold(ratings)`.

    The catalogue is the items a training user rated positively; held-out users' positives elsewhere are dropped, and
    held-out users left with none are dropped too, as Liang et al. do. Rows are sorted by user id.
    `heldout_hash` is the sha256 of the sorted validation and test user ids, written in decimal joined by ",".
    """
    threshold = positive_threshold(ratings) if threshold is None else float(threshold)
    positive = ratings.ratings >= threshold
    users, items = ratings.users[positive], ratings.items[positive]
    shuffled = np.random.default_rng(seed).permutation(np.unique(users))
    count = isinstance(heldout_users, (int, np.integer))
    each = int(heldout_users) if count else round(float(heldout_users) * len(shuffled) / 2)
    if not (count or 0 < heldout_users < 1) or not 0 < each < len(shuffled) / 2:
        raise InputError(f"heldout_users={heldout_users!r} holds out {each} of {len(shuffled)} users with a positive for each of "
                         "validation and test; expected a fraction in (0, 1) or a count that leaves training users.")
    train_ids = np.sort(shuffled[:-2 * each])
    item_ids = np.unique(items[np.isin(users, train_ids)])
    users, items = users[np.isin(items, item_ids)], items[np.isin(items, item_ids)]
    parts = {"validation": shuffled[-2 * each:-each], "test": shuffled[-each:]}
    matrices = {}
    for part, ids in parts.items():
        parts[part] = ids = np.intersect1d(ids, users)
        fold_in, held_out = _fold_in_split(users, items, ids, seed, fold_in_fraction)
        matrices[f"{part}_fold_in"] = _matrix(users[fold_in], items[fold_in], np.ones(len(fold_in)), ids, item_ids)
        matrices[f"{part}_held_out"] = _matrix(users[held_out], items[held_out], np.ones(len(held_out)), ids, item_ids)
    trained = np.isin(users, train_ids)
    held_ids = ",".join(str(user) for user in np.sort(np.concatenate(list(parts.values()))))
    return RatingsSplit(item_ids=item_ids, train=_matrix(users[trained], items[trained], np.ones(trained.sum()), train_ids, item_ids),
                        train_user_ids=train_ids, validation_user_ids=parts["validation"], test_user_ids=parts["test"], seed=seed,
                        threshold=threshold, heldout_hash=hashlib.sha256(held_ids.encode("ascii")).hexdigest(), **matrices)


def explicit_split(ratings, split, fold_in_fraction=0.8, seed=0):
    """Ratings with the held-out users of `split`, for AutoRec and rating prediction.

    `train` holds every rating of all other users and each validation/test user's fold-in share of their ratings (drawn
    as in `split_strong_generalization`); `validation`/`test` are (user_index, item_index, rating) arrays of the rest, indexing
    `user_ids`/`item_ids`, less items absent from `train`. Item-based AutoRec trains on `train.T`.
    """
    in_train, held = ~np.isin(ratings.users, np.concatenate([split.validation_user_ids, split.test_user_ids])), {}
    for part in ("validation", "test"):
        fold_in, held[part] = _fold_in_split(ratings.users, ratings.items, getattr(split, f"{part}_user_ids"), seed, fold_in_fraction)
        in_train[fold_in] = True
    users, items, values = ratings.users[in_train], ratings.items[in_train], ratings.ratings[in_train]
    user_ids, item_ids = np.unique(users), np.unique(items)
    for part, chosen in held.items():
        chosen = chosen[np.isin(ratings.items[chosen], item_ids)]
        held[part] = (np.searchsorted(user_ids, ratings.users[chosen]), np.searchsorted(item_ids, ratings.items[chosen]),
                      ratings.ratings[chosen])
    return ExplicitSplit(_matrix(users, items, values, user_ids, item_ids), user_ids, item_ids, held["validation"], held["test"], seed)


def batches(matrix, batch_size, shuffle=False, seed=0, targets=None):
    """A batched, prefetched `tf.data.Dataset` of a sparse matrix's rows as dense float32, densified one batch at a time.

    Args:
        shuffle: draw rows in a seeded order, a fresh one each epoch.
        targets: a sparse matrix with the same rows (e.g. held-out positives): yield (rows, target rows) pairs.
    """
    import tensorflow as tf

    matrices = [sparse.csr_matrix(part, dtype=np.float32) for part in (matrix, targets) if part is not None]
    if matrices[-1].shape[0] != matrices[0].shape[0]:
        raise InputError(f"targets has {matrices[-1].shape[0]} rows, matrix {matrices[0].shape[0]}; expected the same rows.")
    rows = tf.data.Dataset.range(matrices[0].shape[0])
    if shuffle:
        rows = rows.shuffle(matrices[0].shape[0], seed=seed, reshuffle_each_iteration=True)

    def densify(indices):
        dense = tf.numpy_function(lambda index: [part[index].toarray() for part in matrices], [indices], [tf.float32] * len(matrices))
        for tensor, part in zip(dense, matrices):
            tensor.set_shape((None, part.shape[1]))
        return dense[0] if targets is None else tuple(dense)

    densified = rows.batch(batch_size).map(tf.autograph.experimental.do_not_convert(densify), num_parallel_calls=tf.data.AUTOTUNE)
    return densified.prefetch(tf.data.AUTOTUNE)




@functools.lru_cache(maxsize=4)
def _card_split(source, kind, heldout_users, split_seed, threshold, data_dir):
    loaded = read_ratings(source, data_dir=data_dir)
    split = split_strong_generalization(loaded, heldout_users, seed=split_seed, threshold=threshold)
    return split if kind == "implicit" else (split, explicit_split(loaded, split, seed=split_seed))


def card_split(spec, data_dir=None):
    """The split a card's `data` section describes, rebuilt from the ratings file alone: a `RatingsSplit` for
    `ratings: "implicit"`, an `ExplicitSplit` for `"explicit"`. A recorded `heldout_hash` must match the rebuilt one.
    `spec` is a `keras_ae.cards.Data` or its JSON form."""
    spec = as_data(spec)
    kind = spec.ratings
    if kind not in RATINGS_KINDS:
        raise InputError(f"data.ratings must be one of {list(RATINGS_KINDS)}; got {kind!r}.")
    made = _card_split(spec.dataset, kind, spec.heldout_users, int(spec.split_seed), spec.threshold,
                       None if data_dir is None else str(data_dir))
    implicit = made if kind == "implicit" else made[0]
    if spec.heldout_hash and spec.heldout_hash != implicit.heldout_hash:
        raise InputError(f"The held-out users of {spec.dataset} hash to {implicit.heldout_hash[:16]}..., the card records "
                         f"{spec.heldout_hash[:16]}...: this ratings file is not the one the card was made from.")
    return made if kind == "implicit" else made[1]


def split_matrices(spec, split, data_dir=None):
    """(inputs, targets) of a card's split as CSR matrices; targets is None for `train`.

    Implicit: users' rows; `train` the training users, `validation`/`test` those users' fold-in histories with their
    held-out positives as targets. Explicit (item-based AutoRec): items' rows over users; `validation`/`test` keep the
    items with held-out ratings there, their training ratings as inputs and the held-out ones as targets.
    """
    if split not in ("train", "validation", "test"):
        raise InputError(f"Unknown split {split!r} for ratings; expected 'train', 'validation' or 'test'.")
    made = card_split(spec, data_dir)
    if isinstance(made, RatingsSplit):
        if split == "train":
            return made.train, None
        return getattr(made, f"{split}_fold_in"), getattr(made, f"{split}_held_out")
    item_rows = made.train.T.tocsr()
    if split == "train":
        return item_rows, None
    users, items, values = getattr(made, split)
    targets = sparse.csr_matrix((np.asarray(values, np.float32), (items, users)), shape=item_rows.shape)
    rated = np.flatnonzero(targets.getnnz(axis=1))
    return item_rows[rated], targets[rated]
