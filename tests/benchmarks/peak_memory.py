"""Peak memory of a command and all its worker processes (Linux).

Samples every 50 ms the proportional set size (PSS: shared pages split among
the processes sharing them, so forked workers are not counted twice) summed
over the command's process tree, and prints its peak:

    python tests/benchmarks/peak_memory.py memtasks score /tmp/memtasks-bench-probes.jsonl --json
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def _tree_pss_kib(root: int) -> int:
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    break
        except OSError:
            continue
        stack += _children(pid)
    return total


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    started = time.perf_counter()
    process = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
    peak = 0
    while process.poll() is None:
        peak = max(peak, _tree_pss_kib(process.pid))
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    print(f"peak memory (PSS, all processes): {peak / 1024:.0f} MiB; wall {seconds:.1f} s; exit code {process.returncode}")
    return process.returncode


if __name__ == "__main__":
    sys.exit(main())
