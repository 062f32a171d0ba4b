"""``memtasks demo``: the study in miniature, offline on a CPU."""

from __future__ import annotations

import argparse
from pathlib import Path

from memtasks.cli.options import positive_int


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "demo",
        help="the study in miniature, offline on a CPU: SmolLM2-135M fine-tuned on CNN/DailyMail articles and on IMDB "
        "reviews with the study's recipe, probed before and after against held-out records",
    )
    parser.add_argument(
        "--out", type=Path,
        help="output folder, new or empty (default: a new memtasks-demo/<date and time>; with --resume, the newest there)",
    )
    parser.add_argument("--epochs", type=positive_int, help="fine-tuning epochs per task (default: 4; 40 with --tiny)")
    parser.add_argument("--resume", action="store_true", help="finish an earlier run in --out, keeping its finished steps")
    parser.add_argument(
        "--tiny", action="store_true", help="tiny models built from scratch instead of SmolLM2 (nothing to install)"
    )
    parser.add_argument(
        "--decoder", action="store_true", help="with --tiny: also a tiny GPT-2-style model (about 4 more minutes)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from memtasks.demo import demo_folder, run_demo
    from memtasks.study import SUMMARY

    out = demo_folder(args.out, args.resume)
    run_demo(out, epochs=args.epochs, resume=args.resume, tiny=args.tiny, decoder=args.decoder)
    print()
    print((out / SUMMARY).read_text(encoding="utf-8"))
    print(f"results, models and this table (summary.md) are in {out}/")
    return 0
