"""Where weight files come from: the user cache, the copy bundled with the package, a URL or the Hugging Face Hub; sha256 always."""

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

PACKAGE_DIR = Path(__file__).resolve().parent
# Installed from a wheel, the zoo ships inside the package; in a checkout it is the top-level zoo/ folder.
ZOO_DIR = next((folder for folder in (PACKAGE_DIR / "zoo", PACKAGE_DIR.parent / "zoo") if folder.is_dir()), PACKAGE_DIR / "zoo")


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
    """Raise ChecksumError unless `path` hashes to `expected_sha256`; return `path`."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"No weights file at {path}.")
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


def resolve(card, mirror=None, into_cache=False, progress=False):
    """Path of a zoo card's verified weights, from the first source that has them.

    The order: the user cache, the bundled copy (skipped when a `mirror` is named), a download into
    the cache from `mirror` (default `$KERAS_AE_MIRROR`, else the card's URL). With `into_cache`,
    a bundled copy is copied into the cache and the cached path returned.
    """
    expected = card["weights"]["sha256"]
    cached, bundled = locations(card)
    if cached.exists():
        return verify(cached, expected)
    if bundled.exists() and not mirror:
        verify(bundled, expected)
        return atomic_copy(lambda temporary: shutil.copyfile(bundled, temporary), cached) if into_cache else bundled
    url = source_url(card, mirror)
    if not url:
        raise FileNotFoundError(
            f"No weights for {card['name']!r}: not in the cache ({cached}), not bundled ({bundled}), and the card has no URL."
        )
    return download(url, cached, expected, progress=progress)


def fill_cache(card, mirror=None):
    """Put a zoo card's verified weights into the user cache (as `resolve` finds them); return what was done."""
    cached, bundled = locations(card)
    if cached.exists():
        return f"{card['name']}: already cached at {verify(cached, card['weights']['sha256'])}"
    how = "copied the bundled weights to" if bundled.exists() and not mirror else "downloaded to"
    return f"{card['name']}: {how} {resolve(card, mirror, into_cache=True, progress=True)}"


def url_cache_folder(url):
    """The cache folder of a preset downloaded from `url`: `$KERAS_AE_HOME/presets/<sha256 of the URL, 16 digits>`."""
    return cache_dir() / "presets" / hashlib.sha256(url.encode()).hexdigest()[:16]


def hub_file(repo_id, file_name, revision=None):
    """Local path of one file of a Hugging Face Hub repository, through `huggingface_hub`'s own download and cache."""
    try:
        import huggingface_hub
        from huggingface_hub import errors
    except ImportError:
        raise ImportError("hf:// sources need the huggingface_hub package: pip install huggingface_hub") from None
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
