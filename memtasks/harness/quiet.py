"""Lines that other programs write on memtasks' stderr and that say nothing to its users, dropped.

lm-eval's ``simple_evaluate`` records the git commit of the working folder by running
``git describe`` with the process's own stderr, so a run outside a repository (every
study folder, most users' working folders) ends with git's "fatal: not a git repository
(or any of the parent directories): .git". lm-eval offers no setting for it and memtasks
patches none of its functions; instead, while lm-eval runs, file descriptor 2 is a pipe
(a pseudo-terminal with the terminal's size when stderr is a terminal, so that progress
bars still draw in place) read by a thread that forwards every byte to the real stderr as
it comes, except the lines that start with one of :data:`DROPPED`.
"""

from __future__ import annotations

import fcntl
import os
import sys
import termios
import threading
import tty
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

DROPPED = (b"fatal: not a git repository",)
_ENDS = b"\r\n"
# How long the end of a run waits for the last bytes; a child still holding the pipe
# (never one of lm-eval's own) would otherwise keep the run from returning.
_DRAIN_SECONDS = 5.0


class LineFilter:
    """Bytes in, the same bytes out less every line that starts with one of ``prefixes``.

    A line ends at ``\\n`` or ``\\r`` (progress bars redraw with ``\\r``). Only the start of
    a line that could still become a dropped one is held back, so a progress bar is
    forwarded as it is drawn.
    """

    def __init__(self, prefixes: Sequence[bytes] = DROPPED):
        self.prefixes = tuple(prefixes)
        self._held = b""
        # The line being read is forwarded ("pass"), dropped ("drop") or undecided ("start").
        self._state = "start"

    def feed(self, data: bytes) -> bytes:
        """What of ``data`` can be written now."""
        out = bytearray()
        while data:
            end = min((i for i in map(data.find, (b"\n", b"\r")) if i >= 0), default=-1)
            piece, data = (data, b"") if end < 0 else (data[: end + 1], data[end + 1 :])
            ended = end >= 0
            if self._state == "pass":
                out += piece
            elif self._state == "start":
                self._held += piece
                head = self._held.rstrip(_ENDS)
                if any(head.startswith(p) for p in self.prefixes):
                    self._held, self._state = b"", "drop"
                elif ended or not any(p.startswith(head) for p in self.prefixes):
                    out += self._held
                    self._held, self._state = b"", "pass"
            if ended:
                self._state = "start"
        return bytes(out)

    def flush(self) -> bytes:
        """A line start still held back at the end: it never became a dropped line."""
        held, self._held, self._state = self._held, b"", "start"
        return held


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]


def _pump(source: int, target: int, lines: LineFilter) -> None:
    try:
        while True:
            try:
                chunk = os.read(source, 65536)
            except OSError:
                # A pseudo-terminal whose last writer closed reads as EIO, not as an end of file.
                break
            if not chunk:
                break
            _write_all(target, lines.feed(chunk))
        _write_all(target, lines.flush())
    finally:
        os.close(source)


def _channel(original: int) -> tuple[int, int]:
    """A (read end, write end) that looks to the writer like ``original``: a pseudo-terminal
    of the same size when ``original`` is a terminal, else a pipe."""
    if not (os.isatty(original) and hasattr(os, "openpty")):
        return os.pipe()
    read, write = os.openpty()
    # Raw, so that the bytes come out as written (no "\n" -> "\r\n").
    tty.setraw(write)
    try:
        fcntl.ioctl(write, termios.TIOCSWINSZ, fcntl.ioctl(original, termios.TIOCGWINSZ, b"\0" * 8))
    except OSError:
        pass
    return read, write


@contextmanager
def dropped_lines(prefixes: Sequence[bytes] = DROPPED) -> Iterator[None]:
    """While inside, lines on stderr (this process's and its children's) that start with
    one of ``prefixes`` are not shown; everything else is, as it comes."""
    sys.stderr.flush()
    original = os.dup(2)
    read, write = _channel(original)
    os.dup2(write, 2)
    os.close(write)
    pump = threading.Thread(target=_pump, args=(read, original, LineFilter(prefixes)), name="memtasks-stderr", daemon=True)
    pump.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(original, 2)
        pump.join(_DRAIN_SECONDS)
        if not pump.is_alive():
            os.close(original)
