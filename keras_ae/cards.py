"""Cards and presets: read, validate, list, load a model from any source, save one as a preset.

A card is typed (`Card`, see `keras_ae.card_types`) inside keras-ae; `model_card`, `save_preset` and `finish` hand
users its JSON form (a dict), and every function that takes a card takes either.

A preset is a folder holding `card.json` (what the model is, how it was trained and measured, and
the sha256 of its weights) and the weights file. `keras_ae.load` takes a zoo name, such a folder,
an http(s) URL of one, or `hf://owner/repo[@revision]`.
"""

import contextlib
import dataclasses
import errno
import fcntl
import fnmatch
import json
import os
import random
import re
import secrets
import shutil
import stat
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Callable

from keras_ae import weights as weight_files
from keras_ae.card_types import (  # noqa: F401  (the typed card's public names are keras_ae.cards')
    Anomaly, Card, Data, InitialWeights, KerasClass, Network, Recipe, Weights, as_card, model_class, task_of,
)
from keras_ae.errors import InputError

NAME_PATTERN = re.compile(r"^[a-z0-9_]+$")
CARD_FILE = "card.json"
WEIGHTS_FILE = "model.weights.h5"
PRESET_EXTRAS = ("training_curves.png",)  # files a preset writer may put beside the card and the weights
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
    names = sorted(path.parent.name for path in weight_files.ZOO_DIR.glob(f"*/{CARD_FILE}") if NAME_PATTERN.match(path.parent.name))
    return [name for name in names if fnmatch.fnmatch(name, pattern)]


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
    return Card.from_json(card, source, complete)


def build_model(card, seed=None, dtype=None):
    """A fresh, untrained model with the card's architecture and objective.

    Args:
        card: a `Card` or its JSON form.
        seed: seed of the network's initial weights, and of the model's own draws where its config names none (None:
            Keras' generator); no global random state is reseeded.
        dtype: the layers' dtype policy (None: Keras' global policy, left as it is).

    A card without a network section (a hand-built model: `model.config` holds its encoder and decoder whole) gets its
    initial weights from the initializers in that config: `seed` seeds those that name no seed of their own, and a
    `dtype` other than its layers' own policy is refused, since the policy is fixed in the config.
    """
    from keras_ae import networks

    card = as_card(card)
    family = model_class(card)
    config = dict(card.model.config)
    if seed is not None:  # the model's own draws too, unless its config names a seed of its own
        config.setdefault("seed", seed)
    if card.network is None:
        with _python_random_seeded(seed):  # Keras draws an unseeded initializer's seed from Python's `random`
            model = family.from_config(config)
        policies = {layer.dtype_policy.name for network in (model.encoder, model.decoder) for layer in network.layers if layer.weights}
        wanted = None if dtype is None else keras_dtype_name(dtype)
        if wanted is not None and policies != {wanted}:
            raise InputError(f"card {card.name!r} has no network section: its encoder and decoder come whole from model.config, "
                             f"whose layers compute in {sorted(policies)}; the dtype policy {wanted!r} (a recipe's precision) "
                             "cannot be applied to them: ask for that one, or give the card a network section")
        return model
    return family(*networks.build(**card.network.arguments(), seed=seed, dtype=dtype), **{**config, **({"dtype": dtype} if dtype else {})})


@contextlib.contextmanager
def _python_random_seeded(seed):
    """Seed Python's `random` for the block (nothing when `seed` is None), then give the caller's state back."""
    if seed is None:
        yield
        return
    state = random.getstate()
    random.seed(seed)
    try:
        yield
    finally:
        random.setstate(state)


def keras_dtype_name(dtype):
    """The name of a dtype policy given as a name or a `keras.DTypePolicy`."""
    return getattr(dtype, "name", dtype)


@dataclasses.dataclass
class Preset:
    """A model's typed card, and how to get its verified weights file."""

    card: Card
    source: str
    fetch_weights: Callable[[], Path]


