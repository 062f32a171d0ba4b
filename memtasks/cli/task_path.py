"""``memtasks task-path``: where memtasks' task YAMLs are, for plain ``lm_eval --include_path``."""

from __future__ import annotations

import argparse


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("task-path", help="print the folder of memtasks' task YAMLs (for lm_eval --include_path)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from memtasks.tasks import task_configs_dir

    print(task_configs_dir())
    return 0
