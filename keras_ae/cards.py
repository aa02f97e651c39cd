"""Zoo cards: read, validate, list, build and load models by name."""

import fnmatch
import json
import re
import shutil
import tempfile
from pathlib import Path

import keras

from keras_ae import networks
from keras_ae import weights as weight_files

NAME_PATTERN = re.compile(r"^[a-z0-9_]+$")
SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")
REQUIRED_FIELDS = ("name", "description", "model", "network", "data", "recipe", "weights")


def card_path(name):
    return weight_files.ZOO_DIR / name / "card.json"


def list_models(pattern="*"):
    """Names of every zoo entry, filtered by an fnmatch pattern such as `"*vae*"`."""
    names = sorted(path.parent.name for path in weight_files.ZOO_DIR.glob("*/card.json"))
    return [name for name in names if fnmatch.fnmatch(name, pattern)]


def validate(card, source="card"):
    """Check a card's fields and their form; return it."""
    missing = [field for field in REQUIRED_FIELDS if field not in card]
    if missing:
        raise ValueError(f"{source} lacks the fields {missing}; a card needs {list(REQUIRED_FIELDS)}.")
    if not isinstance(card["name"], str) or not NAME_PATTERN.match(card["name"]):
        raise ValueError(f"{source}: name {card['name']!r} must match {NAME_PATTERN.pattern}.")
    entry = card["weights"]
    weight_files.check_file_name(entry.get("file"))
    if entry.get("sha256") is not None and not SHA256_PATTERN.match(str(entry["sha256"])):
        raise ValueError(f"{source}: weights.sha256 must be 64 lowercase hex digits; got {entry['sha256']!r}.")
    size = entry.get("size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise ValueError(f"{source}: weights.size must be a non-negative integer of bytes; got {size!r}.")
    return card


def model_card(name):
    """The card of zoo entry `name` as a dict; an unknown name lists close matches."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name) or not card_path(name).exists():
        import difflib

        close = difflib.get_close_matches(str(name), list_models(), n=5, cutoff=0.5)
        hint = f" Close matches: {close}." if close else ""
        raise ValueError(f"Unknown zoo model {name!r}.{hint} Available: {list_models()}.")
    with open(card_path(name)) as handle:
        return validate(json.load(handle), source=str(card_path(name)))


def build_model(card):
    """A fresh, untrained model with the card's architecture and objective."""
    model_class = keras.saving.get_registered_object(f"keras_ae>{card['model']['class_name']}")
    if model_class is None:
        raise ValueError(f"Card {card['name']!r} names unknown model class {card['model']['class_name']!r}.")
    encoder, decoder = networks.build(**card["network"])
    return model_class(encoder, decoder, **card["model"].get("config", {}))


def load(name, weights=True, verify=True):
    """A zoo model by name.

    Args:
        name: a zoo entry (see `list_models`).
        weights: True for the pretrained weights (cache, bundled copy or download), None for fresh
            ones, or a path to a `.weights.h5` file.
        verify: check a weights file given by path against the card's sha256; False opts out.
    """
    card = model_card(name)
    model = build_model(card)
    if weights is True:
        model.load_weights(weight_files.resolve(card))
    elif weights:
        if verify:
            weight_files.verify(weights, card["weights"]["sha256"])
        model.load_weights(weights)
    return model


def write_card(card, path=None):
    """Validate and write a card as indented JSON, atomically."""
    validate(card)
    path = path or card_path(card["name"])
    text = json.dumps(card, indent=2) + "\n"
    weight_files.atomic_copy(lambda temporary: open(temporary, "w").write(text), path)
    return path


def save_weights(model, card, path):
    """Write only the model's weights (no optimizer state) atomically, and record their sha256 and size in `card`.

    The HDF5 file is staged in a scratch folder and then copied into place: an HDF5 writer that
    hits a full disk leaves h5py in a state that crashes the interpreter at exit, a plain copy does not.
    """
    bare = build_model(card)
    bare.set_weights(model.get_weights())
    with tempfile.TemporaryDirectory() as scratch:
        staged = Path(scratch) / "model.weights.h5"
        bare.save_weights(staged)
        path = weight_files.atomic_copy(lambda temporary: shutil.copyfile(staged, temporary), path)
    card["weights"].update(sha256=weight_files.sha256(path), size=path.stat().st_size)
    return path