def _zoo_preset(name, complete, timeout):
    card = read_card(card_path(name), complete=complete)
    return Preset(card, name, lambda: weight_files.resolve(card, timeout=timeout))


def _folder_preset(folder, complete):
    card = read_card(folder / CARD_FILE, complete=complete)
    return Preset(card, str(folder), lambda: weight_files.verify(folder / card.weights.file, card.weights.sha256))


class CachedCardWarning(UserWarning):
    """A URL preset's server could not be reached, so the card cached by an earlier load was used unchecked."""


def _url_preset(url, complete, timeout):
    """A preset at a URL: its card fetched afresh on each load (the cached one only when the server cannot be reached),
    its weights cached by the sha256 the card gives (see `weights.url_cache_folder`)."""
    url = url.rstrip("/")
    folder = weight_files.url_cache_folder(url)
    cached_card, source = folder / CARD_FILE, f"{url}/{CARD_FILE}"
    try:
        weight_files.download(source, cached_card, expected_sha256=None, timeout=timeout, max_bytes=weight_files.CARD_MAX_BYTES)
    except weight_files.DownloadError as error:
        if isinstance(error, weight_files.ContentError) or not cached_card.exists():
            raise
        warnings.warn(f"{error} Using the card cached at {cached_card} by an earlier load, unchecked.", CachedCardWarning,
                      stacklevel=4)
    try:
        card = read_card(cached_card, source=source, complete=complete)
    except ValueError:  # not kept in the cache: the next try downloads it again
        cached_card.unlink(missing_ok=True)
        raise

    def fetch():
        entry = card.weights
        file_name, expected = weight_files.check_file_name(entry.file), entry.sha256
        if expected is None:
            raise InputError(f"{source}: weights.sha256 is null; a preset at a URL must pin its weights by sha256 "
                             "(keras_ae.save_preset writes it).")
        local = folder / expected / file_name
        if local.exists() and weight_files.sha256(local) == expected:
            return local
        try:
            return weight_files.download(f"{url}/{file_name}", local, expected, timeout=timeout,
                                         max_bytes=weight_files.size_limit(entry.size))
        except weight_files.DownloadError as error:
            if isinstance(error, weight_files.ContentError):  # the card promised other weights: never fall back to it
                cached_card.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                local.parent.rmdir()
            raise

    return Preset(card, url, fetch)


def _hub_preset(address, complete, timeout):
    repo, _, revision = address.removeprefix("hf://").partition("@")
    card_file = weight_files.hub_file(repo, CARD_FILE, revision or None, timeout=timeout)
    card = read_card(card_file, source=f"{CARD_FILE} of {address}", complete=complete)
    entry = card.weights

    def fetch():
        path = weight_files.hub_file(repo, weight_files.check_file_name(entry.file), revision or None, timeout=timeout)
        return weight_files.verify(path, entry.sha256)

    return Preset(card, address, fetch)


def unknown_source(source, reason):
    """The one error for a source of no known form, with the zoo names closest to it (ignoring case)."""
    import difflib

    close = difflib.get_close_matches(str(source).lower(), list_models(), n=5, cutoff=0.5)
    hint = f" Close matches: {close}." if close else ""
    forms = "; ".join(SOURCE_FORMS)
    return InputError(f"Unknown model source {source!r}: {reason}.{hint} A source is {forms}. Zoo names: {list_models()}.")


