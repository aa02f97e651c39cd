"""Benchmark keras_ae on MNIST: input pipeline, training throughput, FLOP/s and a profile, batch size, memory, inference,
ratings memory, the time to a good model, and two fresh epochs against the keras.io way.

    KERAS_AE_DATA=../shared/data TF_CPP_MIN_LOG_LEVEL=3 python scripts/benchmark.py [--quick] [--output benchmarks/results.json]

Prints one table per section and writes every number, with the machine and versions, as JSON.
`--quick` shrinks every section to a smoke test (about three minutes on two CPU cores); `--time-to-quality` runs only
section 8, `--flops` only section 4, `--profile` only section 4b, `--layers-alone` only section 4d and `--epoch-ratio` only
section 9; they combine.
"""

import argparse
import collections
import contextlib
import dataclasses
import datetime
import functools
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

import keras_ae
from keras_ae import cards, data, networks
from keras_ae.exporting import export

@contextlib.contextmanager
def dtype_policy(name):
    """Keras' global dtype policy set to `name` inside, and this script's back after (the library never sets it)."""
    previous = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_dtype_policy(previous)


SEED = 0
MEMORY_SPLITS = ("train[:10%]", "train[:50%]", "train")


@dataclasses.dataclass(frozen=True)
class Settings:
    """Sizes of every section; QUICK and FULL below."""

    mode: str
    steps_per_epoch: int  # training steps per timed epoch at batch 128 (a multiple of every steps_per_execution)
    timed_epochs: int  # steady-state epochs timed after one warm-up epoch (vae_mnist sections)
    repeats: int  # alternating repeats of the keras.io comparison
    steps_per_execution_values: tuple
    batch_sizes: tuple
    pipeline_passes: int
    matmul_size: int
    matmul_repeats: int
    inference_repeats: int
    quality_epochs: int  # the most epochs the keras.io way may train in the time-to-quality race
    flops_batch_sizes: tuple  # batch sizes of section 4
    ratio_pairs: int  # pairs of fresh two-epoch trainings in section 9
    ratio_examples: int | None  # training (and validation) examples of each section 9 run; None: the whole splits


QUICK = Settings("quick", 10, 1, 2, (1, 10), (32, 256), 1, 1024, 3, 3, 1, (128,), 1, 1280)
FULL = Settings("full", 100, 5, 5, (1, 10, 50), (32, 64, 128, 256, 512, 1024), 3, 4096, 3, 20, 30, (128, 512), 3, None)


class EpochTimer(keras.callbacks.Callback):
    """Wall-clock seconds of each epoch of a `fit` call."""

    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.started)


def time_calls(function, repeats):
    """`(result of one untimed warm-up call, wall seconds of each of the next `repeats` calls)` of `function`."""
    warmup_result = function()
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        timings.append(time.perf_counter() - start)
    return warmup_result, timings


def timed_epoch_seconds(model, x, epochs, **fit_kwargs):
    """Seconds of each epoch of one `model.fit` call."""
    timer = EpochTimer()
    model.fit(x, epochs=epochs, callbacks=[timer], verbose=0, **fit_kwargs)
    return timer.seconds


def steps_for(settings, batch_size, steps_per_execution):
    """Steps per timed epoch: about the examples of `settings.steps_per_epoch` batches of 128, whole executions."""
    steps = math.ceil(settings.steps_per_epoch * 128 / batch_size)
    return math.ceil(steps / steps_per_execution) * steps_per_execution


def build_vae_mnist(steps_per_execution, precision="float32"):
    """A fresh vae_mnist model compiled with Adam, built under `precision`."""
    with dtype_policy(precision):
        model = cards.build_model(cards.model_card("vae_mnist"))
    model.compile(optimizer=keras.optimizers.Adam(), steps_per_execution=steps_per_execution)
    return model


def vae_mnist_epoch(settings, batch_size, steps_per_execution, precision="float32"):
    """`(examples, one_epoch)`: a fresh vae_mnist model and `one_epoch()`, which trains it one timed epoch of about
    `settings.steps_per_epoch` batches of 128 on dynamically binarized MNIST and returns its seconds."""
    steps = steps_for(settings, batch_size, steps_per_execution)
    dataset = data.load("mnist", split=f"train[:{steps * batch_size}]", batch_size=batch_size, binarize="dynamic")
    model = build_vae_mnist(steps_per_execution, precision)
    return steps * batch_size, lambda: timed_epoch_seconds(model, dataset, 1)[0]


@functools.cache
def vae_mnist_examples_per_second(settings, batch_size, steps_per_execution):
    """Steady-state training examples/s of vae_mnist (float32; median of timed epochs after a warm-up epoch)."""
    examples, one_epoch = vae_mnist_epoch(settings, batch_size, steps_per_execution)
    _, seconds = time_calls(one_epoch, settings.timed_epochs)
    return examples / statistics.median(seconds)


def input_pipeline(settings):
    """Section 1: images/s of the input pipeline alone against the rate at which vae_mnist training consumes them.

    The pipeline as shipped (tf.data autotuning off) and with autotuning on take turns, one pass each, so both meet the
    same machine; each rate is the median of `settings.pipeline_passes` passes.
    """
    shipped = data.load("mnist", split="train", batch_size=128, binarize="dynamic")
    autotuning = tf.data.Options()
    autotuning.autotune.enabled = True
    pipelines = {"shipped": shipped, "autotuned": shipped.with_options(autotuning)}
    seconds = {name: [] for name in pipelines}
    for _ in range(settings.pipeline_passes):
        for name, dataset in pipelines.items():
            started = time.perf_counter()
            examples = sum(int(batch.shape[0]) for batch in dataset)
            seconds[name].append(time.perf_counter() - started)
    pipeline, autotuned = (examples / statistics.median(seconds[name]) for name in pipelines)
    training = vae_mnist_examples_per_second(settings, 128, 10)
    return {"pipeline_images_per_second": pipeline, "autotuned_pipeline_images_per_second": autotuned,
            "training_examples_per_second": training, "pipeline_over_training": pipeline / training,
            "goal_met": pipeline >= 10 * training}


