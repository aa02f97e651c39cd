"""The errors keras-ae raises about what its user gave it. The `keras-ae` command shows these (and OS errors: missing
files, failed downloads) as one line with exit status 2; anything else is a bug and keeps its traceback."""


class InputError(ValueError):
    """Bad input: a card, an argument, a file or data that is not what was expected; the message says what was."""


class MissingExtraError(ImportError):
    """An optional dependency a feature needs is not installed; the message names the extra to install."""
