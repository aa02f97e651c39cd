"""The `keras-ae` command: the zoo from a shell, thin over the library.

Commands that take a model take any source `keras_ae.load` takes: a zoo name, a preset folder,
an http(s) URL of one, or hf://owner/repo[@revision]. A command a model's family does not support
(`sample` on a plain autoencoder) is refused by asking the family, before anything is loaded.
"""

import argparse
import contextlib
import csv
import json
import logging
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from keras_ae import __version__
from keras_ae.errors import InputError, MissingExtraError, carried_input_error


@contextlib.contextmanager
def quiet_tensorflow(verbose):
    """Import TensorFlow without its C++ log lines, unless asked (`--verbose`, or the user's own TF_CPP_MIN_LOG_LEVEL below 3).

    TF_CPP_MIN_LOG_LEVEL=3 hides the later notices (CPU features, cuInit); the lines TensorFlow writes
    before its logger starts (oneDNN, CUDA stubs) ignore it, so standard error is closed while it imports.
    """
    if verbose or os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3") != "3":
        yield
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            import tensorflow as tf
        tf.get_logger().setLevel("ERROR")
        logging.getLogger("absl").setLevel(logging.ERROR)  # TensorFlow Datasets' notices
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    yield


def _family(source, verb):
    """The card and the family's task of a source, refusing a command the family's task does not support."""
    from keras_ae import cards

    card = cards.find_preset(source).card
    task = cards.task_of(card)
    if verb not in task.commands():
        raise InputError(
            f"{source} ({task.family.__name__}) does not support `keras-ae {verb}`; its family's commands: {', '.join(task.commands())}"
        )
    return card, task


def command_list(args):
    from keras_ae import cards

    for name in cards.list_models(args.pattern):
        card = cards.find_preset(name, complete=False).card
        headline = card.metrics.get("headline", "not measured")
        print(f"{name:<24} {card.model.class_name:<22} {card.data.dataset if card.data else '':<14} {headline}")


def _brief(value, width=100):
    """A card value on one line, cut short (a hand-built preset's config holds whole networks)."""
    text = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
    return text if len(text) <= width else f"{text[:width - 3]}..."


def command_info(args):
    from keras_ae import cards

    card = cards.find_preset(args.source, complete=False).card
    shown = card.to_json()  # every section as the card file holds it
    if args.json:
        print(json.dumps(shown, indent=2))
        return
    print(f"{card.name}: {card.description or ''}")
    metrics = card.metrics
    if metrics.get("headline"):
        print(f"  measured: {metrics['headline']} (on {metrics.get('test_examples', '?')} test examples)")
    anomaly = card.anomaly
    if anomaly is not None and anomaly.threshold is not None:
        rule = anomaly.threshold_rule
        rule += f" {anomaly.percentile:g}" if rule == "percentile" and "percentile" in anomaly.given else ""
        print(f"  anomaly threshold: {anomaly.threshold:.6g} ({rule}; {anomaly.threshold_source or 'from the training split'}); "
              f"{anomaly.score} scores above it are called anomalous, normal label {anomaly.normal_label!r}")
    for section in ("model", "network", "data", "recipe", "training", "metrics", "anomaly", "weights"):
        if isinstance(shown.get(section), dict):
            print(f"\n[{section}]")
            for key, value in shown[section].items():
                if section == "model" and key == "config" and isinstance(value, dict):
                    nested = sorted(key for key, item in value.items() if isinstance(item, dict))
                    value = {key: item for key, item in value.items() if key not in nested}
                    if nested:
                        print(f"  ({', '.join(nested)}: whole networks, in card.json; keras-ae info --json shows them)")
                print(f"  {key}: {_brief(value)}")


BATCH_SIZE = 1000  # examples per model call when the command runs a model over many
MAX_GRID_IMAGES = 1000  # the most images one PNG grid holds; more go to a .npy file
MAX_ARRAY_IMAGES = 1_000_000  # the most samples one .npy file receives


class _Parser(argparse.ArgumentParser):
    """argparse with its errors on one line (no usage block), exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _integer(minimum, maximum=None):
    """An argparse type: an integer in [minimum, maximum]."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum or (maximum is not None and value > maximum):
            bound = f"from {minimum} to {maximum:,}" if maximum is not None else f">= {minimum}"
            raise argparse.ArgumentTypeError(f"expected an integer {bound}; got {text!r}")
        return value
    return parse


def _percentile(text):
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= 100.0:
        raise argparse.ArgumentTypeError(f"expected a percentile from 0 to 100; got {text!r}")
    return value


def _label_column(text):
    """A column index (digits, maybe negative) or name."""
    return int(text) if text.lstrip("-").isdigit() else text


def _columns(text):
    """Comma-separated column (or feature) names or indices."""
    return [_label_column(part.strip()) for part in text.split(",") if part.strip()]


def _image_size(text):
    """`64x48` or `64,48` (height, width) as a pair of positive integers."""
    parts = text.replace(",", "x").split("x")
    if len(parts) != 2 or not all(part.isdigit() and int(part) > 0 for part in parts):
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH, e.g. 64x64; got {text!r}")
    return int(parts[0]), int(parts[1])


