"""The `keras-ae` command: the zoo from a shell, thin over the library.

Commands that take a model take any source `keras_ae.load` takes: a zoo name, a preset folder,
an http(s) URL of one, or hf://owner/repo[@revision]. A command a model's family does not support
(`sample` on a plain autoencoder) is refused by asking the family, before anything is loaded.
"""

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path

import numpy as np

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
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    yield


def _family(source, verb):
    """The card and model class of a source, refusing a verb the family does not declare."""
    from keras_ae import cards

    card = cards.model_card(source)
    family = cards.model_class(card)
    if verb not in family.verbs:
        raise ValueError(
            f"{source} ({family.__name__}) does not support `keras-ae {verb}`; its family's commands: {', '.join(family.verbs)}"
        )
    return card, family


def command_list(args):
    from keras_ae import cards

    for name in cards.list_models(args.pattern):
        card = cards.model_card(name)
        headline = cards.model_class(card).headline(card.get("metrics", {}))
        print(f"{name:<24} {card['model']['class_name']:<22} {card.get('data', {}).get('dataset', ''):<14} {headline}")


def command_info(args):
    card, _ = _family(args.source, "info")
    print(f"{card['name']}: {card.get('description', '')}")
    for section in ("model", "network", "data", "recipe", "training", "metrics", "weights"):
        if section in card:
            print(f"\n[{section}]")
            for key, value in card[section].items():
                print(f"  {key}: {json.dumps(value) if isinstance(value, (dict, list)) else value}")


def command_train(args):
    import keras

    from keras_ae import cards
    from keras_ae.train import finish, train

    if bool(args.name) == bool(args.card):
        raise ValueError("give a zoo name or --card FILE, not both and not neither")
    card = cards.model_card(args.name) if args.name else cards.read_card(args.card)
    callbacks = [keras.callbacks.TensorBoard(args.logdir)] if args.logdir else []
    model, history, stats = train(
        card, strategy=args.strategy, epochs=args.epochs, batch_size=args.batch_size, precision=args.precision,
        data_dir=args.data_dir, callbacks=callbacks, backup_dir=args.backup_dir,
    )
    output = Path(args.output or f"trained/{card['name']}")
    finish(model, card, history, stats, output)
    print(f"wrote the preset {output} (card.json, {card['weights']['file']}, training_curves.png); load it with keras_ae.load({str(output)!r})")


def command_evaluate(args):
    from keras_ae import cards, evaluate

    card, _ = _family(args.source, "evaluate")
    metrics = evaluate.measure(card, cards.load(args.source), limit=args.limit)
    for key, value in metrics.items():
        print(f"{key}: {value}")


def _read_images(path, shape):
    path = Path(path)
    if path.suffix == ".npy":
        array = np.load(path, allow_pickle=False)
    elif path.suffix.lower() == ".png":
        from PIL import Image

        with Image.open(path) as image:
            array = np.asarray(image.convert("L").resize(shape[1::-1] if len(shape) == 3 else (28, 28)))[None]
    else:
        raise ValueError(f"INPUT must be a .png or .npy file; got {path.name}")
    if array.dtype == np.uint8:
        array = array.astype("float32") / 255.0
    per_image = int(np.prod(shape))
    if array.size == 0 or array.size % per_image:
        raise ValueError(f"{path.name} holds {array.size} values; expected whole images of shape {shape} ({per_image} values each)")
    return np.asarray(array, "float32").reshape((-1, *shape))


def command_reconstruct(args):
    from keras_ae import cards, plot

    _family(args.source, "reconstruct")
    model = cards.load(args.source)
    images = _read_images(args.input, model.input_shape_per_example)
    print(f"wrote {plot.reconstructions(model, images, args.out, count=len(images))}")


def command_sample(args):
    from keras_ae import cards, plot

    _family(args.source, "sample")
    print(f"wrote {plot.samples(cards.load(args.source), args.out, count=args.n, seed=args.seed)}")


