"""Where weights come from: the user cache, the copy bundled with the package, or a URL; sha256 always."""

import hashlib
import http.client
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import keras

ZOO_DIR = Path(__file__).resolve().parent / "zoo"


class ChecksumError(ValueError):
    """A file's sha256 is not the one its card promises."""


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
    """Raise ChecksumError unless `path` hashes to `expected_sha256`."""
    actual = sha256(path)
    if actual != expected_sha256:
        raise ChecksumError(f"{path}: sha256 is {actual}, the card expects {expected_sha256}. The file was not loaded.")
    return path


def atomic_copy(write, destination):
    """Call `write(temporary_path)`, then move the result onto `destination` in one rename.

    On any failure the temporary file is removed and `destination` keeps its previous content.
    """
    destination = Path(destination)
    temporary = None
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=destination.parent, prefix=".partial-", suffix=f"-{destination.name}")
        os.close(handle)
        write(temporary)
        os.replace(temporary, destination)
    except OSError as error:
        if temporary:
            Path(temporary).unlink(missing_ok=True)
        if error.errno is None:  # not a file-system error (e.g. an HTTP error raised by `write`)
            raise
        raise OSError(error.errno, f"Could not write {destination}: {error.strerror or error}") from error
    except BaseException:
        if temporary:
            Path(temporary).unlink(missing_ok=True)
        raise
    return destination


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
    """Fetch `url` to `destination`; the file appears only once its sha256 is verified.

    Server errors (5xx), time-outs, dropped connections and hash mismatches are retried
    `retries` times; other HTTP errors (404) fail at once.
    """

    def fetch_verified(temporary):
        _fetch(url, temporary, timeout, progress)
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
        raise ValueError(f"Weight file name {file_name!r} must be a plain file name, without folders or '..'.")
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


def resolve(card, mirror=None, progress=False):
    """Path of a card's verified weights: user cache, then the bundled copy, then a download into the cache.

    Args:
        card: a zoo card dict.
        mirror: base URL holding `<name>/<file>`; default `$KERAS_AE_MIRROR`, else the card's URL.
    """
    entry = card["weights"]
    cached, bundled = locations(card)
    for candidate in (cached, bundled):
        if candidate.exists():
            return verify(candidate, entry["sha256"])
    url = source_url(card, mirror)
    if not url:
        raise FileNotFoundError(
            f"No weights for {card['name']!r}: not in the cache ({cached}), not bundled ({bundled}), and the card has no URL."
        )
    return download(url, cached, entry["sha256"], progress=progress)


def fill_cache(card, mirror=None):
    """Put a card's verified weights into the user cache: a copy of the bundled file, else a download."""
    cached, bundled = locations(card)
    if cached.exists():
        verify(cached, card["weights"]["sha256"])
        return f"{card['name']}: already cached at {cached}"
    if bundled.exists() and not mirror:
        verify(bundled, card["weights"]["sha256"])
        atomic_copy(lambda temporary: shutil.copyfile(bundled, temporary), cached)
        return f"{card['name']}: copied the bundled weights to {cached}"
    url = source_url(card, mirror)
    if not url:
        raise FileNotFoundError(f"{card['name']}: no bundled weights and no URL to download them from.")
    return f"{card['name']}: downloaded to {download(url, cached, card['weights']['sha256'], progress=True)}"


def check_cache(card):
    """(ok, message) for a card's weights in the user cache."""
    cached, _ = locations(card)
    if not cached.exists():
        return False, f"{card['name']}: MISSING {cached}"
    actual = sha256(cached)
    if actual != card["weights"]["sha256"]:
        return False, f"{card['name']}: BAD {cached} sha256 {actual}, expected {card['weights']['sha256']}"
    return True, f"{card['name']}: OK {cached}"
