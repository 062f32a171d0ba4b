"""``memtasks pan-eval``: the detector's benchmark on a PAN text-alignment corpus."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from memtasks.cli.options import preset, workers


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "pan-eval",
        help="score the detector on a PAN text-alignment corpus",
        description="PAN's plagdet, precision, recall and granularity over a corpus folder "
        "(pairs file, src/, susp/ and one folder of truth XML per obfuscation).",
    )
    parser.add_argument("corpus_dir", type=Path, help="the corpus folder, e.g. ../shared/pan13-train")
    parser.add_argument("--preset", type=preset, metavar="NAME", default="pan14", help="detector settings: pan14 (PAN's) or memorization")
    parser.add_argument("--workers", type=workers, metavar="N", help="worker processes (default: every core this process may use)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from memtasks.detection import Detector, default_workers
    from memtasks.pan import evaluate_corpus

    count = args.workers or default_workers()
    evaluation = evaluate_corpus(args.corpus_dir, Detector(args.preset), workers=count, progress=not args.json)
    if args.json:
        print(json.dumps(evaluation.to_dict(), indent=2))
        return 0
    rows = [("entire corpus", evaluation.overall)] + list(evaluation.by_obfuscation.items())
    print(f"{'':28} {'plagdet':>8} {'precision':>10} {'recall':>8} {'granularity':>12}")
    for name, s in rows:
        print(f"{name:28} {s.plagdet:8.4f} {s.precision:10.4f} {s.recall:8.4f} {s.granularity:12.4f}")
    print(f"{evaluation.pairs} pairs, {evaluation.pairs_per_second:.0f} pairs/s with {count} worker(s), preset {args.preset}")
    return 0
