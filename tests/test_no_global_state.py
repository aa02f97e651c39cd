"""keras_ae changes no global state behind its caller's back, and the command keeps the tracebacks of bugs."""

import copy
import random
import subprocess
import sys
import types

import keras
import numpy as np
import pytest

import keras_ae
from keras_ae import cli


def test_training_reseeds_no_global_generator_and_leaves_the_dtype_policy(data_root):
    card = copy.deepcopy(keras_ae.model_card("ae_mnist"))
    card["recipe"].update(epochs=1, early_stopping_patience=None)
    keras.mixed_precision.set_dtype_policy("float32")
    np.random.seed(5)
    random.seed(5)
    numpy_state, python_state = np.random.get_state()[1].copy(), random.getstate()
    first, _, _ = keras_ae.train(card, precision="mixed_bfloat16", train_split="train[:256]", validation_split="validation[:128]", verbose=0)
    assert np.array_equal(np.random.get_state()[1], numpy_state) and random.getstate() == python_state
    assert keras.mixed_precision.dtype_policy().name == "float32" and first.dtype_policy.name == "mixed_bfloat16"
    second, _, _ = keras_ae.train(card, precision="mixed_bfloat16", train_split="train[:256]", validation_split="validation[:128]", verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(first.get_weights(), second.get_weights()))  # the recipe's seed decides


def test_pictures_choose_no_matplotlib_backend_and_the_package_is_a_plain_module():
    probe = ("import matplotlib; before = matplotlib.get_backend(); import keras_ae.plot; "
             "import sys, types; assert matplotlib.get_backend() == before, (before, matplotlib.get_backend()); "
             "assert type(sys.modules['keras_ae']) is types.ModuleType; import keras_ae.training, keras_ae.exporting; "
             "import keras_ae; assert callable(keras_ae.train) and callable(keras_ae.export)")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300,
                            env={"MPLBACKEND": "svg", "TF_CPP_MIN_LOG_LEVEL": "3", "PATH": ""})
    assert result.returncode == 0, result.stderr[-2000:]
    assert type(keras_ae) is types.ModuleType


def test_the_command_keeps_the_traceback_of_a_bug(monkeypatch):
    def broken(args):
        raise KeyError("a bug, not the user's input")

    monkeypatch.setattr(cli, "command_list", broken)
    with pytest.raises(KeyError, match="a bug"):
        cli.main(["list"])
