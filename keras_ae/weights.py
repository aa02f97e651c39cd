"""Where weight files come from: the user cache, the copy bundled with the package, a URL or the Hugging Face Hub; sha256 always."""

import hashlib
import http.client
import os
import secrets
import shutil
import stat
import tempfile
import time
import urllib.error
import urllib.request
import warnings
from pathlib import Path

from keras_ae.errors import InputError, MissingExtraError
from keras_ae.files import atomic_copy  # noqa: F401  (weights.atomic_copy, as before)


PACKAGE_DIR = Path(__file__).resolve().parent
# Installed from a wheel, the zoo ships inside the package; in a checkout it is the top-level zoo/ folder.
ZOO_DIR = next((folder for folder in (PACKAGE_DIR / "zoo", PACKAGE_DIR.parent / "zoo") if folder.is_dir()), PACKAGE_DIR / "zoo")


class ChecksumError(InputError):
    """A file's sha256 is not the one its card promises."""


class CacheRepairWarning(UserWarning):
    """A weights file in the cache, or the bundled copy, failed its sha256 and was passed over for the next source."""


def cache_dir():
    """`$KERAS_AE_HOME`, default `~/.keras/keras_ae`."""
    return Path(os.environ.get("KERAS_AE_HOME", Path.home() / ".keras" / "keras_ae"))


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path, expected_sha256):
    """Raise ChecksumError unless `path` hashes to `expected_sha256`; return `path`."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"No weights file at {path}.")
    actual = sha256(path)
    if actual != expected_sha256:
        raise ChecksumError(f"{path}: sha256 is {actual}, the card expects {expected_sha256}. The file was not loaded.")
    return path


def check_writable(folder):
    """Raise a PermissionError naming `folder` unless a file can be created in it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(dir=folder, prefix=".probe-")
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        raise PermissionError(
            error.errno, f"Cannot write to the weight cache {folder}: {error.strerror}. "
            "Make it writable or point KERAS_AE_HOME at a writable folder."
        ) from None


class DownloadError(OSError):
    """A download that failed after its retries; nothing was written to the cache."""


def _fetch(url, temporary, timeout, progress):
    import keras

    with urllib.request.urlopen(url, timeout=timeout) as response, open(temporary, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0)
        bar = keras.utils.Progbar(total or None, unit_name="byte") if progress else None
        done = 0
        for block in iter(lambda: response.read(1 << 16), b""):
            out.write(block)
            done += len(block)
            if bar:
                bar.update(done)
    if total and done != total:
        raise DownloadError(f"{url}: the connection ended after {done} of {total} bytes.")


def download(url, destination, expected_sha256, timeout=30, retries=2, progress=False):
    """Fetch `url` to `destination`; the file appears only once whole and, unless `expected_sha256` is None, verified.

    Server errors (5xx), time-outs, dropped connections and hash mismatches are retried
    `retries` times; other HTTP errors (404) fail at once.
    """

    def fetch_verified(temporary):
        _fetch(url, temporary, timeout, progress)
        if expected_sha256 is not None:
            verify(temporary, expected_sha256)

    check_writable(Path(destination).parent)
    last_error = None
    for attempt in range(retries + 1):
        try:
            return atomic_copy(fetch_verified, destination)
        except urllib.error.HTTPError as error:
            last_error = f"HTTP {error.code} {error.reason}"
            if error.code < 500:
                break
        except (urllib.error.URLError, OSError, http.client.HTTPException, ChecksumError) as error:
            last_error = f"{type(error).__name__}: {getattr(error, 'reason', error)}"
        if attempt < retries:
            time.sleep(0.5 * 2**attempt)
    raise DownloadError(f"Download of {url} failed ({last_error}); nothing was written to {destination}.")


def check_file_name(file_name):
    """Refuse weight file names that could escape the zoo or cache folder."""
    if not file_name or Path(file_name).name != file_name or file_name in (".", ".."):
        raise InputError(f"Weight file name {file_name!r} must be a plain file name, without folders or '..'.")
    return file_name


def locations(card):
    """(cached, bundled) paths of a card's weights file."""
    file_name = check_file_name(card["weights"]["file"])
    return cache_dir() / card["name"] / file_name, ZOO_DIR / card["name"] / file_name


def source_url(card, mirror=None):
    """Where a card's weights download from: `<mirror>/<name>/<file>` (default `$KERAS_AE_MIRROR`), else the card's URL."""
    mirror = mirror or os.environ.get("KERAS_AE_MIRROR")
    if mirror:
        return f"{mirror.rstrip('/')}/{card['name']}/{check_file_name(card['weights']['file'])}"
    return card["weights"].get("url")


