"""One training path for the zoo scripts and the command: card recipe + strategy -> fit -> a finished preset folder."""

import dataclasses
import datetime
import hashlib
import itertools
import json
import numbers
import os
import platform
import re
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from keras_ae import cards, data, kinds
from keras_ae.errors import InputError
from keras_ae.schema import PRECISIONS, positive_count

STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker", "tpu")
BACKUP_FINGERPRINT = "backup.json"
KERAS_BACKUP_FILES = ("latest.weights.h5", "training_metadata.json", "latest.weights.h5.bkp", "training_metadata.json.bkp")


def resolve_strategy(strategy="auto", tpu=None):
    """A `tf.distribute.Strategy` from a name.

    `auto`: multi-worker when TF_CONFIG names several workers, mirrored over several GPUs, else TensorFlow's default
    strategy (plain Keras: no distributed dataset in between; on this project's 2-core CPU, `OneDeviceStrategy`'s
    per-device iterator made some epochs 2-3x slower, `scripts/benchmark.py --time-to-quality`). `one_device` pins
    one device explicitly. A multi-worker strategy must be made before TensorFlow runs anything else in the process.
    """
    if isinstance(strategy, tf.distribute.Strategy):
        return strategy
    if strategy not in STRATEGIES:
        raise InputError(f"Unknown strategy {strategy!r}; expected one of {list(STRATEGIES)}.")
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
    if strategy == "auto":
        return tf.distribute.get_strategy()
    return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")


