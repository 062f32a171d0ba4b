"""Ctrl-C that is not lost while numba compiles.

Compiling a kernel, numba's LLVM layer calls back into Python through ctypes;
a KeyboardInterrupt raised inside such a callback is printed ("Exception
ignored on calling ctypes callback function") and dropped, and the run would
go on with the rest of the compilation (tens of seconds on a first run) and
beyond, or fail on what the callback left undone (``RuntimeError: no compiled
object yet``). :func:`kept_interrupts` wraps the places that may compile (the
warm-ups of the detector and of the embedded index): a Ctrl-C during the block
interrupts it as usual and, while the block goes on, is raised again every
half second until one lands; the block never ends normally after a Ctrl-C, and
whatever it fails with after one is raised as the KeyboardInterrupt. A dropped
KeyboardInterrupt is not printed.
"""

from __future__ import annotations

import _thread
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# How often a Ctrl-C that the block did not stop for is raised again.
RETRY_SECONDS = 0.5


@contextmanager
def kept_interrupts() -> Iterator[None]:
    """Run the block with a Ctrl-C raised as KeyboardInterrupt until the block stops (see
    the module's docstring). Only in the main thread, with Python's handler in place."""
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or not callable(previous):
        yield
        return
    received: list[int] = []
    lock = threading.Lock()
    active = [True]
    done = threading.Event()

    def again() -> None:
        while not done.wait(RETRY_SECONDS):
            with lock:
                if not active[0]:
                    return
                _thread.interrupt_main()

    def record(signum, frame) -> None:
        if not active[0]:
            return
        if not received:
            threading.Thread(target=again, daemon=True).start()
        received.append(signum)
        previous(signum, frame)

    def unraisable(report) -> None:
        if not (active[0] and isinstance(report.exc_value, KeyboardInterrupt)):
            hook(report)

    hook = sys.unraisablehook
    sys.unraisablehook = unraisable
    signal.signal(signal.SIGINT, record)
    try:
        yield
    except Exception:
        if not received:
            raise
    finally:
        with lock:
            active[0] = False
        done.set()
        # signal.signal() first runs any SIGINT still pending, with ``record``, now inert.
        signal.signal(signal.SIGINT, previous)
        sys.unraisablehook = hook
    if received:
        raise KeyboardInterrupt