def command_train(args):
    import keras

    from keras_ae import cards
    from keras_ae.training import card_for_data, finish, train

    if sum(map(bool, (args.name, args.card, args.data))) != 1:
        raise InputError("give one of: a zoo name, --card FILE or --data PATH")
    given = [option for option, value in (("--label-column", args.label_column), ("--columns", args.columns),
                                          ("--normal-label", args.normal_label),
                                          ("--threshold-percentile", args.threshold_percentile), ("--image-size", args.image_size),
                                          ("--color-mode", args.color_mode), ("--contamination", args.contamination),
                                          ("--from", args.start_from), ("--network", args.network), ("--latent-dim", args.latent_dim),
                                          ("--score", args.score)) if value is not None]
    if given and not args.data:
        raise InputError(f"{given[0]} is for --data (your own data); a zoo name or --card trains as its card says: drop {given[0]}")
    if args.output:  # refused before any data is read, and again under the lock before training
        cards.check_preset_target(args.output, args.overwrite, "--output ")
    if args.data:
        from keras_ae import data, files

        held = data.HELD_BATCHES * (args.batch_size or 128)  # the images a training stream holds at once
        files.check_images_fit(args.data, args.image_size, args.color_mode or "grayscale", "--image-size", "64x64", held)
        card = card_for_data(
            args.data, family=args.family, network=args.network, latent_dim=args.latent_dim, epochs=args.epochs,
            batch_size=args.batch_size, normal_label=args.normal_label, threshold_percentile=args.threshold_percentile,
            image_size=args.image_size, color_mode=args.color_mode, label_column=args.label_column, columns=args.columns,
            name=Path(args.output).name if args.output else None, threshold_rule=args.threshold_rule.replace("-", "_"),
            contamination=args.contamination, start_from=args.start_from, score=args.score,
        )
    else:
        card = cards.find_preset(args.name).card if args.name else cards.read_card(args.card)
    card = cards.as_card(card)
    output = Path(args.output or f"trained/{card.name}")
    with cards.preset_lock(output):  # held from here to the written preset: a second run onto it is refused at once
        cards.check_preset_target(output, args.overwrite, "--output " if args.output else "the default --output ")
        callbacks = [keras.callbacks.TensorBoard(args.logdir)] if args.logdir else []
        model, history, stats = train(
            card, strategy=args.strategy, epochs=args.epochs, batch_size=args.batch_size, precision=args.precision,
            data_dir=args.data_dir, callbacks=callbacks, backup_dir=args.backup_dir,
        )
        card = cards.Card.from_json(finish(model, card, history, stats, output, data_dir=args.data_dir), complete=False)
    if card.anomaly is not None:
        print(f"anomaly threshold (from the training data): {card.anomaly.threshold:.6g}")
    print(f"wrote the preset {output} (card.json, {card.weights.file}, training_curves.png); load it with keras_ae.load({str(output)!r})")


def command_evaluate(args):
    from keras_ae import cards, evaluate

    card, _ = _family(args.source, "evaluate")
    metrics = evaluate.measure(card, cards.load(args.source), limit=args.limit)
    for key, value in metrics.items():
        print(f"{key}: {value}")


def _read_images(path, shape, source, image_size=None):
    """(count, batches of float examples) of a .png image (scaled by its bit depth; resized only to a card's recorded
    `image_size`, as its folders are) or a .npy array of examples (memory-mapped; floats, or uint8 0-255 pixels; other
    integers refused, as `keras_ae.files.open_array` does). Only examples of the model's own `shape` are taken (grayscale
    images may leave out their channel axis), never reshaped from a count of values."""
    from keras_ae import data, files

    path, shape = Path(path), tuple(shape)
    if path.suffix == ".npy":
        found = data.open_path(path)
        full_shape, batches = (found.count, *found.example_shape), found.batches(BATCH_SIZE)
    elif path.suffix.lower() == ".png":
        if len(shape) != 3 or shape[-1] not in (1, 3):
            raise InputError(f"{path} is an image; {source} takes examples of {_shape_text(shape)}, not images: give a .npy "
                             f"array of shape (n, {', '.join(map(str, shape))})")
        options = {"image_size": image_size, "color_mode": "rgb" if shape[-1] == 3 else "grayscale"}
        _note_resized([files.image_size_of(path)], options, source)
        image = files.read_image(path, **options)[None]
        full_shape, batches = image.shape, iter([image])
    else:
        raise InputError(f"INPUT must be a .png or .npy file; got {path.name}")
    if full_shape[1:] == shape[:-1] and shape[-1:] == (1,) and len(shape) == 3:  # grayscale images without their channel axis
        full_shape, batches = (*full_shape, 1), (batch[..., None] for batch in batches)
    if full_shape[1:] != shape:
        raise InputError(_shape_fault(path, full_shape, shape, source))
    return full_shape[0], batches


