"""The one error type of the library: every error a user can cause is an :class:`AlexlibError`.

A user causes an error by what they type (an unknown variant, a scale that does not exist, a crop
larger than the image) or by what they point the library at (a missing dataset, a damaged zip, a
checkpoint of another run). Each such error carries one line that says what is wrong and how to fix
it; ``python -m alexlib`` prints that line and exits with status 2, never a traceback.

Programming errors (a float tensor where uint8 images are expected) stay Python's own
``TypeError``/``ValueError``: they are bugs in the calling code, not in the user's input.

    AlexlibError
    ├── SettingsError          a bad setting value (ValueError too)
    ├── UnknownSettingError    a setting name that does not exist (TypeError too)
    ├── DataError              a dataset that is missing, damaged or inconsistent
    ├── TrainingError          a run that cannot start or go on (diverged, out of memory, ...)
    ├── LedgerError            a ledger command that cannot go ahead
    ├── ParallelError          a parallel run or tower split that cannot go ahead
    ├── StorageError           a file that could not be written (a full disk, no permission)
    └── BookError              a chapter, the book build or the built pages failed
"""

from __future__ import annotations

__all__ = [
    "AlexlibError",
    "SettingsError",
    "UnknownSettingError",
    "DataError",
    "TrainingError",
    "LedgerError",
    "ParallelError",
    "BookError",
    "StorageError",
]


class AlexlibError(Exception):
    """An error the user caused, with a message that says what is wrong and how to fix it."""


class SettingsError(AlexlibError, ValueError):
    """A setting with a value that cannot work: an unknown variant or scale, a crop larger than the
    image, a variant that cannot take the dataset's image size."""


class UnknownSettingError(AlexlibError, TypeError):
    """A setting name that does not exist (the message lists the names that do)."""


class DataError(AlexlibError):
    """A problem with the user's data: missing, damaged, or inconsistent."""


class TrainingError(AlexlibError, RuntimeError):
    """A run that cannot start or go on (diverged, out of memory, bad resume), with what to try."""


class LedgerError(AlexlibError, RuntimeError):
    """A ledger command that cannot go on (unknown ablation, bad folder), with what to do
    instead."""


class ParallelError(AlexlibError, RuntimeError):
    """A parallel run or split that cannot go ahead, with what to do about it."""


class StorageError(AlexlibError, OSError):
    """A file (a checkpoint, a result, a cache) that could not be written; the one that was there
    before is left as it was."""


class BookError(AlexlibError):
    """A chapter failed, the build failed, or the built book has a broken page, image or link."""
