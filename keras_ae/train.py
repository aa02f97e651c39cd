"""One training path for the zoo scripts and the command: card recipe + strategy -> fit -> a finished preset folder."""

import datetime
import json
import os
import platform
import time
from pathlib import Path

import keras
import tensorflow as tf

from keras_ae import cards, data

STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker", "tpu")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


def resolve_strategy(strategy="auto", tpu=None):
    """A `tf.distribute.Strategy` from a name.

    `auto`: multi-worker when TF_CONFIG names several workers, mirrored over several GPUs, else one device.
    A multi-worker strategy must be made before TensorFlow runs anything else in the process.
    """
    if isinstance(strategy, tf.distribute.Strategy):
        return strategy
    if strategy not in STRATEGIES:
        raise ValueError(f"Unknown strategy {strategy!r}; expected one of {list(STRATEGIES)}.")
    if strategy == "auto" and len(json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {}).get("worker", [])) > 1:
        strategy = "multi_worker"
    if strategy == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if strategy == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu or "local")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    gpus = tf.config.list_logical_devices("GPU")
    if strategy == "mirrored" or (strategy == "auto" and len(gpus) > 1):
        return tf.distribute.MirroredStrategy()
    return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")


def build_optimizer(recipe, steps_per_epoch, epochs):
    """Adam (or the recipe's optimizer) with the recipe's learning-rate schedule and clipping."""
    optimizer = dict(recipe.get("optimizer", {"class_name": "Adam", "config": {"learning_rate": 1e-3}}))
    config = dict(optimizer.get("config", {}))
    schedule = recipe.get("learning_rate_schedule")
    if schedule == "cosine":
        config["learning_rate"] = keras.optimizers.schedules.CosineDecay(
            config.get("learning_rate", 1e-3), decay_steps=steps_per_epoch * epochs, alpha=recipe.get("final_learning_rate_fraction", 0.0)
        )
    elif schedule is not None:
        raise ValueError(f"Unknown learning_rate_schedule {schedule!r}; expected 'cosine' or none.")
    return keras.optimizers.deserialize({"class_name": optimizer["class_name"], "config": config})


def train(
    card,
    strategy="auto",
    epochs=None,
    batch_size=None,
    precision="float32",
    data_dir=None,
    train_split=None,
    validation_split=None,
    callbacks=(),
    backup_dir=None,
    verbose="auto",
):
    """Train a fresh model from a card's recipe; return `(model, history, stats)`.

    Args:
        card: a zoo card dict (see `keras_ae.model_card`).
        strategy: a name from STRATEGIES or a `tf.distribute.Strategy`.
        epochs, batch_size: override the recipe (batch_size is global, across replicas).
        precision: a Keras dtype policy name from PRECISIONS.
        train_split, validation_split: override the card's data splits (e.g. 'train[:5000]').
        backup_dir: where `keras.callbacks.BackupAndRestore` keeps state, so a killed run resumes.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"Unknown precision {precision!r}; expected one of {list(PRECISIONS)}.")
    recipe, spec = card["recipe"], card["data"]
    epochs = epochs or recipe["epochs"]
    batch_size = batch_size or recipe["batch_size"]
    strategy = resolve_strategy(strategy)
    keras.utils.set_random_seed(recipe.get("seed", 0))
    keras.mixed_precision.set_dtype_policy(precision)
    splits = {"train": train_split or spec["train_split"], "validation": validation_split or spec["test_split"]}
    pipeline = dict(
        binarize=spec.get("binarize"), flatten=spec.get("flatten", False), seed=recipe.get("seed", 0), data_dir=data_dir
    )
    examples_per_epoch = data.count(spec["dataset"], splits["train"], data_dir=data_dir)
    steps_per_epoch = -(-examples_per_epoch // batch_size)
    multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    steps_per_execution = recipe.get("steps_per_execution", 1)
    if strategy.num_replicas_in_sync > 1 and not isinstance(strategy, tf.distribute.TPUStrategy):
        steps_per_execution = 1  # keras-team/keras#19246: multi-step execution fails under multi-replica strategies.
    with strategy.scope():
        model = cards.build_model(card)
        model.compile(optimizer=build_optimizer(recipe, steps_per_epoch, epochs), steps_per_execution=steps_per_execution)
        model.optimizer.build(model.trainable_weights)
    callbacks = list(callbacks)
    if backup_dir:
        worker = strategy.cluster_resolver.task_id if multi_worker else 0
        callbacks.append(keras.callbacks.BackupAndRestore(str(backup_dir) if worker == 0 else f"{backup_dir}/worker-{worker}"))
    start = time.perf_counter()
    if multi_worker:
        # Every worker runs the same number of whole global batches, so their collectives line up.
        distributed = {
            role: data.distribute(
                strategy, spec["dataset"], batch_size, split=split, shuffle=role == "train", drop_remainder=True, **pipeline
            )
            for role, split in splits.items()
        }
        history = fit_distributed(
            model, strategy, distributed["train"], distributed["validation"],
            steps=examples_per_epoch // batch_size,
            validation_steps=data.count(spec["dataset"], splits["validation"], data_dir=data_dir) // batch_size,
            epochs=epochs, callbacks=callbacks, verbose=verbose,
        )
    else:
        train_data, validation_data = (
            data.load(spec["dataset"], split=split, batch_size=batch_size, shuffle=role == "train", **pipeline)
            for role, split in splits.items()
        )
        history = model.fit(train_data, validation_data=validation_data, epochs=epochs, callbacks=callbacks, verbose=verbose)
    wall_time = time.perf_counter() - start
    stats = {
        "epochs": epochs,
        "resumed_from_epoch": epochs - len(history.epoch),
        "wall_time_seconds": round(wall_time, 1),
        "examples_per_second": round(examples_per_epoch * len(history.epoch) / wall_time, 1),
        "strategy": type(strategy).__name__,
        "replicas": strategy.num_replicas_in_sync,
        "precision": precision,
        "hardware": hardware(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "date": datetime.date.today().isoformat(),
        "final_losses": {key: round(float(values[-1]), 4) for key, values in history.history.items()},
    }
    return model, history, stats


def hardware():
    """The machine in a few words, for a card's training record."""
    gpus = tf.config.list_physical_devices("GPU")
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, " + (f"{len(gpus)} GPU" if gpus else "no GPU")


