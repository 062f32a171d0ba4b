"""The study's tables from collected runs: leaderboard, pre-trained vs fine-tuned, ablations, CAD.

Every table is a :class:`Table`: display rows (text plus a sort key per cell,
for Markdown and the HTML page) and tidy records (one row per model, task,
setting and category, for CSV). A rate is shown as ``12.3% [10.1, 14.5]``: the
value and its 90% bootstrap interval (5th-95th percentile), in percent.

The difference between a fine-tuned model and its pre-trained base (or between
two fine-tuning setups) on a task is

    d_c = (1/n) * sum_i ([after_i = c] - [before_i = c])

over the n probes both runs scored, with the paired bootstrap interval of
:func:`memtasks.scoring.paired_difference`; it needs both runs' per-sample logs
and the same probe ids in both.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from memtasks.harness import read_probe_outcomes
from memtasks.paraphrase import HIGH, LOW
from memtasks.report.collect import (
    AttentionRun,
    Interval,
    ModelInfo,
    Run,
    differs,
    is_flagged,
)
from memtasks.scoring import paired_difference

CATEGORY_TITLES = {
    "memorization": "Memorization",
    "verbatim": "Verbatim",
    "idea": "Idea",
    "paraphrase": "Paraphrase",
    HIGH: "Paraphrase (p>0.5)",
    LOW: "Paraphrase (p<0.5)",
}
MAIN_CATEGORIES = ("memorization", "verbatim", "idea", "paraphrase")
_EPOCH_DIR = re.compile(r"[/\\]epoch-\d+[/\\]?$")


@dataclass(frozen=True)
class Cell:
    """What a table shows, the value the HTML page sorts it by, and a tooltip there."""

    text: str
    sort: float | str = ""
    note: str = ""


@dataclass
class Table:
    """One table of the report."""

    key: str
    title: str
    description: str
    header: list[str]
    rows: list[list[Cell]] = field(default_factory=list)
    records: list[dict] = field(default_factory=list)
    row_classes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    sortable: bool = True

    def add(self, cells: Sequence[Cell], css: str = "") -> None:
        self.rows.append(list(cells))
        self.row_classes.append(css)


def percent(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:.1f}%"


def rate_text(rate: Interval, signed: bool = False) -> str:
    """``12.3% [10.1, 14.5]``; with ``signed``, ``+2.0% [+0.5, +3.6]`` (percentage points); no interval when unknown."""
    if not rate.scored:
        return "n/a"
    sign = "+" if signed else ""
    value, low, high = (100 * x for x in (rate.value, rate.low, rate.high))
    if math.isnan(low) or math.isnan(high):
        return f"{value:{sign}.1f}%"
    return f"{value:{sign}.1f}% [{low:{sign}.1f}, {high:{sign}.1f}]"


def rate_cell(rate: Interval | None, signed: bool = False) -> Cell:
    if rate is None or not rate.scored:
        return Cell("n/a", float("-inf"))
    return Cell(rate_text(rate, signed), rate.value)


def rate_record(prefix: str, rate: Interval | None) -> dict:
    rate = rate or Interval(math.nan, math.nan, math.nan)
    return {f"{prefix}rate": rate.value, f"{prefix}low": rate.low, f"{prefix}high": rate.high}


def categories_of(runs: Iterable[Run]) -> tuple[str, ...]:
    """The main categories, plus paraphrase confidence when any run scored it."""
    runs = list(runs)
    graded = any(r.rates[c].scored for r in runs for c in (HIGH, LOW))
    return MAIN_CATEGORIES + ((HIGH, LOW) if graded else ())


def _normal(path: str | None) -> str | None:
    return os.path.normpath(path) if path else None


def short_name(name: str) -> str:
    """A model name for plot legends: the last two parts of a path."""
    if "/" not in name or " + " in name:
        return name if len(name) <= 40 else "..." + name[-37:]
    parts = [p for p in name.split("/") if p]
    return "/".join(parts[-2:])


class Outcomes:
    """Per-probe categories of runs, read once per samples file; unreadable files become warnings."""

    def __init__(self) -> None:
        self._cache: dict[Path, dict[str, str] | None] = {}
        self.warnings: list[str] = []

    def of(self, run: Run) -> dict[str, str] | None:
        if run.samples is None:
            return None
        if run.samples not in self._cache:
            try:
                self._cache[run.samples] = read_probe_outcomes(run.samples)
            except (ValueError, OSError, UnicodeDecodeError) as error:
                self.warnings.append(f"{error}; no paired interval for this run")
                self._cache[run.samples] = None
        return self._cache[run.samples]


@dataclass
class Difference:
    """Change from ``before`` to ``after`` per category; intervals when the probes could be paired."""

    rates: dict[str, Interval]
    paired: int
    note: str = ""


def difference(before: Run, after: Run, outcomes: Outcomes, categories: Sequence[str]) -> Difference:
    """``after - before`` per category, paired by probe id (see the module docstring)."""
    first, second = outcomes.of(before), outcomes.of(after)
    unpaired = {
        c: Interval(after.rates[c].value - before.rates[c].value, math.nan, math.nan)
        if after.rates[c].scored and before.rates[c].scored
        else Interval(math.nan, math.nan, math.nan)
        for c in categories
    }
    if first is None or second is None:
        return Difference(unpaired, 0, "no interval: per-sample logs (--log_samples) missing for a run")
    if set(first) != set(second):
        shared = len(set(first) & set(second))
        return Difference(
            unpaired, 0, f"no interval: different probes ({len(first)} and {len(second)} probes, {shared} shared)"
        )
    ids = sorted(first)
    named = [c for c in categories if c != "memorization"]
    paired = paired_difference([first[i] for i in ids], [second[i] for i in ids], categories=named)
    return Difference({c: Interval(r.value, r.low, r.high) for c, r in paired.items()}, len(ids))


def model_label(model: ModelInfo) -> str:
    """What kind of model: ``pre-trained``, ``full fine-tuning on mem_xsum, 3 epochs``, ..."""
    if not model.fine_tuned:
        return "pre-trained"
    method = {"full": "full fine-tuning", "lora": "LoRA"}.get(model.method, model.method)
    parts = [method]
    if model.trained_tasks:
        parts.append("on " + " + ".join(model.trained_tasks))
    if model.mixing and len(model.trained_tasks) > 1:
        parts.append(f"({model.mixing} mixing)")
    text = " ".join(parts)
    if model.epochs is not None:
        text += f", {model.epochs} epoch{'s' if model.epochs != 1 else ''}"
    return text


def _model_records(model: ModelInfo) -> dict:
    return {
        "model": model.name,
        "method": model.method,
        "base_model": model.base or "",
        "trained_tasks": " ".join(model.trained_tasks),
        "epochs": "" if model.epochs is None else model.epochs,
        "size": model.size or "",
        "parameters": "" if model.parameters is None else model.parameters,
    }


def leaderboard(runs: Sequence[Run]) -> Table:
    """One row per (model, task): total and per-category rates with intervals."""
    categories = categories_of(runs)
    table = Table(
        "leaderboard",
        "Leaderboard",
        "One row per (model, task): share of probes memorized, in total and per category, "
        "with the 90% bootstrap interval. Lower is less memorization. 'Non-member' is the same "
        "measure on text the model was not fine-tuned on (the false-positive floor), 'Excess' "
        "the difference: an excess interval that holds 0 shows no memorization beyond what the "
        "model writes for text it never saw. Click a column to sort; "
        "hover a model for its results file.",
        ["Model", "Kind", "Task", "Probes", *(CATEGORY_TITLES[c] for c in categories), "Non-member", "Excess"],
    )
    for run in sorted(runs, key=lambda r: (r.task, -r.rates["memorization"].value, r.model.name)):
        flagged = is_flagged(run)
        table.add(
            [
                Cell(run.model.name + (" ⚠" if flagged else ""), run.model.name, str(run.path)),
                Cell(model_label(run.model), model_label(run.model)),
                Cell(run.task, run.task),
                Cell(str(run.probes), run.probes),
                *(rate_cell(run.rates[c]) for c in categories),
                rate_cell(run.nonmember.get("memorization")),
                rate_cell(run.excess.get("memorization"), signed=True),
            ],
            "flagged" if flagged else "",
        )
        for c in categories:
            table.records.append(
                {
                    **_model_records(run.model),
                    "task": run.task,
                    "category": c,
                    **rate_record("", run.rates[c]),
                    **rate_record("nonmember_", run.nonmember.get(c)),
                    **rate_record("excess_", run.excess.get(c)),
                    "probes": run.probes,
                    "nonmember_probes": run.nonmember_probes,
                    "skipped_too_short": run.skipped_too_short,
                    "prefix_tokens": run.prefix_tokens,
                    "decoding": run.decoding,
                    "version": run.version,
                    "config_hash": run.config_hash,
                    "probe_hash": run.probe_hash or "",
                    "flagged": flagged,
                    "results_file": str(run.path),
                }
            )
    if any(is_flagged(r) for r in runs):
        table.notes.append("⚠: runs of this (model, task) disagree in version, config, probes or model arguments; see 'Conflicting runs'.")
    return table


def conflicts(runs: Sequence[Run]) -> Table | None:
    """Every run of a (model, task) that measured something else than the run kept, and the kept one."""
    table = Table(
        "conflicts",
        "Conflicting runs",
        "Runs of the same (model, task) with a different task version, task config, probe set or model arguments are not merged: "
        "the newest is kept in the tables and all are listed here.",
        ["Model", "Task", "Kept", "Results file", "Version", "Config", "Probe set", "Memorization", "Differs in"],
    )
    for run in runs:
        if not is_flagged(run):
            continue
        for other in [run, *run.conflicts]:
            reasons = "" if other is run else "; ".join(differs(run, other)) or "same measurement (repeat)"
            table.add(
                [
                    Cell(run.model.name, run.model.name),
                    Cell(run.task, run.task),
                    Cell("yes" if other is run else "no", other is run),
                    Cell(str(other.path), str(other.path)),
                    Cell(other.version, other.version),
                    Cell(other.config_hash, other.config_hash),
                    Cell((other.probe_hash or "unknown")[:12], other.probe_hash or ""),
                    rate_cell(other.rates["memorization"]),
                    Cell(reasons, reasons),
                ],
                "" if other is run else "flagged",
            )
            table.records.append(
                {
                    "model": run.model.name,
                    "task": run.task,
                    "kept": other is run,
                    "results_file": str(other.path),
                    "version": other.version,
                    "config_hash": other.config_hash,
                    "probe_hash": other.probe_hash or "",
                    **rate_record("memorization_", other.rates["memorization"]),
                    "differs_in": reasons,
                }
            )
    return table if table.rows else None


def _matches(model: ModelInfo, reference: str | None) -> bool:
    reference = _normal(reference)
    return reference is not None and reference in {_normal(model.name), _normal(model.path)}


def same_model(a: ModelInfo, b: ModelInfo) -> bool:
    """Whether two identities name one model: a study names a model ``t5-small`` where its attention run says ``google-t5/t5-small``."""
    if a.fine_tuned != b.fine_tuned:
        return False
    return bool({_normal(a.name), _normal(a.path)} & {_normal(b.name), _normal(b.path)} - {None})


def lineage(model: ModelInfo) -> tuple:
    """Models that differ only in how many epochs they were trained (``DIR`` and ``DIR/epoch-N``)."""
    where = _EPOCH_DIR.sub("", model.path or model.name)
    return (model.base, model.method, model.trained_tasks, model.mixing, model.size, _normal(where))


def final_models(runs: Sequence[Run]) -> set[str]:
    """Names of fine-tuned models that are not an earlier epoch of another one."""
    best: dict[tuple, ModelInfo] = {}
    for model in {r.model.name: r.model for r in runs if r.model.fine_tuned}.values():
        key = lineage(model)
        seen = best.get(key)
        if seen is None or ((model.epochs or 0), -len(model.name)) > ((seen.epochs or 0), -len(seen.name)):
            best[key] = model
    return {m.name for m in best.values()}


def base_run(runs: Sequence[Run], model: ModelInfo, task: str) -> Run | None:
    """The run of ``model``'s pre-trained base on ``task``."""
    for run in runs:
        if run.task == task and not run.model.fine_tuned and _matches(run.model, model.base):
            return run
    return None