def _write_images(batches, names, folder):
    """One PNG per image (8-bit, grayscale or RGB) of `batches` under `folder`, named after its input, written as they come
    into a staging folder beside `folder` and moved into place when all are written (none on an error); return the folder."""
    import shutil

    from PIL import Image

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".partial-{folder.name}-", dir=folder.parent))
    try:
        done = 0
        for batch in batches:
            for image in batch:
                pixels = np.round(np.clip(image, 0.0, 1.0) * 255).astype("uint8")
                pixels = pixels[..., 0] if pixels.ndim == 3 and pixels.shape[-1] == 1 else pixels
                target = staging / Path(names[done]).with_suffix(".png")
                target.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(pixels).save(target, format="PNG")
                done += 1
        for name in names:
            relative = Path(name).with_suffix(".png")
            (folder / relative).parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / relative, folder / relative)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def _input_labels(card, text, count, input_path, names, found=None):
    """The class labels a conditional model (its task's data kind is labelled) reads with `count` inputs: `--labels` (one
    class for all, a comma list, or a .npy file), else a folder's class subfolders named by class number (0/, 1/, ...),
    else a table's label column. None for a model that takes no labels."""
    from keras_ae import cards, kinds

    if not kinds.of(cards.task_of(card)).with_labels:
        if text is not None:
            raise InputError(f"--labels is for a conditional model; {card.name} takes none")
        return None
    if text is None:
        if Path(input_path).is_dir():
            classes = [Path(name).parts[0] if len(Path(name).parts) > 1 else "" for name in names]
            if not all(part.isdigit() for part in classes):
                raise InputError(f"{card.name} is conditioned on class labels: pass --labels, or put each image in a "
                                 f"subfolder named by its class number (0/, 1/, ...) of {input_path}")
            return np.array([int(part) for part in classes], "int32")
        if found is None or not np.issubdtype(np.asarray(found).dtype, np.integer) or np.any(np.asarray(found) < 0):
            raise InputError(f"{card.name} is conditioned on class labels: pass --labels (one class, a comma list or a .npy "
                             "file), or give a folder with one subfolder per class number")
        return np.asarray(found, "int32")
    if text.endswith(".npy"):
        labels = np.load(text, allow_pickle=False)
    else:
        try:
            labels = np.array([int(part) for part in text.split(",")])
        except ValueError:
            raise InputError(f"--labels must be a class, a comma list of classes or a .npy file; got {text!r}") from None
    labels = np.broadcast_to(labels, (count,)) if labels.size == 1 else labels
    if labels.shape != (count,) or not np.issubdtype(labels.dtype, np.integer):
        raise InputError(f"--labels must give one integer class per input ({count}); got {labels.dtype} of shape {labels.shape}")
    return labels.astype("int32")


PROGRESS_EXAMPLES = 10_000  # inputs longer than this (or of a length unknown until read) show their progress
PROGRESS_SECONDS = 1.0


class _Progress:
    """Examples done (of how many, where known) on standard error, at most once a second, for long inputs."""

    def __init__(self, verb, total):
        self.verb, self.total, self.shown = verb, total, time.monotonic()
        self.on = total is None or total > PROGRESS_EXAMPLES

    def update(self, done, last=False):
        if self.on and (last or time.monotonic() - self.shown >= PROGRESS_SECONDS):
            of = "" if self.total is None else f" of {self.total:,}"
            print(f"\r{self.verb}: {done:,}{of} examples", end="\n" if last else "", file=sys.stderr, flush=True)
            self.shown = time.monotonic()


def _each_batch(function, batches, labels, progress=None):
    """`function(batch)` or, with labels, `function(batch, labels=...)` over `batches` (numpy arrays, in input order): a
    generator of the outputs, as numpy arrays; memory held is one batch. Each batch runs as one graph (a tf.function),
    not one eager op at a time: scoring a table took half the time."""
    import tensorflow as tf

    compiled = tf.function(function, reduce_retracing=True)
    done = 0
    for batch in batches:
        given = {} if labels is None else {"labels": labels[done:done + len(batch)]}
        try:
            output = compiled(batch, **given)
        except tf.errors.InvalidArgumentError:  # a refusal inside the graph (a NaN, a label out of range) ...
            function(batch, **given)  # ... is the model's one-line error when run eagerly
            raise
        yield np.asarray(output)
        done += len(batch)
        if progress:
            progress.update(done)
    if progress:
        progress.update(done, last=True)


def _refuse_existing(targets, overwrite):
    """Refuse, unless `--overwrite`, to write over files that exist already; name the first."""
    existing = [target for target in targets if os.path.lexists(target)]
    if existing and not overwrite:
        more = f" and {len(existing) - 1} more of the {len(targets)} files to write" if len(existing) > 1 else ""
        raise InputError(f"{existing[0]}{more} exist{'s' * (len(existing) == 1)} already; pass --overwrite to replace "
                         f"{'them' if more else 'it'}, or give another --out")


def _check_folder_output(folder, out, names, overwrite):
    """Refuse an output folder that is, lies inside or holds the input folder (its images would be overwritten or mixed
    with the outputs), two inputs written to one output, and, unless `--overwrite`, output files that exist already."""
    source, target = Path(folder).resolve(), Path(out).resolve()
    if target == source or source in target.parents or target in source.parents:
        where = "is" if target == source else "lies inside" if source in target.parents else "holds"
        raise InputError(f"--out {out} {where} the input folder {folder}: your images would be overwritten or mixed with "
                         f"the outputs; give --out a folder outside {folder}")
    written = {}
    for name in names:
        path = Path(out) / Path(name).with_suffix(".png")
        if path in written:
            raise InputError(f"{written[path]} and {name} in {folder} would both be written to {path}; rename one of them")
        written[path] = name
    _refuse_existing(list(written), overwrite)


def _check_file_output(input_path, out, overwrite):
    """Refuse an output file that is the input file, and, unless `--overwrite`, one that exists already."""
    target = Path(out) if Path(out).suffix else Path(f"{out}.png")  # a grid without a suffix is written as .png
    if target.resolve() == Path(input_path).resolve():
        raise InputError(f"--out {out} is the input file {input_path}: it would be overwritten; give --out another file")
    _refuse_existing([target], overwrite)


def _apply_to_folder(source, verb, folder, out, transform, labels_text=None, overwrite=False, image_size=None):
    """Run `transform(model)` (a function of a batch) over a folder of images, read at the size and in the colours the
    model takes (or `image_size`), a batch at a time, and write one PNG per input; never into the input folder, nor over
    existing files unless `overwrite`."""
    from keras_ae import cards

    card, _ = _family(source, verb)
    _check_folder_output(folder, out, [], overwrite)  # before reading anything
    model = cards.load(source)
    found = _open_inputs(folder, card, model, source, image_size)
    _check_folder_output(folder, out, found.names, overwrite)
    labels = _input_labels(card, labels_text, found.count, folder, found.names)
    outputs = _each_batch(transform(model), found.batches(BATCH_SIZE), labels, _Progress(verb, found.count))
    print(f"wrote {found.count} images to {_write_images(outputs, found.names, out)}")