def find_preset(source, complete=True, timeout=None):
    """Where a model comes from: a zoo name, a preset folder, an http(s) URL of one, or `hf://owner/repo[@revision]`.

    `complete=False` checks the card's form only (see `Card.from_json`); `timeout` bounds downloads (see `load`).
    """
    timeout = None if timeout is None else weight_files.timeout_seconds(timeout)
    if isinstance(source, Path):
        source = str(source)
    if not isinstance(source, str) or not source:
        raise unknown_source(source, "not a non-empty string or path")
    if source.startswith("hf://"):
        if not re.match(r"^hf://[\w.-]+/[\w.-]+(@[\w./-]+)?$", source):
            raise unknown_source(source, "a Hub address is hf://owner/repo or hf://owner/repo@revision")
        return _hub_preset(source, complete, timeout)
    if source.startswith(("https://", "http://")):
        return _url_preset(source, complete, timeout)
    if "://" in source:
        raise unknown_source(source, f"the scheme {source.split('://')[0]}:// is not supported")
    if NAME_PATTERN.match(source) and card_path(source).exists():
        return _zoo_preset(source, complete, timeout)
    folder = Path(source).expanduser()
    if (folder / CARD_FILE).is_file():
        return _folder_preset(folder, complete)
    if folder.is_dir():
        raise unknown_source(source, f"the folder holds no {CARD_FILE}")
    if source.lower() in list_models():
        raise unknown_source(source, f"zoo names are lowercase; this one is {source.lower()!r}")
    reason = "no zoo entry has that name" if NAME_PATTERN.match(source) else "no such folder"
    raise unknown_source(source, reason)


def model_card(source, complete=True, timeout=None):
    """The card of a model source (see `load`) in its JSON form, a dict of your own to read, change and pass on (to
    `keras_ae.train`, say); an unknown source lists every accepted form. `Card.from_json` makes it typed.

    `complete=False` checks the card's form only, without importing TensorFlow (see `Card.from_json`).

    Raises:
        InputError: the source is none of the accepted forms (a zoo name, a folder, an URL, hf://...), its card is not
            valid, or `timeout` is not a positive number of seconds.
        FileNotFoundError: an hf:// repository (or revision) has no card.json.
        DownloadError: a download from a URL or the Hub failed (`keras_ae.weights.DownloadError`, an OSError).
        MissingExtraError: an hf:// source without `huggingface_hub` installed (`pip install "keras-ae[hf]"`).
    """
    return find_preset(source, complete, timeout).card.to_json()


def load(source, weights=True, verify=True, dtype=None, timeout=None):
    """A model from a zoo name, a preset folder, an http(s) URL of one, or `hf://owner/repo[@revision]`.

    Args:
        source: where the model comes from; an unknown form gets one error listing every accepted form.
        weights: True for the trained weights (verified against the card's sha256; a zoo entry's come from
            the cache, the bundled copy or a download), None for fresh ones, or a path to a `.weights.h5` file.
        verify: check a weights file given by path against the card's sha256; False opts out.
        dtype: the model's dtype policy (None: Keras' global policy), e.g. `"float32"` whatever trained it.
        timeout: seconds a download may wait to connect and between reads (default `$KERAS_AE_TIMEOUT`, else 30);
            each download, retries included, ends within 10 of them and reads no more than its card announces.

    Raises:
        InputError: the source is none of the accepted forms (a zoo name, a folder, an URL, hf://...), its card is not
            valid, or `timeout` is not a positive number of seconds; or `dtype` for a card without a network section, or
            a URL preset pinning no weights sha256.
        FileNotFoundError: no weights file at `weights` or in the preset, or a zoo entry's weights are neither cached,
            bundled nor at a URL.
        ChecksumError: the weights' sha256 is not the card's (for a path given as `weights`, unless `verify=False`).
        DownloadError: a download from a URL or the Hub failed (`keras_ae.weights.DownloadError`, an OSError).
        MissingExtraError: an hf:// source without `huggingface_hub` installed (`pip install "keras-ae[hf]"`).
    """
    preset = find_preset(source, timeout=timeout)
    model = build_model(preset.card, dtype=dtype)
    if weights is True:
        model.load_weights(preset.fetch_weights())
    elif weights:
        if verify:
            weight_files.verify(weights, preset.card.weights.sha256)
        model.load_weights(weights)
    return model


def write_card(card, path=None):
    """Write a card (a `Card` or its JSON form) as indented JSON, atomically, checked afresh as written (a `Card` changed
    with `dataclasses.replace` has not been checked since `Card.from_json`)."""
    card = Card.from_json(card.to_json() if isinstance(card, Card) else card)
    path = path or card_path(card.name)
    text = json.dumps(card.to_json(), indent=2) + "\n"
    weight_files.atomic_copy(lambda temporary: open(temporary, "w").write(text), path)
    return path