def _difference_record(diff: Difference, c: str) -> dict:
    return {**rate_record("difference_", diff.rates.get(c)), "paired_probes": diff.paired, "note": diff.note}


def pretrained_vs_finetuned(runs: Sequence[Run], outcomes: Outcomes) -> Table | None:
    """The study's Table 2: per task, the pre-trained model, the fine-tuned model and the difference."""
    finals = final_models(runs)
    pairs = [
        (before, run)
        for run in runs
        if run.model.name in finals
        and not run.is_variant
        and len(run.model.trained_tasks) <= 1
        and (before := base_run(runs, run.model, run.task)) is not None
    ]
    if not pairs:
        return None
    categories = categories_of([r for pair in pairs for r in pair])
    table = Table(
        "pretrained_vs_finetuned",
        "Pre-trained vs fine-tuned (Table 2)",
        "For each task, the pre-trained model, the model fine-tuned on that task, and the difference "
        "(fine-tuned minus pre-trained, percentage points) with a paired bootstrap interval over the same probes.",
        ["Task", "Model", *(CATEGORY_TITLES[c] for c in categories)],
        sortable=False,
    )
    for before, after in sorted(pairs, key=lambda p: (p[1].task, p[1].model.name)):
        diff = difference(before, after, outcomes, categories)
        table.add([Cell(after.task), Cell(f"pre-trained: {before.model.name}"), *(rate_cell(before.rates[c]) for c in categories)])
        table.add(
            [Cell(""), Cell(f"fine-tuned: {after.model.name} ({model_label(after.model)})"), *(rate_cell(after.rates[c]) for c in categories)]
        )
        label = "difference" + (f" ({diff.note})" if diff.note else f" (paired, {diff.paired} probes)")
        table.add([Cell(""), Cell(label), *(rate_cell(diff.rates[c], signed=True) for c in categories)], "difference")
        for c in categories:
            table.records.append(
                {
                    "task": after.task,
                    "pretrained": before.model.name,
                    "finetuned": after.model.name,
                    "method": after.model.method,
                    "category": c,
                    **rate_record("pretrained_", before.rates[c]),
                    **rate_record("finetuned_", after.rates[c]),
                    **_difference_record(diff, c),
                }
            )
    return table