class Sampling(layers.Layer):
    """keras.io VAE example: z = z_mean + exp(z_log_var / 2) * epsilon."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seed_generator = keras.random.SeedGenerator(1337)

    def call(self, inputs):
        z_mean, z_log_var = inputs
        epsilon = keras.random.normal(ops.shape(z_mean), seed=self.seed_generator)
        return z_mean + ops.exp(0.5 * z_log_var) * epsilon


def keras_io_networks(latent_dim=2):
    """The keras.io VAE example's encoder (to z_mean, z_log_var) and decoder (to pixel probabilities)."""
    inputs = keras.Input((28, 28, 1))
    x = layers.Conv2D(32, 3, activation="relu", strides=2, padding="same")(inputs)
    x = layers.Conv2D(64, 3, activation="relu", strides=2, padding="same")(x)
    x = layers.Dense(16, activation="relu")(layers.Flatten()(x))
    encoder = keras.Model(inputs, [layers.Dense(latent_dim, name="z_mean")(x), layers.Dense(latent_dim, name="z_log_var")(x)])
    code = keras.Input((latent_dim,))
    x = layers.Reshape((7, 7, 64))(layers.Dense(7 * 7 * 64, activation="relu")(code))
    x = layers.Conv2DTranspose(64, 3, activation="relu", strides=2, padding="same")(x)
    x = layers.Conv2DTranspose(32, 3, activation="relu", strides=2, padding="same")(x)
    decoder = keras.Model(code, layers.Conv2DTranspose(1, 3, activation="sigmoid", padding="same")(x))
    return encoder, decoder


class KerasIoVAE(keras.Model):
    """The keras.io VAE example's custom `train_step`, unchanged in substance, and a `test_step` that mirrors it for
    validation; over the example's own networks, or another pair with the same outputs (z_mean, z_log_var; probabilities)."""

    def __init__(self, encoder=None, decoder=None, **kwargs):
        super().__init__(**kwargs)
        self.encoder, self.decoder = (encoder, decoder) if encoder is not None else keras_io_networks()
        self.sampling = Sampling()
        self.trackers = [keras.metrics.Mean(name=name) for name in ("total_loss", "reconstruction_loss", "kl_loss")]

    @property
    def metrics(self):
        return self.trackers

    def losses_of(self, batch):
        batch = batch[0] if isinstance(batch, tuple) else batch
        z_mean, z_log_var = self.encoder(batch)
        reconstruction = self.decoder(self.sampling([z_mean, z_log_var]))
        reconstruction_loss = ops.mean(ops.sum(keras.losses.binary_crossentropy(batch, reconstruction), axis=(1, 2)))
        kl_loss = ops.mean(ops.sum(-0.5 * (1 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var)), axis=1))
        return reconstruction_loss + kl_loss, reconstruction_loss, kl_loss

    def report(self, values):
        for tracker, value in zip(self.trackers, values):
            tracker.update_state(value)
        return {tracker.name: tracker.result() for tracker in self.trackers}

    def train_step(self, batch):
        with tf.GradientTape() as tape:
            values = self.losses_of(batch)
        gradients = tape.gradient(values[0], self.trainable_weights)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_weights))
        return self.report(values)

    def test_step(self, batch):
        return self.report(self.losses_of(batch))


def build_keras_ae_vae(steps_per_execution, policy="float32"):
    """keras_ae's VAE with the keras.io architecture, built under `policy`."""
    with dtype_policy(policy):
        model = keras_ae.VAE(*networks.conv(
            (28, 28, 1), 2, filters=(32, 64), kernel_size=3, strides=2, dense_units=16, variational=True
        ))
    model.compile(optimizer=keras.optimizers.Adam(), steps_per_execution=steps_per_execution)
    return model


def keras_io_comparison(settings):
    """Section 2: keras.io VAE (numpy arrays, plain fit) against keras_ae's VAE fed by keras_ae.data, alternated."""
    examples = settings.steps_per_epoch * 128
    train_images, _ = data.load_arrays("mnist", "train")
    test_images, _ = data.load_arrays("mnist", "test")
    mnist_digits = np.concatenate([train_images, test_images])[:examples].astype("float32") / 255
    pipeline = data.load("mnist", split=f"train[:{examples}]", batch_size=128)
    plain = KerasIoVAE()
    plain.compile(optimizer=keras.optimizers.Adam())
    runs = {"plain": functools.partial(timed_epoch_seconds, plain, mnist_digits, batch_size=128)}
    for steps_per_execution in settings.steps_per_execution_values:
        model = build_keras_ae_vae(steps_per_execution)
        runs[f"keras_ae_spe{steps_per_execution}"] = functools.partial(timed_epoch_seconds, model, pipeline)
    bfloat16_model = build_keras_ae_vae(10, "mixed_bfloat16")
    runs["keras_ae_spe10_bfloat16"] = functools.partial(timed_epoch_seconds, bfloat16_model, pipeline)

    for run in runs.values():
        run(1)  # warm-up: trace and compile
    samples = {name: [] for name in runs}
    for repeat in range(settings.repeats):
        names = list(runs) if repeat % 2 == 0 else list(reversed(runs))
        for name in names:
            samples[name].append(examples / runs[name](1)[0])
    medians = {name: statistics.median(rates) for name, rates in samples.items()}
    best = max((name for name in medians if name.startswith("keras_ae") and "bfloat16" not in name), key=medians.get)
    bfloat16_speedup = medians["keras_ae_spe10_bfloat16"] / medians["keras_ae_spe10"]
    return {
        "examples_per_epoch": examples,
        "median_examples_per_second": medians,
        "samples_examples_per_second": samples,
        "ratio_keras_ae_over_plain": {name: rate / medians["plain"] for name, rate in medians.items() if name != "plain"},
        "best_keras_ae": best,
        "best_ratio_over_plain": medians[best] / medians["plain"],
        "bfloat16_speedup_at_spe10": bfloat16_speedup,
        "bfloat16_helps": bfloat16_speedup > 1.05,  # beyond 5%, taken as noise
    }


