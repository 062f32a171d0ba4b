"""Ctrl-C is prompt (issue 21): a SIGINT ends ``memtasks score`` within seconds in every phase,
with exit 130, no worker process left and no cases file.

The full-scale figures (100,000 probes, SIGINT in indexing, retrieval and
detection) come from tests/benchmarks/bench_interrupt.py; these tests do the
same on inputs small enough for CI but long enough to retrieve that a run
which ignores the signal cannot end in time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from memtasks.interrupts import kept_interrupts
from memtasks.retrieval import BM25Index

sys.path.insert(0, str(Path(__file__).resolve().parent / "tools"))
from processes import group_members  # noqa: E402

# Exit within this many seconds of the signal (the bound, with room for a loaded machine).
EXIT_SECONDS = 3.0


def zipf_texts(rng: np.random.Generator, n: int, words: int = 60) -> list[str]:
    """``n`` texts of ``words`` words drawn from a Zipf-distributed vocabulary of 20,000 words."""
    vocabulary = np.array([f"w{i}x" for i in range(20_000)])
    weights = 1 / np.arange(1, 20_001)
    ids = rng.choice(len(vocabulary), size=(n, words), p=weights / weights.sum())
    return [" ".join(row) for row in vocabulary[ids]]


def _drop_a_ctrl_c() -> None:
    """Send this process a Ctrl-C and swallow it, as numba's compile callbacks do."""
    try:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)
    except KeyboardInterrupt:
        pass


def test_a_ctrl_c_dropped_inside_a_callback_is_raised_again():
    # What numba's compile callbacks do to a KeyboardInterrupt: print it and go on.
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        with kept_interrupts():
            _drop_a_ctrl_c()
            while time.monotonic() - started < 10:
                sum(range(1000))
    assert time.monotonic() - started < 2
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with kept_interrupts():
        pass  # no Ctrl-C: nothing raised


def test_a_block_that_fails_after_a_dropped_ctrl_c_raises_the_interrupt():
    # numba's compile, its callback's KeyboardInterrupt dropped, can fail on its own half-done state
    # (RuntimeError: no compiled object yet): that is the Ctrl-C, not an error of the run.
    with pytest.raises(KeyboardInterrupt):
        with kept_interrupts():
            _drop_a_ctrl_c()
            raise RuntimeError("no compiled object yet")
    with pytest.raises(RuntimeError):
        with kept_interrupts():
            raise RuntimeError("a failure with no Ctrl-C is the failure")


# A Ctrl-C in a ctypes callback, as in numba's compile callbacks; in a process of its own, since
# pytest reports what Python would print for the exception the callback drops.
DROPPED_IN_CALLBACK = """
import ctypes, os, signal, sys, time
from memtasks.interrupts import kept_interrupts

def callback():
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.2)

started = time.monotonic()
try:
    with kept_interrupts():
        ctypes.CFUNCTYPE(None)(callback)()
        while time.monotonic() - started < 10:
            sum(range(1000))
except KeyboardInterrupt:
    sys.exit(130 if time.monotonic() - started < 2 else 1)
"""


def test_a_ctrl_c_dropped_in_a_ctypes_callback_prints_nothing():
    # "Exception ignored on calling ctypes callback function" and a traceback would come before
    # the command's one line, "interrupted".
    done = subprocess.run([sys.executable, "-c", DROPPED_IN_CALLBACK], capture_output=True, text=True, timeout=60)
    assert done.returncode == 130 and done.stderr == ""


def test_search_threads_stop_soon_after_ctrl_c():
    rng = np.random.default_rng(21)
    index = BM25Index()
    index.add(range(20_000), zipf_texts(rng, 20_000))
    queries = zipf_texts(rng, 40_000)
    index.top_k(queries[:10], k=10)
    interrupted_at: list[float] = []

    def interrupt() -> None:
        time.sleep(0.5)
        interrupted_at.append(time.monotonic())
        # A real signal, to the main thread, as Ctrl-C's: it wakes a blocked wait.
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        index.top_k(queries, k=10, workers=2)
        time.sleep(5)  # a search over before the signal still meets it here
    waited = time.monotonic() - interrupted_at[0]
    # Searching on to the end of each thread's share would take many seconds.
    assert waited < 1.5, f"top_k returned {waited:.1f} s after the interrupt"
    assert not [t for t in threading.enumerate() if t.name.startswith("ThreadPoolExecutor")]


