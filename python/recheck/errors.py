"""The exceptions recheck raises.

Every exception is a :class:`recheck.Error`, carrying the message the ``recheck``
command prints and, in ``hint``, what the command would suggest (``None`` when it has
nothing to say). ``UsageError`` is also a ``ValueError``: a value passed in that cannot
be used, refused before anything ran or was stored.
"""

from __future__ import annotations


class Error(Exception):
    """Anything recheck itself reports.

    Attributes:
        hint: what to do about it, in the command line's words, or ``None``.
    """

    hint: str | None

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint

    def __reduce__(self) -> tuple[type, tuple[str, str | None]]:
        # Exceptions cross process boundaries (multiprocessing, Ray) with their hint.
        return (type(self), (str(self), self.hint))


class UsageError(Error, ValueError):
    """A value that cannot be used as asked: an unknown strategy, a temperature out of
    range, a missing file. Nothing was run or stored."""


class ModelError(Error):
    """The model could not be opened or a call to it failed (the run is stored as failed)."""


class StoreError(Error):
    """The trace store (or its home directory) cannot be used."""


class StoreInUse(StoreError):
    """Another process holds the store: sled allows one process per store."""


class StoreDamaged(StoreError):
    """The store's files are damaged; ``recheck traces salvage`` rebuilds it."""


class UnverifiableError(Error):
    """A model call that verification needed failed, so its verdicts would say less than
    they seem to (the run is stored as failed)."""


class Cancelled(Error):
    """A call stopped by its caller: the asyncio task awaiting ``ask_async`` or
    ``verify_async`` was cancelled (that task sees ``asyncio.CancelledError``)."""


class CorpusError(Error):
    """An index that cannot be built, opened or searched."""


class EvalError(Error):
    """An experiment that cannot run: its spec, its data, its stored record."""


__all__ = [
    "Cancelled",
    "CorpusError",
    "Error",
    "EvalError",
    "ModelError",
    "StoreDamaged",
    "StoreError",
    "StoreInUse",
    "UnverifiableError",
    "UsageError",
]
