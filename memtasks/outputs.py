"""Writing a run's outputs so that none looks complete before it is (standard library only).

- :func:`write_atomic`: a file written to a temporary name and renamed at the end;
- :func:`check_writable`: an output folder checked before any work, creating nothing;
- :func:`working_directory`: a tool run inside its output folder, so the paths it
  records are relative to that folder and name nothing of this machine.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class OutputFolderError(ValueError):
    """An output folder that cannot be used (not writable, or holding what a run must not touch); one line."""


def write_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path`` and rename it to ``path``: readers see the old
    file or the whole new one, never a part (the rename is atomic on one file system)."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)


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
        raise OutputFolderError(f"{shown(folder)}: cannot write in {shown(existing)} ({error.strerror or error})") from None
    os.close(handle)
    os.unlink(name)


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