def set_aside(cached, actual_sha256, expected_sha256):
    """Rename a cached file that failed its hash to `<name>.corrupt-<its sha256, 12 digits>` beside it; nothing is deleted.

    Returns the new path, or None when the file is gone or verifies after all (another process repaired it meanwhile).
    """
    aside = cached.with_name(f"{cached.name}.corrupt-{actual_sha256[:12]}")
    try:
        os.replace(cached, aside)
    except FileNotFoundError:
        return None
    if sha256(aside) == expected_sha256:  # a repaired file landed between the hash and the rename: put it back
        os.replace(aside, cached)
        return None
    return aside


def _resolve(card, mirror, into_cache, progress, warn):
    """(path, steps): the verified weights of a zoo card and, in words, what was done to get them."""
    expected = card["weights"]["sha256"]
    cached, bundled = locations(card)
    steps = []

    def pass_over(step, path, actual, what):
        steps.append(f"{step} (sha256 {actual}, expected {expected})")
        if warn:
            warnings.warn(f"{path}: sha256 is {actual}, the card expects {expected}; {what}; trying the next source.",
                          CacheRepairWarning, stacklevel=4)

    if cached.exists():
        actual = sha256(cached)
        if actual == expected:
            return cached, [f"already cached at {cached}"]
        aside = set_aside(cached, actual, expected)
        if aside is None and cached.exists():
            return verify(cached, expected), [f"already cached at {cached}"]
        if aside is not None:
            pass_over(f"moved the corrupt cached copy aside to {aside}", cached, actual, f"moved it aside to {aside}")
    if bundled.exists() and not mirror:
        actual = sha256(bundled)
        if actual == expected:
            if not into_cache:
                return bundled, steps + [f"using the bundled copy {bundled}"]
            path = atomic_copy(lambda temporary: shutil.copyfile(bundled, temporary), cached)
            return path, steps + [f"copied the bundled weights to {path}"]
        pass_over(f"passed over the corrupt bundled copy {bundled}", bundled, actual, "the bundled copy was not used")
    url = source_url(card, mirror)
    if not url:
        if steps:
            raise ChecksumError(f"No verified weights for {card['name']!r}: {'; '.join(steps)}; and the card has no URL.")
        raise FileNotFoundError(
            f"No weights for {card['name']!r}: not in the cache ({cached}), not bundled ({bundled}), and the card has no URL."
        )
    path = download(url, cached, expected, progress=progress)
    return path, steps + [f"downloaded to {path}"]


def resolve(card, mirror=None, into_cache=False, progress=False):
    """Path of a zoo card's verified weights, from the first source that has them.

    The order: the user cache, the bundled copy (skipped when a `mirror` is named), a download into
    the cache from `mirror` (default `$KERAS_AE_MIRROR`, else the card's URL). With `into_cache`,
    a bundled copy is copied into the cache and the cached path returned. A cached file that fails
    its hash is renamed aside (`<file>.corrupt-<hash>`, see `set_aside`) with a `CacheRepairWarning`,
    and the next source is tried; `ChecksumError`, `FileNotFoundError` or `DownloadError` only when none has them.
    """
    return _resolve(card, mirror, into_cache, progress, warn=True)[0]


def fill_cache(card, mirror=None):
    """Put a zoo card's verified weights into the user cache (as `resolve` finds them, repairing a corrupt copy); return what was done."""
    _, steps = _resolve(card, mirror, into_cache=True, progress=True, warn=False)
    return f"{card['name']}: {', then '.join(steps)}"


def url_cache_folder(url):
    """The cache folder of a preset downloaded from `url`: `$KERAS_AE_HOME/presets/<sha256 of the URL, 16 digits>`."""
    return cache_dir() / "presets" / hashlib.sha256(url.encode()).hexdigest()[:16]


def hub_file(repo_id, file_name, revision=None):
    """Local path of one file of a Hugging Face Hub repository, through `huggingface_hub`'s own download and cache."""
    try:
        import huggingface_hub
        from huggingface_hub import errors
    except ImportError:
        raise MissingExtraError("hf:// sources need the huggingface_hub package: pip install \"keras-ae[hf]\"") from None
    try:
        return Path(huggingface_hub.hf_hub_download(repo_id, file_name, revision=revision))
    except (errors.HfHubHTTPError, errors.EntryNotFoundError, errors.LocalEntryNotFoundError) as error:
        where = f"hf://{repo_id}{'@' + revision if revision else ''}"
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise FileNotFoundError(f"{where}: could not get {file_name} ({type(error).__name__}: {first_line})") from None


def check_cache(card):
    """(ok, message) for a card's weights in the user cache."""
    cached, _ = locations(card)
    if not cached.exists():
        return False, f"{card['name']}: MISSING {cached}"
    actual = sha256(cached)
    if actual != card["weights"]["sha256"]:
        return False, f"{card['name']}: BAD {cached} sha256 {actual}, expected {card['weights']['sha256']}"
    return True, f"{card['name']}: OK {cached}"
