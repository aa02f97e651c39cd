"""The errors keras-ae raises about what its user gave it. The `keras-ae` command shows these (and OS errors: missing
files, failed downloads) as one line with exit status 2; anything else is a bug and keeps its traceback."""

import re


class InputError(ValueError):
    """Bad input: a card, an argument, a file or data that is not what was expected; the message says what was."""


class MissingExtraError(ImportError):
    """An optional dependency a feature needs is not installed; the message names the extra to install."""


def carried_input_error(error):
    """The `InputError` a TensorFlow error carries from Python code a tf.data stream ran (a header found at fault while
    the stream started), as an `InputError`; None for any other error."""
    module = type(error).__module__
    found = re.search(r"\bInputError: ([^\n]*)", str(error)) if module.startswith("tensorflow") else None
    return InputError(found.group(1)) if found else None
