"""Anomaly detection on your own CSV: train a detector on normal rows, read its threshold, score new rows.

This story uses ECG5000 heartbeats (TensorFlow's tutorial file `ecg.csv`: 140 values per beat, then a label, 1 for a
normal beat) as a stand-in for your sensor table. Run it with `KERAS_AE_DATA` pointing at the data folder;
`KERAS_AE_TUTORIAL_TINY=1` shrinks it to seconds (the tests run it so).
"""

import csv
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

import keras_ae

TINY = os.environ.get("KERAS_AE_TUTORIAL_TINY") == "1"
KERAS_AE = [sys.executable, "-m", "keras_ae.cli"]  # the same as typing keras-ae in a shell
work = Path(tempfile.mkdtemp(prefix="anomaly_tutorial_"))

# 1. Your table: here 2,000 beats of ECG5000, with a header row and a label column named "normal".
beats = np.loadtxt(Path(os.environ["KERAS_AE_DATA"]) / "ecg5000" / "ecg.csv", delimiter=",")[: 400 if TINY else 2000]
table = work / "readings.csv"
with open(table, "w", newline="") as handle:
    writer = csv.writer(handle)
    writer.writerow([f"t{index}" for index in range(140)] + ["normal"])
    writer.writerows(beats.tolist())

# 2. Train a detector on the normal rows only; its threshold is set from the training rows (never from test data).
subprocess.run([*KERAS_AE, "train", "--data", str(table), "--label-column", "normal", "--normal-label", "1",
                "--epochs", "2" if TINY else "50", "--contamination", "0.05", "--output", str(work / "detector")], check=True)

# 3. What did it learn? `info` shows the threshold, its rule and where it came from.
subprocess.run([*KERAS_AE, "info", str(work / "detector")], check=True)

# 4. Score rows, from the shell (a CSV of scores and flags) or from Python.
subprocess.run([*KERAS_AE, "score", str(work / "detector"), str(table), "--out", str(work / "scores.csv")], check=True)
model = keras_ae.load(work / "detector")
threshold = keras_ae.model_card(str(work / "detector"))["anomaly"]["threshold"]
scores = np.asarray(model.anomaly_score(beats[:, :140].astype("float32")))
flagged = scores > threshold
print(f"flagged {flagged[beats[:, 140] == 0].mean():.0%} of the abnormal beats and "
      f"{flagged[beats[:, 140] == 1].mean():.0%} of the normal ones")