def command_export(args):
    from keras_ae import cards
    from keras_ae.export import export

    _family(args.source, "export")
    print(f"wrote {export(cards.load(args.source), args.directory)}")


def command_download(args):
    from keras_ae import cards, weights

    names = cards.list_models() if args.all else args.names
    if not names:
        raise ValueError("name at least one zoo entry, or pass --all")
    failures = 0
    for name in names:
        try:
            card = cards.model_card(name)
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
    root = argparse.ArgumentParser(prog="keras-ae", description="Pretrained Keras autoencoders: list, inspect, train, use.")
    root.add_argument("--verbose", action="store_true", help="show TensorFlow's own start-up log lines")
    commands = root.add_subparsers(dest="command", required=True)
    source_help = "a zoo name, a preset folder, an http(s):// URL of one, or hf://owner/repo[@revision]"

    def add(name, function, help_text):
        command = commands.add_parser(name, help=help_text, description=help_text)
        command.set_defaults(function=function)
        return command

    add("list", command_list, "List zoo entries.").add_argument("pattern", nargs="?", default="*", help="fnmatch filter, e.g. '*vae*'")
    add("info", command_info, "Show a model's card.").add_argument("source", help=source_help)
    demo = add("demo", command_demo, "Offline demo from the bundled weights: pictures and metrics on bundled real test images.")
    demo.add_argument("--out", default="demo_output", help="folder for the PNG files")
    gallery = add("gallery", command_gallery, "Write a browsable static page of the zoo: every entry, its numbers and pictures.")
    gallery.add_argument("--out", default="gallery", help="folder for index.html and its pictures")
    train = add("train", command_train, "Train a zoo entry (or a card file) from its recipe on the real data.")
    train.add_argument("name", nargs="?")
    train.add_argument("--card", help="a card JSON file instead of a zoo name")
    train.add_argument("--epochs", type=int)
    train.add_argument("--batch-size", type=int, help="global batch size")
    train.add_argument("--strategy", default="auto", help="auto, one_device, mirrored, multi_worker or tpu")
    train.add_argument("--precision", default="float32", help="float32, mixed_bfloat16 or mixed_float16")
    train.add_argument("--output", help="folder for the preset: weights, card and curves (default trained/NAME)")
    train.add_argument("--logdir", help="TensorBoard log folder")
    train.add_argument("--data-dir", help="folder holding <dataset>/ IDX files")
    train.add_argument("--backup-dir", help="BackupAndRestore folder, so a killed run resumes")
    evaluate = add("evaluate", command_evaluate, "Measure a model on its card's test split (needs KERAS_AE_DATA or TFDS).")
    evaluate.add_argument("source", help=source_help)
    evaluate.add_argument("--limit", type=int, help="only the first N test images")
    reconstruct = add("reconstruct", command_reconstruct, "Reconstruct images from a PNG or .npy file.")
    reconstruct.add_argument("source", help=source_help)
    reconstruct.add_argument("input")
    reconstruct.add_argument("--out", default="reconstruction.png")
    sample = add("sample", command_sample, "Draw samples from a model whose family samples (VAEs) into a PNG grid.")
    sample.add_argument("source", help=source_help)
    sample.add_argument("-n", type=int, default=40)
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--out", default="samples.png")
    export = add("export", command_export, "Export a model as a SavedModel with its family's signatures.")
    export.add_argument("source", help=source_help)
    export.add_argument("directory")
    download = add("download", command_download, "Fill (or --verify) the weight cache for offline use.")
    download.add_argument("names", nargs="*")
    download.add_argument("--all", action="store_true")
    download.add_argument("--mirror", help="base URL holding <name>/<file>")
    download.add_argument("--verify", action="store_true", help="only check the cache against the cards")
    return root


def main(argv=None):
    args = parser().parse_args(argv)
    with quiet_tensorflow(args.verbose):
        try:
            return args.function(args) or 0
        except (ValueError, OSError, KeyError, ImportError) as error:
            print(f"keras-ae {args.command}: error: {error}", file=sys.stderr)
            return 2


if __name__ == "__main__":
    sys.exit(main())