def command_reconstruct(args):
    from keras_ae import cards, plot

    if Path(args.input).is_dir():
        return _apply_to_folder(args.source, "reconstruct", args.input, args.out, lambda model: model, args.labels, args.overwrite,
                                args.image_size)
    card, _ = _family(args.source, "reconstruct")
    model = cards.load(args.source)
    if args.image_size is not None and Path(args.input).suffix.lower() != ".png":
        raise InputError(f"--image-size is for images; {args.input} is not one: leave --image-size out")
    count, batches = _read_images(args.input, model.input_shape_per_example, args.source,
                                  _image_options(card, model.input_shape_per_example, args.image_size).get("image_size"))
    labels = _input_labels(card, args.labels, count, args.input, [])
    _check_file_output(args.input, args.out, args.overwrite)
    if Path(args.out).suffix == ".npy":
        outputs = _each_batch(model, batches, labels, _Progress("reconstruct", count))
        written = _write_array_in_batches(args.out, count, outputs)
        print(f"wrote {count} reconstructions to {written}")
        return
    if count > MAX_GRID_IMAGES:
        raise InputError(f"{args.input} holds {count:,} images, too many for one PNG grid (at most {MAX_GRID_IMAGES:,}); "
                         "write the reconstructions to a .npy file: --out reconstructions.npy")
    images = np.concatenate(list(batches))
    print(f"wrote {plot.reconstructions(model, images, args.out, count=len(images), labels=labels)}")


def command_denoise(args):
    _apply_to_folder(args.source, "denoise", args.input, args.out, lambda model: model.denoise, overwrite=args.overwrite,
                     image_size=args.image_size)


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what makes a spreadsheet read a CSV cell as a formula (OWASP)


def _as_text_cell(text):
    """A CSV cell that a spreadsheet shows as the text it is: one that would start a formula gets a leading single quote,
    as OWASP's advice on CSV injection has it (`=HYPERLINK(...)` is shown, never run)."""
    return f"'{text}" if str(text).startswith(FORMULA_STARTS) else str(text)


def _shape_text(shape):
    """An example's shape in words: `28x28 pixels, 1 channel` for images, else the tuple."""
    if len(shape) == 3:
        return f"{shape[0]}x{shape[1]} pixels, {shape[2]} channel{'s' * (shape[2] != 1)}"
    return f"shape {tuple(shape)}"


def _shape_fault(path, shape, expected, source):
    """Why the examples read from `path` do not fit a model whose examples have the shape `expected`, in words for what
    `path` is (a folder of images, a table, an array) and with the fix this command offers."""
    from keras_ae.data import path_kind
    from keras_ae.files import IMAGE_EXTENSIONS

    got, expected, path = tuple(shape[1:]), tuple(expected), Path(path)
    if path.is_dir():
        return (f"{path} holds images of {_shape_text(got)}; {source} takes images of {_shape_text(expected)}: give images of "
                "that size")
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return f"{path} is an image of {_shape_text(got)}; {source} takes images of {_shape_text(expected)}: resize it to that size"
    if path_kind(path) == "a table" and len(got) == 1:
        if len(expected) != 1:
            return (f"{path} has rows of {got[0]} values; {source} takes examples of {_shape_text(expected)}, not table rows: "
                    f"give a .npy array of shape (n, {', '.join(map(str, expected))})")
        label = "; one column too many: if one is a label, pass --label-column (its name or index)" * (got[0] == expected[0] + 1)
        return f"{path} has {got[0]} feature columns; {source} takes {expected[0]}{label}"
    hint = ""
    if tuple(shape) == expected:
        hint = "; for one example, give array[None]"
    elif got == expected[:-1] and expected[-1] == 1:
        hint = "; add the channel axis: array[..., None]"
    return (f"{path} holds an array of shape {tuple(shape)}; {source} takes examples of {_shape_text(expected)}: "
            f"give an array of shape (n, {', '.join(map(str, expected))}), one example per row{hint}")


def _read_options(card, keys):
    """The options among `keys` with which the card's data section reads its inputs (none for a card without one)."""
    from keras_ae import data

    return {} if card.data is None else {key: value for key, value in data.card_options(card.data).items() if key in keys}


def _image_options(card, shape, image_size=None):
    """How a model reads image inputs: the card's recorded size and colours, else those of the model's input `shape`
    (a preset knows its input size). `--image-size` may only name that size where the model fixes one."""
    options = _read_options(card, ("image_size", "color_mode"))
    if len(shape) == 3 and shape[-1] in (1, 3):
        options.setdefault("image_size", tuple(shape[:2]))
        options.setdefault("color_mode", "rgb" if shape[-1] == 3 else "grayscale")
    if image_size is not None:
        if options.get("image_size", tuple(image_size)) != tuple(image_size):
            height, width = options["image_size"]
            raise InputError(f"--image-size {image_size[0]}x{image_size[1]}: the model takes images of {height}x{width} pixels; "
                             "leave --image-size out (inputs are resized to that size)")
        options["image_size"] = tuple(image_size)
    return options


def _note_resized(found_sizes, options, source):
    """One line on stderr when image inputs of other sizes were resized to the size the model takes."""
    size = options.get("image_size")
    other = [found for found in found_sizes if size is not None and tuple(found) != tuple(size)]
    if other:
        sizes = ", ".join(f"{height}x{width}" for height, width in other[:3]) + (", ..." if len(other) > 3 else "")
        print(f"note: resized images of {sizes} to {size[0]}x{size[1]} ({options.get('color_mode', 'grayscale')}), the size "
              f"{source} takes", file=sys.stderr)


