"""The one base class of input errors.

Everything a user can get wrong (a model, dataset or config key, a value, a file, a path) is
raised as an `InputError` subclass with a one-line message that names the key, file or line.
Every CLI catches `InputError`, and nothing else, prints the message on stderr and exits 2;
any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

EXIT_INPUT_ERROR = 2


class InputError(Exception):
    """Bad input: the message is one line that names what to fix."""


class FeatureError(InputError):
    """A dataset feature that no model can train on (NaN after RecBole's preprocessing)."""


class ResultFileError(InputError):
    """A results file that cannot be written (its folder cannot be created or written, or the
    path is a folder), found before any data is loaded."""
