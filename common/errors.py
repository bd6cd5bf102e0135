"""User errors: mistakes the user fixes (a bad config value, a dataset in the wrong layout, an unknown
model or dataset, missing weight files, an unusable results folder, an engine that is not there).

Every one derives from FERUserError, which `python -m harness` turns into one `error: ...` message and
exit code 2; any other exception is a bug and keeps its traceback. Each class also derives from the
built-in error it replaces (ValueError, KeyError, FileNotFoundError, ...), so code and tests catching
those still catch it. The message says what was wrong and how to fix it.
"""
from __future__ import annotations


class FERUserError(Exception):
    """A mistake the user can fix; the message names the bad value and the valid choices or the fix."""

    def __str__(self) -> str:
        # KeyError would quote its message; a user error prints as written.
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


class ConfigError(FERUserError, ValueError):
    """A bad config key or value, override, option or command-line value."""


class UnknownNameError(FERUserError, KeyError):
    """An unknown model, dataset, profile or metric name."""


class DatasetLayoutError(FERUserError, FileNotFoundError):
    """A dataset folder, label file or image that is missing or not in the expected layout."""


class MissingWeightsError(FERUserError, FileNotFoundError):
    """Pretrained weight files that were asked for but are not there."""


class MissingPathError(FERUserError, FileNotFoundError):
    """A folder or file the user named that does not exist (a results folder, a run folder)."""


class NotWritableError(FERUserError, PermissionError):
    """A folder the suite must write to but cannot."""