def _open_inputs(path, card, model, source, image_size=None, **options):
    """The streamed source (`keras_ae.data.open_path`) of a folder, array or table of inputs to `model`, read with
    `options`; a folder's images at the size and in the colours the model takes (others resized, with a note). Inputs
    of another shape are refused in words for what `path` is."""
    from keras_ae import data

    folder = Path(path).is_dir()
    if folder:
        options.update(_image_options(card, model.input_shape_per_example, image_size))
    elif image_size is not None:
        raise InputError(f"--image-size is for images; {path} is not a folder of images: leave --image-size out")
    found = data.open_path(path, **options)
    if folder:
        _note_resized(found.found.found_sizes, options, source)
    if found.example_shape != model.input_shape_per_example:
        raise InputError(_shape_fault(path, (found.count, *found.example_shape), model.input_shape_per_example, source))
    return found


def _model_inputs(args, verb, counted=False):
    """(card, model, found, labels) of a command that runs a model over a file, folder or table of inputs, read as the
    preset's card reads its data (a table's layout, images' size and colours), streamed in file order: `found` is the
    input's source (`keras_ae.data.open_path`). A table is counted first only if asked or the model takes labels."""
    from keras_ae import cards, data, kinds

    given = {key: value for key, value in (("label_column", args.label_column), ("columns", args.columns)) if value is not None}
    if given and data.path_kind(args.input) != "a table":
        option = "--label-column" if "label_column" in given else "--columns"
        raise InputError(f"{option} is for a table (CSV/TSV, Parquet or TFRecord file); {args.input} is not one, so it would do "
                         f"nothing: drop {option}")
    card, _ = _family(args.source, verb)
    model = cards.load(args.source)
    options = {**_read_options(card, ("label_column", "columns", "header")), **given}  # the card's table layout, unless given
    conditional = kinds.of(cards.task_of(card)).with_labels
    found = _open_inputs(args.input, card, model, args.source, args.image_size, counted=counted or conditional, **options)
    labels = _input_labels(card, args.labels, found.count, args.input, found.names, found.labels) if conditional or args.labels else None
    return card, model, found, labels


def _name_cells(found, start, count):
    """The CSV cells naming inputs `start` to `start + count`: row numbers, or file paths made safe for spreadsheets."""
    if found.names is None:
        return range(start, start + count)
    return [_as_text_cell(name) for name in found.names[start:start + count]]


