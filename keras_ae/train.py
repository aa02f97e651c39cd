"""One training path for the zoo scripts and the command: card recipe + strategy -> fit -> a finished preset folder."""

import datetime
import json
import os
import platform
import re
import time
from pathlib import Path

import keras
import numpy as np
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
        train_split, validation_split: override the card's data splits (e.g. 'train[:5000]'); the validation split is the
            card's `monitor_split` (what early stopping watches), else its `test_split`.
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
    splits = {"train": train_split or spec["train_split"], "validation": validation_split or spec.get("monitor_split", spec["test_split"])}
    pipeline = dict(data.card_options(spec), seed=recipe.get("seed", 0), data_dir=data_dir)
    examples_per_epoch = data.count(spec["dataset"], splits["train"], **pipeline)
    steps_per_epoch = -(-examples_per_epoch // batch_size)
    multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    steps_per_execution = recipe.get("steps_per_execution", 1)
    if strategy.num_replicas_in_sync > 1 and not isinstance(strategy, tf.distribute.TPUStrategy):
        steps_per_execution = 1  # keras-team/keras#19246: multi-step execution fails under multi-replica strategies.
    with strategy.scope():
        model = cards.build_model(card)
        if card["network"].get("scaling"):  # statistics of the training split, kept in the model's own weights
            from keras_ae import evaluate, networks

            training_examples = evaluate.split_arrays(card, splits["train"], data_dir=data_dir, every_label=False)[0]
            networks.adapt_scaling(model.encoder, model.decoder, training_examples)
        model.compile(optimizer=build_optimizer(recipe, steps_per_epoch, epochs), steps_per_execution=steps_per_execution)
        model.optimizer.build(model.trainable_weights)
    callbacks = list(callbacks)
    stopping = None
    if recipe.get("early_stopping_patience"):  # stop when validation stops improving; keep the best epoch's weights
        stopping = keras.callbacks.EarlyStopping("val_loss", patience=int(recipe["early_stopping_patience"]), restore_best_weights=True)
        callbacks.append(stopping)
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
            validation_steps=data.count(spec["dataset"], splits["validation"], **pipeline) // batch_size,
            epochs=epochs, callbacks=callbacks, verbose=verbose,
        )
    else:
        train_data, validation_data = (
            data.load(spec["dataset"], split=split, batch_size=batch_size, shuffle=role == "train", **pipeline)
            for role, split in splits.items()
        )
        history = model.fit(train_data, validation_data=validation_data, epochs=epochs, callbacks=callbacks, verbose=verbose)
    wall_time = time.perf_counter() - start
    if spec.get("ratings"):  # a trained recommender keeps the dataset's ids (and what it recommends from) in its weights
        from keras_ae import ratings

        model.adapt_to(ratings.card_split(spec, data_dir))
    stats = {
        "epochs": epochs,
        "resumed_from_epoch": history.epoch[0] if history.epoch else epochs,
        **({"stopped_at_epoch": history.epoch[-1] + 1, "best_epoch": history.epoch[int(np.argmin(history.history["val_loss"]))] + 1}
           if stopping is not None and history.epoch else {}),
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


def finish(model, card, history, stats, folder, data_dir=None):
    """Write a finished training run as a preset folder: the weights, the card with its training record, the curves.

    The card's old metrics are dropped (they measured other weights). A card with an `anomaly` section gets
    its threshold from the training split only (see `anomaly_threshold`). Returns the card as written;
    `keras_ae.load(folder)` loads the model back.
    """
    from keras_ae import plot

    fresh = {key: value for key, value in card.items() if key != "metrics"}
    if card.get("anomaly"):
        fresh["anomaly"] = {**card["anomaly"], "threshold": anomaly_threshold(model, card, data_dir)}
    card = cards.save_preset(model, folder, {**fresh, "training": stats})
    plot.training_curves(history, Path(folder) / "training_curves.png")
    return card


def anomaly_threshold(model, card, data_dir=None):
    """The score above which an example is called anomalous, from the card's training split only.

    `anomaly.threshold_rule` "percentile" (default): that `percentile` of the scores of the normal training
    examples; "best_accuracy": the threshold that classifies the whole labelled training split best.
    """
    from keras_ae import anomaly, evaluate

    rule = card["anomaly"].get("threshold_rule", "percentile")
    examples, labels = evaluate.split_arrays(card, card["data"]["train_split"], data_dir=data_dir, every_label=rule != "percentile")
    scores = anomaly.anomaly_scores(model, examples)
    if rule == "percentile":
        return float(np.percentile(scores, card["anomaly"].get("percentile", 99.0)))
    if rule != "best_accuracy":
        raise ValueError(f"Unknown anomaly.threshold_rule {rule!r}; expected 'percentile' or 'best_accuracy'.")
    normal = labels == np.asarray(card["anomaly"]["normal_label"], dtype=labels.dtype)
    candidates = np.sort(scores)
    accuracy = [np.mean((scores <= threshold) == normal) for threshold in candidates]
    return float(candidates[int(np.argmax(accuracy))])


def card_for_data(
    source, family="ae", network="dense", latent_dim=32, epochs=20, batch_size=128, validation_split=0.1,
    normal_label=None, threshold_percentile=99.0, name=None, **read_options,
):
    """A card that trains a family on the user's own data (a folder of images, an array or a table).

    The network's input shape is read from the data; tables and signals get min-max scaling inside the
    model; a seeded `validation_split` is held out. With `normal_label` (for a folder, a class folder's name or
    index), training uses only that label's examples and the card's `anomaly` section asks `finish` for a
    threshold at `threshold_percentile`.
    """
    from keras_ae.models import by_short_name

    families = by_short_name()
    if family not in families:
        raise ValueError(f"Unknown family {family!r}; expected one of {sorted(families)}.")
    family_class = families[family]
    read_options = {key: value for key, value in read_options.items() if value is not None}
    first = next(iter(data.load(source, batch_size=1, shuffle=False, validation_split=validation_split, **read_options)))
    input_shape = list(first.shape[1:])
    images = len(input_shape) == 3
    architecture = {"kind": network, "input_shape": input_shape, "latent_dim": latent_dim, **family_class.network_options.get("*", {}),
                    **family_class.network_options.get(network, {})}
    if not images and network in ("dense", "conv1d"):
        architecture["scaling"] = "minmax"
    card = {
        "name": re.sub(r"[^a-z0-9_]+", "_", (name or Path(source).stem).lower()).strip("_") or "model",
        "description": f"{family_class.__name__} ({network} network, code {latent_dim}) trained with keras-ae train --data on {source}.",
        "model": {"class_name": family_class.__name__, "config": {"seed": 0, **({} if images else family_class.options_off_images)}},
        "network": architecture,
        "data": {
            "dataset": str(Path(source).expanduser().resolve()), "train_split": "train", "test_split": "validation",
            "validation_split": validation_split, **read_options,
        },
        "recipe": {"epochs": epochs, "batch_size": batch_size, "optimizer": {"class_name": "Adam", "config": {"learning_rate": 1e-3}}, "seed": 0},
        "weights": {"file": cards.WEIGHTS_FILE},
    }
    if normal_label is not None and Path(source).is_dir():  # a class folder's name stands for its index
        from keras_ae import files

        names = [folder.name for folder in files.class_folders_of(source)]
        normal_label = names.index(normal_label) if normal_label in names else normal_label
    if normal_label is not None:
        card["data"]["only_label"] = normal_label
        card["anomaly"] = {"normal_label": normal_label, "threshold_rule": "percentile", "percentile": threshold_percentile}
    return cards.validate(card)


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