def vae_mnist_training(settings):
    """Section 3: vae_mnist training throughput (keras_ae path, batch 128) at steps_per_execution 1 and 10."""
    return {f"spe{spe}": vae_mnist_examples_per_second(settings, 128, spe) for spe in (1, 10)}


def forward_flops_by_layer(model):
    """Multiply-add FLOPs (2 per MAC) per example of each Conv2D, Conv2DTranspose and Dense layer of `model`'s encoder
    and decoder, by layer name."""
    flops = {}
    for layer in model.encoder.layers + model.decoder.layers:
        kernel_weights = math.prod(layer.kernel.shape) if hasattr(layer, "kernel") else 0
        if isinstance(layer, layers.Conv2DTranspose):  # each input pixel scatters into a kernel window
            flops[layer.name] = 2 * math.prod(layer.input.shape[1:3]) * kernel_weights
        elif isinstance(layer, layers.Conv2D):  # each output pixel gathers a kernel window
            flops[layer.name] = 2 * math.prod(layer.output.shape[1:3]) * kernel_weights
        elif isinstance(layer, layers.Dense):
            flops[layer.name] = 2 * kernel_weights
    return flops


def matmul_call(size, precision):
    """A function that multiplies two `size` x `size` matrices in the compute dtype of `precision` and waits for it."""
    dtype = "bfloat16" if precision == "mixed_bfloat16" else "float32"
    a, b = (tf.cast(tf.random.stateless_normal((size, size), seed=(SEED, index)), dtype) for index in (1, 2))
    return lambda: tf.linalg.matmul(a, b)[0, 0].numpy()


def achieved_flops(settings):
    """Section 4: vae_mnist training FLOP/s (3x forward FLOPs x examples/s) against TensorFlow's matmul peak of the same
    precision, for each precision and batch size in `settings.flops_batch_sizes`.

    The two are measured in alternation, the best of `settings.matmul_repeats` matmuls, then one training epoch, so each
    pair meets the same machine (a shared VM's speed drifts by tens of percent over minutes); the fraction is the median
    over `settings.timed_epochs` pairs.
    """
    forward = sum(forward_flops_by_layer(cards.build_model(cards.model_card("vae_mnist"))).values())
    size = settings.matmul_size
    runs = []
    for precision in ("float32", "mixed_bfloat16"):
        matmul = matmul_call(size, precision)
        for batch_size in settings.flops_batch_sizes:
            examples, one_epoch = vae_mnist_epoch(settings, batch_size, 10, precision)
            one_epoch()  # warm-up: trace and compile
            pairs = []
            for _ in range(settings.timed_epochs):
                peak = 2 * size**3 / min(time_calls(matmul, settings.matmul_repeats)[1])
                achieved = 3 * forward * examples / one_epoch()
                pairs.append({"matmul_peak_flops_per_second": peak, "achieved_flops_per_second": achieved})
            runs.append({"precision": precision, "batch_size": batch_size, "pairs": pairs,
                         "examples_per_second": statistics.median(pair["achieved_flops_per_second"] for pair in pairs) / (3 * forward),
                         "fraction_of_peak": statistics.median(pair["achieved_flops_per_second"] / pair["matmul_peak_flops_per_second"]
                                                               for pair in pairs)})
    return {"forward_flops_per_example": forward, "training_flops_per_example": 3 * forward, "matmul_size": size, "runs": runs}


