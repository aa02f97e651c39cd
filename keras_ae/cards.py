"""Cards and presets: read, validate, list, load a model from any source, save one as a preset.

A preset is a folder holding `card.json` (what the model is, how it was trained and measured, and
the sha256 of its weights) and the weights file. `keras_ae.load` takes a zoo name, such a folder,
an http(s) URL of one, or `hf://owner/repo[@revision]`.
"""

import copy
import dataclasses
import fnmatch
import json
import re
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from keras_ae import schema
from keras_ae import weights as weight_files
from keras_ae.errors import InputError

NAME_PATTERN = re.compile(r"^[a-z0-9_]+$")
CARD_FILE = "card.json"
WEIGHTS_FILE = "model.weights.h5"
SOURCE_FORMS = (
    "a zoo name (see keras_ae.list_models())",
    "a folder holding card.json and its weights (what keras-ae train and keras_ae.save_preset write)",
    "an https:// or http:// URL of such a folder",
    "hf://owner/repo or hf://owner/repo@revision (Hugging Face Hub)",
)


def card_path(name):
    return weight_files.ZOO_DIR / name / CARD_FILE


def list_models(pattern="*"):
    """Names of every zoo entry, filtered by an fnmatch pattern such as `"*vae*"`."""
    names = sorted(path.parent.name for path in weight_files.ZOO_DIR.glob(f"*/{CARD_FILE}"))
    return [name for name in names if fnmatch.fnmatch(name, pattern)]


def model_class(card, source="card"):
    """The registered keras_ae model class a card names (`"VAE"`, or `"package>Class"` for a family defined elsewhere)."""
    import keras

    from keras_ae.models import BaseAutoencoder

    name = str(card["model"].get("class_name"))
    registered = keras.saving.get_registered_object(name if ">" in name else f"keras_ae>{name}")
    if not (isinstance(registered, type) and issubclass(registered, BaseAutoencoder)):
        raise InputError(
            f"{source} names model class {name!r}, which is not a registered keras_ae model; "
            "import the module that defines it (registered with keras.saving.register_keras_serializable) first."
        )
    return registered


def validate(card, source="card", complete=True):
    """Check a card against `keras_ae.schema` (types, ranges, required keys), its class and evaluation settings; return it.

    Every error is one line naming `source` and the field. `complete=False` checks the form only, not the network
    section against its builder nor the class against the registry: that needs no TensorFlow (listing, showing).
    """
    schema.check(card, source, network=complete)
    if not complete:
        return card
    family = model_class(card, source)
    settings = task_of(card).evaluation_defaults
    unknown = set(card.get("evaluation", {})) - set(settings) - {"linear_probe"}
    if unknown:
        raise InputError(
            f"{source}: evaluation settings {sorted(unknown)} are not {family.__name__}'s; "
            f"it takes {sorted(settings) + ['linear_probe']}."
        )
    return card


def task_of(card):
    """The task class of the family a card names: what the rest of keras-ae asks about the family."""
    from keras_ae.models import task_for

    return task_for(model_class(card))


def read_card(path, source=None, complete=True):
    """A card from a JSON file, validated; errors name `source` (default: the file) and the line or field."""
    path = Path(path)
    source = source or str(path)
    try:
        card = json.loads(path.read_bytes().decode("utf-8"))
    except json.JSONDecodeError as error:
        raise InputError(f"{source}: line {error.lineno}, column {error.colno}: not valid JSON ({error.msg}).") from None
    except UnicodeDecodeError as error:
        raise InputError(f"{source}: not valid JSON (byte {error.start} is not UTF-8).") from None
    except RecursionError:
        raise InputError(f"{source}: not valid JSON (nested too deeply).") from None
    return validate(card, source, complete)


def build_model(card, seed=None, dtype=None):
    """A fresh, untrained model with the card's architecture and objective.

    Args:
        seed: seed of the network's initial weights (None: Keras' generator); no global random state is touched.
        dtype: the layers' dtype policy (None: Keras' global policy, left as it is).
    """
    from keras_ae import networks

    family = model_class(card)
    config = dict(card["model"].get("config", {}))
    if "network" in card:
        return family(*networks.build(**card["network"], seed=seed, dtype=dtype), **config, **({"dtype": dtype} if dtype else {}))
    return family.from_config(config)


@dataclasses.dataclass
class Preset:
    """A model's card, and how to get its verified weights file."""

    card: dict
    source: str
    fetch_weights: Callable[[], Path]


def _zoo_preset(name, complete):
    card = read_card(card_path(name), complete=complete)
    return Preset(card, name, lambda: weight_files.resolve(card))


def _folder_preset(folder, complete):
    card = read_card(folder / CARD_FILE, complete=complete)
    return Preset(card, str(folder), lambda: weight_files.verify(folder / card["weights"]["file"], card["weights"]["sha256"]))


def _url_preset(url, complete):
    url = url.rstrip("/")
    folder = weight_files.url_cache_folder(url)
    if not (folder / CARD_FILE).exists():
        weight_files.download(f"{url}/{CARD_FILE}", folder / CARD_FILE, expected_sha256=None)
    try:
        card = read_card(folder / CARD_FILE, source=f"{url}/{CARD_FILE}", complete=complete)
    except ValueError:  # not kept in the cache: the next try downloads it again
        (folder / CARD_FILE).unlink()
        raise

    def fetch():
        entry = card["weights"]
        local = folder / weight_files.check_file_name(entry["file"])
        if local.exists() and weight_files.sha256(local) == entry["sha256"]:
            return local
        return weight_files.download(f"{url}/{entry['file']}", local, entry["sha256"])

    return Preset(card, url, fetch)


