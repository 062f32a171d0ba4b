"""How long `memtasks report` takes on a leaderboard-sized results folder, and its peak memory;
and what importing :mod:`memtasks.report` costs and pulls in.

    python tests/benchmarks/bench_report.py [--models 40] [--tasks 12] [--probes 1000]

The import is measured first, in a fresh interpreter with ``-X importtime``:
the cumulative time of ``memtasks.report`` and any module of the scoring
pipeline (harness, scoring, detection, numba) it imported, which reading
results must never need.

Writes synthetic lm-eval results files into a temporary folder: per model, one
results file with every task, per-sample logs of ``--probes`` probes per task;
half of the models are fine-tuned from the other half (so the pre-trained vs
fine-tuned table pairs every task's probes), and reports the time and peak
memory (RSS) of :func:`memtasks.report.build_report`.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from memtasks.report import build_report

CATEGORIES = ("none", "verbatim", "idea", "paraphrase")
# What reading results must not import: the lm-eval glue and the compiled scoring pipeline.
PIPELINE = re.compile(r"^(memtasks\.(harness|scoring|detection|retrieval)|numba)(\.|$)")


def import_cost() -> tuple[float, list[str]]:
    """Seconds to import memtasks.report (cumulative, from -X importtime) and the pipeline modules it imported."""
    run = subprocess.run([sys.executable, "-X", "importtime", "-c", "import memtasks.report"], capture_output=True, text=True, check=True)
    seconds, pipeline = 0.0, []
    for line in run.stderr.splitlines():
        parts = [p.strip() for p in line.removeprefix("import time:").split("|")]
        if len(parts) != 3 or not parts[1].isdigit():
            continue
        if parts[2] == "memtasks.report":
            seconds = int(parts[1]) / 1e6
        if PIPELINE.match(parts[2]):
            pipeline.append(parts[2])
    return seconds, pipeline


def write_model(folder: Path, name: str, base: str | None, tasks: list[str], probes: int, rng: np.random.Generator) -> None:
    folder.mkdir(parents=True)
    stamp = "2026-01-01T00-00-00.000001"
    results, configs = {}, {}
    for task in tasks:
        outcomes = rng.choice(CATEGORIES, size=probes, p=[0.7, 0.15, 0.05, 0.1])
        metrics = {"probes,none": probes, "skipped_too_short,none": 0}
        for category, metric in (("memorization", "mem_rate"), ("verbatim", "verbatim_rate"), ("idea", "idea_rate"), ("paraphrase", "paraphrase_rate")):
            rate = float(np.mean(outcomes != "none")) if category == "memorization" else float(np.mean(outcomes == category))
            metrics.update({f"{metric},none": rate, f"{metric}_low,none": rate * 0.9, f"{metric}_high,none": rate * 1.1})
        results[task] = metrics
        configs[task] = {"task": task, "generation_kwargs": {"do_sample": False}, "metadata": {"version": 1.0}}
        lines = (
            json.dumps({"doc_id": i, "mem_rate": json.dumps({"id": f"p{i}", "category": c, "matched_id": None, "rank": None})})
            for i, c in enumerate(outcomes)
        )
        (folder / f"samples_{task}_{stamp}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    model_args = {"pretrained": name}
    data = {"results": results, "configs": configs, "versions": {t: 1.0 for t in tasks}, "config": {"model": "hf", "model_args": model_args}, "date": 1e9}
    (folder / f"results_{stamp}.json").write_text(json.dumps(data), encoding="utf-8")
    if base:
        manifest = {"base_model": base, "method": "full", "tasks": [], "epochs": 3}
        (Path(name) / "memtasks_finetune.json").parent.mkdir(parents=True, exist_ok=True)
        (Path(name) / "memtasks_finetune.json").write_text(json.dumps(manifest), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=int, default=40)
    parser.add_argument("--tasks", type=int, default=12)
    parser.add_argument("--probes", type=int, default=1000)
    args = parser.parse_args()
    seconds, pipeline = import_cost()
    print(f"import memtasks.report: {seconds:.3f} s cumulative; scoring pipeline modules imported: {', '.join(pipeline) or 'none'}")
    rng = np.random.default_rng(0)
    tasks = [f"mem_task{i}" for i in range(args.tasks)]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for m in range(args.models):
            base = str(root / "models" / f"m{m - 1}") if m % 2 else None
            write_model(root / "results" / f"m{m}", str(root / "models" / f"m{m}"), base, tasks, args.probes, rng)
        started = time.perf_counter()
        report = build_report(root / "results", root / "report")
        seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{len(report.runs)} runs ({args.models} models x {args.tasks} tasks, {args.probes} probes each, per-sample logs): "
        f"{len(report.tables)} tables, {len(report.figures)} figures in {seconds:.1f} s, peak RSS {peak:.0f} MB"
    )


if __name__ == "__main__":
    main()