def op_seconds_by_name(logdir):
    """Exclusive seconds of each op on TensorFlow's compute threads in the profile under `logdir`, by op name."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    space.ParseFromString(next(Path(logdir).glob("plugins/profile/*/*.xplane.pb")).read_bytes())
    plane = next(plane for plane in space.planes if plane.name == "/host:CPU")
    seconds = collections.Counter()
    for line in plane.lines:
        if not line.name.startswith("tf_Compute"):
            continue
        open_events = []  # (name, end) of the events that enclose the current one, innermost last
        for event in sorted(line.events, key=lambda event: (event.offset_ps, -event.duration_ps)):
            while open_events and open_events[-1][1] <= event.offset_ps:
                open_events.pop()
            name = plane.event_metadata[event.metadata_id].name
            if open_events:  # a child's time is its own, not its parent's
                seconds[open_events[-1][0]] -= event.duration_ps / 1e12
            seconds[name] += event.duration_ps / 1e12
            open_events.append((name, event.offset_ps + event.duration_ps))
    return seconds


def part_of(op_name, layer_names):
    """The layer of vae_mnist an op belongs to (its name scope, as `encoder_conv_0_1`), else what else it does."""
    scopes = op_name.split(":")[0].split("/")
    for scope in scopes:
        for name in (scope, re.sub(r"_\d+$", "", scope)):
            if name in layer_names:
                return name
    if any(re.fullmatch(r"adam(_\d+)?", scope) for scope in scopes):  # Keras names a process's later optimizers adam_1, ...
        return "optimizer update (Adam)"
    if "::" in op_name:
        return "executor overhead"
    return "loss, sampling, KL and the rest"


def profile_training(settings):
    """Section 4b: where one epoch of vae_mnist training (batch 128, spe 10) spends its op time, by layer, from the
    TensorFlow profiler, in float32 and in mixed_bfloat16; with each layer's share of the training FLOPs and the rate it
    achieves."""
    flops = forward_flops_by_layer(cards.build_model(cards.model_card("vae_mnist")))
    total_flops = sum(flops.values())
    runs = []
    for precision in ("float32", "mixed_bfloat16"):
        examples, one_epoch = vae_mnist_epoch(settings, 128, 10, precision)
        one_epoch()  # warm-up: trace and compile
        with tempfile.TemporaryDirectory() as logdir:
            tf.profiler.experimental.start(logdir)
            one_epoch()
            tf.profiler.experimental.stop()
            op_seconds = op_seconds_by_name(logdir)
        seconds = collections.Counter()
        for op_name, value in op_seconds.items():
            seconds[part_of(op_name, flops)] += value
        total_seconds = sum(seconds.values())
        runs.append({"precision": precision, "examples": examples, "op_seconds": total_seconds, "parts": [
            {"part": part, "share_of_op_time": value / total_seconds, "share_of_flops": flops.get(part, 0) / total_flops,
             "gflop_per_second": 3 * flops[part] * examples / value / 1e9 if part in flops else None}
            for part, value in seconds.most_common()
        ]})
    return {"runs": runs}


def layer_step(layer, batch_size, reads_images):
    """A function that runs `layer` forward on a random batch at its training shape and computes what training needs
    back (its weights' gradients, and its input's unless it reads the images), then waits for it."""
    dtype = layer.compute_dtype
    inputs = tf.cast(tf.random.stateless_normal((batch_size, *layer.input.shape[1:]), seed=(SEED, 1)), dtype)
    cotangent = tf.cast(tf.random.stateless_normal((batch_size, *layer.output.shape[1:]), seed=(SEED, 2)), dtype)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            outputs = layer(inputs)
        sources = layer.trainable_weights if reads_images else [inputs, *layer.trainable_weights]
        return tape.gradient(outputs, sources, output_gradients=cotangent)

    return lambda: [gradient.numpy() for gradient in step()]


def layers_alone(settings):
    """Section 4d: each layer of vae_mnist timed alone at batch 128, forward and the backward pass training needs, in
    each precision; their summed FLOPs over their summed seconds is what training could reach with these kernels if
    nothing else took time. The matmul peak and the layers are timed in alternation (`time_calls` warms each up, so
    the first round traces); seconds are medians."""
    batch_size, runs = 128, []
    for precision in ("float32", "mixed_bfloat16"):
        with dtype_policy(precision):
            model = cards.build_model(cards.model_card("vae_mnist"))
        flops = forward_flops_by_layer(model)
        steps = {layer.name: layer_step(layer, batch_size, layer.input is model.encoder.inputs[0])
                 for layer in model.encoder.layers + model.decoder.layers if layer.name in flops}
        matmul = matmul_call(settings.matmul_size, precision)
        peaks, seconds = [], collections.defaultdict(list)
        for _ in range(settings.timed_epochs):
            peaks.append(2 * settings.matmul_size**3 / min(time_calls(matmul, settings.matmul_repeats)[1]))
            for name, step in steps.items():
                seconds[name].append(statistics.median(time_calls(step, settings.inference_repeats)[1]))
        peak = statistics.median(peaks)
        layer_seconds = {name: statistics.median(values) for name, values in seconds.items()}
        rates = {name: 3 * flops[name] * batch_size / value for name, value in layer_seconds.items()}
        runs.append({"precision": precision, "matmul_peak_flops_per_second": peak, "layers": [
            {"layer": name, "seconds_per_batch": layer_seconds[name], "gflop_per_second": rates[name] / 1e9,
             "fraction_of_peak": rates[name] / peak} for name in sorted(rates, key=rates.get)
        ], "all_layers_fraction_of_peak": 3 * sum(flops.values()) * batch_size / sum(layer_seconds.values()) / peak})
    return {"batch_size": batch_size, "runs": runs}


class Turns:
    """Two trainings in two threads that take turns by whole epochs, so both meet the same machine (a shared 2-core
    VM drifts by tens of percent over minutes); one that has finished leaves every turn to the other."""

    def __init__(self, names):
        self.names, self.turn, self.done = list(names), names[0], set()
        self.condition = threading.Condition()

    def wait(self, name):
        with self.condition:
            self.condition.wait_for(lambda: self.turn == name)

    def hand_over(self, name, finished=False):
        with self.condition:
            if finished:
                self.done.add(name)
            others = [other for other in self.names if other != name and other not in self.done]
            self.turn = others[0] if others else name
            self.condition.notify_all()


class TestElboStop(keras.callbacks.Callback):
    """Counts the seconds of each epoch (training and its validation pass) while holding its turn, then measures the
    test negative ELBO (`nats(model)`, one seeded draw per image; not counted) and stops once it is at most `target`."""

    def __init__(self, name, turns, nats, target):
        super().__init__()
        self.name, self.turns, self.nats, self.target = name, turns, nats, target
        self.seconds, self.curve, self.reached = 0.0, [], None

    def on_epoch_begin(self, epoch, logs=None):
        self.turns.wait(self.name)
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds += time.perf_counter() - self.started
        nats = self.nats(self.model)
        self.curve.append({"epoch": epoch + 1, "seconds": round(self.seconds, 1), "test_negative_elbo": round(nats, 2)})
        print(f"  {self.name} epoch {epoch + 1}: {nats:.2f} nats after {self.seconds:.0f} s", file=sys.stderr, flush=True)
        if nats <= self.target:
            self.reached = {"epoch": epoch + 1, "seconds": round(self.seconds, 1)}
            self.model.stop_training = True
        self.turns.hand_over(self.name)

    def on_train_end(self, logs=None):
        self.turns.hand_over(self.name, finished=True)


def keras_io_way_images(limit=None):
    """MNIST as the keras.io way feeds it: the first `limit` training images binarized once (seed 0) and the test images
    binarized once as keras_ae measures them (`binarize="fixed"`), float32 numpy arrays."""
    train_images = data.load_arrays("mnist", "train")[0][:limit].astype("float32") / 255
    train_images = (np.random.default_rng(SEED).random(train_images.shape) < train_images).astype("float32")
    test_images = data.binarize_images(data.load_arrays("mnist", "test")[0][:limit].astype("float32") / 255, "fixed").numpy()
    return train_images, test_images


def keras_io_vae(card):
    """keras.io's VAE over `card`'s networks with a sigmoid output, float32, compiled with Adam 1e-3."""
    architecture = {key: value for key, value in card["network"].items() if key != "kind"}
    model = KerasIoVAE(*networks.conv(**architecture, output_activation="sigmoid"))
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    return model


QUALITY_RECIPE = {  # keras_ae's recipe in the race: a ten-epoch budget at 3x the learning rate, decayed by cosine to 5%
    "epochs": 10, "learning_rate_schedule": "cosine", "final_learning_rate_fraction": 0.05,
    "optimizer": {"class_name": "Adam", "config": {"learning_rate": 3e-3}},
}


def time_to_quality(settings, target=95.0):
    """Section 8: seconds until vae_mnist's architecture reaches a test -ELBO of `target` nats, trained two ways that
    take turns by epochs (`Turns`).

    keras.io's way: its VAE `train_step` (plus a matching `test_step`) over vae_mnist's networks with a sigmoid output,
    float32, numpy arrays binarized once into `fit`, Adam 1e-3, batch 128, a validation pass per epoch, for at most
    `settings.quality_epochs` epochs. keras_ae's: `keras_ae.train` with its defaults (precision auto, the card's
    steps_per_execution, dynamic binarization by keras_ae.data) on the vae_mnist card with QUALITY_RECIPE's budget and
    schedule. Both without the card's KL warm-up, which holds the ELBO back early, and both measured on the test set
    binarized once (seed 0).
    """
    card = cards.model_card("vae_mnist")
    card["model"]["config"]["kl_warmup_steps"] = 0
    del card["recipe"]["precision"]  # keras_ae's default: auto
    card["recipe"].update(QUALITY_RECIPE, epochs=min(QUALITY_RECIPE["epochs"], settings.quality_epochs))
    train_images, test_images = keras_io_way_images()
    keras.utils.set_random_seed(SEED)
    plain = keras_io_vae(card)  # built here, in float32

    def plain_nats(model):
        return float(np.mean([model.losses_of(ops.convert_to_tensor(test_images[start:start + 1000]))[0]
                              for start in range(0, len(test_images), 1000)]))

    def keras_ae_nats(model):
        return float(np.mean(np.asarray(keras_ae.models.per_batch(model.negative_elbo, test_images, batch_size=1000))))

    turns = Turns(["keras_io_way", "keras_ae"])
    stops = {"keras_io_way": TestElboStop("keras_io_way", turns, plain_nats, target),
             "keras_ae": TestElboStop("keras_ae", turns, keras_ae_nats, target)}
    outcome = {}

    def run(name, train):
        try:
            outcome[name] = train()
        except BaseException as error:  # reported after both threads end; the other side must not wait for this one
            outcome[name] = error
            turns.hand_over(name, finished=True)

    sides = [
        threading.Thread(target=run, args=("keras_io_way", lambda: plain.fit(
            train_images, batch_size=128, epochs=settings.quality_epochs, validation_data=(test_images,),
            callbacks=[stops["keras_io_way"]], verbose=0))),
        threading.Thread(target=run, args=("keras_ae", lambda: keras_ae.train(card, callbacks=[stops["keras_ae"]], verbose=0))),
    ]
    for side in sides:
        side.start()
    for side in sides:
        side.join()
    for value in outcome.values():
        if isinstance(value, BaseException):
            raise value
    plain_stop, ours_stop = stops["keras_io_way"], stops["keras_ae"]
    speedup = plain_stop.reached["seconds"] / ours_stop.reached["seconds"] if plain_stop.reached and ours_stop.reached else None
    common = min(len(plain_stop.curve), len(ours_stop.curve))  # the same epochs each side, first (tracing) included
    epoch_speedup = plain_stop.curve[common - 1]["seconds"] / ours_stop.curve[common - 1]["seconds"]
    return {"target_test_negative_elbo": target, "max_epochs": settings.quality_epochs,
            "same_epochs_speedup": {"epochs": common, "speedup": epoch_speedup},
            "keras_io_way": {"reached": plain_stop.reached, "curve": plain_stop.curve, "precision": "float32"},
            "keras_ae": {"reached": ours_stop.reached, "curve": ours_stop.curve, "precision": outcome["keras_ae"][2]["precision"],
                         "steps_per_execution": card["recipe"]["steps_per_execution"], "recipe": QUALITY_RECIPE},
            "speedup": speedup}


def epoch_ratio(settings, epochs=2):
    """Section 9: what `keras-ae train vae_mnist --epochs 2` costs against the plain keras.io way, each side a fresh model
    trained `epochs` epochs (tracing and a validation pass on the test split per epoch included; building the data and
    model not), in `settings.ratio_pairs` pairs whose order alternates.

    keras.io's way: KerasIoVAE over vae_mnist's networks with a sigmoid output, float32, numpy arrays binarized once into
    `fit`, Adam 1e-3, batch 128. keras_ae's: `keras_ae.train` on the vae_mnist card as it is (its recipe; precision auto).
    """
    limit = settings.ratio_examples
    card = cards.model_card("vae_mnist")
    del card["recipe"]["precision"]  # what `keras-ae train` picks for a recipe that names none: auto
    train_images, test_images = keras_io_way_images(limit)

    def keras_io_way():
        return timed_epoch_seconds(keras_io_vae(card), train_images, epochs, batch_size=128, validation_data=(test_images,))

    used = {}

    def keras_ae_way():
        timer = EpochTimer()
        splits = {"train_split": f"train[:{limit}]", "validation_split": f"test[:{limit}]"} if limit else {}
        _, _, stats = keras_ae.train(card, epochs=epochs, callbacks=[timer], verbose=0, **splits)
        used["precision"] = stats["precision"]
        return timer.seconds

    ways = {"keras_io_way": keras_io_way, "keras_ae": keras_ae_way}
    pairs = []
    for pair in range(settings.ratio_pairs):
        order = list(ways) if pair % 2 == 0 else list(reversed(ways))
        seconds = {name: sum(ways[name]()) for name in order}
        pairs.append({**seconds, "speedup": seconds["keras_io_way"] / seconds["keras_ae"]})
        print(f"  pair {pair + 1}: keras.io's way {seconds['keras_io_way']:.1f} s, keras_ae {seconds['keras_ae']:.1f} s",
              file=sys.stderr, flush=True)
    speedups = [pair["speedup"] for pair in pairs]
    return {"epochs": epochs, "examples": len(train_images), "keras_ae_precision": used["precision"],
            "steps_per_execution": card["recipe"]["steps_per_execution"], "pairs": pairs,
            "median_speedup": statistics.median(speedups), "min_speedup": min(speedups), "max_speedup": max(speedups)}


def peak_resident_mib():
    """This process's peak resident memory (Linux VmHWM; ru_maxrss would also count the parent's peak at fork)."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmHWM:"))