def _setting_table(
    key: str,
    title: str,
    description: str,
    column: str,
    groups: dict[tuple[str, str], dict],
    order: Callable[[object], object],
) -> Table | None:
    """Rows (model, task), one column per setting, when a row has at least two settings."""
    groups = {k: v for k, v in groups.items() if len(v) >= 2}
    if not groups:
        return None
    settings = sorted({s for v in groups.values() for s in v}, key=order)
    table = Table(key, title, description, ["Model", "Task", *(f"{column} {s}" if column else str(s) for s in settings)])
    for (model, task), by_setting in sorted(groups.items()):
        table.add(
            [Cell(model, model), Cell(task, task), *(rate_cell(by_setting[s].rates["memorization"] if s in by_setting else None) for s in settings)]
        )
        for setting, run in sorted(by_setting.items(), key=lambda item: order(item[0])):
            for c in MAIN_CATEGORIES:
                table.records.append(
                    {
                        **_model_records(run.model),
                        "model": model,
                        "task": task,
                        "run_task": run.task,
                        key.removesuffix("s"): setting,
                        "category": c,
                        **rate_record("", run.rates[c]),
                        "probes": run.probes,
                    }
                )
    return table


def prefix_groups(runs: Sequence[Run]) -> dict[tuple[str, str], dict[int, Run]]:
    """(model, base task) -> prefix length -> greedy run."""
    groups: dict[tuple[str, str], dict[int, Run]] = {}
    for run in runs:
        if run.decoding == "greedy":
            groups.setdefault((run.model.name, run.base_task), {}).setdefault(run.prefix_tokens, run)
    return groups


