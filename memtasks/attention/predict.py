"""Attention dispersion as a predictor of memorization, across tasks.

The study's claim: tasks whose outputs attend evenly over their inputs
(summarization, dialog) are memorized more than tasks whose outputs attend to
a few input tokens (sentiment, extractive QA, translation), and the pattern is
already there in the pre-trained model. So the pre-trained model's CAD per
task should rank tasks as the fine-tuned model's memorization rate does.

The agreement is Spearman's rank correlation of CAD and memorization rate
over the n tasks both runs have, with its two-sided permutation p-value
(:func:`memtasks.stats.spearman`, :func:`memtasks.stats.permutation_p_value`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from memtasks.stats import permutation_p_value, spearman

@dataclass(frozen=True)
class Prediction:
    """CAD and memorization rate per task, and their rank agreement."""

    tasks: list[str]
    predictor: list[float]
    memorization: list[float]
    rho: float
    p_value: float
    sources: dict[str, str]

    def to_dict(self) -> dict:
        return {
            "tasks": self.tasks,
            "predictor": self.predictor,
            "memorization": self.memorization,
            "spearman_rho": self.rho,
            "p_value": self.p_value,
            "sources": self.sources,
        }


def _date_key(path: Path) -> str:
    # lm-eval names result files <kind>_<date>.json with a sortable ISO date.
    return path.stem.rsplit("_", 1)[-1]


def read_metric(results_dir: str | Path, metric: str) -> dict[str, tuple[float, Path]]:
    """``metric`` per task from every lm-eval-style results JSON under ``results_dir``.

    Reads ``results[task]["<metric>,none"]``; when several files have the same
    task, the most recent (by the date in the file name, as lm-eval names them)
    wins. Files without the metric are skipped; a file that is not JSON is an error.
    """
    root = Path(results_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such results folder")
    found: dict[str, tuple[float, Path]] = {}
    for path in sorted(root.rglob("*.json"), key=_date_key):
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"{path}: not a results JSON file ({error})") from None
        results = document.get("results") if isinstance(document, dict) else None
        if not isinstance(results, dict):
            continue
        for task, metrics in results.items():
            value = metrics.get(f"{metric},none") if isinstance(metrics, dict) else None
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                if not math.isfinite(value):
                    raise ValueError(f"{path}: task {task}: {metric} is {value}")
                found[task] = (float(value), path)
    return found


def predict_memorization(
    predictor: Mapping[str, float], memorization: Mapping[str, tuple[float, Path] | float], predictor_name: str = "cad"
) -> Prediction:
    """Spearman correlation of ``predictor`` (e.g. CAD per task) with memorization rates of the same tasks."""
    tasks = [task for task in predictor if task in memorization]
    missing = [task for task in predictor if task not in memorization]
    if len(tasks) < 3:
        raise ValueError(
            f"predicting memorization from {predictor_name} needs at least 3 tasks with both values; "
            f"found {len(tasks)} ({', '.join(tasks) or 'none'})"
            + (f"; no memorization result for {', '.join(missing)}" if missing else "")
        )
    x = [float(predictor[t]) for t in tasks]
    y, sources = [], {}
    for task in tasks:
        value = memorization[task]
        if isinstance(value, tuple):
            value, path = value
            sources[task] = str(path)
        y.append(float(value))
    rho = spearman(x, y)
    return Prediction(tasks, x, y, rho, permutation_p_value(x, y, rho), sources)