def peak_memory_of_iterating(split):
    """Run in a child process: peak resident MiB after importing, then after one pass over `split`."""
    keras.utils.set_random_seed(SEED)
    after_import = peak_resident_mib()
    examples = sum(int(batch.shape[0]) for batch in data.load("mnist", split=split, batch_size=128, binarize="dynamic"))
    after_pass = peak_resident_mib()
    return {"split": split, "examples": examples, "peak_mib_after_import": after_import, "peak_mib": after_pass}


def peak_memory_of_ratings(users, items, entries):
    """Run in a child process: peak resident MiB of a synthetic sparse (users x items) matrix, then of one pass of
    `keras_ae.ratings.batches` over its rows (densified 500 at a time), against the MiB it would take dense."""
    from scipy import sparse

    from keras_ae import ratings

    random = np.random.default_rng(SEED)
    after_import = peak_resident_mib()
    matrix = sparse.csr_matrix((np.ones(entries, np.float32), (random.integers(0, users, entries), random.integers(0, items, entries))),
                               shape=(users, items))
    after_matrix = peak_resident_mib()
    rows = sum(int(batch.shape[0]) for batch in ratings.batches(matrix, 500, shuffle=True))
    return {"shape": [users, items], "stored_entries": int(matrix.nnz), "rows_passed": rows,
            "peak_mib_after_import": after_import, "peak_mib_with_matrix": after_matrix, "peak_mib": peak_resident_mib(),
            "dense_float32_mib": users * items * 4 / 2**20}


