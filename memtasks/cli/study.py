"""``memtasks study``: fine-tune and probe models as a study config says."""

from __future__ import annotations

import argparse
from pathlib import Path

from memtasks.cli.options import count


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "study",
        help="fine-tune and probe models as a study config says; re-running skips finished steps",
        description="Runs every step of a study config (fine-tuning, then memtasks eval before and after), "
        "writes a manifest the report reads, and prints and writes the before/after summary (summary.md).",
    )
    parser.add_argument("config", type=Path, help="study YAML (name, models, tasks; see memtasks.study)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from memtasks.study import SUMMARY, read_study_config, run_study, write_summary

    config = read_study_config(args.config)
    manifest = run_study(config)
    summarized = bool(write_summary(manifest))
    if summarized:
        print()
        print((manifest.root / SUMMARY).read_text(encoding="utf-8"))
    print(f"{config.name}: {count(len(manifest.runs), 'step')} done; manifest {manifest.path}", end="")
    print(f", before/after summary {manifest.root / SUMMARY}" if summarized else "")
    return 0