def save_weights(model, card, path):
    """Write only the model's weights (no optimizer state) atomically; return the card with their sha256 and size.

    The HDF5 file is staged in a scratch folder and then copied into place: an HDF5 writer that
    hits a full disk leaves h5py in a state that crashes the interpreter at exit, a plain copy does not.
    """
    card = as_card(card)
    bare = build_model(card)
    bare.set_weights(model.get_weights())
    with tempfile.TemporaryDirectory() as scratch:
        staged = Path(scratch) / WEIGHTS_FILE
        bare.save_weights(staged)
        path = weight_files.atomic_copy(lambda temporary: shutil.copyfile(staged, temporary), path)
    return dataclasses.replace(card, weights=dataclasses.replace(card.weights, sha256=weight_files.sha256(path),
                                                                 size=path.stat().st_size))


def describe(model, name):
    """A minimal card for a model built by hand: its class, its full config (encoder and decoder included)."""
    import keras

    registered = keras.saving.get_registered_name(type(model))
    return Card.from_json({
        "name": name,
        "description": f"A {type(model).__name__} saved with keras_ae.save_preset.",
        "model": {"class_name": registered.removeprefix("keras_ae>"), "config": model.get_config()},
        "weights": {"file": WEIGHTS_FILE},
    })


_held_locks = threading.local()  # the preset locks this thread holds, so that a holder may write the preset itself


@contextlib.contextmanager
def preset_lock(folder):
    """Hold the lock of the preset folder `folder` (an flock on `.NAME.lock` beside it) while the block runs.

    One writer at a time: another process or thread asking for it meanwhile gets a one-line `InputError` at once,
    rather than waiting for a training run. The lock dies with its process; a thread holding it may take it again.
    """
    folder = Path(folder).expanduser().resolve()
    lock_path = folder.parent / f".{folder.name}.lock"
    held = _held_locks.__dict__.setdefault("paths", set())
    if lock_path in held:
        yield
        return
    folder.parent.mkdir(parents=True, exist_ok=True)
    while True:
        descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            raise InputError(f"{folder} is being written by another keras-ae process or thread (it holds {lock_path}); "
                             "wait until it is done, or write the preset to another folder.") from None
        except BaseException:
            os.close(descriptor)
            raise
        try:
            if os.path.samestat(os.fstat(descriptor), os.stat(lock_path)):
                break
        except FileNotFoundError:
            pass
        os.close(descriptor)  # the holder before removed this lock file as it let go: lock the one now there
    held.add(lock_path)
    try:
        yield
    finally:
        held.discard(lock_path)
        with contextlib.suppress(OSError):
            os.unlink(lock_path)
        os.close(descriptor)


def _weights_name(folder):
    """The weights file the card in `folder` names (the default name if it names none readably)."""
    try:
        name = json.loads((folder / CARD_FILE).read_text())["weights"]["file"]
    except (OSError, ValueError, KeyError, TypeError):
        return WEIGHTS_FILE
    return name if isinstance(name, str) and name and "/" not in name else WEIGHTS_FILE