def ratings_memory(settings):
    """Section 7: peak memory of ML-20M-sized implicit feedback (138,493 x 26,744, 20M ratings), in a fresh process."""
    users, items, entries = (138_493, 26_744, 20_000_263) if settings.mode == "full" else (13_849, 26_744, 2_000_026)
    child = subprocess.run([sys.executable, __file__, "--ratings-probe", f"{users},{items},{entries}"], stdout=subprocess.PIPE,
                           text=True, check=True)
    return json.loads(child.stdout.strip().splitlines()[-1])


def scaling(settings):
    """Section 5: vae_mnist throughput against batch size; peak memory against dataset size, each in a fresh process."""
    throughput = {batch_size: vae_mnist_examples_per_second(settings, batch_size, 10) for batch_size in settings.batch_sizes}
    children = [  # concurrent, to save time: each peak is still its own process's
        subprocess.Popen([sys.executable, __file__, "--memory-probe", split], stdout=subprocess.PIPE, text=True)
        for split in MEMORY_SPLITS
    ]
    memory = []
    for child in children:
        stdout, _ = child.communicate()
        if child.returncode:
            raise RuntimeError(f"memory probe {child.args} failed with exit status {child.returncode}")
        memory.append(json.loads(stdout.strip().splitlines()[-1]))
    return {"examples_per_second_by_batch_size": throughput, "memory_by_split": memory}


def inference(settings):
    """Section 6: encode images/s at batch 1000: exported SavedModel vs Keras `model.encode` and `encoder.predict`."""
    model = build_vae_mnist(1)
    images, _ = data.load_arrays("mnist", "test")
    x = tf.constant(images[:1000].astype("float32") / 255)
    with tempfile.TemporaryDirectory() as folder:
        export(model, Path(folder) / "vae_mnist")
        saved_model = tf.saved_model.load(str(Path(folder) / "vae_mnist"))
        encoders = {
            "saved_model_encode": lambda: saved_model.encode(x)["z_mean"].numpy(),
            "keras_model_encode": lambda: model.encode(x)[0].numpy(),
            "keras_encoder_predict": lambda: model.encoder.predict(x, batch_size=1000, verbose=0),
        }
        return {
            name: len(x) / statistics.median(time_calls(encode, settings.inference_repeats)[1])
            for name, encode in encoders.items()
        }


def print_table(title, rows):
    """Print `rows` (tuples of cells) under `title`, columns aligned; the first row is the header."""
    cells = [[f"{cell:,.1f}" if isinstance(cell, float) else str(cell) for cell in row] for row in rows]
    widths = [max(len(row[column]) for row in cells) for column in range(len(cells[0]))]
    print(f"\n== {title}")
    for index, row in enumerate(cells):
        print("  ".join(cell.ljust(width) if column == 0 else cell.rjust(width)
                        for column, (cell, width) in enumerate(zip(row, widths))))
        if index == 0:
            print("  ".join("-" * width for width in widths))


def layers_ceiling(flops, profile):
    """Per precision: section 4's fraction of the matmul peak at batch 128, the share of 4b's op time spent in the
    layers themselves, and their quotient, the fraction training would reach if nothing but the layers took time."""
    ceilings = []
    for run in profile["runs"]:
        fraction = next(each["fraction_of_peak"] for each in flops["runs"]
                        if each["precision"] == run["precision"] and each["batch_size"] == 128)
        layers_share = sum(part["share_of_op_time"] for part in run["parts"] if part["gflop_per_second"] is not None)
        ceilings.append({"precision": run["precision"], "fraction_of_peak": fraction, "layers_share_of_op_time": layers_share,
                         "ceiling": fraction / layers_share})
    return ceilings


