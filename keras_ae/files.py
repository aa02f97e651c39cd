"""Users' own files as arrays: image folders, .npy/.npz arrays, CSV/TSV tables; every error names the file (and row, column) and what was expected."""

import csv
import math
import os
import secrets
import stat
import warnings
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from keras_ae.errors import InputError

IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
CHANNELS = {"grayscale": 1, "rgb": 3}
ON_ERROR_CHOICES = ("raise", "skip")
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I")
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


def _check_fits_in_memory(folder, files, image_size, color_mode, argument, example):
    """Refuse, before any image is read, images whose float32 tensor (count x height x width x channels x 4 bytes, twice
    while they are stacked) would not fit in the memory available; without `image_size`, the first image's header
    gives the size they must all share."""
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
    needed = 2 * len(files) * height * width * channels * 4
    available = available_memory()
    if needed > available:
        raise InputError(
            f"{len(files)} images in {folder} {where} with {channels} channel{'s' * (channels > 1)} need about "
            f"{_gigabytes(needed)} of memory as float32 (two copies while they are stacked), and {_gigabytes(available)} is "
            f"available; pass a smaller {argument} (e.g. {example}), or fewer images."
        )


def check_images_fit(folder, image_size=None, color_mode="grayscale", argument="image_size", example="image_size=(64, 64)"):
    """Refuse, before reading any image, a folder of images that would not fit in memory at `image_size` (see
    `read_images`); `argument` and `example` name the size as the caller's user gives it (the command's `--image-size`)."""
    _check_choice("color_mode", color_mode, CHANNELS)
    folder = Path(folder)
    if folder.is_dir():
        files = _image_files(folder)[1]
        if files:
            _check_fits_in_memory(folder, files, image_size, color_mode, argument, example)


def _image_files(folder):
    """(class folders, [(path, class index or None)]) as keras.utils.image_dataset_from_directory finds them."""
    class_folders = class_folders_of(folder)
    groups = [(directory, directory.rglob("*"), index) for index, directory in enumerate(class_folders)]
    groups = groups or [(folder, folder.iterdir(), None)]
    return class_folders, [
        (path, index) for root, found, index in groups
        for path in sorted(found) if path.suffix.lower() in IMAGE_EXTENSIONS and not path.is_dir() and _visible(path, root)
    ]


def _pixels(image, color_mode, image_size):
    """A loaded image as float32 (height, width, channels) in [0, 1], scaled by its own bit depth, then resized."""
    if image.mode in SIXTEEN_BIT_MODES:
        values = np.asarray(image)
        if values.min() < 0 or values.max() > 65535:
            raise InputError(f"mode {image.mode} values span {values.min()}..{values.max()}, expected 0..65535")
        channels = [values.astype(np.float32) / 65535] * CHANNELS[color_mode]
    else:
        values = np.asarray(image.convert("L" if color_mode == "grayscale" else "RGB"), dtype=np.float32) / 255
        channels = [values] if values.ndim == 2 else list(np.moveaxis(values, -1, 0))
    if image_size is not None and channels[0].shape != tuple(image_size):
        height, width = image_size
        resized = [Image.fromarray(channel).resize((width, height), Image.Resampling.BILINEAR) for channel in channels]
        channels = [np.asarray(channel) for channel in resized]
    return np.clip(np.stack(channels, axis=-1), 0.0, 1.0)


def read_image(path, image_size=None, color_mode="grayscale"):
    """One image file as float32 (height, width, channels) in [0, 1], scaled by its own bit depth; else a one-line
    ValueError naming the file."""
    _check_choice("color_mode", color_mode, CHANNELS)
    refuse_special_file(path)
    try:
        with Image.open(path) as image:
            image.load()
            return _pixels(image, color_mode, image_size)
    except (OSError, ValueError) as error:
        raise InputError(f"{path}: not a readable image ({error})") from None


