"""The `keras-ae` command: the zoo from a shell, thin over the library."""

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def _card_line(card):
    metrics = card.get("metrics", {})
    main = (
        f"NLL {metrics['iwae_nll_nats']:.2f} nats" if "iwae_nll_nats" in metrics
        else f"PSNR {metrics['psnr_db']:.2f} dB" if "psnr_db" in metrics else "not measured"
    )
    return f"{card['name']:<24} {card['model']['class_name']:<22} {card['data']['dataset']:<14} {main}"


def command_list(args):
    from keras_ae import cards

    for name in cards.list_models(args.pattern):
        print(_card_line(cards.model_card(name)))


def command_info(args):
    from keras_ae import cards

    card = cards.model_card(args.name)
    print(f"{card['name']}: {card['description']}")
    for section in ("model", "network", "data", "recipe", "training", "metrics", "weights"):
        if section in card:
            print(f"\n[{section}]")
            for key, value in card[section].items():
                print(f"  {key}: {json.dumps(value) if isinstance(value, (dict, list)) else value}")


def command_train(args):
    import keras

    from keras_ae import cards, plot
    from keras_ae.train import train

    if bool(args.name) == bool(args.card):
        raise ValueError("give a zoo name or --card FILE, not both and not neither")
    card = cards.model_card(args.name) if args.name else cards.validate(json.loads(Path(args.card).read_text()), args.card)
    callbacks = [keras.callbacks.TensorBoard(args.logdir)] if args.logdir else []
    model, history, stats = train(
        card, strategy=args.strategy, epochs=args.epochs, batch_size=args.batch_size, precision=args.precision,
        data_dir=args.data_dir, callbacks=callbacks, backup_dir=args.backup_dir,
    )
    output = Path(args.output or f"trained/{card['name']}")
    card["weights"]["url"] = None
    path = cards.save_weights(model, card, output / card["weights"]["file"])
    card["training"] = stats
    cards.write_card(card, output / "card.json")
    plot.training_curves(history, output / "training_curves.png")
    print(f"wrote {path}, {output / 'card.json'} and {output / 'training_curves.png'}")


def command_evaluate(args):
    from keras_ae import cards, evaluate

    card = cards.model_card(args.name)
    metrics = evaluate.measure(card, cards.load(args.name), limit=args.limit)
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

    model = cards.load(args.name)
    images = _read_images(args.input, model.input_shape_per_example)
    print(f"wrote {plot.reconstructions(model, images, args.out, count=len(images))}")


def command_sample(args):
    from keras_ae import cards, plot
    from keras_ae.models import VAE

    model = cards.load(args.name)
    if not isinstance(model, VAE):
        raise ValueError(f"{args.name} is a {type(model).__name__}; only VAE entries can sample")
    print(f"wrote {plot.samples(model, args.out, count=args.n, seed=args.seed)}")


def command_export(args):
    from keras_ae import cards
    from keras_ae.export import export

    print(f"wrote {export(cards.load(args.name), args.directory)}")


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


def parser():
    from keras_ae.train import PRECISIONS, STRATEGIES

    root = argparse.ArgumentParser(prog="keras-ae", description="Pretrained Keras autoencoders: list, inspect, train, use.")
    commands = root.add_subparsers(dest="command", required=True)

    def add(name, function, help_text):
        command = commands.add_parser(name, help=help_text, description=help_text)
        command.set_defaults(function=function)
        return command

    add("list", command_list, "List zoo entries.").add_argument("pattern", nargs="?", default="*", help="fnmatch filter, e.g. '*vae*'")
    add("info", command_info, "Show a zoo entry's card.").add_argument("name")
    demo = add("demo", command_demo, "Offline demo from the bundled weights: pictures and metrics on bundled real test images.")
    demo.add_argument("--out", default="demo_output", help="folder for the PNG files")
    train = add("train", command_train, "Train a zoo entry (or a card file) from its recipe on the real data.")
    train.add_argument("name", nargs="?")
    train.add_argument("--card", help="a card JSON file instead of a zoo name")
    train.add_argument("--epochs", type=int)
    train.add_argument("--batch-size", type=int, help="global batch size")
    train.add_argument("--strategy", default="auto", choices=STRATEGIES)
    train.add_argument("--precision", default="float32", choices=PRECISIONS)
    train.add_argument("--output", help="folder for the weights and card (default trained/NAME)")
    train.add_argument("--logdir", help="TensorBoard log folder")
    train.add_argument("--data-dir", help="folder holding <dataset>/ IDX files")
    train.add_argument("--backup-dir", help="BackupAndRestore folder, so a killed run resumes")
    evaluate = add("evaluate", command_evaluate, "Measure a zoo entry on its test split (needs KERAS_AE_DATA or TFDS).")
    evaluate.add_argument("name")
    evaluate.add_argument("--limit", type=int, help="only the first N test images")
    reconstruct = add("reconstruct", command_reconstruct, "Reconstruct images from a PNG or .npy file.")
    reconstruct.add_argument("name")
    reconstruct.add_argument("input")
    reconstruct.add_argument("--out", default="reconstruction.png")
    sample = add("sample", command_sample, "Draw samples from a VAE entry into a PNG grid.")
    sample.add_argument("name")
    sample.add_argument("-n", type=int, default=40)
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--out", default="samples.png")
    export = add("export", command_export, "Export a zoo entry as a SavedModel.")
    export.add_argument("name")
    export.add_argument("directory")
    download = add("download", command_download, "Fill (or --verify) the weight cache for offline use.")
    download.add_argument("names", nargs="*")
    download.add_argument("--all", action="store_true")
    download.add_argument("--mirror", help="base URL holding <name>/<file>")
    download.add_argument("--verify", action="store_true", help="only check the cache against the cards")
    return root


def main(argv=None):
    args = parser().parse_args(argv)
    try:
        return args.function(args) or 0
    except (ValueError, OSError, KeyError) as error:
        print(f"keras-ae {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
