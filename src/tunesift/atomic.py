"""Write files so that a killed run never leaves a half-written file where the final one belongs, with the
permissions ``open(path, "w")`` would give: the user's umask for a new file, the old mode for an overwrite
(a temporary file is private until it is renamed into place; the result must not stay so)."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import IO

#: The renames waiting for the outermost :func:`together` block to end well: (commit, discard) pairs.
_PENDING: ContextVar[list[tuple[Callable[[], None], Callable[[], None]]] | None] = ContextVar(
    "tunesift_atomic_pending", default=None
)


@contextlib.contextmanager
def together() -> Iterator[None]:
    """Every file written inside the block (through :func:`atomic_open` or :func:`on_commit`) lands together
    when the block ends without error, or none does: a subset and its manifest, never one without the other.
    The files are complete on disk before the first rename, so only the renames themselves remain to fail."""
    if _PENDING.get() is not None:  # an inner block joins the outer one
        yield
        return
    pending: list[tuple[Callable[[], None], Callable[[], None]]] = []
    token = _PENDING.set(pending)
    try:
        yield
    except BaseException:
        for _, discard in pending:
            with contextlib.suppress(OSError):
                discard()
        raise
    finally:
        _PENDING.reset(token)
    for k, (commit, _) in enumerate(pending):
        try:
            commit()
        except BaseException:
            for _, discard in pending[k + 1 :]:
                with contextlib.suppress(OSError):
                    discard()
            raise


def on_commit(commit: Callable[[], None], discard: Callable[[], None]) -> None:
    """Run ``commit`` (a rename into place) now, or at the end of the enclosing :func:`together` block; ``discard``
    (removing the temporary) runs instead if that block fails."""
    pending = _PENDING.get()
    if pending is None:
        commit()
    else:
        pending.append((commit, discard))


def current_umask() -> int:
    """This process's umask (read without changing it where /proc says it; else set and restored at once)."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def open_mode(target: Path) -> int:
    """The mode ``open(target, "w")`` leaves: the existing file's, else 0o666 less the umask."""
    try:
        return stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        return 0o666 & ~current_umask()


def as_created(tree: Path) -> None:
    """Give every file and folder under ``tree`` (itself included) the mode a plain create would give them,
    where a library wrote private temporaries (a saved model)."""
    mask = current_umask()
    for root, dirs, files in os.walk(tree):
        os.chmod(root, 0o777 & ~mask)
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o777 & ~mask)
        for name in files:
            os.chmod(os.path.join(root, name), 0o666 & ~mask)


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success fsync it and rename it over ``path``.

    On any exception the temporary file is removed and ``path`` is left as it was.
    Failing to write (no space left, permission denied, a read-only file system) raises
    :class:`~tunesift.errors.StorageError` naming ``path`` and the cause.
    """
    from tunesift.errors import StorageError

    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as err:
        raise StorageError(target, err) from None
    binary = "b" in mode
    try:
        with os.fdopen(fd, mode, encoding=None if binary else encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, open_mode(target))
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        if isinstance(err, OSError) and not isinstance(err, FileNotFoundError):
            raise StorageError(target, err) from None
        raise

    def discard() -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)

    def commit() -> None:
        try:
            os.replace(tmp_name, target)
        except BaseException as err:
            discard()
            if isinstance(err, OSError):
                raise StorageError(target, err) from None
            raise

    on_commit(commit, discard)