# memtasks score's warm-up of the index on a first run: the index is built (its kernels compile in a few
# seconds), then searched once, so that the signal lands while the search kernel compiles.
COLD_SEARCH = """
import sys
from memtasks.interrupts import kept_interrupts
from memtasks.retrieval import BM25Index

index = BM25Index()
index.add([0, 1], ["a first text", "another text"])
index._index()
print("searching", flush=True)
try:
    with kept_interrupts():
        index.top_k(["a text"], k=1)
except KeyboardInterrupt:
    sys.exit(130)
"""


def test_ctrl_c_while_the_search_kernel_compiles_is_prompt(tmp_path):
    # The search kernel takes 10-15 s to compile. Compiled in a pool thread, it held the
    # main thread (joining it) and then the exit: Ctrl-C during the demo's first probe ran on.
    environment = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    process = subprocess.Popen(
        [sys.executable, "-c", COLD_SEARCH], stdout=subprocess.PIPE, env=environment, start_new_session=True
    )
    try:
        assert process.stdout.readline() == b"searching\n"
        time.sleep(1.0)
        assert process.poll() is None, f"the search ended before the signal ({process.returncode})"
        os.killpg(process.pid, signal.SIGINT)
        sent = time.monotonic()
        try:
            status = process.wait(EXIT_SECONDS)
        except subprocess.TimeoutExpired:
            status = None
        assert status == 130, f"status {status} {time.monotonic() - sent:.1f} s after SIGINT"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def retrieval_probes(rng: np.random.Generator) -> list[tuple[str, str]]:
    """20,000 probes of 60 words, a tenth copied: retrieval takes many seconds, and
    a search that goes on to the end of its share after Ctrl-C cannot end in time."""
    suffixes, others = zipf_texts(rng, 20_000), zipf_texts(rng, 20_000)
    return [(suffix, suffix if i % 10 == 0 else other) for i, (suffix, other) in enumerate(zip(suffixes, others))]


def detection_probes(rng: np.random.Generator) -> list[tuple[str, str]]:
    """120 exact copies of four texts of 12,000 words in sentences of 15: every pair is
    verbatim and long to align (seconds per chunk of pairs), so workers that finish
    their chunks after Ctrl-C cannot end in time."""
    texts = []
    for words in zipf_texts(rng, 4, 12_000):
        tokens = words.split()
        texts.append(" ".join(t + ("." if i % 15 == 14 else "") for i, t in enumerate(tokens)))
    return [(texts[i % 4], texts[i % 4]) for i in range(120)]


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to list the run's processes")
@pytest.mark.parametrize("phase, build", [("retrieve", retrieval_probes), ("align", detection_probes)], ids=["retrieve", "align"])
def test_ctrl_c_ends_score_promptly_with_no_worker_and_no_cases(tmp_path, phase, build):
    probes = tmp_path / "probes.jsonl"
    with probes.open("w", encoding="utf-8") as handle:
        for i, (suffix, generation) in enumerate(build(np.random.default_rng(7))):
            handle.write(json.dumps({"id": f"p{i}", "suffix": suffix, "generation": generation}) + "\n")
    cases = tmp_path / "cases.jsonl"
    command = [sys.executable, "-m", "memtasks.cli", "score", str(probes), "--workers", "2", "--cases", str(cases)]
    # A session of its own, signalled as a whole, as a terminal's Ctrl-C signals its foreground group.
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        stderr = b""
        deadline = time.monotonic() + 300
        while f"{phase}:".encode() not in stderr:
            chunk = process.stderr.read1(4096)
            assert chunk and time.monotonic() < deadline, f"no {phase} progress bar: {stderr[-500:]!r}"
            stderr += chunk
        time.sleep(0.3)
        assert process.poll() is None, f"the run ended before the signal ({process.returncode})"
        os.killpg(process.pid, signal.SIGINT)
        sent = time.monotonic()
        threading.Thread(target=process.stderr.read, daemon=True).start()
        try:
            status = process.wait(EXIT_SECONDS)
        except subprocess.TimeoutExpired:
            status = None
        waited = time.monotonic() - sent
        time.sleep(0.3)
        left = group_members(process.pid)
        assert status == 130, f"status {status} {waited:.1f} s after SIGINT in {phase}"
        assert not left, f"processes left after SIGINT in {phase}: {left}"
        assert not cases.exists()
        assert not list(tmp_path.glob(".cases.jsonl.*"))
    finally:
        for pid in group_members(process.pid):
            os.kill(pid, signal.SIGKILL)
        process.wait()
