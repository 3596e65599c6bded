"""Errors a user can act on: each names the file, the record and the field that are wrong."""

from __future__ import annotations

from pathlib import Path


class TunesiftError(Exception):
    """Base class for errors tunesift reports to the user as one line (CLI exit status 2)."""


class InputError(TunesiftError):
    """A pool file, a record or a field is not what tunesift can read.

    The message always says where: ``FILE: record N: field 'F': what is wrong``, so the user can
    open the file at that record and fix it.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        record: int | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message
        self.path = None if path is None else str(path)
        self.record = record
        self.field = field
        super().__init__(str(self))

    def __str__(self) -> str:
        parts = []
        if self.path is not None:
            parts.append(self.path)
        if self.record is not None:
            parts.append(f"record {self.record}")
        if self.field is not None:
            parts.append(f"field '{self.field}'")
        parts.append(self.message)
        return ": ".join(parts)


class ConfigError(TunesiftError):
    """An option has a value tunesift does not accept (unknown model, template, rule...)."""

    def __init__(self, option: str, message: str) -> None:
        self.option = option
        self.message = message
        super().__init__(f"option '{option}': {message}")


class StorageError(TunesiftError):
    """A file could not be written or read: no space left, permission denied, a read-only file system.

    One line naming the path and the cause, and what was kept, instead of a traceback.
    """

    def __init__(self, path: str | Path, err: OSError, kept: str = "") -> None:
        self.path = str(path)
        self.cause = err.strerror or str(err)
        super().__init__(f"{path}: cannot write: {self.cause}" + (f" ({kept})" if kept else ""))


def as_storage_error(path: str | Path, err: BaseException, kept: str = "") -> StorageError | None:
    """``err`` as a :class:`StorageError` when it is a failure to write (an ``OSError``, or a library's own
    error carrying one, as safetensors' "I/O error: ... (os error 28)"); None for anything else."""
    if isinstance(err, OSError) and not isinstance(err, FileNotFoundError):
        return StorageError(path, err, kept)
    text = str(err)
    if "I/O error" in text or "IoError" in text or "os error" in text:
        return StorageError(path, OSError(0, text.split("I/O error: ")[-1]), kept)
    return None