def _hub_preset(address, complete):
    repo, _, revision = address.removeprefix("hf://").partition("@")
    card = read_card(weight_files.hub_file(repo, CARD_FILE, revision or None), source=f"{CARD_FILE} of {address}", complete=complete)
    entry = card["weights"]
    return Preset(
        card, address,
        lambda: weight_files.verify(weight_files.hub_file(repo, weight_files.check_file_name(entry["file"]), revision or None), entry["sha256"]),
    )


def unknown_source(source, reason):
    """The one error for a source of no known form, with the zoo names closest to it (ignoring case)."""
    import difflib

    close = difflib.get_close_matches(str(source).lower(), list_models(), n=5, cutoff=0.5)
    hint = f" Close matches: {close}." if close else ""
    forms = "; ".join(SOURCE_FORMS)
    return InputError(f"Unknown model source {source!r}: {reason}.{hint} A source is {forms}. Zoo names: {list_models()}.")


def find_preset(source, complete=True):
    """Where a model comes from: a zoo name, a preset folder, an http(s) URL of one, or `hf://owner/repo[@revision]`.

    `complete=False` checks the card's form only (see `validate`).
    """
    if isinstance(source, Path):
        source = str(source)
    if not isinstance(source, str) or not source:
        raise unknown_source(source, "not a non-empty string or path")
    if source.startswith("hf://"):
        if not re.match(r"^hf://[\w.-]+/[\w.-]+(@[\w./-]+)?$", source):
            raise unknown_source(source, "a Hub address is hf://owner/repo or hf://owner/repo@revision")
        return _hub_preset(source, complete)
    if source.startswith(("https://", "http://")):
        return _url_preset(source, complete)
    if "://" in source:
        raise unknown_source(source, f"the scheme {source.split('://')[0]}:// is not supported")
    if NAME_PATTERN.match(source) and card_path(source).exists():
        return _zoo_preset(source, complete)
    folder = Path(source).expanduser()
    if (folder / CARD_FILE).is_file():
        return _folder_preset(folder, complete)
    if folder.is_dir():
        raise unknown_source(source, f"the folder holds no {CARD_FILE}")
    if source.lower() in list_models():
        raise unknown_source(source, f"zoo names are lowercase; this one is {source.lower()!r}")
    reason = "no zoo entry has that name" if NAME_PATTERN.match(source) else "no such folder"
    raise unknown_source(source, reason)


def model_card(source, complete=True):
    """The card of a model source (see `load`) as a dict; an unknown one lists every accepted form.

    `complete=False` checks the card's form only, without importing TensorFlow (see `validate`).
    """
    return copy.deepcopy(find_preset(source, complete).card)


def load(source, weights=True, verify=True, dtype=None):
    """A model from a zoo name, a preset folder, an http(s) URL of one, or `hf://owner/repo[@revision]`.

    Args:
        source: where the model comes from; an unknown form gets one error listing every accepted form.
        weights: True for the trained weights (verified against the card's sha256; a zoo entry's come from
            the cache, the bundled copy or a download), None for fresh ones, or a path to a `.weights.h5` file.
        verify: check a weights file given by path against the card's sha256; False opts out.
        dtype: the model's dtype policy (None: Keras' global policy), e.g. `"float32"` whatever trained it.
    """
    preset = find_preset(source)
    model = build_model(preset.card, dtype=dtype)
    if weights is True:
        model.load_weights(preset.fetch_weights())
    elif weights:
        if verify:
            weight_files.verify(weights, preset.card["weights"]["sha256"])
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
        staged = Path(scratch) / WEIGHTS_FILE
        bare.save_weights(staged)
        path = weight_files.atomic_copy(lambda temporary: shutil.copyfile(staged, temporary), path)
    card["weights"].update(sha256=weight_files.sha256(path), size=path.stat().st_size)
    return path


def describe(model, name):
    """A minimal card for a model built by hand: its class, its full config (encoder and decoder included)."""
    import keras

    registered = keras.saving.get_registered_name(type(model))
    return {
        "name": name,
        "description": f"A {type(model).__name__} saved with keras_ae.save_preset.",
        "model": {"class_name": registered.removeprefix("keras_ae>"), "config": model.get_config()},
        "weights": {"file": WEIGHTS_FILE},
    }


def save_preset(model, folder, card=None):
    """Write `model` as a preset folder that `keras_ae.load(folder)` (or a URL or Hub copy of it) loads back.

    Args:
        model: a keras_ae model.
        folder: where to write `card.json` and the weights; created if needed, files replaced atomically.
        card: the model's card (e.g. a zoo card with its recipe and metrics); default: a minimal card
            naming the model's class and config. Its weights' sha256 and size are filled in.
    Returns:
        the card as written.
    """
    folder = Path(folder)
    if card is None:
        card = describe(model, re.sub(r"[^a-z0-9_]+", "_", folder.resolve().name.lower()).strip("_") or "model")
    card = copy.deepcopy(card)
    card["weights"] = {"file": card.get("weights", {}).get("file", WEIGHTS_FILE), "url": None}
    validate(card)
    save_weights(model, card, folder / card["weights"]["file"])
    write_card(card, folder / CARD_FILE)
    return card