def decoding_groups(runs: Sequence[Run]) -> dict[tuple[str, str], dict[str, Run]]:
    """(model, base task) -> decoding -> run with the plain task's prefix length."""
    default_prefix = {(r.model.name, r.task): r.prefix_tokens for r in runs if not r.is_variant}
    groups: dict[tuple[str, str], dict[str, Run]] = {}
    for run in runs:
        key = (run.model.name, run.base_task)
        if run.prefix_tokens == default_prefix.get(key, run.prefix_tokens):
            groups.setdefault(key, {}).setdefault(run.decoding, run)
    return groups


def _decoding_order(name: object) -> tuple:
    return (name != "greedy", str(name))


def epoch_groups(runs: Sequence[Run]) -> dict[tuple[str, str], dict[int, Run]]:
    """(training setup, task) -> epochs -> run, for fine-tuned models with a known epoch count."""
    groups: dict[tuple[str, str], dict[int, Run]] = {}
    for run in runs:
        model = run.model
        if model.fine_tuned and model.epochs is not None and not run.is_variant:
            setup = f"{model.base or '?'} {model_label(ModelInfo(**{**model.__dict__, 'epochs': None}))}"
            groups.setdefault((setup, run.task), {}).setdefault(model.epochs, run)
    return groups


def size_of(model: ModelInfo) -> str | None:
    """A model's size label: the study manifest's, else its parameter count (``125.0M``)."""
    if model.size:
        return model.size
    if model.parameters is None:
        return None
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if model.parameters >= scale:
            return f"{model.parameters / scale:.1f}{unit}"
    return str(model.parameters)


