"""``memtasks study``: fine-tune and probe models as a study config says."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "study",
        help="fine-tune and probe models as a study config says; re-running skips finished steps",
        description="Runs every step of a study config (fine-tuning, then memtasks eval before and after) "
        "and writes a manifest the report reads.",
    )
    parser.add_argument("config", type=Path, help="study YAML (name, models, tasks; see memtasks.study)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from memtasks.study import read_study_config, run_study

    config = read_study_config(args.config)
    manifest = run_study(config)
    print(f"{config.name}: {len(manifest.runs)} steps done; manifest {manifest.path}")
    return 0