def read_images(folder, image_size=None, color_mode="grayscale", on_error="raise"):
    """(images float32 (n, height, width, channels) in [0, 1], labels int64 or None, class_names, paths), as Keras reads folders.

    Args:
        folder: images, or class subfolders (sorted by name; a label is its folder's index) searched recursively;
            with subfolders, images directly in `folder` are ignored. Hidden ".names" are skipped; files sorted by path.
        image_size: (height, width) to resize to (bilinear); None requires one shared size.
        color_mode: "grayscale" (1 channel) or "rgb" (3). 8-bit images are divided by 255, 16-bit ones by 65535.
        on_error: "raise" (one ValueError naming the first unreadable file) or "skip" (leave them out, warn once).
    """
    _check_choice("color_mode", color_mode, CHANNELS)
    _check_choice("on_error", on_error, ON_ERROR_CHOICES)
    if image_size is not None and (
        np.shape(image_size) != (2,) or not all(isinstance(side, (int, np.integer)) and side > 0 for side in image_size)
    ):
        raise InputError(f"image_size must be (height, width), two positive integers; got {image_size!r}.")
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder; expected a folder of images or of class subfolders of images.")
    class_folders, files = _image_files(folder)
    if not files:
        inside = f"its class subfolders {[path.name for path in class_folders]}" if class_folders else "it"
        raise InputError(f"{folder} holds no image files: looked in {inside} for {' '.join(IMAGE_EXTENSIONS)} (any case); "
                         "put images in it, or in one subfolder per class (images beside class subfolders are ignored).")
    _check_fits_in_memory(folder, files, image_size, color_mode, "image_size", "image_size=(64, 64)")
    images, kept, failures = [], [], []
    for path, label in files:
        kind = special_file(path)
        if kind is not None:
            failures.append((path, f"{kind}, not a regular file"))
            continue
        try:
            with Image.open(path) as image:
                image.load()
                images.append(_pixels(image, color_mode, image_size))
            kept.append((path, label))
        except Exception as error:  # Pillow's format plugins raise many types (OSError, SyntaxError, struct.error...).
            failures.append((path, f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"))
    if failures and (on_error == "raise" or len(failures) == len(files)):
        path, fault = failures[0]
        hint = "" if on_error == "skip" else ", or pass on_error='skip' to leave them out"
        raise InputError(f"Cannot read image {path} ({fault}); {len(failures)} of {len(files)} files are unreadable: "
                         f"fix or remove them{hint}.")
    if failures:
        names = ", ".join(str(path.relative_to(folder)) for path, _ in failures[:NAMES_SHOWN])
        more = ", ..." if len(failures) > NAMES_SHOWN else ""
        warnings.warn(f"Skipped {len(failures)} unreadable image files of {len(files)} in {folder}: {names}{more}", stacklevel=2)
    first_of_size = {}
    for (path, _), pixels in zip(kept, images):
        first_of_size.setdefault(pixels.shape[:2], path)
    if len(first_of_size) > 1:
        (size_a, path_a), (size_b, path_b) = list(first_of_size.items())[:2]
        raise InputError(f"Images differ in size: {path_a} is {size_a[0]}x{size_a[1]} and {path_b} is {size_b[0]}x{size_b[1]} "
                         "(height x width); pass image_size=(height, width) to resize them all to one size.")
    labels = np.array([label for _, label in kept], dtype=np.int64) if class_folders else None
    return np.stack(images), labels, [path.name for path in class_folders], [str(path) for path, _ in kept]


def _load_numpy(path, read):
    """Run `read` (a np.load or an archive lookup), turning NumPy's and zipfile's faults into one line naming the file."""
    try:
        return read()
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        if "pickle" in str(error):
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


def _examples_as_float32(array, source):
    """float32 examples from a float or uint8 (0-255 pixels, divided by 255) array; other types refused."""
    if array.dtype.kind in "iu" and array.dtype != np.uint8:
        raise InputError(f"{source} holds {array.dtype} values; expected float (or uint8 for 0-255 pixels): convert with "
                         "array.astype('float32') scaled to [0, 1], or array.astype('uint8') for 0-255 pixels.")
    if array.dtype.kind not in "uf":
        raise InputError(f"{source} holds {array.dtype} values; expected floats (or uint8 0-255 pixels): convert with array.astype('float32').")
    if array.ndim == 0 or array.size == 0:
        raise InputError(f"{source} is empty or a scalar (shape {array.shape}); expected at least one example along the first axis.")
    with np.errstate(over="ignore"):  # float64 beyond float32's range becomes inf, refused below
        examples = array.astype(np.float32) / 255 if array.dtype == np.uint8 else array.astype(np.float32)
    if not np.isfinite(examples).all():
        index = tuple(int(i) for i in np.argwhere(~np.isfinite(examples))[0])
        raise InputError(f"{source} holds {examples[index]} at index {index}; expected finite numbers (no NaN or Inf, "
                         "within float32's range): drop or fill those examples.")
    return examples


def read_array(path):
    """(examples float32 (n, ...), labels as stored or None) from a .npy or .npz file, never unpickling.

    uint8 arrays are 0-255 pixels, divided by 255; float16/32/64 become float32; other integers, booleans, NaN/Inf and
    empty arrays are refused. An .npz keeps examples under "x", "images" or its only array; labels under "y" or "labels".
    """
    path = Path(path)
    if path.suffix.lower() not in (".npy", ".npz"):
        raise InputError(f"Cannot read {path} as an array: expected a .npy or .npz file, got {path.suffix or 'no extension'!r}.")
    refuse_special_file(path)
    loaded = _load_numpy(path, lambda: np.load(path, allow_pickle=False))
    if isinstance(loaded, np.ndarray):
        return _examples_as_float32(loaded, str(path)), None
    with loaded:
        examples_key, labels_key = _archive_keys(path, list(loaded.files))
        examples = _examples_as_float32(_load_numpy(path, lambda: loaded[examples_key]), f"{path}['{examples_key}']")
        labels = None if labels_key is None else _load_numpy(path, lambda: loaded[labels_key])
    if labels is not None and (labels.ndim == 0 or len(labels) != len(examples)):
        raise InputError(f"{path} has {len(examples)} examples under '{examples_key}' but labels of shape {labels.shape} "
                         f"under '{labels_key}'; expected one label per example.")
    return examples, labels


def _table_rows(path):
    """(1-based line number, cells) of each non-blank row, split by the delimiter the extension names."""
    delimiter = TABLE_DELIMITERS[path.suffix.lower()]
    refuse_special_file(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            if delimiter is None:
                rows = [(number, line.split()) for number, line in enumerate(handle, 1)]
            else:
                reader = csv.reader(handle, delimiter=delimiter)
                rows = [(reader.line_num, row) for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise InputError(f"Cannot read table {path} ({type(error).__name__}: {error}); expected a readable UTF-8 text file.") from None
    rows = [(number, cells) for number, cells in rows if len(cells) > 1 or "".join(cells).strip()]
    _check_delimiter(path, delimiter, rows)
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


def _listed(names):
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
    available = f"its columns are {_listed(names)}, or indices" if has_header else f"it has {width} columns and no header, so use indices"
    raise InputError(f"{path} has no column {key!r} ({argument}): {available} 0..{width - 1} (or -{width}..-1 from the end).")


def _labels(path, rows, index, name):
    """A label column as int64 (all integral numbers), float64 (numbers) or str; empty and non-finite labels refused."""
    cells = [row[index].strip() for _, row in rows]
    for (number, _), cell in zip(rows, cells):
        if not cell or (_is_number(cell) and not math.isfinite(float(cell))):
            raise InputError(f'{path} line {number}, column "{name}": label {cell!r} is missing or not finite; '
                             "expected a label in every row (drop unlabelled rows).")
    if not all(_is_number(cell) for cell in cells):
        return np.array(cells, dtype=str)
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
        differences = [f"missing {_listed(missing)}"] * bool(missing) + [f"not expected {_listed(unexpected)}"] * bool(unexpected)
        found = (f"{_listed(first)} ({'; '.join(differences) or 'the same names in another order'})"
                 if _first_row_is_header(path, rows, "infer") else "no header (a first row of numbers)")
        raise InputError(f"{path}: expected the header {_listed(expected)}; found {found}. Give the table those columns, in that order.")
    _check_choice("header", header, ("infer", True, False))
    return header


def table_header(path, header="infer"):
    """The header row of a table as a list of column names, or False when it has none (`header` as `read_table` takes
    it): what a card records, so that a table of the same layout is read again and another one refused."""
    rows = _table_rows(Path(path))
    if not rows:
        return False
    return [cell.strip() for cell in rows[0][1]] if _first_row_is_header(path, rows, header) else False


def read_table(path, label_column=None, columns=None, header="infer"):
    """(features float32 (n, features), labels or None, feature_names) from a .csv, .tsv/.tab or .txt (whitespace) table.

    Args:
        label_column: the label's column name or index (negative counts from the end), left out of the features;
            labels come back int64 if all are integral numbers, float64 if numbers, else str.
        columns: names or indices of the feature columns (default: every column but the label).
        header: True, False or "infer": a header if a first-row cell is text above a number in the second row (so a
            text label column alone is data); without a header, columns are named "0", "1", ... Or the list of names
            the header must hold, in order (as `table_header` reads it and a card records it); another is a ValueError.
    """
    path = Path(path)
    if path.suffix.lower() not in TABLE_DELIMITERS:
        raise InputError(f"Cannot read {path} as a table: expected .csv (comma), .tsv or .tab (tab) or .txt (whitespace), "
                         f"got {path.suffix or 'no extension'!r}; rename the file after its delimiter.")
    rows = _table_rows(path)
    if not rows:
        raise InputError(f"{path} holds no rows; expected a table of numbers, one example per line.")
    first_line, first_cells = rows[0]
    header = _first_row_is_header(path, rows, header)
    names = [cell.strip() for cell in first_cells] if header else [str(index) for index in range(len(first_cells))]
    data = rows[1:] if header else rows
    if not data:
        raise InputError(f"{path} has a header (line {first_line}) but no data rows; expected one example per line after it.")
    for number, cells in data:
        if len(cells) != len(names):
            raise InputError(f"{path} line {number}: expected {len(names)} cells (as in line {first_line}), got {len(cells)}; "
                             "give every row the same columns.")
    label_index = None if label_column is None else _column_index(path, label_column, names, header, "label_column")
    if columns is None:
        feature_indices = [index for index in range(len(names)) if index != label_index]
    else:
        keys = [columns] if isinstance(columns, (str, int, np.integer)) else columns
        feature_indices = [_column_index(path, key, names, header, "columns") for key in keys]
    if label_index is not None and label_index in feature_indices:
        raise InputError(f"{path}: column {names[label_index]!r} is both label_column and in columns; leave the label out of columns.")
    if not feature_indices:
        raise InputError(f"{path} has no feature columns left; expected at least one column besides the label.")
    try:
        values = np.array([[float(cells[index]) for index in feature_indices] for _, cells in data], dtype=np.float64)
        usable = bool(np.isfinite(values).all() and np.abs(values).max() <= FLOAT32_MAX)
    except ValueError:
        usable = False
    if not usable:
        number, index, fault = next((number, index, _cell_fault(cells[index]))
                                    for number, cells in data for index in feature_indices if _cell_fault(cells[index]))
        raise InputError(f'{path} line {number}, column "{names[index]}": {fault}.')
    labels = None if label_index is None else _labels(path, data, label_index, names[label_index])
    return values.astype(np.float32), labels, [names[index] for index in feature_indices]


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
