"""Shared test set-up: two logical CPU devices, and the real data from KERAS_AE_DATA."""

import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2
)

import keras  # noqa: E402


@pytest.fixture(scope="session")
def mirrored_strategy():
    """One MirroredStrategy over the two logical CPUs for the whole session: several in one process collide in their collective keys."""
    return tf.distribute.MirroredStrategy([device.name for device in tf.config.list_logical_devices("CPU")])


@pytest.fixture(scope="session")
def data_root():
    """The real-data folder; skipped only when KERAS_AE_DATA is unset, an error when it is set but wrong."""
    root = os.environ.get("KERAS_AE_DATA")
    if not root:
        pytest.skip("KERAS_AE_DATA is unset: real-data tests need the MNIST/Fashion-MNIST IDX files.")
    for name in ("mnist", "fashion_mnist"):
        if not os.path.exists(os.path.join(root, name, "train-images-idx3-ubyte.gz")):
            pytest.fail(f"KERAS_AE_DATA={root} lacks {name}/train-images-idx3-ubyte.gz")
    return root


@pytest.fixture(scope="session")
def mnist_images(data_root):
    """The first 4,096 MNIST train images as float32 in [0, 1], shape (n, 28, 28, 1)."""
    from keras_ae import data

    images, _ = data.load_arrays("mnist", "train")
    return images[:4096].astype("float32") / 255.0


@pytest.fixture(scope="session")
def digit_folder(data_root, tmp_path_factory):
    """Real MNIST test digits as PNG files in one subfolder per class (class_0, class_1, class_2), 30 each."""
    from PIL import Image

    from keras_ae import data

    folder = tmp_path_factory.mktemp("digits")
    images, labels = data.load_arrays("mnist", "test")
    for digit in (0, 1, 2):
        (folder / f"class_{digit}").mkdir()
        for index in np.flatnonzero(labels == digit)[:30]:
            Image.fromarray(images[index, ..., 0]).save(folder / f"class_{digit}" / f"{index}.png")
    return folder


@pytest.fixture(autouse=True)
def float32_policy():
    """Each test starts and ends with the float32 policy and a fixed seed."""
    keras.mixed_precision.set_dtype_policy("float32")
    keras.utils.set_random_seed(0)
    yield
    keras.mixed_precision.set_dtype_policy("float32")


def console_script():
    """The installed `keras-ae` beside this interpreter (a venv's or the system's), else the one on PATH."""
    beside = Path(sys.executable).parent / "keras-ae"
    return str(beside) if beside.exists() else shutil.which("keras-ae")


def max_abs_difference(a, b):
    return float(np.max(np.abs(np.asarray(a, dtype="float64") - np.asarray(b, dtype="float64"))))
