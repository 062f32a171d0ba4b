"""``memtasks rescore``: recompute finished runs' memorization metrics from their per-sample logs."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from memtasks.cli.options import count, preset


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "rescore",
        help="re-score finished memtasks runs from their per-sample logs with the installed detector and grader",
        description=(
            "Recomputes every memtasks metric of each results file (rates, intervals, non-member floor, excess) and "
            "each probe's outcome in its per-sample log (samples_TASK_DATE.jsonl beside it), from the generations "
            "the run logged: no model, no generation. Both files are rewritten in place, each atomically, and the "
            "results file records the re-scoring under 'memtasks_rescored'. Runs without a per-sample log, or with "
            "a redacted one, cannot be re-scored: nothing is changed. A demo folder's summary.md is written again from its re-scored runs."
        ),
    )
    parser.add_argument("results", nargs="+", type=Path, metavar="RESULTS", help="results_*.json files, or folders searched for them at any depth")
    parser.add_argument(
        "--preset", type=preset, metavar="NAME", help="detector settings to score with instead of those each run recorded: memorization or pan14"
    )
    parser.add_argument(
        "--summaries", action=argparse.BooleanOptionalAction, default=None,
        help="count (or, with --no-summaries, do not count) as idea the summaries the detector cannot seed, "
        "instead of what each run recorded",
    )
    parser.add_argument("--dry-run", action="store_true", help="score and print what would change; write nothing")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from memtasks.rescore import demo_summaries, refresh_summary, rescore, summary_lines

    started = time.perf_counter()
    files = rescore(args.results, preset=args.preset, dry_run=args.dry_run, progress=True, summaries=args.summaries)
    for line in summary_lines(files):
        print(line)
    for summary in demo_summaries(files):
        if args.dry_run:
            print(f"{summary}: would be written again from the re-scored runs")
            continue
        try:
            refresh_summary(summary)
        except (ValueError, OSError) as error:
            print(f"memtasks rescore: warning: {summary}: not written again ({error}); it shows the runs before re-scoring", file=sys.stderr)
        else:
            print(f"{summary}: written again from the re-scored runs")
    tasks = sum(len(f.tasks) for f in files)
    done = "would be rewritten (dry run)" if args.dry_run else "rewritten"
    print(
        f"{count(tasks, 'task')} of {count(len(files), 'results file')} {done} in {time.perf_counter() - started:.1f} s",
        file=sys.stderr,
    )
    return 0
