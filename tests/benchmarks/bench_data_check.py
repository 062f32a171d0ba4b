"""What checking a local data file line by line costs next to reading it with ``datasets``.

``memtasks.tasks.load_records`` checks each local JSON/JSONL/CSV file
(:func:`memtasks.datafiles.count_records`) before ``datasets`` reads it. This
prints, for each file of ../shared/data and for a JSONL file of 200,000
records written here, the seconds of the check (median of 5) and of
``datasets.load_dataset``: its first read of the file, which converts it to
Arrow, and a read from that cache (median of 5), as on every run after the first.

    python tests/benchmarks/bench_data_check.py
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
RUNS = 5


def seconds(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main() -> int:
    import datasets

    from memtasks.datafiles import count_records

    datasets.disable_progress_bars()
    with tempfile.TemporaryDirectory() as folder:
        synthetic = Path(folder) / "synthetic.jsonl"
        with synthetic.open("w", encoding="utf-8") as handle:
            for i in range(200_000):
                handle.write(json.dumps({"id": i, "text": f"record {i} " + "word " * 40, "label": i % 2}) + "\n")
        files = sorted(SHARED.glob("*.jsonl")) + [synthetic]
        print(f"{'file':26} {'MB':>5} {'records':>7} {'check s':>8} {'first read s':>12} {'cached read s':>13}")
        for path in files:

            def read() -> None:
                datasets.load_dataset("json", data_files=str(path), split="train", cache_dir=str(Path(folder) / "cache"))

            records = count_records(path)
            first = seconds(read)
            check = statistics.median(seconds(lambda: count_records(path)) for _ in range(RUNS))
            cached = statistics.median(seconds(read) for _ in range(RUNS))
            size = path.stat().st_size / 1e6
            print(f"{path.name:26} {size:5.1f} {records:7d} {check:8.3f} {first:12.3f} {cached:13.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
