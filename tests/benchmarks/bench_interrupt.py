"""Ctrl-C in each phase of a large ``memtasks score`` run: how fast it ends, and what it leaves.

Builds N probes (default 100,000) from the real English text of ../shared/data
with bench_retrieval's word_stream: each suffix is a run of 50 to 70
consecutive words starting at a random position (numpy PCG64, fixed seed); the
generation is a copy of the suffix's first 40 words (5%), the suffix with a
fifth of its words dropped (10%), or a 60-word run starting anywhere else
(85%). Then, for each phase, it starts ``memtasks score FILE --workers 2
--cases OUT`` in its own process group, waits until the phase's progress bar
appears on stderr (``index``, ``retrieve``, ``align``; ``read`` is a fixed
delay after start, while the probes are read), waits ``--into`` seconds more,
sends SIGINT to the whole group (as a terminal's Ctrl-C does), and prints:
seconds from SIGINT to exit, the exit status, the processes of the group left
alive 0.5 s after the exit (workers), and whether the cases file exists::

    python tests/benchmarks/bench_interrupt.py                       # 100,000 probes, every phase
    python tests/benchmarks/bench_interrupt.py --n 20000 --phases retrieve align
    python tests/benchmarks/bench_interrupt.py --memtasks "env PYTHONPATH=/tmp/base python -m memtasks.cli"   # another checkout

``--demo`` runs ``memtasks demo --tiny --out OUT`` instead, once per ``--at``
time, and sends SIGINT that many seconds after start; ``--cold`` gives each
run an empty numba cache (``NUMBA_CACHE_DIR``), as a first run has, whose
kernels compile during the first probe (about 35 s on 2 busy cores). It prints
the same columns, the cases file replaced by what would look finished (the
demo's ``summary.md``, any ``*.partial`` folder left), and the last line the
demo wrote before the signal (its phase)::

    python tests/benchmarks/bench_interrupt.py --demo --cold --at 40 41 42 43 44 45 46 47
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from bench_retrieval import word_stream  # noqa: E402
from processes import group_members  # noqa: E402

# Phase -> the progress bar's label on stderr that marks it (None: a delay after start).
PHASES = {"read": None, "index": "index:", "retrieve": "retrieve:", "align": "align:"}


def build_probes(n: int, seed: int = 2021) -> list[dict]:
    words = word_stream()
    rng = np.random.default_rng(seed)
    lengths = rng.integers(50, 71, size=n)
    starts = rng.integers(0, len(words) - 71, size=n)
    draws = rng.random(n)
    others = rng.integers(0, len(words) - 61, size=n)
    probes = []
    for i in range(n):
        suffix = words[starts[i] : starts[i] + lengths[i]]
        if draws[i] < 0.05:
            generation = suffix[:40]
        elif draws[i] < 0.15:
            generation = [w for w, keep in zip(suffix, rng.random(len(suffix)) >= 0.2) if keep]
        else:
            generation = words[others[i] : others[i] + 60]
        probes.append({"id": f"p{i}", "suffix": " ".join(suffix), "generation": " ".join(generation)})
    return probes


def interrupt(command: list[str], marker: str | None, into: float, delay: float, timeout: float, env: dict | None = None) -> dict:
    """Run ``command``, SIGINT its group ``into`` s after ``marker`` shows on stderr; what followed."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True, env=env)
    seen = threading.Event()
    stderr: list[str] = []

    def watch() -> None:
        while chunk := process.stderr.read1(4096):
            stderr.append(chunk.decode("utf-8", "replace"))
            if marker is not None and not seen.is_set() and marker in "".join(stderr):
                seen.set()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    started = time.monotonic()
    if marker is None:
        time.sleep(delay)
    elif not seen.wait(timeout):
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return {"error": f"no {marker!r} on stderr within {timeout:.0f} s"}
    time.sleep(into)
    if process.poll() is not None:
        return {"error": f"ended (status {process.returncode}) before the signal"}
    sent_at = time.monotonic() - started
    before = _lines("".join(stderr))
    os.killpg(process.pid, signal.SIGINT)
    sent = time.monotonic()
    try:
        status = process.wait(timeout)
    except subprocess.TimeoutExpired:
        status = None
    exited = time.monotonic() - sent
    time.sleep(0.5)
    left = group_members(process.pid)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    if status is None:
        process.wait()
    watcher.join(5)
    tail = _lines("".join(stderr))
    return {"sent_at": sent_at, "exit_seconds": exited if status is not None else None, "status": status,
            "left": len(left), "last_line": tail[-1] if tail else "", "line_at_signal": before[-1] if before else ""}