def command_embed(args):
    from keras_ae import files

    if Path(args.out).suffix.lower() not in (".csv", ".npy"):
        raise InputError(f"--out must end in .csv (a row per input, with its name) or .npy (the codes alone); got {args.out}")
    _, model, found, labels = _model_inputs(args, "embed", counted=args.out.lower().endswith(".npy"))
    codes = _each_batch(model.embed, found.batches(BATCH_SIZE), labels, _Progress("embed", found.count))
    if args.out.lower().endswith(".npy"):
        _write_array_in_batches(args.out, found.count, codes)
        shape = np.load(args.out, mmap_mode="r").shape[1:]
        print(f"wrote {found.count} codes of shape {shape} to {args.out}, in the order of the inputs' names")
        return
    written = {"rows": 0, "width": 0}

    def write(temporary):
        with open(temporary, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            for batch in codes:
                flat = batch.reshape(len(batch), -1)
                if not written["rows"]:
                    written["width"] = flat.shape[1]
                    writer.writerow(["input", *(f"code_{index}" for index in range(flat.shape[1]))])
                writer.writerows([name, *(f"{value:.9g}" for value in row)]
                                 for name, row in zip(_name_cells(found, written["rows"], len(flat)), flat.tolist()))
                written["rows"] += len(flat)

    files.atomic_copy(write, args.out)
    print(f"wrote {written['rows']} codes of {written['width']} values to {args.out}")


def command_score(args):
    from keras_ae import anomaly, files

    card, model, found, labels = _model_inputs(args, "score")
    threshold = None if card.anomaly is None else card.anomaly.threshold
    scorer = anomaly.preset_score(model, card.anomaly)
    header = ["input", "score"] + ["is_anomaly"] * (threshold is not None)
    written = {"rows": 0, "flagged": 0}

    def write(temporary):  # the csv module quotes names holding commas, quotes or line breaks
        with open(temporary, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            for scores in _each_batch(scorer, found.batches(BATCH_SIZE), labels, _Progress("score", found.count)):
                scores = scores.astype("float64")
                columns = [_name_cells(found, written["rows"], len(scores)), [f"{score:.9g}" for score in scores.tolist()]]
                if threshold is not None:
                    columns.append((scores > threshold).astype(int).tolist())
                    written["flagged"] += sum(columns[-1])
                writer.writerows(zip(*columns))
                written["rows"] += len(scores)

    files.atomic_copy(write, args.out)
    flagged = f", {written['flagged']} above the card's threshold {threshold:.6g}" if threshold is not None else ""
    print(f"wrote {written['rows']} scores to {args.out}{flagged}")


def _item_history(text):
    """`--items` as a list of item ids, or {item id: rating} where any is written `id:rating`."""
    pairs = [part.strip().split(":") for part in text.split(",") if part.strip()]
    try:
        if any(len(pair) > 2 for pair in pairs):
            raise ValueError
        history = {int(pair[0]): float(pair[1]) if len(pair) == 2 else None for pair in pairs}
    except ValueError:
        raise InputError(f"--items must be comma-separated item ids, each optionally id:rating (e.g. 1,260:4.5); got {text!r}") from None
    if all(rating is None for rating in history.values()):
        return list(history)
    if any(rating is None for rating in history.values()):
        raise InputError(f"--items gives ratings for some items but not all; rate every one or none: {text!r}")
    item, rating = next(((item, rating) for item, rating in history.items() if not np.isfinite(rating)), (None, None))
    if item is not None:  # refused before the model loads; the range is the model's to check
        raise InputError(f"--items: item {item} has the rating {rating:g}, which is not a finite number.")
    return history


def command_recommend(args):
    import warnings

    from keras_ae import cards, ratings
    from keras_ae.models.task import FewerItemsWarning

    card, _ = _family(args.source, "recommend")
    history = _item_history(args.items)
    model = cards.load(args.source)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        item_ids, scores = model.recommend([history], k=args.k)
    dataset = card.data.dataset if card.data else ""
    titles = ratings.item_titles(dataset, data_dir=args.data_dir)
    if not history:
        print(f"(empty history: the {args.k} items most popular with the training users)")
    for caught_warning in caught:  # fewer unseen items than -k: fewer are listed, never one of the history's
        if issubclass(caught_warning.category, FewerItemsWarning):
            print(f"({caught_warning.message})")
    if not titles:
        print(f"(no movies.csv beside the ratings of {dataset}: item ids only)")
    for rank, (item, score) in enumerate(zip(item_ids[0], scores[0]), 1):
        print(f"{rank:>3}. {int(item):>7}  {float(score):9.4f}  {titles.get(int(item), '')}".rstrip())


def _write_array_in_batches(path, count, batches):
    """Stream `batches` (arrays of one shape and type, `count` rows in all) into the .npy file `path`, whole or not at
    all; return the path."""
    from keras_ae import weights

    def write(temporary):
        array, start = None, 0
        for batch in batches:
            if array is None:
                array = np.lib.format.open_memmap(temporary, mode="w+", dtype=batch.dtype, shape=(count, *batch.shape[1:]))
            array[start:start + len(batch)] = batch
            start += len(batch)
        array.flush()
        del array

    weights.atomic_copy(write, path)
    return path


def command_sample(args):
    from keras_ae import cards, plot

    _family(args.source, "sample")
    to_array = Path(args.out).suffix == ".npy"
    if args.n > (MAX_ARRAY_IMAGES if to_array else MAX_GRID_IMAGES):
        raise InputError(f"-n {args.n:,} is more than one .npy file takes here ({MAX_ARRAY_IMAGES:,}); draw several files with "
                         "other --seed values" if to_array else f"-n {args.n:,} is too many for one PNG grid (at most "
                         f"{MAX_GRID_IMAGES:,}); write them to a .npy file: --out samples.npy")
    model = cards.load(args.source)
    if not to_array:
        print(f"wrote {plot.samples(model, args.out, count=args.n, seed=args.seed)}")
        return
    import keras

    generator = keras.random.SeedGenerator(args.seed)
    batches = (np.asarray(model.sample(min(BATCH_SIZE, args.n - start), seed=generator), "float32")
               for start in range(0, args.n, BATCH_SIZE))
    print(f"wrote {args.n} samples to {_write_array_in_batches(args.out, args.n, batches)}")


def command_export(args):
    from keras_ae import cards
    from keras_ae.exporting import export

    card, _ = _family(args.source, "export")
    signatures = args.signatures.split(",") if args.signatures else None
    print(f"wrote {export(cards.load(args.source), args.directory, format=args.format, signatures=signatures, anomaly=card.anomaly)}")


def command_download(args):
    from keras_ae import cards, weights

    names = cards.list_models() if args.all else args.names
    if not names:
        raise InputError("name at least one zoo entry, or pass --all")
    failures = 0
    for name in names:
        try:
            card = cards.find_preset(name).card
            ok, message = weights.check_cache(card) if args.verify else (True, weights.fill_cache(card, args.mirror))
        except (OSError, ValueError) as error:
            ok, message = False, f"{name}: FAILED {error}"
        failures += not ok
        print(message, flush=True)
    return 1 if failures else 0


def command_demo(args):
    from keras_ae import demo

    demo.run(args.out)


def command_gallery(args):
    from keras_ae import gallery

    print(f"wrote {gallery.write(args.out)}")


def parser():
    from keras_ae import schema

    root = _Parser(prog="keras-ae", description="Pretrained Keras autoencoders: list, inspect, train, use.")
    root.add_argument("--verbose", action="store_true", help="show TensorFlow's own start-up log lines")
    root.add_argument("--version", action="version", version=f"keras-ae {__version__}")
    commands = root.add_subparsers(dest="command", required=True)
    source_help = "a zoo name, a preset folder, an http(s):// URL of one, or hf://owner/repo[@revision]"

    def add(name, function, help_text, tensorflow=True):
        command = commands.add_parser(name, help=help_text, description=help_text)
        command.set_defaults(function=function, tensorflow=tensorflow)
        return command

    # list and info read cards only, so they answer without importing TensorFlow
    add("list", command_list, "List zoo entries.", tensorflow=False).add_argument(
        "pattern", nargs="?", default="*", help="fnmatch filter, e.g. '*vae*'")
    info = add("info", command_info, "Show a model's card: what it is, its numbers, its threshold, how it was trained.", tensorflow=False)
    info.add_argument("source", help=source_help)
    info.add_argument("--json", action="store_true", help="the whole card as JSON")
    demo = add("demo", command_demo, "Offline demo from the bundled weights: pictures and metrics on bundled real test images.")
    demo.add_argument("--out", default="demo_output", help="folder for the PNG files")
    gallery = add("gallery", command_gallery, "Write a browsable static page of the zoo: every entry, its numbers and pictures.")
    gallery.add_argument("--out", default="gallery", help="folder for index.html and its pictures")
    train = add("train", command_train, "Train a zoo entry, a card file, or a family on your own data (--data).")
    train.add_argument("name", nargs="?")
    train.add_argument("--card", help="a card JSON file instead of a zoo name")
    train.add_argument("--data", help="your data: a folder of images (class subfolders give labels), a .npy/.npz array, a .csv/.tsv "
                       "table, a .parquet file or a .tfrecord file of tf.train.Example records")
    train.add_argument("--family", default="ae", help="with --data: a family's short name: ae, dae, sae, vae, vqvae...")
    train.add_argument("--network", help="with --data: dense, conv (images) or conv1d (series: the anomaly suites' pick for "
                                          "them); default: conv for images, dense (hidden layers 64 and 32) for rows")
    train.add_argument("--latent-dim", type=_integer(1, 65_536), help="with --data: size (or channels) of the code; default: 32 "
                                                                      "for images, 8 for rows")
    train.add_argument("--label-column", type=_label_column, help="with --data: a table's label column (name or index), or a "
                       "TFRecord file's label feature")
    train.add_argument("--columns", type=_columns, help="with --data: a table's feature columns (names or indices, comma-separated; "
                       "default all but the label), or a TFRecord file's features")
    train.add_argument("--normal-label", help="with --data: train only on this label and record an anomaly threshold")
    train.add_argument("--threshold-percentile", type=_percentile, help="with --normal-label: percentile of training scores (default 99)")
    train.add_argument("--threshold-rule", choices=("percentile", "mean-plus-std", "best-accuracy"), default="percentile",
                       help="with --normal-label: percentile of the normal training scores (default), their mean plus one "
                            "standard deviation, or the threshold that classifies the labelled training data best (it needs "
                            "anomalies in the training data)")
    train.add_argument("--score", choices=("reconstruction", "reconstruction+code"),
                       help="with --normal-label: the anomaly score the preset scores and thresholds with; default: "
                            "reconstruction+code for images with the ae family (the image suites' pick: the reconstruction "
                            "error and the code's distance from the normal codes), reconstruction otherwise")
    train.add_argument("--contamination", type=float,
                       help="with --normal-label: the expected share of anomalies (as PyOD's contamination): the threshold is "
                            "the 100 x (1 - contamination) percentile of the training scores")
    train.add_argument("--from", dest="start_from", metavar="PRESET",
                       help="with --data: fine-tune this zoo entry or preset (its family, network and weights) on your data")
    train.add_argument("--image-size", type=_image_size, help="with --data: resize images to HEIGHTxWIDTH")
    train.add_argument("--color-mode", help="with --data: grayscale or rgb")
    train.add_argument("--epochs", type=_integer(1), help="default: the card's; with --data, 20 for images, 50 for rows")
    train.add_argument("--batch-size", type=_integer(1), help="global batch size; default: the card's; with --data, 128 for "
                                                               "images, 64 for rows")
    train.add_argument("--strategy", default="auto", help="auto, one_device, mirrored, multi_worker or tpu")
    train.add_argument("--precision", choices=schema.PRECISIONS,
                       help="default: the recipe's, else auto (bfloat16 where the hardware computes it natively)")
    train.add_argument("--output", help="folder for the preset: weights, card and curves (default trained/NAME); a new or empty one")
    train.add_argument("--overwrite", action="store_true", help="replace the preset already in --output (never a folder of other files)")
    train.add_argument("--logdir", help="TensorBoard log folder")
    train.add_argument("--data-dir", help="folder holding <dataset>/ IDX files")
    train.add_argument("--backup-dir", help="BackupAndRestore folder, so a killed run resumes")
    evaluate = add("evaluate", command_evaluate, "Measure a model on its card's test split (needs KERAS_AE_DATA or TFDS).")
    evaluate.add_argument("source", help=source_help)
    evaluate.add_argument("--limit", type=_integer(1), help="only the first N test images")
    def over_inputs(name, function, help_text, input_help, labels=True, tables=False):
        """A command that runs a model over a file, folder or table of inputs, with the options such commands share."""
        command = add(name, function, help_text)
        command.add_argument("source", help=source_help)
        command.add_argument("input", help=input_help)
        command.add_argument("--image-size", type=_image_size, help="for images: HEIGHTxWIDTH, the size the model takes (the "
                             "default; images of other sizes are resized, with a note)")
        if tables:
            command.add_argument("--label-column", type=_label_column,
                                 help="a label column in INPUT to leave out of the features (default: the one the card records)")
            command.add_argument("--columns", type=_columns, help="INPUT's feature columns (names or indices, comma-separated), "
                                 "or a TFRecord file's features (default: the card's, else all but the label)")
        if labels:
            command.add_argument("--labels", help="for a conditional model: the class of every input (3), one per input (3,1,4) "
                                 "or a .npy file")
        return command

    inputs_help = "a folder of images, a .npy/.npz array, a .csv/.tsv table, a .parquet file or a .tfrecord file"
    reconstruct = over_inputs("reconstruct", command_reconstruct,
                              "Reconstruct images: a PNG or .npy file (into a grid), or a folder (one PNG each).", "a .png or .npy file, or a folder of images")
    reconstruct.add_argument("--out", default="reconstruction.png",
                             help=f"the grid PNG (up to {MAX_GRID_IMAGES:,} inputs), a .npy file, or for a folder INPUT the output folder")
    reconstruct.add_argument("--overwrite", action="store_true", help="replace output files that exist already (never the input)")
    denoise = over_inputs("denoise", command_denoise, "Denoise a folder of images with a denoising model; one PNG per input.",
                          "a folder of images", labels=False)
    denoise.add_argument("--out", default="denoised", help="folder for the denoised PNG files (outside INPUT)")
    denoise.add_argument("--overwrite", action="store_true", help="replace output files that exist already (never the input's)")
    embed = over_inputs("embed", command_embed, "Codes of each input (file or table row) as CSV (with its name) or .npy, in file order.",
                        inputs_help, tables=True)
    embed.add_argument("--out", default="codes.csv", help="codes.csv (a row per input, its name first) or codes.npy")
    score = over_inputs("score", command_score, "Anomaly scores of each input (file or row) as CSV, flagged where the card has a threshold.",
                        inputs_help, tables=True)
    score.add_argument("--out", default="scores.csv")
    recommend = add("recommend", command_recommend, "Recommend items for a history of item ids, with titles from the dataset's movies.csv.")
    recommend.add_argument("source", help=source_help)
    recommend.add_argument("--items", required=True, help="the history: item ids, e.g. 1,260,1196, or with ratings 1:5,260:4.5")
    recommend.add_argument("-k", type=_integer(1), default=10, help="how many items")
    recommend.add_argument("--data-dir", help="folder holding <dataset>/movies.csv (default $KERAS_AE_DATA)")
    sample = add("sample", command_sample, "Draw samples from a model whose family samples (VAEs) into a PNG grid.")
    sample.add_argument("source", help=source_help)
    sample.add_argument("-n", type=_integer(1), default=40, help=f"how many (a PNG grid takes {MAX_GRID_IMAGES:,}, a .npy file {MAX_ARRAY_IMAGES:,})")
    sample.add_argument("--seed", type=_integer(0), default=0)
    sample.add_argument("--out", default="samples.png", help="a PNG grid, or a .npy file of float32 images")
    export = add("export", command_export, "Export a model with its family's signatures: a SavedModel, LiteRT or ONNX.")
    export.add_argument("source", help=source_help)
    export.add_argument("directory")
    export.add_argument("--format", choices=("savedmodel", "litert", "onnx"), default="savedmodel",
                        help="savedmodel (every signature), or litert / onnx: one file per deterministic signature "
                             "(serve, encode, decode, anomaly_score); the last two need pip install \"keras-ae[export]\"")
    export.add_argument("--signatures", help="comma-separated signatures to write (default: all the format takes), e.g. serve,encode")
    download = add("download", command_download, "Fill (or --verify) the weight cache for offline use.")
    download.add_argument("names", nargs="*")
    download.add_argument("--all", action="store_true")
    download.add_argument("--mirror", help="base URL holding <name>/<file>")
    download.add_argument("--verify", action="store_true", help="only check the cache against the cards")
    return root


def _one_line(error):
    """An error's message on one line: the message a Keras layer's wrapper ("Exception encountered when calling ...")
    carries instead of the wrapper, without terminal colour codes."""
    text = str(error)
    wrapped = re.search(r"\x1b\[1m(.*?)\x1b\[0m", text, re.S)
    if text.startswith("Exception encountered") and wrapped:
        text = wrapped.group(1)
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


# The library's arguments as each command's options. An error from the library names its arguments (`image_size`); the
# command shows the option its user passes instead (`--image-size`), and drops advice to use an option it does not have.
COMMAND_OPTIONS = {
    "train": {"image_size": "--image-size", "color_mode": "--color-mode", "label_column": "--label-column",
              "normal_label": "--normal-label", "only_label": "--normal-label", "threshold_percentile": "--threshold-percentile",
              "contamination": "--contamination"},
    "score": {"label_column": "--label-column", "image_size": "--image-size"},
    "embed": {"label_column": "--label-column", "image_size": "--image-size"},
    "reconstruct": {"image_size": "--image-size"},
    "denoise": {"image_size": "--image-size"},
}


def _in_command_terms(text, command):
    """An error's message in the terms of `command`: the library's argument names as its options (not a card's field
    such as `data.label_column`, nor part of a file name), and no advice to pass an argument it does not offer."""
    options = COMMAND_OPTIONS.get(command, {})
    if command == "recommend":  # the command's one history is its --items
        text = re.sub(r"^History 0: ", "--items: ", text)
    text = text.replace(", or pass on_error='skip' to leave them out", "")
    if "image_size" in options:
        text = re.sub(r"image_size=\((\d+), (\d+)\)", r"image_size \1x\2", text)
        text = text.replace("image_size=(height, width)", "image_size HEIGHTxWIDTH")
    else:
        text = text.replace("pass image_size=(height, width) to resize them all to one size",
                            "give images of one size, the size the model takes")
    for name, option in options.items():
        text = re.sub(rf"(?<![\w./-]){name}(?![\w/-]|\.\w)", option, text)
    return text


def main(argv=None):
    args = parser().parse_args(argv)
    with quiet_tensorflow(args.verbose) if args.tensorflow else contextlib.nullcontext():
        try:
            return args.function(args) or 0
        except Exception as error:  # the user's input or environment (as such, or carried out of a stream); other errors are bugs
            if not isinstance(error, (InputError, MissingExtraError, OSError)):
                error = carried_input_error(error)
                if error is None:
                    raise
            print(f"keras-ae {args.command}: error: {_in_command_terms(_one_line(error), args.command)}", file=sys.stderr)
            return 2


if __name__ == "__main__":
    sys.exit(main())
