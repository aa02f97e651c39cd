"""Fine-tune a zoo entry on your own images, then embed and export them.

Your photos here are Fashion-MNIST test images written as PNG files; the zoo's `conv_ae_mnist` learned on digits.
Run it with `KERAS_AE_DATA` pointing at the data folder; `KERAS_AE_TUTORIAL_TINY=1` shrinks it.
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

import keras_ae

TINY = os.environ.get("KERAS_AE_TUTORIAL_TINY") == "1"
KERAS_AE = [sys.executable, "-m", "keras_ae.cli"]  # the same as typing keras-ae in a shell
work = Path(tempfile.mkdtemp(prefix="fine_tune_tutorial_"))

# 1. A folder of your images (one subfolder per class gives labels; plain files are fine too).
images, labels = keras_ae.data.load_arrays("fashion_mnist", "test")
photos = work / "photos"
for index in range(60 if TINY else 2000):
    (photos / f"class_{labels[index]}").mkdir(parents=True, exist_ok=True)
    Image.fromarray(images[index, ..., 0]).save(photos / f"class_{labels[index]}" / f"{index:05d}.png")

# 2. Fine-tune: start from the zoo entry's family, network and weights; the new card pins what it started from.
subprocess.run([*KERAS_AE, "train", "--data", str(photos), "--from", "conv_ae_mnist", "--epochs", "1" if TINY else "10",
                "--output", str(work / "tuned")], check=True)
start = keras_ae.model_card(str(work / "tuned"))["recipe"]["initial_weights"]
print("fine-tuned from", start["preset"], start["sha256"][:12])

# 3. Embed every photo (one row per file, with its name, in file order) and export the model for serving.
subprocess.run([*KERAS_AE, "embed", str(work / "tuned"), str(photos), "--out", str(work / "codes.csv")], check=True)
subprocess.run([*KERAS_AE, "export", str(work / "tuned"), str(work / "served")], check=True)
codes = np.loadtxt(work / "codes.csv", delimiter=",", skiprows=1, usecols=range(1, 33))
print("codes", codes.shape, "names in", work / "codes.csv")