def size_groups(runs: Sequence[Run]) -> dict[tuple[str, str], dict[str, Run]]:
    """(training setup, task) -> size -> run; fine-tuned models at their final epoch."""
    finals = final_models(runs)
    groups: dict[tuple[str, str], dict[str, Run]] = {}
    for run in runs:
        model, size = run.model, size_of(run.model)
        if size is None or run.is_variant or (model.fine_tuned and model.name not in finals):
            continue
        setup = model_label(ModelInfo(**{**model.__dict__, "name": "", "epochs": None}))
        groups.setdefault((setup, run.task), {}).setdefault(size, run)
    return groups


def size_order(runs: Sequence[Run]) -> Callable[[object], tuple]:
    parameters = {size_of(r.model): r.model.parameters or 0 for r in runs}
    return lambda size: (parameters.get(str(size), 0), str(size))


def single_vs_multi(runs: Sequence[Run], outcomes: Outcomes) -> Table | None:
    """The study's Table 11: a task's single-task model vs a multi-task model that also trained on it."""
    finals = final_models(runs)
    candidates = [r for r in runs if r.model.name in finals and not r.is_variant]
    rows = []
    for single in candidates:
        if len(single.model.trained_tasks) != 1 or single.model.trained_tasks[0] != single.task:
            continue
        for multi in candidates:
            m = multi.model
            if (
                multi.task == single.task
                and len(m.trained_tasks) > 1
                and single.task in m.trained_tasks
                and m.method == single.model.method
                and _normal(m.base) == _normal(single.model.base)
            ):
                rows.append((single, multi))
    if not rows:
        return None
    table = Table(
        "single_vs_multi_task",
        "Single-task vs multi-task fine-tuning (Table 11)",
        "Memorization of a task by the model fine-tuned on it alone and by a model fine-tuned on a mixture "
        "that includes it; difference = multi-task minus single-task, paired over the same probes.",
        ["Task", "Single-task model", "Single-task", "Multi-task model", "Multi-task", "Difference"],
    )
    for single, multi in sorted(rows, key=lambda p: (p[0].task, p[1].model.name)):
        diff = difference(single, multi, outcomes, MAIN_CATEGORIES)
        table.add(
            [
                Cell(single.task, single.task),
                Cell(single.model.name, single.model.name),
                rate_cell(single.rates["memorization"]),
                Cell(f"{multi.model.name} ({model_label(multi.model)})", multi.model.name),
                rate_cell(multi.rates["memorization"]),
                rate_cell(diff.rates["memorization"], signed=True),
            ]
        )
        if diff.note:
            table.notes.append(f"{single.task}, {multi.model.name}: {diff.note}")
        for c in MAIN_CATEGORIES:
            table.records.append(
                {
                    "task": single.task,
                    "single_task_model": single.model.name,
                    "multi_task_model": multi.model.name,
                    "multi_task_tasks": " ".join(multi.model.trained_tasks),
                    "category": c,
                    **rate_record("single_", single.rates[c]),
                    **rate_record("multi_", multi.rates[c]),
                    **_difference_record(diff, c),
                }
            )
    return table


