"""scripts/benchmark.py's section 1: the input pipeline as shipped and with tf.data autotuning on, in turns."""

import dataclasses
import sys
from pathlib import Path

import tensorflow as tf

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import benchmark  # noqa: E402


def test_section_1_times_the_shipped_pipeline_and_the_autotuned_one_in_turns(data_root, monkeypatch):
    autotuning_of_passes = []
    iterate = tf.data.Dataset.__iter__

    def recording_iter(dataset):
        autotuning_of_passes.append(dataset.options().autotune.enabled)
        return iterate(dataset)

    monkeypatch.setattr(tf.data.Dataset, "__iter__", recording_iter)
    monkeypatch.setattr(benchmark, "vae_mnist_examples_per_second", lambda settings, batch_size, spe: 2500.0)
    section = benchmark.input_pipeline(dataclasses.replace(benchmark.QUICK, pipeline_passes=2))
    assert autotuning_of_passes == [False, True, False, True]
    assert section["pipeline_images_per_second"] > 10 * 2500 and section["autotuned_pipeline_images_per_second"] > 10 * 2500
    assert section["pipeline_over_training"] == section["pipeline_images_per_second"] / 2500.0
