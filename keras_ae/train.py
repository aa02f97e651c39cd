"""One training entry point for the zoo scripts and the command: card recipe + strategy -> fit."""

import time

import keras
import tensorflow as tf

from keras_ae import cards, data

STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker", "tpu")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


def resolve_strategy(strategy="auto", tpu=None):
    """A `tf.distribute.Strategy` from a name; `auto` is mirrored over several GPUs, else the default."""
    if isinstance(strategy, tf.distribute.Strategy):
        return strategy
    if strategy not in STRATEGIES:
        raise ValueError(f"Unknown strategy {strategy!r}; expected one of {list(STRATEGIES)}.")
    gpus = tf.config.list_logical_devices("GPU")
    if strategy == "auto":
        strategy = "mirrored" if len(gpus) > 1 else "one_device"
    if strategy == "one_device":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if strategy == "mirrored":
        return tf.distribute.MirroredStrategy()
    if strategy == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu or "local")
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


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
    keras.utils.set_random_seed(recipe.get("seed", 0))
    keras.mixed_precision.set_dtype_policy(precision)
    strategy = resolve_strategy(strategy)
    pipeline = dict(
        binarize=spec.get("binarize"), flatten=spec.get("flatten", False), seed=recipe.get("seed", 0), data_dir=data_dir
    )
    train_data = data.load(spec["dataset"], split=train_split or spec["train_split"], batch_size=batch_size, **pipeline)
    validation_data = data.load(
        spec["dataset"], split=validation_split or spec["test_split"], batch_size=batch_size, shuffle=False, **pipeline
    )
    steps_per_epoch = int(train_data.cardinality())
    with strategy.scope():
        model = cards.build_model(card)
        model.compile(
            optimizer=build_optimizer(recipe, steps_per_epoch, epochs),
            steps_per_execution=recipe.get("steps_per_execution", 1),
        )
    callbacks = list(callbacks)
    if backup_dir:
        callbacks.append(keras.callbacks.BackupAndRestore(str(backup_dir)))
    start = time.perf_counter()
    history = model.fit(train_data, validation_data=validation_data, epochs=epochs, callbacks=callbacks, verbose=verbose)
    wall_time = time.perf_counter() - start
    examples_per_epoch = int(train_data.reduce(0, lambda count, batch: count + tf.shape(tf.nest.flatten(batch)[0])[0]))
    seen = examples_per_epoch * len(history.epoch)
    stats = {
        "epochs": len(history.epoch),
        "wall_time_seconds": round(wall_time, 1),
        "examples_per_second": round(seen / wall_time, 1),
        "strategy": type(strategy).__name__,
        "replicas": strategy.num_replicas_in_sync,
        "precision": precision,
    }
    return model, history, stats
