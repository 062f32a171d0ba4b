"""How long ``memtasks finetune`` takes to refuse a run that cannot start.

Each figure is the median wall time of ``--runs`` whole processes (the console script
beside this Python), start-up included. The target is under 1 s for a missing model, a
missing data file and an occupied output folder, which are refused before torch,
transformers or lm-eval is imported, and under 2 s for a misspelled task (lm-eval's
index of memtasks' task folder is read to name the nearest task):

    python tests/benchmarks/bench_finetune_refusals.py [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCRIPT = Path(sys.executable).parent / "memtasks"


def seconds(argv: list[str], runs: int) -> float:
    """Median wall seconds of ``runs`` processes of ``memtasks argv`` (after one run not counted), each refused."""
    times = []
    for run in range(runs + 1):
        started = time.perf_counter()
        done = subprocess.run([str(SCRIPT), *argv], capture_output=True, text=True)
        elapsed = time.perf_counter() - started
        if done.returncode != 2:
            raise SystemExit(f"memtasks {' '.join(argv)} exited {done.returncode}, not 2: {done.stderr}")
        if run:
            times.append(elapsed)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per refusal")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        # A folder is enough for the model: a run refused for its data or output never loads it.
        model = root / "model"
        model.mkdir()
        occupied = root / "occupied"
        occupied.mkdir()
        (occupied / "notes.txt").write_text("not a run")
        base = ["finetune", "--task", "mem_xsum", "--model", str(model), "--output", str(root / "out")]
        rows = [
            ("missing model", ["finetune", "--task", "mem_xsum", "--model", str(root / "none"), "--output", str(root / "out")]),
            ("missing data file", [*base, "--data-files", str(root / "none.jsonl")]),
            ("occupied output folder", [*base[:-1], str(occupied)]),
            ("misspelled task mem_xsun", ["finetune", "--task", "mem_xsun", "--model", str(model), "--output", str(root / "out")]),
        ]
        figures = [(name, seconds(argv, args.runs)) for name, argv in rows]
    width = max(len(name) for name, _ in figures)
    print(f"{'memtasks finetune refuses a':{width}}  median wall s ({args.runs} runs)")
    for name, value in figures:
        print(f"{name:{width}}  {value:.3f}")


if __name__ == "__main__":
    main()