def print_ceiling(flops, profile):
    """The table of `layers_ceiling`."""
    print_table("4c. Section 4's fraction of the matmul peak (batch 128) if everything but the layers took no time", [
        ("precision", "fraction of peak", "layers' share of op time", "ceiling"),
        *[(each["precision"], f"{each['fraction_of_peak']:.1%}", f"{each['layers_share_of_op_time']:.1%}",
           f"{each['ceiling']:.1%}") for each in layers_ceiling(flops, profile)],
    ])


def print_layers_alone(alone):
    """Section 4d's table."""
    print_table(f"4d. vae_mnist's layers timed alone (batch {alone['batch_size']}, forward and the backward pass training "
                "needs) vs the matmul peak of the same precision", [
        ("precision", "layer", "ms per batch", "GFLOP/s", "fraction of peak"),
        *[(run["precision"], layer["layer"], layer["seconds_per_batch"] * 1e3, layer["gflop_per_second"],
           f"{layer['fraction_of_peak']:.1%}") for run in alone["runs"] for layer in run["layers"]],
        *[(run["precision"], "all layers together", "", "", f"{run['all_layers_fraction_of_peak']:.1%}")
          for run in alone["runs"]],
    ])


def print_section_4(results):
    """Sections 4, 4b and, when both ran, 4c."""
    if "achieved_flops" in results:
        print_flops(results["achieved_flops"])
    if "profile_training" in results:
        print_profile(results["profile_training"])
    if "achieved_flops" in results and "profile_training" in results:
        print_ceiling(results["achieved_flops"], results["profile_training"])
    if "layers_alone" in results:
        print_layers_alone(results["layers_alone"])


def print_results(results):
    """One table per section that ran."""
    if "input_pipeline" in results:
        print_sections_1_to_7(results)
    else:
        print_section_4(results)
    if "time_to_quality" in results:
        race = results["time_to_quality"]
        print_table(f"8. Time to a test -ELBO of {race['target_test_negative_elbo']} nats (vae_mnist architecture, training seconds)", [
            ("way", "precision", "reached at epoch", "seconds"),
            *[(way, race[way]["precision"], (race[way]["reached"] or {}).get("epoch", "not reached"),
               (race[way]["reached"] or {}).get("seconds", "")) for way in ("keras_io_way", "keras_ae")],
            ("keras_ae speed-up to the target", "", "", f"{race['speedup']:.2f}x" if race["speedup"] else "n/a"),
            (f"keras_ae speed-up over the first {race['same_epochs_speedup']['epochs']} epochs", "", "",
             f"{race['same_epochs_speedup']['speedup']:.2f}x"),
            ("keras_ae speed-up, epochs to the target x median epoch seconds", "", "",
             f"{typical_seconds(race['keras_io_way']) / typical_seconds(race['keras_ae']):.2f}x"
             if race["speedup"] else "n/a"),
        ])
    if "epoch_ratio" in results:
        ratio = results["epoch_ratio"]
        print_table(f"9. Fresh vae_mnist trainings of {ratio['epochs']} epochs ({ratio['examples']:,} examples, validation "
                    f"included): keras.io's way (float32) vs keras_ae.train ({ratio['keras_ae_precision']})", [
            ("pair", "keras.io's way s", "keras_ae s", "speed-up"),
            *[(index + 1, pair["keras_io_way"], pair["keras_ae"], f"{pair['speedup']:.2f}x")
              for index, pair in enumerate(ratio["pairs"])],
            ("median (min - max)", "", "", f"{ratio['median_speedup']:.2f}x ({ratio['min_speedup']:.2f}-{ratio['max_speedup']:.2f}x)"),
        ])


def typical_seconds(side):
    """A race side's epochs to the target times its median epoch seconds: its time without the one-off stalls of a
    shared VM (single epochs of the same training have taken 15 to 60 s here)."""
    ends = [point["seconds"] for point in side["curve"]]
    return side["reached"]["epoch"] * statistics.median(np.diff([0.0, *ends]))


def print_flops(flops):
    """Section 4's table."""
    print_table(f"4. Achieved training FLOP/s of vae_mnist ({flops['training_flops_per_example'] / 1e6:.1f} MFLOP/example, "
                f"forward x 3) vs a {flops['matmul_size']}^2 matmul of the same precision, measured in alternation", [
        ("precision", "batch size", "examples/s", "achieved GFLOP/s", "matmul peak GFLOP/s", "fraction of peak"),
        *[(run["precision"], run["batch_size"], run["examples_per_second"],
           statistics.median(pair["achieved_flops_per_second"] for pair in run["pairs"]) / 1e9,
           statistics.median(pair["matmul_peak_flops_per_second"] for pair in run["pairs"]) / 1e9,
           f"{run['fraction_of_peak']:.1%}") for run in flops["runs"]],
    ])


def print_profile(profile):
    """Section 4b's tables, one per precision."""
    for run in profile["runs"]:
        print_table(f"4b. Where one epoch of vae_mnist training spends its op time (TensorFlow profiler; {run['precision']}, "
                    f"batch 128; {run['op_seconds']:.2f} s of op time)", [
            ("part", "share of op time", "share of FLOPs", "GFLOP/s achieved"),
            *[(part["part"], f"{part['share_of_op_time']:.1%}", f"{part['share_of_flops']:.1%}" if part["share_of_flops"] else "",
               part["gflop_per_second"] if part["gflop_per_second"] is not None else "") for part in run["parts"]],
        ])


