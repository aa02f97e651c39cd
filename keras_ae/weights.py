"""Where weight files come from: the user cache, the copy bundled with the package, a URL or the Hugging Face Hub; sha256 always.

Downloads are bounded: a connect and read time-out (`timeout=`, else `$KERAS_AE_TIMEOUT`, else 30 s), one deadline
of 10 time-outs for the whole download, retries included, and at most the bytes the card's `weights.size` announces.
"""

import hashlib
import http.client
import math
import os
import shutil
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


class ContentError(DownloadError):
    """A download refused for what the server sent: more bytes than the card announces, or another sha256. Never retried."""


DEFAULT_TIMEOUT = 30.0
DEADLINE_TIMEOUTS = 10  # a download, its retries included, ends within this many time-outs
CARD_MAX_BYTES = 1 << 20  # a card is a few KB
TIMEOUT_HINT = "allow longer with keras_ae.load(..., timeout=seconds) or KERAS_AE_TIMEOUT=seconds"


def timeout_seconds(timeout=None):
    """The connect and read time-out of downloads in seconds: `timeout`, else `$KERAS_AE_TIMEOUT`, else 30."""
    given, source = (timeout, "timeout") if timeout is not None else (os.environ.get("KERAS_AE_TIMEOUT"), "KERAS_AE_TIMEOUT")
    if given is None or given == "":
        return DEFAULT_TIMEOUT
    try:
        seconds = float(given)
    except (TypeError, ValueError):
        seconds = math.nan
    if isinstance(given, bool) or not (math.isfinite(seconds) and seconds > 0):
        raise InputError(f"{source} must be a positive number of seconds; got {given!r}. Give e.g. 30.")
    return seconds


def size_limit(size):
    """The most bytes a download of a file announced as `size` bytes may read: that and a little (1% and 4 KiB); None if unknown."""
    return None if size is None else size + size // 100 + 4096


class _Refused(Exception):
    """A failed attempt that another would only repeat (a time-out, the deadline, too many bytes, a wrong hash)."""

    def __init__(self, cause, error_class=DownloadError):
        super().__init__(cause)
        self.error_class = error_class


def _fetch(url, temporary, timeout, deadline, max_bytes, progress):
    started = time.monotonic()
    with urllib.request.urlopen(url, timeout=max(min(timeout, deadline - started), 0.001)) as response, \
            open(temporary, "wb") as out:
        total = response.length  # http.client's reading of Content-Length: None when absent or malformed
        if max_bytes is not None and total is not None and total > max_bytes:
            raise _Refused(f"its Content-Length is {total} bytes, more than the {max_bytes} expected", ContentError)
        if progress:
            import keras

            bar = keras.utils.Progbar(total, unit_name="byte")
        done = 0
        for block in iter(lambda: response.read1(1 << 16), b""):  # read1: one system call, so the deadline is checked often
            done += len(block)
            if max_bytes is not None and done > max_bytes:
                raise _Refused(f"the server sent more than the {max_bytes} bytes expected; stopped reading", ContentError)
            if time.monotonic() > deadline:
                raise _Refused(f"not finished by the deadline of {DEADLINE_TIMEOUTS} time-outs of {timeout:g} s "
                               f"({done} bytes received); {TIMEOUT_HINT}")
            out.write(block)
            if progress:
                bar.update(done)
    if total is not None and done != total:
        raise DownloadError(f"{url}: the connection ended after {done} of {total} bytes.")


def _timed_out(error):
    return isinstance(error, TimeoutError) or isinstance(getattr(error, "reason", None), TimeoutError)


def download(url, destination, expected_sha256, timeout=None, retries=2, progress=False, max_bytes=None):
    """Fetch `url` to `destination`; the file appears only once whole and, unless `expected_sha256` is None, verified.

    Server errors (5xx), refused and dropped connections are retried `retries` times within the deadline; HTTP 404,
    a time-out, the deadline, more than `max_bytes` bytes (`ContentError`) and a hash mismatch (`ContentError`) fail at once.

    Args:
        timeout: seconds to connect and between reads (see `timeout_seconds`); the whole download, retries
            included, must end within `DEADLINE_TIMEOUTS` of them.
        max_bytes: the most bytes to read (see `size_limit`); None for no limit but the deadline.
    """
    timeout = timeout_seconds(timeout)
    started = time.monotonic()
    deadline = started + DEADLINE_TIMEOUTS * timeout

    def fetch_verified(temporary):
        try:
            _fetch(url, temporary, timeout, deadline, max_bytes, progress)
        except OSError as error:
            if not _timed_out(error):
                raise
            raise _Refused(f"timed out: no answer within the {timeout:g} s time-out; {TIMEOUT_HINT}") from None
        actual = None if expected_sha256 is None else sha256(temporary)
        if actual != expected_sha256:
            raise _Refused(f"sha256 is {actual}, the card expects {expected_sha256}", ContentError)

    check_writable(Path(destination).parent)
    last_error = None
    for attempt in range(retries + 1):
        try:
            return atomic_copy(fetch_verified, destination)
        except _Refused as refusal:
            raise refusal.error_class(f"Download of {url} failed after {time.monotonic() - started:.1f} s ({refusal}); "
                                      f"nothing was written to {destination}.") from None
        except urllib.error.HTTPError as error:
            last_error = f"HTTP {error.code} {error.reason}"
            if error.code < 500:
                break
        except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
            last_error = f"{type(error).__name__}: {getattr(error, 'reason', error)}"
        pause = 0.5 * 2**attempt
        if attempt == retries or time.monotonic() + pause > deadline:
            break
        time.sleep(pause)
    raise DownloadError(f"Download of {url} failed after {time.monotonic() - started:.1f} s ({last_error}); "
                        f"nothing was written to {destination}.")


