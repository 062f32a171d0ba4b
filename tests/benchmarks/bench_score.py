"""The whole ``memtasks score`` command on probes built from real text, and its retrieval and detection share.

Builds N probes (default 10,000) from ../shared/data as bench_detector.py does
(training windows of ``--window`` words: a 50-word prefix, the rest the
suffix; stand-in generations that copy, paraphrase or do not match), writes
them as JSONL and runs ``memtasks score FILE --json`` in a child process, as a
user would, ``--repeat`` times. Prints the wall time of each whole command
(start-up, reading, retrieval, detection, bootstrap and output) and the
retrieval and detection seconds the command reports (the detector's workers
preprocess the generations while retrieval runs, so the two overlap and
"the rest" is start-up, reading, bootstrap and output at most), e.g.:

    python tests/benchmarks/bench_score.py                          # 10,000 probes, ~60-word suffixes
    python tests/benchmarks/bench_score.py --n 1000 --window 670    # 1,000 probes, ~620-word suffixes
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_detector import build_probes  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--window", type=int, default=110, help="words per training input (50-word prefix + suffix)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, help="keep the probes in this JSONL file")
    args = parser.parse_args()

    probes = build_probes(args.n, args.window)
    with tempfile.TemporaryDirectory() as folder:
        path = args.out or Path(folder) / "probes.jsonl"
        with path.open("w", encoding="utf-8") as handle:
            for p in probes:
                handle.write(json.dumps({"id": p.id, "suffix": p.suffix, "generation": p.generation}) + "\n")
        suffix_words = sum(len(p.suffix.split()) for p in probes) / len(probes)
        generation_words = sum(len(p.generation.split()) for p in probes) / len(probes)
        print(f"{len(probes):,} probes (suffixes {suffix_words:.0f} words, generations {generation_words:.0f} "
              f"words on average)")
        command = [sys.executable, "-m", "memtasks.cli", "score", str(path), "--json", "--workers", str(args.workers)]
        walls, retrieval, detection = [], [], []
        for _ in range(args.repeat):
            started = time.perf_counter()
            result = subprocess.run(command, check=True, capture_output=True, text=True)
            walls.append(time.perf_counter() - started)
            report = json.loads(result.stdout)
            retrieval.append(report["retrieval_seconds"])
            detection.append(report["detection_seconds"])
            print(f"  whole command {walls[-1]:.2f} s: retrieval {retrieval[-1]:.2f} s, "
                  f"detection {detection[-1]:.2f} s, the rest {walls[-1] - retrieval[-1] - detection[-1]:.2f} s")
    print(f"median of {args.repeat}: whole command {statistics.median(walls):.2f} s, retrieval "
          f"{statistics.median(retrieval):.2f} s, detection {statistics.median(detection):.2f} s "
          f"({report['pairs']:,} pairs; memorization {report['memorization']['rate']:.4f})")


if __name__ == "__main__":
    main()