@dataclass
class CadPoint:
    """One task's cross-attention dispersion next to a memorization rate; ``setup`` groups comparable points."""

    task: str
    cad_model: str
    cad: Interval
    memorization_model: str
    memorization: Interval
    setup: str
    cad_file: Path


def cad_points(runs: Sequence[Run], attention: Sequence[AttentionRun]) -> tuple[list[CadPoint], str]:
    """The study's pairing when fine-tuned runs exist, else same-model pairs.

    The study's pairing: the pre-trained model's CAD on a task against the
    memorization of that model fine-tuned on that task alone (multi-task
    models are left out), one group of points per fine-tuning method.
    """
    finals = final_models(runs)
    study = []
    for run in runs:
        model = run.model
        if model.name not in finals or run.is_variant or model.trained_tasks not in ((), (run.task,)):
            continue
        base = base_run(runs, model, run.task)
        for att in attention:
            if att.task == run.task and not att.model.fine_tuned and (
                _matches(att.model, model.base) or (base is not None and same_model(att.model, base.model))
            ):
                setup = {"full": "full fine-tuning", "lora": "LoRA"}.get(model.method, model.method)
                # The base as the memorization runs name it (a study's name rather than a path).
                name = base.model.name if base is not None else att.model.name
                study.append(CadPoint(att.task, name, att.cad, model.name, run.rates["memorization"], setup, att.path))
    if study:
        return study, "pre-trained model's CAD vs the single-task fine-tuned model's memorization"
    same = [
        CadPoint(att.task, att.model.name, att.cad, run.model.name, run.rates["memorization"], "same model", att.path)
        for att in attention
        for run in runs
        if run.task == att.task and same_model(run.model, att.model)
    ]
    return same, "CAD and memorization of the same model"


def spearman(points: Sequence[CadPoint]) -> tuple[float, float] | str:
    """Spearman's rank correlation between CAD and memorization and its p-value, or why there is none."""
    usable = [p for p in points if p.cad.scored and p.memorization.scored]
    if len(usable) < 3:
        return f"needs 3 points or more, {len(usable)} available"
    x, y = [p.cad.value for p in usable], [p.memorization.value for p in usable]
    if len(set(x)) == 1 or len(set(y)) == 1:
        return "undefined: every point has the same " + ("CAD" if len(set(x)) == 1 else "memorization")
    # The same statistic and p-value as `memtasks attention --memorization` prints.
    from memtasks.attention.predict import permutation_p_value
    from memtasks.attention.predict import spearman as rank_correlation

    rho = rank_correlation(x, y)
    return rho, permutation_p_value(x, y, rho)