def cpu_flags():
    """The instruction-set flags of this machine's CPU (Linux `/proc/cpuinfo`; empty elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    return next((set(line.partition(":")[2].split()) for line in text.splitlines() if line.startswith("flags")), set())


def computes_bfloat16(strategy):
    """Whether the hardware under `strategy` computes bfloat16 natively: TPUs, NVIDIA GPUs from Ampere (compute
    capability 8.0) on, x86 CPUs with AVX512_BF16 or AMX."""
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return True
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return all(tuple(tf.config.experimental.get_device_details(gpu).get("compute_capability", (0, 0))) >= (8, 0) for gpu in gpus)
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def resolve_precision(precision, strategy):
    """A dtype policy name; `auto` is `mixed_bfloat16` where `computes_bfloat16`, else `float32`."""
    if precision not in PRECISIONS:
        raise InputError(f"Unknown precision {precision!r}; expected one of {list(PRECISIONS)}.")
    if precision != "auto":
        return precision
    return "mixed_bfloat16" if computes_bfloat16(strategy) else "float32"


def build_optimizer(recipe, steps_per_epoch, epochs):
    """Adam at 1e-3 (or the recipe's optimizer) with the recipe's learning-rate schedule and clipping."""
    optimizer = recipe.optimizer or cards.KerasClass(class_name="Adam", config={"learning_rate": 1e-3})
    config = dict(optimizer.config)
    schedule = recipe.learning_rate_schedule
    if schedule == "cosine":
        config["learning_rate"] = keras.optimizers.schedules.CosineDecay(
            config.get("learning_rate", 1e-3), decay_steps=steps_per_epoch * epochs, alpha=recipe.final_learning_rate_fraction
        )
    elif schedule is not None:
        raise InputError(f"Unknown learning_rate_schedule {schedule!r}; expected 'cosine' or none.")
    return keras.optimizers.deserialize({"class_name": optimizer.class_name, "config": config})


def train(
    card,
    strategy="auto",
    epochs=None,
    batch_size=None,
    precision=None,
    data_dir=None,
    train_split=None,
    validation_split=None,
    callbacks=(),
    backup_dir=None,
    verbose="auto",
):
    """Train a fresh model from a card's recipe; return `(model, history, stats)`.

    Args:
        card: a card, a `Card` or its JSON form (see `keras_ae.model_card`); it needs a network section, since the
            recipe's seed and precision apply to the network it builds (see `cards.build_model`).
        strategy: a name from STRATEGIES or a `tf.distribute.Strategy`.
        epochs, batch_size: override the recipe (batch_size is global, across replicas); None keeps the recipe's.
            Either must be a positive integer.
        precision: a name from PRECISIONS; `auto` picks bfloat16 where the hardware computes it natively (see
            `resolve_precision`). None keeps the recipe's `precision`, else `auto`. The card records what was used.
        train_split, validation_split: override the card's data splits (e.g. 'train[:5000]'); the validation split is the
            card's `monitor_split` (what early stopping watches). Without one the run has no validation data: the test
            split is never used for it unless passed here explicitly.
        backup_dir: where `keras.callbacks.BackupAndRestore` keeps state, so a killed run resumes. The folder is bound
            to this run by a fingerprint (`backup.json`, see `backup_fingerprint`): a backup of another card, batch size,
            split or precision is refused, and so is one that has already done `epochs` epochs (see `check_backup`).

    Raises:
        InputError: the card is not valid or lacks a data or recipe section; `epochs` or `batch_size` is not a positive
            integer; `strategy` or `precision` is unknown; `backup_dir` is empty, a file, or holds another run's (or a
            finished run's) backup; early stopping has no validation split; an unknown split; or
            `recipe.initial_weights` names no preset, or one of another network or sha256.
        FileNotFoundError: the card's dataset has no local copy (and TensorFlow Datasets none), or its path does not
            exist.
        ChecksumError: the weights of `recipe.initial_weights` are not the sha256 their card gives.
    """
    card = cards.as_card(card)
    missing = [section for section in ("data", "recipe") if getattr(card, section) is None]
    if missing:
        raise InputError(f"card {card.name!r} has no {' or '.join(missing)} section: a card to train needs both "
                         "(what to train on, and how; see any zoo card, e.g. keras-ae info ae_mnist)")
    recipe, spec = card.recipe, card.data
    epochs = positive_count(recipe.epochs, "the card's recipe.epochs") if epochs is None else positive_count(epochs, "epochs")
    batch_size = (positive_count(recipe.batch_size, "the card's recipe.batch_size") if batch_size is None
                  else positive_count(batch_size, "batch_size"))
    if backup_dir is not None and not str(backup_dir).strip():
        raise InputError("backup_dir must name a folder; got an empty string")
    splits = {"train": spec.train_split if train_split is None else train_split,
              "validation": spec.monitor_split if validation_split is None else validation_split}
    if recipe.early_stopping_patience and splits["validation"] is None:
        raise InputError(f"card {card.name!r}: recipe.early_stopping_patience needs validation data to watch; "
                         "set data.monitor_split (e.g. 'validation' with data.validation_split 0.1)")
    strategy = resolve_strategy(strategy)
    precision = resolve_precision(recipe.precision if precision is None else precision, strategy)
    multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    if backup_dir is not None:
        worker = strategy.cluster_resolver.task_id if multi_worker else 0
        backup_dir = str(backup_dir) if worker == 0 else f"{backup_dir}/worker-{worker}"
        fingerprint = backup_fingerprint(card, splits, batch_size, precision)
        schedule_epochs = epochs if recipe.learning_rate_schedule else None  # a schedule binds the backup to its epochs
        check_backup(backup_dir, fingerprint, epochs, schedule_epochs=schedule_epochs)
    seed = recipe.seed
    kind = kinds.of(cards.task_of(card))
    examples_per_epoch = kind.count(spec, splits["train"], seed=seed, data_dir=data_dir)
    steps_per_epoch = -(-examples_per_epoch // batch_size)
    steps_per_execution = recipe.steps_per_execution
    if strategy.num_replicas_in_sync > 1 and not isinstance(strategy, tf.distribute.TPUStrategy):
        steps_per_execution = 1  # keras-team/keras#19246: multi-step execution fails under multi-replica strategies.
    with strategy.scope():
        model = cards.build_model(card, seed=seed, dtype=keras.DTypePolicy(precision))
        if recipe.initial_weights is not None:  # the preset's weights, its scaling statistics included
            model.load_weights(initial_weights(card))
        elif card.network is not None and card.network.scaling:  # statistics of the training split, kept in the model's own weights
            from keras_ae import networks

            batches = kind.training_data(spec, splits["train"], kinds.READ_BATCH, False, seed, data_dir,
                                         with_labels=False, binarize=None)
            networks.adapt_scaling(model.encoder, model.decoder, batches.as_numpy_iterator())  # one streamed pass
        model.compile(optimizer=build_optimizer(recipe, steps_per_epoch, epochs), steps_per_execution=steps_per_execution)
        model.optimizer.build(model.trainable_weights)
    callbacks = list(callbacks)
    stopping = None
    if recipe.early_stopping_patience:  # stop when validation stops improving; keep the best epoch's weights
        stopping = keras.callbacks.EarlyStopping("val_loss", patience=int(recipe.early_stopping_patience), restore_best_weights=True)
        callbacks.append(stopping)
    if backup_dir is not None:
        write_fingerprint(backup_dir, fingerprint, schedule_epochs)
        callbacks.append(BoundBackup(backup_dir))
    start = time.perf_counter()
    if multi_worker:
        # Every worker runs the same number of whole global batches, so their collectives line up.
        def distributed(split, shuffle):
            return strategy.distribute_datasets_from_function(lambda context: kind.training_data(
                spec, split, context.get_per_replica_batch_size(batch_size), shuffle, seed, data_dir, input_context=context,
                drop_remainder=True,
            ))

        history = fit_distributed(
            model, strategy, distributed(splits["train"], True),
            distributed(splits["validation"], False) if splits["validation"] else None,
            steps=examples_per_epoch // batch_size,
            validation_steps=kind.count(spec, splits["validation"], seed, data_dir) // batch_size if splits["validation"] else 0,
            epochs=epochs, callbacks=callbacks, verbose=verbose,
        )
    else:
        train_data, validation_data = (
            None if split is None else kind.training_data(spec, split, batch_size, role == "train", seed, data_dir)
            for role, split in splits.items()
        )
        history = model.fit(train_data, validation_data=validation_data, epochs=epochs, callbacks=callbacks, verbose=verbose,
                            shuffle=False)  # the stream shuffles itself; Keras 3.15 warns that its own shuffle is ignored
    wall_time = time.perf_counter() - start
    kind.adapt(model, spec, data_dir)
    kept = int(np.argmin(history.history["val_loss"])) if stopping is not None and history.epoch else -1
    stats = {
        "epochs": epochs,
        "resumed_from_epoch": history.epoch[0] if history.epoch else epochs,
        **({"stopped_at_epoch": history.epoch[-1] + 1, "best_epoch": history.epoch[kept] + 1} if kept >= 0 else {}),
        "wall_time_seconds": round(wall_time, 1),
        "examples_per_second": round(examples_per_epoch * len(history.epoch) / wall_time, 1),
        "strategy": type(strategy).__name__.strip("_"),
        "replicas": strategy.num_replicas_in_sync,
        "precision": precision,
        "hardware": hardware(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "date": datetime.date.today().isoformat(),
        # the losses of the epoch whose weights are kept: the best one where early stopping restored it
        "final_losses": {key: round(float(values[kept]), 4) for key, values in history.history.items()},
    }
    return model, history, stats


def initial_weights(card):
    """The verified weights file a fine-tuning recipe starts from.

    `recipe.initial_weights` names a preset (any source `keras_ae.load` takes) with the card's own network, and pins
    its weights by sha256, so a retrained preset cannot silently change what the recipe trains.
    """
    start = card.recipe.initial_weights
    preset = cards.find_preset(start.preset)
    field = f"card {card.name!r}: recipe.initial_weights.preset {start.preset!r}"
    theirs, ours = (None if each.network is None else each.network.to_json() for each in (preset.card, card))
    if theirs != ours:
        raise InputError(f"{field} has network {json.dumps(theirs)}, but this card's is "
                         f"{json.dumps(ours)}; fine-tuning starts from weights of the same network")
    if preset.card.weights.sha256 != start.sha256:
        raise InputError(f"{field} has weights with sha256 {preset.card.weights.sha256}, but the recipe asks for "
                         f"{start.sha256}: the preset was retrained; pin its new sha256 to fine-tune from it")
    return preset.fetch_weights()


def backup_fingerprint(card, splits, batch_size, precision):
    """What a training backup belongs to: a sha256 per card section, as this run uses it.

    The data section holds the splits actually used and the recipe the global batch size actually used (the saved
    step counters and schedules count its batches); the epochs are left out, since resuming with more is the point
    (unless a learning-rate schedule spans them: see `check_backup`).
    """
    sections = {
        "model": card.model.to_json(),
        "network": None if card.network is None else card.network.to_json(),
        "data": {**card.data.to_json(), "train_split": splits["train"], "monitor_split": splits["validation"]},
        "recipe": {**card.recipe.without("epochs").to_json(), "batch_size": batch_size},
        "precision": precision,
    }
    return {name: hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest() for name, value in sections.items()}


def check_backup(folder, fingerprint, epochs, schedule_epochs=None):
    """Refuse a backup folder that holds another run's backup, files of its own, or a run already `epochs` long.

    `schedule_epochs`: the epochs a learning-rate schedule decays over; a backup whose schedule spans another count is
    refused, since resuming it would change the decay mid-run and match no single run.

    Returns the epochs the backup has done (0 for an absent or empty folder). Leaves the folder as it is.
    """
    folder = Path(folder)
    fix = f"use another --backup-dir or delete {folder}"
    if not folder.exists():
        return 0
    if not folder.is_dir():
        raise InputError(f"The backup folder {folder} is a file, not a folder; {fix}")
    names = {entry.name for entry in folder.iterdir()}
    foreign = sorted(
        name for name in names
        if name not in KERAS_BACKUP_FILES and not name.startswith(BACKUP_FINGERPRINT) and not re.fullmatch(r"worker-\d+", name)
    )
    if foreign:
        raise InputError(
            f"The backup folder {folder} holds files that are not a training backup ({', '.join(foreign[:3])}"
            f"{', ...' if len(foreign) > 3 else ''}), and a finished training deletes its backup folder; give a new or empty --backup-dir"
        )
    if not names & set(KERAS_BACKUP_FILES):
        return 0
    try:
        record = json.loads((folder / BACKUP_FINGERPRINT).read_text())
        saved = record["sections"]
    except FileNotFoundError:
        raise InputError(
            f"The backup folder {folder} holds a Keras backup without {BACKUP_FINGERPRINT}, so what it backs up is unknown; {fix}"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise InputError(f"The backup folder {folder} has an unreadable {BACKUP_FINGERPRINT} ({error}); {fix}") from None
    if not isinstance(saved, dict):
        raise InputError(f"The backup folder {folder} has an unreadable {BACKUP_FINGERPRINT}; {fix}")
    differ = [name for name in fingerprint if saved.get(name) != fingerprint[name]]
    if differ:
        raise InputError(f"The backup folder {folder} holds the backup of another training run (it differs in: {', '.join(differ)}); {fix}")
    if schedule_epochs is not None and record.get("schedule_epochs") != schedule_epochs:
        raise InputError(
            f"The backup folder {folder} holds a run whose learning-rate schedule decays over {record.get('schedule_epochs')} "
            f"epochs, and {schedule_epochs} were asked for: resuming would change the decay mid-run; resume with "
            f"--epochs {record.get('schedule_epochs')}, or delete {folder} to train afresh"
        )
    metadata = folder / "training_metadata.json"
    try:
        done = int(json.loads(metadata.read_text())["epoch"]) if metadata.exists() else 0
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise InputError(f"The backup folder {folder} has an unreadable training_metadata.json ({error}); delete {folder} to train afresh") from None
    if epochs <= done:
        raise InputError(
            f"The backup folder {folder} holds a run that has already done {done} epochs, and {epochs} were asked for; "
            f"ask for more than {done} epochs (--epochs) to go on, or delete {folder} to train afresh"
        )
    return done


def write_fingerprint(folder, fingerprint, schedule_epochs=None):
    """Bind a backup folder to its run (and to the epochs its learning-rate schedule spans): write `backup.json` into it
    (atomically) unless it already holds this one."""
    folder = Path(folder)
    path = folder / BACKUP_FINGERPRINT
    record = {"sections": fingerprint, **({"schedule_epochs": schedule_epochs} if schedule_epochs is not None else {})}
    if path.exists():
        try:
            if json.loads(path.read_text()) == record:
                return
        except (OSError, ValueError, AttributeError):
            pass
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f"{BACKUP_FINGERPRINT}.{os.getpid()}.partial"
    partial.write_text(json.dumps(record, indent=2, sort_keys=True))
    os.replace(partial, path)


class BoundBackup(keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` that, when training ends, deletes only its own files and then its folder if that is empty.

    Keras' own deletes the whole folder, which under MultiWorkerMirroredStrategy pulls the worker folders inside the
    chief's from under workers still writing their last epoch; here whichever of them finishes last removes the folder.
    """

    def on_train_end(self, logs=None):
        if not self.delete_checkpoint:
            return
        folder = Path(self.backup_dir)
        for name in (*KERAS_BACKUP_FILES, BACKUP_FINGERPRINT):
            (folder / name).unlink(missing_ok=True)
        for each in (folder, folder.parent) if re.fullmatch(r"worker-\d+", folder.name) else (folder,):
            try:
                each.rmdir()
            except OSError:  # not empty: another worker is not done yet, and removes it when it is
                pass


def hardware():
    """The machine in a few words, for a card's training record."""
    gpus = tf.config.list_physical_devices("GPU")
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, " + (f"{len(gpus)} GPU" if gpus else "no GPU")


def finish(model, card, history, stats, folder, data_dir=None):
    """Write a finished training run as a preset folder: the weights, the card with its training record, the curves.

    The card's old metrics are dropped (they measured other weights). A card with an `anomaly` section gets its
    threshold from the training split only (see `anomaly_threshold`), scored by the preset as users load it (float32,
    whatever precision trained it). `card` is a `Card` or its JSON form. Returns the card as written, in its JSON form;
    `keras_ae.load(folder)` loads the model back.
    Every file is written into a folder beside `folder` that then replaces it whole (`cards.writing_preset`): a
    concurrent writer of the same folder is refused, and a reader never sees a card without its threshold.

    Raises:
        InputError: the run logged no epochs, `card` is not a valid card, or `folder` is a file or holds files that are
            not a preset's, or another keras-ae process or thread is writing it.
    """
    from keras_ae import plot

    logs = history.history if hasattr(history, "history") else history
    if not any(logs.values()):
        raise InputError(f"The training run logged no epochs, so there is nothing to write to {folder}")
    fresh = cards.as_card(card).without("metrics")
    with cards.writing_preset(folder) as staging:
        card = cards.write_preset(model, staging, dataclasses.replace(fresh, training=stats))
        if card.anomaly is not None:
            reloaded = cards.load(staging, dtype="float32")
            card = dataclasses.replace(card, anomaly=dataclasses.replace(card.anomaly, **anomaly_threshold(reloaded, card, data_dir)))
            cards.write_card(card, staging / cards.CARD_FILE)
        plot.training_curves(history, staging / "training_curves.png")
    return card.to_json()


THRESHOLD_RULES = {
    "percentile": "the {percentile}th percentile of the scores of the normal examples of the training split {split!r}",
    "mean_plus_std": "the mean plus one standard deviation of the scores of the normal examples of the training split "
                     "{split!r} (TensorFlow's autoencoder tutorial; no anomaly labels)",
    "best_accuracy": "the score that classifies the labelled training split {split!r} (normal and anomalous) best",
}


def anomaly_threshold(model, card, data_dir=None):
    """The score above which an example is called anomalous, from the card's training split only, and how it was chosen;
    for `anomaly.score` "reconstruction+code", first its code score, fitted on the split's normal examples.

    `anomaly.threshold_rule` "percentile" (default): that `percentile` of the scores of the normal training examples;
    "mean_plus_std": their mean plus one standard deviation; "best_accuracy": the threshold that classifies the whole
    labelled training split best. Returns `{"threshold": ..., "threshold_source": ...}` (and `"code_score"`).
    """
    from keras_ae import anomaly

    card = cards.as_card(card)
    settings = card.anomaly
    rule = settings.threshold_rule
    if rule not in THRESHOLD_RULES:
        raise InputError(f"Unknown anomaly.threshold_rule {rule!r}; expected one of {sorted(THRESHOLD_RULES)}.")
    split = card.data.train_split
    examples, labels = kinds.of(cards.task_of(card)).arrays(card, split, data_dir=data_dir, every_label=rule == "best_accuracy")
    normal = labels == np.asarray(settings.normal_label, dtype=labels.dtype) if rule == "best_accuracy" else np.ones(len(examples), bool)
    fitted = {}
    if settings.score == "reconstruction+code":
        fitted = {"code_score": anomaly.CodeScore.fit(model, examples[normal]).to_json()}
        settings = dataclasses.replace(settings, **fitted)
    scores = anomaly.preset_scores(model, settings, examples)
    source = THRESHOLD_RULES[rule].format(percentile=settings.percentile, split=split)
    if rule == "percentile":
        threshold = np.percentile(scores, settings.percentile)
    elif rule == "mean_plus_std":
        threshold = np.mean(scores) + np.std(scores)
    else:
        candidates = np.sort(scores)
        accuracy = [np.mean((scores <= threshold) == normal) for threshold in candidates]
        threshold = candidates[int(np.argmax(accuracy))]
    return {**fitted, "threshold": float(threshold), "threshold_source": source}


READ_OPTIONS_FOR = {"image_size": "a folder of images", "color_mode": "a folder of images", "label_column": "a table",
                    "columns": "a table", "header": "a table"}  # what each of `card_for_data`'s read options reads


def minimum_examples(validation_split):
    """The fewest examples of which a seeded `validation_split` holds out at least one and leaves at least one to train on."""
    start = max(2, int(0.5 / validation_split) - 1)  # below it, round(size * validation_split) is 0
    return next(size for size in itertools.count(start) if 1 <= int(round(size * validation_split)) < size)


MIN_THRESHOLD_EXAMPLES = 10  # normal training examples `card_for_data` asks for to set a threshold from their scores


def _check_enough_examples(source, labels, size, validation_split, normal_label, percentile):
    """Refuse data too small for the held-out part `card_for_data` measures the preset on, or, with `normal_label`, for a
    percentile threshold from the normal training examples; the message gives the numbers."""
    held_out = len(data.local_split_indices(size, "validation", None, None, validation_split, 0))
    training = data.local_split_indices(size, "train", None, None, validation_split, 0)
    if not held_out or not len(training):
        raise InputError(f"{source} holds {size} example{'s' * (size != 1)}; {validation_split:.0%} of them (at least 1) are "
                         f"held out to measure the preset and the rest trained on, so it needs at least "
                         f"{minimum_examples(validation_split)} examples.")
    if normal_label is None:
        return
    if labels is None:
        raise InputError(f"{source} has no labels (no class subfolders, label_column or labels array) for normal_label.")
    labels = labels.astype(np.int64) if labels.dtype.kind in "iu" else labels
    normal = len(data.kept_indices(labels, training, normal_label, source))
    if normal < MIN_THRESHOLD_EXAMPLES:
        raise InputError(f"{source}: label {normal_label!r} marks {normal} of the {len(training)} training examples; the anomaly "
                         f"threshold (the {percentile:g}th percentile of their scores) needs at least {MIN_THRESHOLD_EXAMPLES} "
                         "(with one, it is that one score): give more examples of that label.")


# What training on one's own data uses unless told otherwise, per example shape: the recipes the anomaly suites measured
# (scripts/anomaly_benchmark.py; docs/applications.md). Rows: anomaly.Detector's dense autoencoder; images: its conv one.
OWN_DATA_DEFAULTS = {
    "rows": {"network": "dense", "hidden_units": (64, 32), "latent_dim": 8, "epochs": 50, "batch_size": 64},
    "images": {"network": "conv", "latent_dim": 32, "epochs": 20, "batch_size": 128},
}


def own_data_defaults(example_shape):
    """`OWN_DATA_DEFAULTS` for examples of this shape: images for (height, width, channels), rows otherwise."""
    return OWN_DATA_DEFAULTS["images" if len(example_shape) == 3 else "rows"]


PRESET_SCORES = ("reconstruction", "reconstruction+code")  # the anomaly scores a card can name (see keras_ae.anomaly)


def card_for_data(
    source, family="ae", network=None, latent_dim=None, epochs=None, batch_size=None, validation_split=0.1,
    normal_label=None, threshold_percentile=None, name=None, threshold_rule="percentile", contamination=None, start_from=None,
    score=None, **read_options,
):
    """A card that trains a family on the user's own data (a folder of images, an array, a table, a Parquet or TFRecord file).

    The network's input shape is read from the data; `network`, `latent_dim`, `epochs` and `batch_size` default to
    `OWN_DATA_DEFAULTS` for its kind (rows: a dense network of hidden layers 64 and 32, code 8, 50 epochs of batches
    of 64; images: a conv network, code 32, 20 epochs of 128). Tables and signals get min-max scaling inside the
    model; a seeded `validation_split` is held out. A table's header (False without one; a Parquet file's columns) is recorded beside its
    label column, so the preset reads tables of that layout by itself and refuses others. With `normal_label` (for
    a folder, a class folder's name or index), training uses only that label's examples and the card's `anomaly`
    section asks `finish` for a threshold at `threshold_percentile` (default 99).

    `threshold_rule`: "percentile" (of the normal training scores), "mean_plus_std" (TensorFlow's tutorial's rule) or
    "best_accuracy" (the threshold that classifies the labelled training data best; it needs anomalies in it);
    `contamination`, the expected share of anomalies as PyOD users give it, stands for the percentile 100 x (1 - it).
    `score` (with `normal_label`): the anomaly score the preset scores with and thresholds, one of
    `anomaly.PRESET_SCORES`; default "reconstruction+code" for images with an `Autoencoder` (what the image suites
    chose), "reconstruction" otherwise (what the signal suites chose for one dense network; see docs/applications.md).
    "reconstruction+code" is for families whose score is a reconstruction error (ae, dae, sae, vqvae).
    `start_from`: fine-tune a preset (any source `keras_ae.load` takes) on this data: its family, network and weights
    (pinned by sha256 in `recipe.initial_weights`); the data must have its input shape.

    Refused before anything trains: read options the source does not use (`image_size` or `color_mode` off a folder of
    images, `label_column`, `columns` or `header` off a table), `threshold_percentile` without `normal_label`, a 1-D
    array, and data too small for a held-out example and a training one (see `minimum_examples`) or, with
    `normal_label`, with fewer than `MIN_THRESHOLD_EXAMPLES` of that label to set its threshold.

    Raises:
        InputError: an unknown family, score or threshold rule; a score without `normal_label`, or a code score for a
            family whose score is no reconstruction error; a read option the source does not use; `contamination` or
            `threshold_percentile` out of range, given together or without `normal_label`; a 1-D array; too few examples
            (of `normal_label`); a `start_from` that is no preset source, or one of another input shape, or without a
            network section or weights.
        FileNotFoundError: `source` is no existing file or folder, nor a dataset with a local copy.
    """
    from keras_ae import file_formats, files
    from keras_ae.models import by_short_name

    tasks = by_short_name()
    if family not in tasks:
        raise InputError(f"Unknown family {family!r}; expected one of {sorted(tasks)}.")
    task = tasks[family]
    family_class = task.family
    read_options = {key: value for key, value in read_options.items() if value is not None}
    kind = data.path_kind(source)
    idle = [key for key in read_options if kind is not None and READ_OPTIONS_FOR.get(key, kind) != kind]
    if idle:
        raise InputError(f"{idle[0]} is for {READ_OPTIONS_FOR[idle[0]]}; {source} is {kind}, so it would do nothing: drop it.")
    if threshold_rule not in THRESHOLD_RULES:
        raise InputError(f"Unknown threshold rule {threshold_rule!r}; expected one of {sorted(THRESHOLD_RULES)}.")
    if contamination is not None:
        if threshold_percentile is not None or threshold_rule != "percentile":
            raise InputError("contamination sets the percentile threshold (100 x (1 - the expected share of anomalies)); give it "
                             "alone, without threshold_percentile or another threshold rule")
        if isinstance(contamination, bool) or not isinstance(contamination, numbers.Real) or not 0.0 < float(contamination) < 0.5:
            raise InputError(f"contamination is the expected share of anomalies, between 0 and 0.5; got {contamination!r}.")
        threshold_percentile = 100.0 * (1.0 - float(contamination))
    if (threshold_percentile is not None or threshold_rule != "percentile") and normal_label is None:
        raise InputError("a threshold (its percentile, rule or contamination) is set for a detector of normal_label's examples; "
                         "without normal_label nothing is thresholded: drop it, or give normal_label.")
    if score is not None and normal_label is None:
        raise InputError(f"the anomaly score {score!r} is for a detector of normal_label's examples; without normal_label "
                         "nothing is scored: drop it, or give normal_label.")
    if score is not None and score not in PRESET_SCORES:
        raise InputError(f"Unknown anomaly score {score!r}; expected one of {list(PRESET_SCORES)}.")
    if threshold_percentile is not None and threshold_rule != "percentile":
        raise InputError(f"threshold_percentile is for the percentile rule, not {threshold_rule!r}: drop one of them.")
    threshold_percentile = 99.0 if threshold_percentile is None else float(threshold_percentile)
    if not 0.0 <= threshold_percentile <= 100.0:
        raise InputError(f"threshold_percentile must be a percentile from 0 to 100; got {threshold_percentile!r}.")
    if normal_label is not None and kind == "a folder of images":  # a class folder's name stands for its index
        names = [folder.name for folder in files.class_folders_of(source)]
        normal_label = names.index(normal_label) if normal_label in names else normal_label
    if data.is_path(source):
        found = data.source_of(source, "train", **read_options)  # one streamed pass, for its shape and its counts
        if not found.example_shape:
            raise InputError(f"{source} is a 1-D array of {found.count} values; expected an array of 2 or more dimensions, "
                             "one example per row (e.g. array.reshape(-1, 1) for one value per example).")
        _check_enough_examples(source, found.labels, found.count, validation_split, normal_label, threshold_percentile)
        input_shape = list(found.example_shape)
    else:
        first = next(iter(data.load(source, batch_size=1, shuffle=False, validation_split=validation_split, **read_options)))
        input_shape = list(first.shape[1:])
    if Path(source).suffix.lower() in data.TABLE_SUFFIXES:
        read_options["header"] = files.table_header(source, read_options.get("header", "infer"))
    if Path(source).suffix.lower() in file_formats.PARQUET_SUFFIXES:
        read_options["header"] = file_formats.parquet_columns(source)
    images = len(input_shape) == 3
    defaults = own_data_defaults(input_shape)
    network = defaults["network"] if network is None else network
    latent_dim = defaults["latent_dim"] if latent_dim is None else latent_dim
    epochs = defaults["epochs"] if epochs is None else epochs
    batch_size = defaults["batch_size"] if batch_size is None else batch_size
    architecture = {"kind": network, "input_shape": input_shape, "latent_dim": latent_dim,
                    **({"hidden_units": list(defaults["hidden_units"])} if network == "dense" and "hidden_units" in defaults else {}),
                    **task.network_options.get("*", {}), **task.network_options.get(network, {})}
    if not images and network in ("dense", "conv1d"):
        architecture["scaling"] = "minmax"
    dataset = str(Path(source).expanduser().resolve())
    card = cards.Card.from_json({
        "name": re.sub(r"[^a-z0-9_]+", "_", (name or Path(source).stem).lower()).strip("_") or "model",
        "description": f"{family_class.__name__} ({network} network, code {latent_dim}) trained with keras-ae train --data on {source}.",
        "model": {"class_name": family_class.__name__, "config": {"seed": 0, **({} if images else task.options_off_images)}},
        "network": architecture,
        # the held-out part is this card's test split: training never sees it and makes no choice on it (no monitor split)
        "data": {
            "dataset": dataset, "train_split": "train", "test_split": "validation", "validation_split": validation_split,
            **read_options, **({} if normal_label is None else {"only_label": normal_label}),
        },
        "recipe": {"epochs": epochs, "batch_size": batch_size, "optimizer": {"class_name": "Adam", "config": {"learning_rate": 1e-3}}, "seed": 0},
        "weights": {"file": cards.WEIGHTS_FILE},
        **({} if normal_label is None else {"anomaly": {
            "normal_label": normal_label, "threshold_rule": threshold_rule,
            **({"percentile": threshold_percentile} if threshold_rule == "percentile" else {}),
        }}),
    })
    if start_from is not None:
        card = cards.Card.from_json(_fine_tuning(card, start_from, input_shape, dataset).to_json())  # checked as a whole
    if normal_label is not None:
        card = dataclasses.replace(card, anomaly=dataclasses.replace(card.anomaly, score=_anomaly_score(card, score, images)))
    return card.to_json()


def _anomaly_score(card, score, images):
    """The anomaly score of a card for one's own data: `score`, or the suites' pick for the card's family and kind."""
    family = cards.model_class(card)
    if score is None:
        return "reconstruction+code" if images and vars(cards.task_of(card)).get("short_name") == "ae" else "reconstruction"
    if score == "reconstruction+code" and not family.error_score:
        raise InputError(f"score 'reconstruction+code' takes the log of a reconstruction error; {family.__name__}'s anomaly score "
                         "is not one (it can be negative, or needs labels): use score 'reconstruction'.")
    return score


def _fine_tuning(card, start_from, input_shape, dataset):
    """`card` (for the user's data) made to fine-tune the preset `start_from`: its family, network and weights."""
    preset = cards.find_preset(start_from).card
    if preset.network is None:
        raise InputError(f"{start_from} has no network section in its card (a hand-built model): it cannot be fine-tuned "
                         "from the command; load it and call fit.")
    if list(preset.network.input_shape) != list(input_shape):
        raise InputError(f"{start_from} takes examples of shape {tuple(preset.network.input_shape)}; the data's are {tuple(input_shape)}: "
                         "resize the images (--image-size) or choose a preset of your data's shape.")
    if not preset.weights.sha256:
        raise InputError(f"{start_from} has no trained weights (its card pins no sha256) to fine-tune from.")
    recipe = dataclasses.replace(card.recipe, optimizer=cards.KerasClass.from_json({"class_name": "Adam", "config": {"learning_rate": 3e-4}}),
                                 initial_weights=cards.InitialWeights(preset=str(start_from), sha256=preset.weights.sha256))
    description = f"{preset.model.class_name} fine-tuned from {start_from} with keras-ae train --from on {dataset}."
    return dataclasses.replace(card, model=preset.model, network=preset.network, description=description, recipe=recipe)


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