def check_preset_target(folder, overwrite=True, argument=""):
    """Refuse to write a preset at `folder` where it would replace anything but a preset: a file, a folder holding other
    files (or a card without its weights), or, unless `overwrite`, a preset. An absent or empty folder is always fine.

    `argument` names the folder as the user gave it (the command's "--output ") in the message.
    """
    folder = Path(folder).expanduser()
    fix = f"give another {argument.split()[-1]}" if argument else "give another folder"
    if not folder.exists() and not folder.is_symlink():
        return
    if not folder.is_dir():
        raise InputError(f"{argument}{folder} is a file (or a broken link), not a folder; {fix}.")
    names = sorted(entry.name for entry in folder.iterdir())
    if not names:
        return
    weights = _weights_name(folder)
    foreign = [name for name in names if name not in (CARD_FILE, weights, *PRESET_EXTRAS)]
    missing = [name for name in (CARD_FILE, weights) if name not in names]
    if foreign or missing:
        listed = ", ".join(foreign[:3]) + (f", ... ({len(foreign)} in all)" if len(foreign) > 3 else "")
        found = f"files that are not a preset's ({listed})" if foreign else f"a partial preset (no {' and no '.join(missing)})"
        raise InputError(f"{argument}{folder} holds {found}; a preset is written only into a new or empty folder, or over "
                         f"a preset ({CARD_FILE} and its weights), so nothing else is replaced: {fix}.")
    if not overwrite:
        raise InputError(f"{argument}{folder} already holds a preset ({', '.join(names)}); pass --overwrite to replace it, "
                         f"or {fix}.")


def _replace_folder(staging, folder):
    """Move the folder `staging` to `folder`: in one rename where `folder` is absent or empty, else by moving the old
    one aside first (put back if the second rename fails) and then deleting it."""
    try:
        os.rename(staging, folder)
        return
    except OSError as error:
        if error.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
    aside = folder.parent / f".{folder.name}.replaced-{secrets.token_hex(8)}"
    os.rename(folder, aside)
    try:
        os.rename(staging, folder)
    except BaseException:
        os.rename(aside, folder)
        raise
    shutil.rmtree(aside, ignore_errors=True)


@contextlib.contextmanager
def writing_preset(folder):
    """Yield an empty folder beside `folder` to write a preset into; when the block succeeds it replaces `folder` as a
    whole, under `preset_lock`, so a reader sees the old preset or the new one and never a mix of two writers' files.

    A folder of other files is refused (`check_preset_target`); if the block fails, `folder` is left as it was.
    """
    folder = Path(folder).expanduser().resolve()
    with preset_lock(folder):
        check_preset_target(folder)
        staging = folder.parent / f".{folder.name}.partial-{secrets.token_hex(8)}"
        staging.mkdir()
        try:
            yield staging
            if folder.is_dir():
                os.chmod(staging, stat.S_IMODE(folder.stat().st_mode))
            _replace_folder(staging, folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def write_preset(model, folder, card):
    """Write the weights and `card.json` into `folder` as it stands, filling in the weights' sha256 and size; return the
    card (a `Card`) as written. Writers call it inside `writing_preset` (as `save_preset` does), which makes the folder
    whole."""
    given = card.to_json() if isinstance(card, Card) else card  # its JSON form may leave the weights out
    card = Card.from_json({**given, "weights": {"file": given.get("weights", {}).get("file", WEIGHTS_FILE), "url": None}})
    card = save_weights(model, card, Path(folder) / card.weights.file)
    write_card(card, Path(folder) / CARD_FILE)
    return card


def save_preset(model, folder, card=None):
    """Write `model` as a preset folder that `keras_ae.load(folder)` (or a URL or Hub copy of it) loads back.

    Args:
        model: a keras_ae model.
        folder: where to write `card.json` and the weights: a new or empty folder, or a preset, which is replaced as a
            whole (see `writing_preset`); a folder holding other files is refused, and so is a second writer of the
            same folder while the first one writes.
        card: the model's card, a `Card` or its JSON form (e.g. a zoo card with its recipe and metrics); default: a
            minimal card naming the model's class and config. Its weights' sha256 and size are filled in.

    Returns:
        the card as written, in its JSON form (a dict).

    Raises:
        InputError: `folder` is a file or holds files that are not a preset's, or another keras-ae process or thread is
            writing it; or `card` is not a valid card.
    """
    folder = Path(folder).expanduser()
    if card is None:
        card = describe(model, re.sub(r"[^a-z0-9_]+", "_", folder.resolve().name.lower()).strip("_") or "model")
    with writing_preset(folder) as staging:
        return write_preset(model, staging, card).to_json()
