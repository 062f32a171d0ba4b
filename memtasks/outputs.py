"""Writing a run's outputs so that none looks complete before it is (standard library only).

- :func:`write_atomic`, :func:`atomic_path`, :func:`write_together`: a file (or files that belong
  together) written to a temporary name, flushed to disk and renamed at the end; a write that fails
  names the file asked for and leaves nothing;
- :func:`flush_folder`: a folder a library wrote, flushed before it is moved into place;
- :func:`write_failure`: the cause of an error that is the disk refusing a write (full, quota, I/O error);
- :func:`check_writable`: an output folder checked before any work, creating nothing;
- :func:`check_apart`: an output that is, holds or lies inside one of a run's inputs, refused before any work;
- :func:`working_directory`: a tool run inside its output folder, so the paths it
  records are relative to that folder and name nothing of this machine.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path


class OutputFolderError(ValueError):
    """An output folder that cannot be used (not writable, or holding what a run must not touch); one line."""


class OutputOverInputError(OutputFolderError):
    """An output path that is one of a run's inputs, holds one, or lies inside one; one line naming both."""


# The errors of a write the disk refused: full, over quota, a failing device, too large a file.
WRITE_FAILURES = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EFBIG, errno.EROFS})


class DiskWriteError(OSError):
    """A write the disk refused, as one line that says what was being written and what to do next."""


def flush_folder(folder: str | Path) -> None:
    """Flush every file under ``folder`` to disk (before the folder or its files are renamed into place:
    a library's writer, safetensors' or a tokenizer's, does not)."""
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file():
            _fsync(path)


def _fsync(path: Path) -> None:
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def write_failure(error: BaseException) -> str | None:
    """The cause, as a message shows it, when ``error`` is the disk refusing a write (:data:`WRITE_FAILURES`),
    also as libraries report it: safetensors' writer and torch's stream writer give only the system's
    text. None for any other error."""
    if isinstance(error, OSError):
        return (error.strerror or os.strerror(error.errno)).lower() if error.errno in WRITE_FAILURES else None
    text = str(error)
    cause = next((os.strerror(code) for code in WRITE_FAILURES if os.strerror(code) in text), None)
    if cause is None and "file write failed" in text:
        cause = "write failed"
    return cause.lower() if cause else None


def write_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through :func:`atomic_path`: readers see the old file or the whole new one."""
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` for the body to write a file at; once the body returns, the file is
    flushed to disk and renamed to ``path`` (atomic on one file system), so ``path`` is the old file or the
    whole new one, never a part. On any error the temporary file is removed, and an ``OSError`` names
    ``path``, not the temporary name. The temporary name ends in ``.tmp``: a writer that picks a format
    by extension (matplotlib) is told the format."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield temporary
        # Flushed before the rename: a file system that fails late (NFS, a quota) fails here, not after.
        _fsync(temporary)
        temporary.replace(path)
    except OSError as error:
        if error.filename in (None, str(temporary)) and error.errno is not None:
            raise OSError(error.errno, error.strerror, str(path)) from None
        raise
    finally:
        temporary.unlink(missing_ok=True)


def write_together(files: Mapping[str | Path, str]) -> None:
    """Write files that belong together (a results file and its per-sample logs) through :func:`atomic_path`:
    every one is written in full before any is renamed, so a write that fails leaves each as it was. The
    last file named is renamed last."""
    with ExitStack() as stack:
        # An exit stack leaves in reverse order: entered last to first, the files are renamed first to last.
        temporaries = {path: stack.enter_context(atomic_path(path)) for path in reversed(list(files))}
        for path, temporary in temporaries.items():
            temporary.write_text(files[path], encoding="utf-8")


def check_writable(folder: str | Path) -> None:
    """Refuse, before any work, an output folder that cannot be made or written (one line); leaves nothing."""
    folder = Path(folder)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputFolderError(f"{shown(folder)}: cannot be made: {shown(existing)} is a file, not a folder")
    try:
        handle, name = tempfile.mkstemp(dir=existing, prefix=".memtasks-write-check-")
    except OSError as error:
        raise OutputFolderError(f"{shown(folder)}: cannot write in {shown(existing)} ({(error.strerror or str(error)).lower()})") from None
    try:
        # An empty file takes no space: one byte, flushed, finds a file system that is full.
        os.write(handle, b"\0")
        os.fsync(handle)
    except OSError as error:
        raise OutputFolderError(f"{shown(folder)}: cannot write in {shown(existing)} ({(error.strerror or str(error)).lower()})") from None
    finally:
        os.close(handle)
        os.unlink(name)


def check_apart(
    outputs: Iterable[tuple[str, str | Path | None]],
    inputs: Iterable[tuple[str, str | Path | None]],
    inside: bool = True,
    holds: bool = True,
) -> None:
    """Refuse, before any work, an output that would write over an input: one that is an input (the same
    path, through a symbolic link, or the same file under another name), holds one, or (when ``inside``)
    lies inside one. An output never destroys an input.

    ``outputs`` and ``inputs`` are ``(what, path)`` pairs, ``what`` naming the path in the message
    (``"--cases"``, ``"the input"``); a ``None`` path is skipped, and so is an input that does not
    exist (a Hugging Face id, say: nothing of it is on this disk). ``inside=False`` lets an output lie
    inside an input folder that the run never reads back (``memtasks report``'s default ``RESULTS/report``);
    ``holds=False`` lets an output folder hold an input when the run only adds new files to it, never
    removing or rewriting one (lm-eval's results, named by date: ``memtasks eval --output_path .``).
    Raises :class:`OutputOverInputError` naming both paths.
    """
    present = [(what, Path(path), _resolved(path)) for what, path in inputs if path is not None and os.path.lexists(path)]
    for out_what, out_path in outputs:
        if out_path is None:
            continue
        out = _resolved(out_path)
        for in_what, in_path, source in present:
            if out == source or _same_file(out, source):
                relation = "is"
            elif holds and source.is_relative_to(out):
                relation = "holds"
            elif inside and out.is_relative_to(source):
                relation = "is inside"
            else:
                continue
            raise OutputOverInputError(
                f"{out_what} {out_path} {relation} {in_what} {in_path}: "
                "an output never writes over an input; choose another output path"
            )


def _resolved(path: str | Path) -> Path:
    """``path`` absolute, with ``~``, ``..`` and every symbolic link of it resolved."""
    return Path(os.path.realpath(Path(path).expanduser()))


def _same_file(a: Path, b: Path) -> bool:
    """Whether two existing paths are one file (hard links)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


@contextmanager
def working_directory(folder: str | Path) -> Iterator[None]:
    """The body runs with ``folder`` as the current directory; the previous one is restored after,
    on an error or an interrupt too."""
    previous = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


def shown(path: str | Path) -> str:
    """A path as a message shows it: relative to the current directory when inside it."""
    try:
        return Path(path).resolve().relative_to(Path.cwd()).as_posix()
    except ValueError:
        return str(path)
