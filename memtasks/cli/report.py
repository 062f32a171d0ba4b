"""``memtasks report``: leaderboard tables and figures from a folder of results."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from memtasks.cli.options import count


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "report",
        help="leaderboard tables and figures (Markdown, HTML, CSV) from a folder of results",
        description="Reads every lm-eval results file (and attention results, study manifests) under RESULTS_DIR.",
    )
    parser.add_argument("results_dir", type=Path, help="folder searched for results files, at any depth")
    parser.add_argument("--out", type=Path, help="output folder (default: RESULTS_DIR/report); never read as input")
    parser.add_argument("--format", default="md,html,csv", help="comma-separated: md, html, csv")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from memtasks.report import build_report

    out = args.out if args.out is not None else args.results_dir / "report"
    report = build_report(args.results_dir, out, args.format, progress=True)
    for warning in report.warnings:
        print(f"memtasks report: warning: {warning}", file=sys.stderr)
    print(f"{count(len(report.runs), 'run')}, {count(len(report.tables), 'table')}, {count(len(report.figures), 'figure')}")
    for path in report.written:
        print(path)
    return 0