def print_sections_1_to_7(results):
    """Sections 1 to 7, which run together."""
    pipeline = results["input_pipeline"]
    print_table("1. Input pipeline vs vae_mnist training (batch 128, dynamic binarization)", [
        ("measure", "value"),
        ("pipeline images/s (as shipped: tf.data autotuning off)", pipeline["pipeline_images_per_second"]),
        ("pipeline images/s with autotuning on", pipeline["autotuned_pipeline_images_per_second"]),
        ("training examples/s (spe 10)", pipeline["training_examples_per_second"]),
        ("pipeline / training", f"{pipeline['pipeline_over_training']:.1f}x"),
        ("goal >= 10x met", pipeline["goal_met"]),
    ])
    comparison = results["keras_io_comparison"]
    print_table(f"2. keras.io VAE vs keras_ae VAE ({comparison['examples_per_epoch']} examples/epoch, median of repeats)", [
        ("implementation", "examples/s", "vs plain"),
        *[(name, rate, "1.00x" if name == "plain" else f"{comparison['ratio_keras_ae_over_plain'][name]:.2f}x")
          for name, rate in comparison["median_examples_per_second"].items()],
        (f"best keras_ae: {comparison['best_keras_ae']}", "", f"{comparison['best_ratio_over_plain']:.2f}x"),
        ("bfloat16 / float32 at spe 10", "", f"{comparison['bfloat16_speedup_at_spe10']:.2f}x"
         f" ({'helps' if comparison['bfloat16_helps'] else 'does not help'})"),
    ])
    print_table("3. vae_mnist training throughput (batch 128)", [
        ("steps_per_execution", "examples/s"), *[(name[3:], rate) for name, rate in results["vae_mnist_training"].items()],
    ])
    print_section_4(results)
    scaled = results["scaling"]
    print_table("5a. vae_mnist throughput vs batch size (spe 10)", [
        ("batch size", "examples/s"), *scaled["examples_per_second_by_batch_size"].items(),
    ])
    print_table("5b. Peak resident memory of one pass of keras_ae.data.load (fresh process each)", [
        ("split", "examples", "peak MiB after import", "peak MiB after pass"),
        *[(row["split"], row["examples"], row["peak_mib_after_import"], row["peak_mib"]) for row in scaled["memory_by_split"]],
    ])
    print_table("6. Encode throughput, vae_mnist, batch 1000", [("path", "images/s"), *results["inference"].items()])
    memory = results["ratings_memory"]
    print_table(f"7. Peak resident memory of a {memory['shape'][0]:,} x {memory['shape'][1]:,} ratings matrix, one pass of batches of 500", [
        ("measure", "MiB"), ("after import", memory["peak_mib_after_import"]), ("with the sparse matrix", memory["peak_mib_with_matrix"]),
        ("after one pass", memory["peak_mib"]), ("the matrix dense (never made)", memory["dense_float32_mib"]),
    ])


def write_json(results, path):
    """Write `results` to `path` atomically: a temporary file in the same folder, then os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False) as handle:
        json.dump(results, handle, indent=2, default=str)
        handle.write("\n")
    os.chmod(handle.name, 0o644)  # NamedTemporaryFile creates 0600
    os.replace(handle.name, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shrink every section to a smoke test (~2 minutes)")
    parser.add_argument("--output", help="JSON results path (default benchmarks/results.json, or the chosen sections' names joined "
                                           "by _, as benchmarks/time_to_quality.json)")
    parser.add_argument("--time-to-quality", action="store_true", help="run only section 8, the time-to-quality race")
    parser.add_argument("--flops", action="store_true", help="run only section 4, achieved FLOP/s against the matmul peak")
    parser.add_argument("--profile", action="store_true", help="run only section 4b, the profile of one training epoch")
    parser.add_argument("--layers-alone", action="store_true", help="run only section 4d, vae_mnist's layers timed alone")
    parser.add_argument("--epoch-ratio", action="store_true", help="run only section 9, fresh two-epoch trainings in pairs")
    parser.add_argument("--memory-probe", metavar="SPLIT", help=argparse.SUPPRESS)  # internal: child of section 5
    parser.add_argument("--ratings-probe", metavar="USERS,ITEMS,ENTRIES",
                        help="only section 7's measure: peak memory of a synthetic sparse ratings matrix of that size, as JSON")
    args = parser.parse_args(argv)
    if args.memory_probe:
        print(json.dumps(peak_memory_of_iterating(args.memory_probe)))
        return
    if args.ratings_probe:
        print(json.dumps(peak_memory_of_ratings(*(int(part) for part in args.ratings_probe.split(",")))))
        return
    settings = QUICK if args.quick else FULL
    keras.utils.set_random_seed(SEED)
    started = time.perf_counter()
    results = {"metadata": {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "keras_ae": keras_ae.__version__,
        "mode": settings.mode,
        "settings": dataclasses.asdict(settings),
    }}
    sections = (input_pipeline, keras_io_comparison, vae_mnist_training, achieved_flops, profile_training, layers_alone,
                scaling, inference, ratings_memory, time_to_quality, epoch_ratio)
    only = [section for section, chosen in ((achieved_flops, args.flops), (profile_training, args.profile),
                                            (layers_alone, args.layers_alone),
                                            (time_to_quality, args.time_to_quality), (epoch_ratio, args.epoch_ratio)) if chosen]
    sections = only or sections
    args.output = args.output or f"benchmarks/{'_'.join(section.__name__ for section in only) or 'results'}.json"
    section_seconds = results["metadata"]["section_seconds"] = {}
    for section in sections:
        print(f"running {section.__name__} ...", file=sys.stderr, flush=True)
        section_started = time.perf_counter()
        results[section.__name__] = section(settings)
        section_seconds[section.__name__] = round(time.perf_counter() - section_started, 1)
    results["metadata"]["wall_seconds"] = round(time.perf_counter() - started, 1)
    print_results(results)
    write_json(results, args.output)
    print(f"\n{settings.mode} run took {results['metadata']['wall_seconds']} s; results written to {args.output}")


if __name__ == "__main__":
    main()
