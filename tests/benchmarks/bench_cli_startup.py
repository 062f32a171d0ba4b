"""Start-up time of the ``memtasks`` command: its help, every command's help, and the refusal of a misspelled task.

Each figure is the median wall time of ``--runs`` whole processes (the console script
beside this Python), start-up included; the targets are 0.5 s for a help and 5 s for
``memtasks eval --tasks mem_xsun`` (answered without building lm-eval's task index):

    python tests/benchmarks/bench_cli_startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = ("score", "eval", "finetune", "study", "demo", "attention", "report", "models", "tiny-models", "task-path", "pan-eval")
SCRIPT = Path(sys.executable).parent / "memtasks"


def seconds(argv: list[str], runs: int, expected: int) -> float:
    """Median wall seconds of ``runs`` processes of ``memtasks argv`` (after one run not counted)."""
    times = []
    for run in range(runs + 1):
        started = time.perf_counter()
        done = subprocess.run([str(SCRIPT), *argv], capture_output=True, text=True)
        elapsed = time.perf_counter() - started
        if done.returncode != expected:
            raise SystemExit(f"memtasks {' '.join(argv)} exited {done.returncode}, not {expected}: {done.stderr}")
        if run:
            times.append(elapsed)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per command")
    args = parser.parse_args()
    rows = [("memtasks --help", seconds(["--help"], args.runs, 0))]
    rows += [(f"memtasks {command} --help", seconds([command, "--help"], args.runs, 0)) for command in COMMANDS]
    rows.append(("memtasks eval --tasks mem_xsun (refused)", seconds(["eval", "--tasks", "mem_xsun"], args.runs, 2)))
    width = max(len(name) for name, _ in rows)
    print(f"{'command':{width}}  median wall s ({args.runs} runs)")
    for name, value in rows:
        print(f"{name:{width}}  {value:.3f}")


if __name__ == "__main__":
    main()