def finish(model, card, history, stats, folder):
    """Write a finished training run as a preset folder: the weights, the card with its training record, the curves.

    The card's old metrics are dropped (they measured other weights). Returns the card as written;
    `keras_ae.load(folder)` loads the model back.
    """
    from keras_ae import plot

    fresh = {key: value for key, value in card.items() if key != "metrics"}
    card = cards.save_preset(model, folder, {**fresh, "training": stats})
    plot.training_curves(history, Path(folder) / "training_curves.png")
    return card


def fit_distributed(model, strategy, train_data, validation_data, steps, validation_steps, epochs, callbacks, verbose):
    """`fit` for strategies where Keras' own fails (MultiWorkerMirroredStrategy, keras-team/keras#20585).

    Calls the model's own `train_step`/`test_step` through `strategy.run` over distributed datasets
    (`keras_ae.data.distribute`), a fixed number of steps per epoch so every worker runs the same
    collectives, and drives the usual Keras callbacks.
    """

    @tf.function
    def train_step(batch):
        strategy.run(model.train_step, args=(batch,))

    @tf.function
    def test_step(batch):
        strategy.run(model.test_step, args=(batch,))

    callback_list = keras.callbacks.CallbackList(
        callbacks, add_history=True, add_progbar=verbose not in (0, "0"), model=model,
        verbose=1 if verbose == "auto" else verbose, epochs=epochs, steps=steps,
    )
    model.stop_training = False
    callback_list.on_train_begin()
    initial_epoch = getattr(model, "_initial_epoch", None) or 0
    for epoch in range(initial_epoch, epochs):
        for metric in model.metrics:
            metric.reset_state()
        callback_list.on_epoch_begin(epoch)
        batches = iter(train_data)
        for step in range(steps):
            callback_list.on_train_batch_begin(step)
            train_step(next(batches))
            callback_list.on_train_batch_end(step)
        logs = {metric.name: float(metric.result()) for metric in model.metrics}
        for metric in model.metrics:
            metric.reset_state()
        batches = iter(validation_data)
        for _ in range(validation_steps):
            test_step(next(batches))
        logs.update({f"val_{metric.name}": float(metric.result()) for metric in model.metrics})
        callback_list.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    callback_list.on_train_end()
    return model.history
