"""Users' own files as arrays: image folders, .npy/.npz arrays, CSV/TSV tables; every error names the file (and row, column) and what was expected."""

import csv
import math
import os
import secrets
import stat
import threading
import warnings
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

from keras_ae.errors import InputError

IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
CHANNELS = {"grayscale": 1, "rgb": 3}
ON_ERROR_CHOICES = ("raise", "skip")
TABLE_DELIMITERS = {".csv": ",", ".tsv": "\t", ".tab": "\t", ".txt": None}
FLOAT32_MAX = float(np.finfo(np.float32).max)
NAMES_SHOWN = 3
FALLBACK_MEMORY = 8 * 2**30  # bytes assumed available where neither /proc/meminfo nor sysconf says
SPECIAL_FILES = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                 (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a folder"))


def _check_choice(argument, value, choices):
    if value not in choices:
        raise InputError(f"Unknown {argument} {value!r}; expected one of {list(choices)}.")


def _visible(path, root):
    return not any(part.startswith(".") for part in path.relative_to(root).parts)


def class_folders_of(folder):
    """The class subfolders of an image folder, sorted by name: a label is its folder's index here."""
    folder = Path(folder)
    return sorted(path for path in folder.iterdir() if path.is_dir() and _visible(path, folder))


def special_file(path):
    """What `path` is when it is neither a regular file nor missing (e.g. "a FIFO (named pipe)"), else None.

    Reading a FIFO blocks until someone writes to it, and a device may never end, so readers refuse them first. A
    missing file, a broken symbolic link or a loop of links gives None: opening it fails as the unreadable file it is.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode):
        return None
    return next((kind for test, kind in SPECIAL_FILES if test(mode)), "not a regular file")


def refuse_special_file(path):
    """A one-line error for a path that is a FIFO, socket, device or folder where a regular file is read."""
    kind = special_file(path)
    if kind is not None:
        raise InputError(f"{path} is {kind}, not a regular file; expected a file of data (or a folder of images): "
                         "copy the data into a regular file first.")


def available_memory():
    """Bytes of memory this process can still take: Linux's MemAvailable, bounded by a cgroup's limit where one is set."""
    try:
        available = next(int(line.split()[1]) * 1024 for line in Path("/proc/meminfo").read_text().splitlines()
                         if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError, IndexError):
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, AttributeError):
            available = FALLBACK_MEMORY
    for limit, usage in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                         ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            available = min(available, int(Path(limit).read_text()) - int(Path(usage).read_text()))
        except (OSError, ValueError):  # no such cgroup, or "max" (no limit)
            continue
    return max(available, 0)


def _gigabytes(count):
    return f"{count / 1e9:,.1f} GB" if count >= 1e8 else f"{count / 1e6:,.1f} MB"


def _check_fits_in_memory(folder, files, image_size, color_mode, argument, example, held=None):
    """Refuse, before any image is read, images whose float32 tensor (count x height x width x channels x 4 bytes, twice
    while they are batched) would not fit in the memory available; `held` is how many a stream holds at once (a few
    batches), else all of them count. Without `image_size`, the first image's header gives the size they must share."""
    if image_size is not None:
        height, width = image_size
        where = f"of {height}x{width} pixels ({argument})"
    elif special_file(files[0][0]) is not None:  # refused when the images are read, without opening it
        return
    else:
        try:
            with Image.open(files[0][0]) as image:
                width, height = image.size
        except Exception:  # an unreadable first file is reported when the images are read
            return
        where = f"of {height}x{width} pixels (the size of {files[0][0]})"
    channels = CHANNELS[color_mode]
    count = len(files) if held is None else min(len(files), held)
    needed = 2 * count * height * width * channels * 4
    available = available_memory()
    if needed > available:
        counted = f"{count} images" if count == len(files) else f"{count} images at once (a few batches) of the {len(files)}"
        raise InputError(
            f"{counted} in {folder} {where} with {channels} channel{'s' * (channels > 1)} need about "
            f"{_gigabytes(needed)} of memory as float32 (two copies while they are batched), and {_gigabytes(available)} is "
            f"available; pass a smaller {argument} (e.g. {example}), or fewer images."
        )


def check_images_fit(folder, image_size=None, color_mode="grayscale", argument="image_size", example="image_size=(64, 64)",
                     held=None):
    """Refuse, before reading any image, a folder of images of which `held` at once (default all) would not fit in memory
    at `image_size`; `argument` and `example` name the size as the caller's user gives it (the command's `--image-size`)."""
    _check_choice("color_mode", color_mode, CHANNELS)
    folder = Path(folder)
    if folder.is_dir():
        files = _image_files(folder)[1]
        if files:
            _check_fits_in_memory(folder, files, image_size, color_mode, argument, example, held)


def _files_under(root, recursive):
    """Visible image files under `root` as str paths (searched recursively or not; symbolic links to folders not
    followed), in the order pathlib sorts paths (by their parts): each folder's entries sorted by name."""
    with os.scandir(root) as listing:
        entries = sorted(listing, key=lambda entry: entry.name)
    found = []
    for entry in entries:
        name = entry.name
        if name.startswith("."):
            continue
        try:
            folder = entry.is_dir()
        except OSError:  # a link loop: listed, and refused as unreadable when its header is read
            folder = False
        if folder:
            if recursive and not entry.is_symlink():
                found.extend(_files_under(entry.path, recursive))
        elif os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
            found.append(entry.path)
    return found  # str, not Path: making 60,000 Paths costs more than listing


def _image_files(folder):
    """(class folders, [(path, class index or None)]) as keras.utils.image_dataset_from_directory finds them."""
    class_folders = class_folders_of(folder)
    groups = [(directory, True, index) for index, directory in enumerate(class_folders)] or [(folder, False, None)]
    return class_folders, [(path, index) for root, recursive, index in groups for path in _files_under(str(root), recursive)]


END_MARKERS = {"PNG": (b"IEND\xaeB`\x82", 8), "JPEG": (b"\xff\xd9", 1024)}  # a whole file's last chunk, in its last bytes
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class ImageFolder(NamedTuple):
    """A folder of images as `list_images` found them: what a stream decodes, in file order."""

    paths: list  # str, sorted as keras.utils.image_dataset_from_directory sorts them
    labels: object  # int64 class indices, or None without class folders
    class_names: list
    image_size: tuple  # (height, width) every image is decoded to
    color_mode: str
    found_sizes: tuple = ()  # the (height, width) sizes met in the headers read so far, in the order first met
    check: object = None  # the `HeaderCheck` still reading headers while the stream starts, or None when all were read


def _png_size(path):
    """(height, width) from a PNG's IHDR chunk, if it is a regular file with a PNG signature, whole (ending with its IEND
    chunk), else None (Pillow then reads the header, and names the fault). One open and two reads; never blocks on a FIFO."""
    try:
        handle = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        status = os.fstat(handle)
        if not stat.S_ISREG(status.st_mode) or status.st_size < 33:
            return None
        head, tail = os.pread(handle, 24, 0), os.pread(handle, 8, status.st_size - 8)
    finally:
        os.close(handle)
    if head[:8] != PNG_SIGNATURE or head[12:16] != b"IHDR" or tail != END_MARKERS["PNG"][0]:
        return None
    return int.from_bytes(head[20:24], "big"), int.from_bytes(head[16:20], "big")


def _probe_or_fault(path):
    """(height, width) of an image file, or (None, its fault in words)."""
    size = _png_size(path)  # most images, read here in a few microseconds
    if size is not None:
        return size, None
    kind = special_file(path)
    if kind is not None:
        return None, f"{kind}, not a regular file"
    try:
        return _probe(path), None
    except Exception as error:  # Pillow's format plugins raise many types (OSError, SyntaxError, struct.error...).
        return None, f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"


def _probe(path):
    """(height, width) from an image's header, without decoding it; a PNG or JPEG without its end marker is truncated."""
    with Image.open(path) as image:
        width, height = image.size
        marker, tail = END_MARKERS.get(image.format, (None, 0))
    if marker is not None:
        with open(path, "rb") as handle:
            handle.seek(max(0, os.fstat(handle.fileno()).st_size - tail))
            if marker not in handle.read():
                raise OSError(f"image file is truncated (no {marker!r} end marker)")
    return height, width


def _check_image_size(image_size):
    if image_size is not None and (
        np.shape(image_size) != (2,) or not all(isinstance(side, (int, np.integer)) and side > 0 for side in image_size)
    ):
        raise InputError(f"image_size must be (height, width), two positive integers; got {image_size!r}.")


PROBED_BEFORE_STREAMING = 5_000  # image headers read before a stream starts; the rest are read while it starts


class HeaderCheck:
    """Every image file's header read in file order (never its pixels): the first `PROBED_BEFORE_STREAMING` before
    `list_images` returns, the rest on a thread while the stream starts. A stream calls `start()`, then `check(indices)` before decoding
    those files: a fault anywhere then stops it with the one-line error a full check before streaming would give."""

    def __init__(self, folder, files, image_size, on_error):
        self.folder, self.files, self.image_size, self.on_error = folder, files, image_size, on_error
        self.results = [None] * len(files)  # (size, fault) of each file once read
        self.problem = False  # a fault, or (without image_size) a second size, seen
        self.first_size = None
        self._thread = None

    def _read(self, index):
        if self.results[index] is None:
            size, fault = self.results[index] = _probe_or_fault(self.files[index][0])
            if fault is None and self.first_size is None:
                self.first_size = size
            if fault is not None or (self.image_size is None and size != self.first_size):
                self.problem = True  # only ever set: the stream's reads and the thread's may interleave

    def read(self, stop):
        for index in range(stop):
            self._read(index)

    def start(self):
        """Read the headers not read yet on a thread, once (a stream's first use starts it; counting or naming does not)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self.read, args=(len(self.files),), name="keras_ae image headers", daemon=True)
            self._thread.start()

    def check(self, indices):
        """`indices` (numpy int64), once their headers are read and no fault is known; else the one-line error."""
        for index in indices:
            self._read(index)
        if self.problem:
            self.verdict()
        return indices

    def verdict(self):
        """(kept [(path, label)], sizes in the order first met) once every header is read; an `InputError` for an
        unreadable file (`on_error="raise"`, or every file unreadable) or, without `image_size`, images of two sizes."""
        if self._thread is not None:
            self._thread.join()
        self.read(len(self.files))
        kept, failures, first_of_size = [], [], {}
        for (path, label), (size, fault) in zip(self.files, self.results):
            if fault is not None:
                failures.append((path, fault))
                continue
            kept.append((path, label))
            first_of_size.setdefault(size, path)
        if failures and (self.on_error == "raise" or len(failures) == len(self.files)):
            path, fault = failures[0]
            hint = "" if self.on_error == "skip" else ", or pass on_error='skip' to leave them out"
            raise InputError(f"Cannot read image {path} ({fault}); {len(failures)} of {len(self.files)} files are unreadable: "
                             f"fix or remove them{hint}.")
        if failures:
            names = ", ".join(os.path.relpath(path, self.folder) for path, _ in failures[:NAMES_SHOWN])
            more = ", ..." if len(failures) > NAMES_SHOWN else ""
            warnings.warn(f"Skipped {len(failures)} unreadable image files of {len(self.files)} in {self.folder}: {names}{more}",
                          stacklevel=3)
        if len(first_of_size) > 1 and self.image_size is None:
            (size_a, path_a), (size_b, path_b) = list(first_of_size.items())[:2]
            raise InputError(f"Images differ in size: {path_a} is {size_a[0]}x{size_a[1]} and {path_b} is {size_b[0]}x{size_b[1]} "
                             "(height x width); pass image_size=(height, width) to resize them all to one size.")
        return kept, tuple(first_of_size)


def list_images(folder, image_size=None, color_mode="grayscale", on_error="raise", held=None):
    """A folder of images as an `ImageFolder`, each file's header read (never its pixels) so every refusal comes first:
    here for the first `PROBED_BEFORE_STREAMING` files (all of them with `on_error="skip"`), and for a larger folder
    the rest while its stream starts (see `HeaderCheck`; the stream then stops at once with the same error).

    Args:
        folder: images, or class subfolders (sorted by name; a label is its folder's index) searched recursively;
            with subfolders, images directly in `folder` are ignored. Hidden ".names" are skipped; files sorted by path.
        image_size: (height, width) to resize to (bilinear, antialiased); None requires one shared size.
        color_mode: "grayscale" (1 channel) or "rgb" (3). 8-bit images are divided by 255, 16-bit PNGs by 65535.
        on_error: "raise" (one error naming the first unreadable file) or "skip" (leave them out, warn once). Unreadable:
            not a regular file, no image header Pillow knows, or a PNG or JPEG without its end marker (truncated).
        held: how many decoded images a stream holds at once, for the memory check (default: all of them).
    """
    _check_choice("color_mode", color_mode, CHANNELS)
    _check_choice("on_error", on_error, ON_ERROR_CHOICES)
    _check_image_size(image_size)
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder; expected a folder of images or of class subfolders of images.")
    class_folders, files = _image_files(folder)
    if not files:
        inside = f"its class subfolders {[path.name for path in class_folders]}" if class_folders else "it"
        raise InputError(f"{folder} holds no image files: looked in {inside} for {' '.join(IMAGE_EXTENSIONS)} (any case); "
                         "put images in it, or in one subfolder per class (images beside class subfolders are ignored).")
    _check_fits_in_memory(folder, files, image_size, color_mode, "image_size", "image_size=(64, 64)", held)
    check = HeaderCheck(folder, files, image_size, on_error)
    check.read(len(files) if on_error == "skip" else min(len(files), PROBED_BEFORE_STREAMING))
    if check.problem or check.results[-1] is not None:
        files, found_sizes = check.verdict()
        check = None
    else:  # all well so far: the rest are read while the stream starts
        found_sizes = tuple(dict.fromkeys(result[0] for result in check.results if result is not None))
    labels = np.array([label for _, label in files], dtype=np.int64) if class_folders else None
    size = tuple(int(side) for side in image_size) if image_size is not None else found_sizes[0]
    return ImageFolder([path for path, _ in files], labels, [path.name for path in class_folders], size, color_mode,
                       found_sizes, check)


def decode_image(path, image_size, color_mode):
    """One image file as float32 (height, width, channels) in [0, 1], decoded in the TensorFlow graph (so a tf.data map
    runs it in parallel): scaled by its own bit depth (16-bit PNGs by 65535), alpha dropped, grey repeated for "rgb" and
    colour turned to ITU-R 601-2 luma for "grayscale", resized (bilinear, antialiased as Pillow does) to `image_size`."""
    import tensorflow as tf  # here, so that reading cards and tables never imports TensorFlow

    contents = tf.io.read_file(path)
    channels = 3 if color_mode == "rgb" else 0  # the decoders give grey as RGB and drop alpha; luma is made below

    def sixteen_bit_png():
        return tf.cast(tf.io.decode_png(contents, channels=channels, dtype=tf.uint16), tf.float32) / 65535.0

    def eight_bit():  # divided here, not by decode_image's float32 (a multiply, 1 ulp off x / 255)
        return tf.cast(tf.io.decode_image(contents, channels=channels, expand_animations=False), tf.float32) / 255.0

    head = tf.strings.join([tf.strings.substr(contents, 0, 25), b"\0" * 25])  # padded: substr refuses a start past the end
    sixteen_bit = tf.logical_and(tf.strings.substr(head, 0, 8) == PNG_SIGNATURE,
                                 tf.strings.substr(head, 24, 1) == b"\x10")  # the bit depth, in the IHDR chunk
    image = tf.cond(sixteen_bit, sixteen_bit_png, eight_bit)
    if color_mode == "grayscale":
        grey = tf.shape(image)[-1] < 3  # grey, or grey and alpha

        def luma():
            red, green, blue = image[..., 0:1], image[..., 1:2], image[..., 2:3]
            same = tf.logical_and(tf.equal(red, green), tf.equal(green, blue))  # grey kept exact
            return tf.where(same, red, 0.299 * red + 0.587 * green + 0.114 * blue)

        image = tf.cond(grey, lambda: image[..., :1], luma)
    height, width = image_size
    resized = tf.logical_or(tf.shape(image)[0] != height, tf.shape(image)[1] != width)
    image = tf.cond(resized, lambda: tf.clip_by_value(tf.image.resize(image, (height, width), antialias=True), 0.0, 1.0),
                    lambda: image)
    return tf.ensure_shape(image, (height, width, CHANNELS[color_mode]))


def image_size_of(path):
    """(height, width) of one image file from its header (its pixels unread); else a one-line error naming the file."""
    refuse_special_file(path)
    try:
        return _probe(path)
    except Exception as error:
        raise InputError(f"{path}: not a readable image ({type(error).__name__}: {error})") from None


def read_image(path, image_size=None, color_mode="grayscale"):
    """One image file as float32 (height, width, channels) in [0, 1], as `decode_image` reads it; else a one-line error
    naming the file."""
    _check_choice("color_mode", color_mode, CHANNELS)
    _check_image_size(image_size)
    return decode_image(str(path), tuple(image_size or image_size_of(path)), color_mode).numpy()


def _load_numpy(path, read):
    """Run `read` (a np.load or an archive lookup), turning NumPy's and zipfile's faults into one line naming the file."""
    try:
        return read()
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        if "pickle" in str(error) or "Python objects" in str(error):
            raise InputError(f"{path} holds pickled Python objects, which this reader never loads (unpickling can run code); "
                             "save a numeric array instead, e.g. np.save(path, array.astype('float32')).") from None
        raise InputError(f"Cannot read {path} as a NumPy .npy/.npz file ({type(error).__name__}: {error}).") from None


def _archive_keys(path, keys):
    """The (examples key, labels key or None) of an .npz archive."""
    labels_key = next((key for key in ("y", "labels") if key in keys), None)
    others = [key for key in keys if key != labels_key]
    examples_key = next((key for key in ("x", "images") if key in keys), others[0] if len(others) == 1 else None)
    if examples_key is None:
        raise InputError(f"{path} holds arrays {keys}; expected examples under 'x' or 'images' (or one array alone), labels under "
                         "'y' or 'labels': re-save it with np.savez(path, x=examples, y=labels).")
    return examples_key, labels_key


CHECK_ROWS = 65_536  # examples checked (and converted) at a time: memory bounded whatever the array's length


def as_float32(array):
    """float32 examples from a checked float or uint8 (0-255 pixels, divided by 255) array."""
    with np.errstate(over="ignore"):
        return np.asarray(array, np.float32) / 255 if array.dtype == np.uint8 else np.asarray(array, np.float32)


def _check_examples(array, source):
    """Refuse what `as_float32` may not take: integers other than uint8, other types, empty arrays, and (checked a chunk
    at a time, so a memory-mapped array is never read whole) NaN, Inf or values beyond float32's range."""
    if array.dtype.kind in "iu" and array.dtype != np.uint8:
        raise InputError(f"{source} holds {array.dtype} values; expected float (or uint8 for 0-255 pixels): convert with "
                         "array.astype('float32') scaled to [0, 1], or array.astype('uint8') for 0-255 pixels.")
    if array.dtype.kind not in "uf":
        raise InputError(f"{source} holds {array.dtype} values; expected floats (or uint8 0-255 pixels): convert with array.astype('float32').")
    if array.ndim == 0 or array.size == 0:
        raise InputError(f"{source} is empty or a scalar (shape {array.shape}); expected at least one example along the first axis.")
    if array.dtype == np.uint8:
        return
    for start in range(0, len(array), CHECK_ROWS):
        examples = as_float32(array[start:start + CHECK_ROWS])
        if not np.isfinite(examples).all():
            index = tuple(int(i) for i in np.argwhere(~np.isfinite(examples))[0])
            index = (index[0] + start, *index[1:])
            raise InputError(f"{source} holds {examples[(index[0] - start, *index[1:])]} at index {index}; expected finite numbers "
                             "(no NaN or Inf, within float32's range): drop or fill those examples.")


def open_array(path):
    """(examples as stored, checked; labels as stored or None) of a .npy or .npz file, never unpickling: a .npy is
    memory-mapped (read as it is used), an .npz member read whole (a zip member cannot be mapped). `as_float32` turns
    any slice of the examples into float32.

    uint8 arrays are 0-255 pixels, divided by 255; float16/32/64 become float32; other integers, booleans, NaN/Inf and
    empty arrays are refused. An .npz keeps examples under "x", "images" or its only array; labels under "y" or "labels".
    """
    path = Path(path)
    if path.suffix.lower() not in (".npy", ".npz"):
        raise InputError(f"Cannot read {path} as an array: expected a .npy or .npz file, got {path.suffix or 'no extension'!r}.")
    refuse_special_file(path)
    if path.suffix.lower() == ".npy":
        examples = _load_numpy(path, lambda: np.load(path, mmap_mode="r", allow_pickle=False))
        _check_examples(examples, str(path))
        return examples, None
    loaded = _load_numpy(path, lambda: np.load(path, allow_pickle=False))
    if isinstance(loaded, np.ndarray):  # an .npz name holding a plain .npy
        _check_examples(loaded, str(path))
        return loaded, None
    with loaded:
        examples_key, labels_key = _archive_keys(path, list(loaded.files))
        examples = _load_numpy(path, lambda: loaded[examples_key])
        _check_examples(examples, f"{path}['{examples_key}']")
        labels = None if labels_key is None else _load_numpy(path, lambda: loaded[labels_key])
    if labels is not None and (labels.ndim == 0 or len(labels) != len(examples)):
        raise InputError(f"{path} has {len(examples)} examples under '{examples_key}' but labels of shape {labels.shape} "
                         f"under '{labels_key}'; expected one label per example.")
    return examples, labels


TABLE_ROWS = 8192  # table rows parsed at a time
HEAD_ROWS = 2  # rows read to find a header and the delimiter


def _table_rows(path):
    """(1-based line number, cells) of each non-blank row, split by the delimiter the extension names, read as they
    are consumed."""
    delimiter = TABLE_DELIMITERS[path.suffix.lower()]
    refuse_special_file(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            if delimiter is None:
                rows = ((number, line.split()) for number, line in enumerate(handle, 1))
            else:
                reader = csv.reader(handle, delimiter=delimiter)
                rows = ((reader.line_num, row) for row in reader)
            yield from ((number, cells) for number, cells in rows if len(cells) > 1 or "".join(cells).strip())
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise InputError(f"Cannot read table {path} ({type(error).__name__}: {error}); expected a readable UTF-8 text file.") from None


def _head(path, count=HEAD_ROWS):
    """The first `count` non-blank rows of a table, the delimiter checked on them."""
    rows = []
    for row in _table_rows(path):
        rows.append(row)
        if len(rows) == count:
            break
    _check_delimiter(path, TABLE_DELIMITERS[path.suffix.lower()], rows)
    return rows


DELIMITER_NAMES = {",": "commas", ";": "semicolons", "\t": "tabs", "|": "vertical bars"}


def _check_delimiter(path, delimiter, rows):
    """Refuse a table whose every row is one cell holding another delimiter (a semicolon CSV, a comma-separated .tsv):
    read by its extension's delimiter it would be one column of text, or a headerless table of it."""
    if delimiter is None or not rows or any(len(cells) != 1 for _, cells in rows):
        return
    number, (cell,) = rows[0]
    second = rows[1][1][0] if len(rows) > 1 else cell  # in a data row too: a one-column header may hold any character
    found = next((mark for mark in DELIMITER_NAMES if mark != delimiter and mark in cell and mark in second), None)
    if found is not None:
        suffix = path.suffix.lower()
        fix = "rename it to .csv" if found == "," else f"save it with {DELIMITER_NAMES[delimiter]} instead"
        raise InputError(f"{path} line {number}: {cell[:40]!r} is one cell; its values are separated by {DELIMITER_NAMES[found]}, "
                         f"but a {suffix} table is read as separated by {DELIMITER_NAMES[delimiter]}: {fix}.")


def _is_number(cell):
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _cell_fault(cell):
    """Why a table cell is not a usable feature value, or None."""
    try:
        value = float(cell)
    except ValueError:
        return f"{cell!r} is not a number" if cell.strip() else f"{cell!r} is empty; expected a number (fill or drop missing values)"
    if not math.isfinite(value) or abs(value) > FLOAT32_MAX:
        return f"{cell!r} is not a finite float32 number; expected a finite number (fill or drop missing values)"
    return None


def listed(names):
    """Column names for a message: the first 20, quoted, and how many in all."""
    return ", ".join(repr(name) for name in names[:20]) + (f", ... ({len(names)} in all)" if len(names) > 20 else "")


def _column_index(path, key, names, has_header, argument):
    """The 0-based index of a column given by its name or by an integer index (negative counts from the end)."""
    width = len(names)
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool) and -width <= key < width:
        return int(key) % width
    if isinstance(key, str) and names.count(key) == 1:
        return names.index(key)
    if isinstance(key, str) and names.count(key) > 1:
        raise InputError(f"{path}: {argument} {key!r} names {names.count(key)} columns; expected a unique name: pass an index.")
    available = f"its columns are {listed(names)}, or indices" if has_header else f"it has {width} columns and no header, so use indices"
    raise InputError(f"{path} has no column {key!r} ({argument}): {available} 0..{width - 1} (or -{width}..-1 from the end).")


def label_fault(cell):
    """Whether a label cell is missing or not a finite number where it is a number."""
    return cell == "" or (_is_number(cell) and not math.isfinite(float(cell)))


def label_values(cells):
    """Label cells (stripped, each checked) as int64 (all integral numbers), float64 (numbers) or str."""
    cells = np.asarray(cells, dtype=str)
    if not all(_is_number(cell) for cell in cells):
        return cells
    numbers = np.array([float(cell) for cell in cells])
    integral = np.all(numbers == np.round(numbers)) and np.abs(numbers).max() <= 2**53
    return numbers.astype(np.int64) if integral else numbers


def _first_row_is_header(path, rows, header):
    """`header` (True or False), or for "infer": whether a first-row cell is text above a number in the second row (so a
    text label column alone is data); for a list of names, True if the first row is exactly those names, else a ValueError."""
    first = [cell.strip() for cell in rows[0][1]]
    if header == "infer":
        below = rows[1][1] if len(rows) > 1 else []
        return any(cell and not _is_number(cell) and (column >= len(below) or _is_number(below[column])) for column, cell in enumerate(first))
    if isinstance(header, (list, tuple)):
        expected = list(header)
        if first == expected:
            return True
        missing, unexpected = [name for name in expected if name not in first], [name for name in first if name not in expected]
        differences = [f"missing {listed(missing)}"] * bool(missing) + [f"not expected {listed(unexpected)}"] * bool(unexpected)
        found = (f"{listed(first)} ({'; '.join(differences) or 'the same names in another order'})"
                 if _first_row_is_header(path, rows, "infer") else "no header (a first row of numbers)")
        raise InputError(f"{path}: expected the header {listed(expected)}; found {found}. Give the table those columns, in that order.")
    _check_choice("header", header, ("infer", True, False))
    return header


def table_header(path, header="infer"):
    """The header row of a table as a list of column names, or False when it has none (`header` as `read_table` takes
    it): what a card records, so that a table of the same layout is read again and another one refused."""
    rows = _head(Path(path))
    if not rows:
        return False
    return [cell.strip() for cell in rows[0][1]] if _first_row_is_header(path, rows, header) else False


def chosen_columns(path, names, label_column=None, columns=None, has_header=True):
    """(feature column indices, label column index or None) of a table with columns `names`, as `read_table` takes
    `label_column` and `columns` (names or indices); the label may not be a feature, and one feature at least is left."""
    label_index = None if label_column is None else _column_index(path, label_column, names, has_header, "label_column")
    if columns is None:
        feature_indices = [index for index in range(len(names)) if index != label_index]
    else:
        keys = [columns] if isinstance(columns, (str, int, np.integer)) else columns
        feature_indices = [_column_index(path, key, names, has_header, "columns") for key in keys]
    if label_index is not None and label_index in feature_indices:
        raise InputError(f"{path}: column {names[label_index]!r} is both label_column and in columns; leave the label out of columns.")
    if not feature_indices:
        raise InputError(f"{path} has no feature columns left; expected at least one column besides the label.")
    return feature_indices, label_index


class Table(NamedTuple):
    """A table's layout as `open_table` read it from its first rows: what `table_chunks` parses."""

    path: Path
    first_line: int  # the line number of the first row (the header, or the first data row)
    header_line: int  # the header's line number, or 0 without one
    width: int  # cells per row
    feature_indices: list
    feature_names: list
    label_index: object  # int, or None
    label_name: object


def open_table(path, label_column=None, columns=None, header="infer"):
    """A .csv, .tsv/.tab or .txt (whitespace) table's layout, from its first two rows (see `read_table`'s arguments)."""
    path = Path(path)
    if path.suffix.lower() not in TABLE_DELIMITERS:
        raise InputError(f"Cannot read {path} as a table: expected .csv (comma), .tsv or .tab (tab) or .txt (whitespace), "
                         f"got {path.suffix or 'no extension'!r}; rename the file after its delimiter.")
    rows = _head(path)
    if not rows:
        raise InputError(f"{path} holds no rows; expected a table of numbers, one example per line.")
    first_line, first_cells = rows[0]
    has_header = _first_row_is_header(path, rows, header)
    names = [cell.strip() for cell in first_cells] if has_header else [str(index) for index in range(len(first_cells))]
    if has_header and len(rows) == 1:
        raise InputError(f"{path} has a header (line {first_line}) but no data rows; expected one example per line after it.")
    feature_indices, label_index = chosen_columns(path, names, label_column, columns, has_header)
    return Table(path, first_line, first_line if has_header else 0, len(names), feature_indices, [names[index] for index in feature_indices],
                 label_index, None if label_index is None else names[label_index])


def _checked_rows(table, rows):
    """(features float32, label cells or None) of parsed rows, or the first fault as one error naming file, line, column."""
    names = {index: name for index, name in zip(table.feature_indices, table.feature_names)}
    for number, cells in rows:
        if len(cells) != table.width:
            raise InputError(f"{table.path} line {number}: expected {table.width} cells (as in line {table.first_line}), got {len(cells)}; "
                             "give every row the same columns.")
    try:
        values = np.array([[float(cells[index]) for index in table.feature_indices] for _, cells in rows], dtype=np.float64)
        usable = bool(np.isfinite(values).all() and (not values.size or np.abs(values).max() <= FLOAT32_MAX))
    except ValueError:
        usable = False
    if not usable:
        number, index, fault = next((number, index, _cell_fault(cells[index]))
                                    for number, cells in rows for index in table.feature_indices if _cell_fault(cells[index]))
        raise InputError(f'{table.path} line {number}, column "{names[index]}": {fault}.')
    if table.label_index is None:
        return values.astype(np.float32), None
    labels = [cells[table.label_index].strip() for _, cells in rows]
    for (number, _), cell in zip(rows, labels):
        if label_fault(cell):
            raise InputError(f'{table.path} line {number}, column "{table.label_name}": label {cell!r} is missing or not finite; '
                             "expected a label in every row (drop unlabelled rows).")
    return values.astype(np.float32), labels


def _fast_chunks(table, rows):
    """pandas' C parser over the table, `rows` at a time, for as long as every chunk is clean: whole rows of finite
    float32 numbers and a label in each. Stops at the first chunk that is not (the exact reader then names the fault);
    returns True when it read the table to its end."""
    import pandas

    delimiter = TABLE_DELIMITERS[table.path.suffix.lower()]
    used = sorted({*table.feature_indices, *([table.label_index] if table.label_index is not None else [])})
    types = {index: np.float64 for index in table.feature_indices}
    if table.label_index is not None:
        types[table.label_index] = str
    try:
        reader = pandas.read_csv(
            table.path, sep=r"\s+" if delimiter is None else delimiter, header=None, skiprows=table.header_line,
            usecols=used, dtype=types, chunksize=rows, encoding="utf-8-sig", skip_blank_lines=True, engine="c",
            quoting=csv.QUOTE_NONE if delimiter is None else csv.QUOTE_MINIMAL, keep_default_na=False, na_values=[""],
            names=range(table.width),
        )
        for chunk in reader:
            values = chunk[table.feature_indices].to_numpy(np.float64)
            if not np.isfinite(values).all() or np.abs(values).max() > FLOAT32_MAX:
                return
            labels = None
            if table.label_index is not None:
                column = chunk[table.label_index]
                if column.isna().any():
                    return
                labels = [cell.strip() for cell in column.tolist()]
                if any(label_fault(cell) for cell in labels):
                    return
            yield values.astype(np.float32), labels
    except (ValueError, pandas.errors.ParserError, UnicodeDecodeError):
        return False
    return True


def table_chunks(table, rows=TABLE_ROWS):
    """(features float32 (m, features), label cells or None) of a table's data rows, `rows` at a time, in file order: the
    memory held is one chunk, whatever the table's length. A fault (a text or empty cell, a ragged row, a missing label)
    is one error naming the file, line and column, raised when its chunk is reached."""
    done, chunks = 0, _fast_chunks(table, rows)
    while True:
        try:
            chunk = next(chunks)
        except StopIteration as end:
            if end.value:  # read to its end, clean: no row is left for the exact reader (which would re-read them all)
                return
            break
        done += len(chunk[0])
        yield chunk
    data = (row for row in _table_rows(table.path) if row[0] > table.header_line)
    pending = []
    for position, row in enumerate(data):
        if position < done:  # already given by the fast reader
            continue
        pending.append(row)
        if len(pending) == rows:
            yield _checked_rows(table, pending)
            pending = []
    if pending:
        yield _checked_rows(table, pending)


def read_table(path, label_column=None, columns=None, header="infer"):
    """(features float32 (n, features), labels or None, feature_names) from a .csv, .tsv/.tab or .txt (whitespace) table,
    whole in memory (`open_table` and `table_chunks` stream it).

    Args:
        label_column: the label's column name or index (negative counts from the end), left out of the features;
            labels come back int64 if all are integral numbers, float64 if numbers, else str.
        columns: names or indices of the feature columns (default: every column but the label).
        header: True, False or "infer": a header if a first-row cell is text above a number in the second row (so a
            text label column alone is data); without a header, columns are named "0", "1", ... Or the list of names
            the header must hold, in order (as `table_header` reads it and a card records it); another is a ValueError.
    """
    table = open_table(path, label_column, columns, header)
    chunks = list(table_chunks(table))
    features = np.concatenate([features for features, _ in chunks])
    labels = None if table.label_index is None else label_values([cell for _, cells in chunks for cell in cells])
    return features, labels, table.feature_names


def atomic_copy(write, destination):
    """Call `write(temporary_path)`, then move the result onto `destination` in one rename.

    On any failure the temporary file is removed and `destination` keeps its previous content.
    The new file gets the permissions a plain `open(destination, "w")` would give: those of the file
    it replaces, else `0o666` less the umask.
    """
    destination = Path(destination)
    temporary = None
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        temporary = destination.parent / f".partial-{secrets.token_hex(8)}-{destination.name}"
        os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # the umask applies, unlike mkstemp's 0o600
        write(str(temporary))
        if destination.exists():
            os.chmod(temporary, stat.S_IMODE(destination.stat().st_mode) & 0o777)
        os.replace(temporary, destination)
    except OSError as error:
        if temporary:
            temporary.unlink(missing_ok=True)
        if error.errno is None:  # not a file-system error (e.g. an HTTP error raised by `write`)
            raise
        raise OSError(error.errno, f"Could not write {destination}: {error.strerror or error}") from error
    except BaseException:
        if temporary:
            temporary.unlink(missing_ok=True)
        raise
    return destination