def _lines(stderr: str) -> list[str]:
    """The lines of ``stderr``, each state of a progress bar (redrawn after "\\r") one line."""
    return stderr.replace("\r", "\n").strip().splitlines()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--phases", nargs="+", choices=list(PHASES), default=list(PHASES))
    parser.add_argument("--into", type=float, default=1.0, help="seconds into the phase to send SIGINT")
    parser.add_argument("--read-delay", type=float, default=1.5, help="seconds after start for the 'read' phase")
    parser.add_argument("--timeout", type=float, default=900.0, help="longest wait for a phase to start, and for the exit")
    parser.add_argument("--memtasks", default=None, help="the memtasks command, split as a shell would (default: this Python's memtasks.cli)")
    parser.add_argument("--demo", action="store_true", help="interrupt memtasks demo --tiny instead of memtasks score")
    parser.add_argument("--at", type=float, nargs="+", default=[46.0], help="with --demo: seconds after start to send SIGINT, one run each")
    parser.add_argument("--cold", action="store_true", help="with --demo: an empty numba cache for each run")
    args = parser.parse_args()
    # A shell without job control starts a background job with SIGINT ignored, which every command
    # started here would inherit and keep: each would run on after the signal sent to it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    base = shlex.split(args.memtasks) if args.memtasks else [sys.executable, "-m", "memtasks.cli"]
    if args.demo:
        demo(base, args.at, args.cold, args.timeout)
        return

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "probes.jsonl"
        started = time.perf_counter()
        with path.open("w", encoding="utf-8") as handle:
            for probe in build_probes(args.n):
                handle.write(json.dumps(probe) + "\n")
        print(f"{args.n:,} probes written in {time.perf_counter() - started:.1f} s ({path.stat().st_size / 2**20:.0f} MiB)")
        print(f"{'phase':9} {'SIGINT at':>9} {'exit after':>10} {'status':>6} {'left':>4}  cases file")
        for phase in args.phases:
            cases = Path(folder) / f"cases-{phase}.jsonl"
            command = [*base, "score", str(path), "--workers", str(args.workers), "--cases", str(cases)]
            result = interrupt(command, PHASES[phase], args.into, args.read_delay, args.timeout)
            if "error" in result:
                print(f"{phase:9} {result['error']}")
                continue
            exit_seconds = f"{result['exit_seconds']:.2f} s" if result["exit_seconds"] is not None else "never"
            print(f"{phase:9} {result['sent_at']:8.1f}s {exit_seconds:>10} {result['status']!s:>6} {result['left']:4}  "
                  f"{'EXISTS' if cases.exists() else 'none'}   ({result['last_line'][:60]})")


def demo(base: list[str], times: list[float], cold: bool, timeout: float) -> None:
    """SIGINT to ``memtasks demo --tiny`` at each of ``times`` seconds after start, a new run each."""
    print(f"{'SIGINT at':>9} {'exit after':>10} {'status':>6} {'left':>4}  summary.md  partial  (last line before the signal)")
    for at in times:
        with tempfile.TemporaryDirectory() as folder:
            out = Path(folder) / "demo"
            env = {**os.environ, "NUMBA_CACHE_DIR": str(Path(folder) / "numba")} if cold else None
            result = interrupt([*base, "demo", "--tiny", "--out", str(out)], None, 0.0, at, timeout, env)
            if "error" in result:
                print(f"{at:8.1f}s {result['error']}")
                continue
            exit_seconds = f"{result['exit_seconds']:.2f} s" if result["exit_seconds"] is not None else "never"
            partial = len(list(out.rglob("*.partial")))
            print(f"{result['sent_at']:8.1f}s {exit_seconds:>10} {result['status']!s:>6} {result['left']:4}  "
                  f"{'EXISTS' if (out / 'summary.md').exists() else 'none':10}  {partial:7}  ({result['line_at_signal'][:60]})")


if __name__ == "__main__":
    main()