def correlations(points: Sequence[CadPoint]) -> dict[str, tuple[float, float] | str]:
    """:func:`spearman` per setup (points of different fine-tuning methods are not ranked together)."""
    setups = sorted({p.setup for p in points})
    return {setup: spearman([p for p in points if p.setup == setup]) for setup in setups}


def correlation_text(setup: str, result: tuple[float, float] | str, n: int) -> str:
    if isinstance(result, str):
        return f"{setup}: Spearman rank correlation {result}"
    return f"{setup}: Spearman rho = {result[0]:.3f} (p = {result[1]:.3g}) over {n} tasks"


def attention_table(runs: Sequence[Run], attention: Sequence[AttentionRun]) -> Table | None:
    """CAD per (model, task) with the memorization it is compared to."""
    if not attention:
        return None
    points, pairing = cad_points(runs, attention)
    table = Table(
        "cad_vs_memorization",
        "Cross-attention dispersion and memorization",
        f"CAD of each model and task (interval from the attention run) next to memorization; pairing: {pairing}.",
        ["Task", "CAD model", "CAD", "Memorization model", "Memorization"],
    )
    paired = {(p.task, p.cad_file) for p in points}
    for point in sorted(points, key=lambda p: (p.task, p.cad_model, p.memorization_model)):
        table.add(
            [
                Cell(point.task, point.task),
                Cell(point.cad_model, point.cad_model),
                Cell(_plain(point.cad), point.cad.value),
                Cell(point.memorization_model, point.memorization_model),
                rate_cell(point.memorization),
            ]
        )
    for att in sorted(attention, key=lambda a: (a.task, a.model.name)):
        if (att.task, att.path) not in paired:
            table.add([Cell(att.task, att.task), Cell(att.model.name, att.model.name), Cell(_plain(att.cad), att.cad.value), Cell(""), Cell("no run", "")])
    for att in attention:
        table.records.append({"task": att.task, "model": att.model.name, **{k: v for k, v in sorted(att.values.items())}})
    for setup, result in correlations(points).items():
        table.notes.append(correlation_text(setup, result, sum(p.setup == setup for p in points)))
    return table


def _plain(rate: Interval) -> str:
    if not rate.scored:
        return "n/a"
    if math.isnan(rate.low):
        return f"{rate.value:.3f}"
    return f"{rate.value:.3f} [{rate.low:.3f}, {rate.high:.3f}]"


def build_tables(runs: Sequence[Run], attention: Sequence[AttentionRun], outcomes: Outcomes) -> list[Table]:
    """Every table the runs support, in report order."""
    order_size = size_order(runs)
    tables = [
        leaderboard(runs),
        pretrained_vs_finetuned(runs, outcomes),
        _setting_table(
            "prefix_lengths",
            "Prefix length (Table 7)",
            "Memorization with prefixes of k words (greedy decoding).",
            "k =",
            prefix_groups(runs),
            lambda k: k,
        ),
        _setting_table(
            "decodings",
            "Decoding method (Table 6)",
            "Memorization under greedy decoding and sampling (the task's default prefix length).",
            "",
            decoding_groups(runs),
            _decoding_order,
        ),
        _setting_table(
            "epochs",
            "Fine-tuning epochs (Table 5)",
            "Memorization after each number of fine-tuning epochs.",
            "epochs:",
            epoch_groups(runs),
            lambda e: e,
        ),
        _setting_table(
            "model_sizes",
            "Model size (Figure 3)",
            "Memorization by model size, per training setup and task.",
            "",
            size_groups(runs),
            order_size,
        ),
        single_vs_multi(runs, outcomes),
        attention_table(runs, attention),
        conflicts(runs),
    ]
    return [t for t in tables if t is not None]
