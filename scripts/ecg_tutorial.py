"""Peer re-run: TensorFlow's "Intro to autoencoders" anomaly-detection example (ECG5000).

This is NOT keras_ae code. It re-implements, as faithfully as possible, the third example of
https://www.tensorflow.org/tutorials/generative/autoencoder so a benchmark can run the peer
side by side with our own model. Differences from the tutorial: the CSV is read with numpy
instead of pandas (same values), `seed` fixes Keras' RNG (the tutorial has none), and an
AUROC of the reconstruction error for detecting ABNORMAL beats is reported in addition.
"""
import time

import numpy as np
import tensorflow as tf
import keras
from keras import layers
from sklearn.metrics import accuracy_score, precision_score, recall_score, roc_auc_score
from sklearn.model_selection import train_test_split


def split(path):
    """The tutorial's split of ecg.csv: dict with train_data, test_data (raw, float64, unscaled),
    train_labels, test_labels (bool), and the row indices of each in the file (train_index, test_index)."""
    raw_data = np.loadtxt(path, delimiter=",")
    labels, data = raw_data[:, -1], raw_data[:, 0:-1]
    (train_data, test_data, train_labels, test_labels, train_index, test_index) = train_test_split(
        data, labels, np.arange(len(data)), test_size=0.2, random_state=21)
    return dict(train_data=train_data, test_data=test_data,
                train_labels=train_labels.astype(bool), test_labels=test_labels.astype(bool),
                train_index=train_index, test_index=test_index)


class AnomalyDetector(keras.Model):
    """The tutorial's model: Dense 32-16-8 encoder, Dense 16-32-140 (sigmoid) decoder."""

    def __init__(self):
        super().__init__()
        self.encoder = keras.Sequential([layers.Dense(32, activation="relu"),
                                         layers.Dense(16, activation="relu"),
                                         layers.Dense(8, activation="relu")])
        self.decoder = keras.Sequential([layers.Dense(16, activation="relu"),
                                         layers.Dense(32, activation="relu"),
                                         layers.Dense(140, activation="sigmoid")])

    def call(self, x):
        return self.decoder(self.encoder(x))


def run_tutorial(path, seed=0, verbose=0):
    """Re-run the tutorial's whole procedure; returns {"accuracy", "precision", "recall", "auroc",
    "threshold", "test_examples", "seconds"}."""
    start = time.perf_counter()
    s = split(path)
    train_data, test_data = s["train_data"], s["test_data"]
    train_labels, test_labels = s["train_labels"], s["test_labels"]
    min_val, max_val = tf.reduce_min(train_data), tf.reduce_max(train_data)  # global scalars
    train_data = tf.cast((train_data - min_val) / (max_val - min_val), tf.float32).numpy()
    test_data = tf.cast((test_data - min_val) / (max_val - min_val), tf.float32).numpy()
    normal_train_data = train_data[train_labels]

    keras.utils.set_random_seed(seed)
    autoencoder = AnomalyDetector()
    autoencoder.compile(optimizer="adam", loss="mae")
    autoencoder.fit(normal_train_data, normal_train_data, epochs=20, batch_size=512,
                    validation_data=(test_data, test_data), shuffle=True, verbose=verbose)

    reconstructions = autoencoder.predict(normal_train_data, verbose=verbose)
    mae = keras.losses.mean_absolute_error  # == tf.keras.losses.mae
    train_loss = np.asarray(mae(reconstructions, normal_train_data))
    threshold = float(np.mean(train_loss) + np.std(train_loss))

    loss = np.asarray(mae(autoencoder(test_data), test_data))
    preds = np.asarray(tf.math.less(loss, threshold))  # True = predicted NORMAL
    return {"accuracy": float(accuracy_score(test_labels, preds)),
            "precision": float(precision_score(test_labels, preds)),
            "recall": float(recall_score(test_labels, preds)),
            "auroc": float(roc_auc_score(~test_labels, loss)),
            "threshold": threshold,
            "test_examples": int(len(test_labels)),
            "seconds": time.perf_counter() - start}