def check_file_name(file_name):
    """Refuse weight file names that could escape the zoo or cache folder."""
    if not file_name or Path(file_name).name != file_name or file_name in (".", ".."):
        raise InputError(f"Weight file name {file_name!r} must be a plain file name, without folders or '..'.")
    return file_name


def locations(card):
    """(cached, bundled) paths of a card's weights file."""
    file_name = check_file_name(card.weights.file)
    return cache_dir() / card.name / file_name, ZOO_DIR / card.name / file_name


def source_url(card, mirror=None):
    """Where a card's weights download from: `<mirror>/<name>/<file>` (default `$KERAS_AE_MIRROR`), else the card's URL."""
    mirror = mirror or os.environ.get("KERAS_AE_MIRROR")
    if mirror:
        return f"{mirror.rstrip('/')}/{card.name}/{check_file_name(card.weights.file)}"
    return card.weights.url


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


def _resolve(card, mirror, into_cache, progress, warn, timeout=None):
    """(path, steps): the verified weights of a zoo card and, in words, what was done to get them."""
    expected = card.weights.sha256
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
            raise ChecksumError(f"No verified weights for {card.name!r}: {'; '.join(steps)}; and the card has no URL.")
        raise FileNotFoundError(
            f"No weights for {card.name!r}: not in the cache ({cached}), not bundled ({bundled}), and the card has no URL."
        )
    path = download(url, cached, expected, timeout=timeout, progress=progress,
                    max_bytes=size_limit(card.weights.size))
    return path, steps + [f"downloaded to {path}"]


def resolve(card, mirror=None, into_cache=False, progress=False, timeout=None):
    """Path of a zoo card's verified weights, from the first source that has them.

    The order: the user cache, the bundled copy (skipped when a `mirror` is named), a download into
    the cache from `mirror` (default `$KERAS_AE_MIRROR`, else the card's URL). With `into_cache`,
    a bundled copy is copied into the cache and the cached path returned. A cached file that fails
    its hash is renamed aside (`<file>.corrupt-<hash>`, see `set_aside`) with a `CacheRepairWarning`,
    and the next source is tried; `ChecksumError`, `FileNotFoundError` or `DownloadError` only when none has them.
    A download reads at most the card's `weights.size` (see `size_limit`) within `timeout` (see `download`).
    """
    return _resolve(card, mirror, into_cache, progress, warn=True, timeout=timeout)[0]


def fill_cache(card, mirror=None):
    """Put a zoo card's verified weights into the user cache (as `resolve` finds them, repairing a corrupt copy); return what was done."""
    _, steps = _resolve(card, mirror, into_cache=True, progress=True, warn=False)
    return f"{card.name}: {', then '.join(steps)}"


def url_cache_folder(url):
    """The cache folder of a preset downloaded from `url`: `$KERAS_AE_HOME/presets/<sha256 of the URL, 16 digits>`.

    It holds the card last fetched from the URL, and each weights file under the sha256 its card gives: `<sha256>/<file>`.
    """
    return cache_dir() / "presets" / hashlib.sha256(url.encode()).hexdigest()[:16]


def hub_file(repo_id, file_name, revision=None, timeout=None):
    """Local path of one file of a Hugging Face Hub repository, through `huggingface_hub`'s own download and cache.

    One request for the file's metadata, within `timeout` (see `timeout_seconds`) and without retries, comes first:
    when the Hub does not answer, the copy in the local Hub cache is used, or the error comes at once (instead of
    `huggingface_hub`'s retries, 23 s offline and minutes against a silent server).
    """
    try:
        import huggingface_hub
        from huggingface_hub import constants, errors
    except ImportError:
        raise MissingExtraError("hf:// sources need the huggingface_hub package: pip install \"keras-ae[hf]\"") from None
    where = f"hf://{repo_id}{'@' + revision if revision else ''}"
    timeout = timeout_seconds(timeout)
    started = time.monotonic()

    def cause(error):
        lines = str(error).strip().splitlines()
        return f"{type(error).__name__}: {lines[0] if lines else ''}"

    try:
        try:
            url = huggingface_hub.hf_hub_url(repo_id, file_name, revision=revision)
            huggingface_hub.get_hf_file_metadata(url, timeout=timeout)
        except Exception as unreachable:  # whatever kept the Hub from answering (its errors vary by version): use the local copy
            try:
                return Path(huggingface_hub.hf_hub_download(repo_id, file_name, revision=revision, local_files_only=True))
            except errors.LocalEntryNotFoundError:
                if isinstance(unreachable, errors.HfHubHTTPError):
                    raise unreachable from None
            raise DownloadError(
                f"{where}: could not get {file_name}: the Hub at {constants.ENDPOINT} could not be reached "
                f"({cause(unreachable)}; {time.monotonic() - started:.1f} s) and the file is not in the local Hub cache; "
                f"check the connection or HF_ENDPOINT, or {TIMEOUT_HINT}."
            ) from None
        return Path(huggingface_hub.hf_hub_download(repo_id, file_name, revision=revision, etag_timeout=timeout))
    except (errors.HfHubHTTPError, errors.EntryNotFoundError, errors.LocalEntryNotFoundError) as error:
        raise FileNotFoundError(f"{where}: could not get {file_name} ({cause(error)})") from None


def check_cache(card):
    """(ok, message) for a card's weights in the user cache."""
    cached, _ = locations(card)
    if not cached.exists():
        return False, f"{card.name}: MISSING {cached}"
    actual = sha256(cached)
    if actual != card.weights.sha256:
        return False, f"{card.name}: BAD {cached} sha256 {actual}, expected {card.weights.sha256}"
    return True, f"{card.name}: OK {cached}"
