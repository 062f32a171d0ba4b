"""Where numba caches memtasks' compiled kernels, for an install whose package folder cannot be written.

numba caches a function compiled with ``cache=True`` in the ``__pycache__``
folder beside its source, else in ``~/.cache/numba``; with neither writable (a
shared system install, a container run as an unprivileged user without a home)
it cannot even define the function: ``RuntimeError: cannot cache function
'pair_similarities': no locator available``. :func:`configure` runs when
memtasks is imported, before numba is: when the kernels' ``__pycache__``
folders cannot be written and ``NUMBA_CACHE_DIR`` is not set, it points
``NUMBA_CACHE_DIR`` at the first writable of ``$XDG_CACHE_HOME/memtasks/numba``,
``~/.cache/memtasks/numba`` and a folder of this user's own in the temporary
folder (made private, so no other user of the machine can plant code in it).
The kernels then compile once and load from there after. The paraphrase grader
keeps its converted encoder in a sibling folder (:func:`user_cache_folder`).
Standard library only: ``memtasks --help`` stays fast.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
# The folders whose modules define numba kernels with cache=True.
KERNEL_FOLDERS = ("detection", "retrieval")


def configure() -> Path | None:
    """Set ``NUMBA_CACHE_DIR`` when numba could not cache beside memtasks' sources; returns the folder set, if any."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return None
    if all(_writable(PACKAGE / folder / "__pycache__") for folder in KERNEL_FOLDERS):
        return None
    folder = cache_folder()
    if folder is None:
        return None
    os.environ["NUMBA_CACHE_DIR"] = str(folder)
    # numba read its settings when imported: if it already was, set the one it reads when a kernel is defined.
    config = sys.modules.get("numba.core.config")
    if config is not None:
        config.CACHE_DIR = str(folder)
    return folder


def cache_folder() -> Path | None:
    """The numba cache: :func:`user_cache_folder`, else a new folder of its own for this run (compiled again next time)."""
    folder = user_cache_folder("numba")
    if folder is not None:
        return folder
    try:
        fresh = Path(tempfile.mkdtemp(prefix="memtasks-numba-"))
    except OSError:
        return None
    print(
        f"memtasks: numba compiles memtasks' kernels into {fresh} for this run only "
        f"({_temporary_folder('numba')} is not this user's own); set NUMBA_CACHE_DIR to keep them",
        file=sys.stderr,
    )
    return fresh


def user_cache_folder(name: str) -> Path | None:
    """This user's cache folder for ``name``: the first writable of ``$XDG_CACHE_HOME/memtasks/NAME``,
    ``~/.cache/memtasks/NAME`` and a private folder in the temporary folder; None when none is usable."""
    candidates = []
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if os.path.isabs(xdg):
        candidates.append(Path(xdg) / "memtasks" / name)
    home = os.path.expanduser("~")
    if os.path.isabs(home):
        candidates.append(Path(home) / ".cache" / "memtasks" / name)
    for candidate in candidates:
        if _writable(candidate):
            return candidate
    return _private_temporary_folder(name)


def _temporary_folder(name: str) -> Path | None:
    try:
        base = Path(tempfile.gettempdir())
    except (OSError, FileNotFoundError):
        return None
    uid = os.getuid() if hasattr(os, "getuid") else None
    return base / f"memtasks-{name}-{uid if uid is not None else 'user'}"


def _private_temporary_folder(name: str) -> Path | None:
    """``<temporary folder>/memtasks-NAME-<user id>``, made with mode 0700 and used only if this user owns it
    and no one else may write in it (so no other user of the machine can plant files in it)."""
    folder = _temporary_folder(name)
    if folder is None:
        return None
    uid = os.getuid() if hasattr(os, "getuid") else None
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        info = folder.lstat()
        private = stat.S_ISDIR(info.st_mode) and not info.st_mode & 0o077 and (uid is None or info.st_uid == uid)
        if private and os.access(folder, os.W_OK | os.X_OK):
            return folder
    except OSError:
        pass
    return None


def _writable(folder: Path) -> bool:
    """Whether ``folder`` can be written in, or made (its nearest existing parent can be written in)."""
    existing = folder
    while not existing.exists():
        if existing == existing.parent:
            return False
        existing = existing.parent
    return existing.is_dir() and os.access(existing, os.W_OK | os.X_OK)
