"""The report's tables from collected runs and their analyses: leaderboard, pre-trained vs fine-tuned,
ablations, CAD, each memorized case with its grader's probability; and the before/after table the demo prints.

Every table is a :class:`Table`: display rows (text plus a sort key per cell,
for Markdown and the HTML page) and tidy records (one row per model, task,
setting and category, or per case, for CSV). A rate is shown as ``12.3% [10.1, 14.5]``: the
value and its 90% bootstrap interval (5th-95th percentile), in percent. The
numbers come from :mod:`memtasks.report.analysis`; nothing here computes one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from memtasks.outcomes import HIGH, LOW, RATE_NAMES, Outcome
from memtasks.report.analysis import (
    MAIN_CATEGORIES,
    Comparison,
    Difference,
    OutcomeReader,
    before_after,
    cad_points,
    categories_of,
    correlations,
    decoding_groups,
    decoding_order,
    difference,
    epoch_groups,
    final_models,
    model_label,
    prefix_groups,
    single_multi_pairs,
    size_groups,
    size_order,
)
from memtasks.report.collect import AttentionRun, ModelInfo, Run, differs, is_flagged
from memtasks.stats import Rate

CATEGORY_TITLES = {
    "memorization": "Memorization",
    "verbatim": "Verbatim",
    "idea": "Idea",
    "paraphrase": "Paraphrase",
    HIGH: "Paraphrase, high confidence",
    LOW: "Paraphrase, low confidence",
}
# The case view's rows on the page and in report.md; beyond them a leaderboard-sized folder would
# make both too large to open, so they show the least confident cases and the CSV holds every one.
CASES_SHOWN = 1000


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
    # A long table of details goes after the figures, so that they are not a thousand rows down the page.
    after_figures: bool = False

    def add(self, cells: Sequence[Cell], css: str = "") -> None:
        self.rows.append(list(cells))
        self.row_classes.append(css)


def percent(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:.1f}%"


def rate_text(rate: Rate, signed: bool = False) -> str:
    """``12.3% [10.1, 14.5]``; with ``signed``, ``+2.0% [+0.5, +3.6]`` (percentage points); no interval when unknown."""
    if not rate.scored:
        return "n/a"
    sign = "+" if signed else ""
    value, low, high = (100 * x for x in (rate.value, rate.low, rate.high))
    if math.isnan(low) or math.isnan(high):
        return f"{value:{sign}.1f}%"
    return f"{value:{sign}.1f}% [{low:{sign}.1f}, {high:{sign}.1f}]"


def rate_cell(rate: Rate | None, signed: bool = False) -> Cell:
    if rate is None or not rate.scored:
        return Cell("n/a", float("-inf"))
    return Cell(rate_text(rate, signed), rate.value)


def rate_record(prefix: str, rate: Rate | None) -> dict:
    rate = rate or Rate.unscored()
    return {f"{prefix}rate": rate.value, f"{prefix}low": rate.low, f"{prefix}high": rate.high}


def short_name(name: str) -> str:
    """A model name for plot legends: the last two parts of a path."""
    if "/" not in name or " + " in name:
        return name if len(name) <= 40 else "..." + name[-37:]
    parts = [p for p in name.split("/") if p]
    return "/".join(parts[-2:])


def _model_records(model: ModelInfo) -> dict:
    return {
        "model": model.name,
        "method": model.method,
        "base_model": model.base or "",
        "trained_tasks": " ".join(model.trained_tasks),
        "epochs": "" if model.epochs is None else model.epochs,
        "loss": model.loss or "",
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


def _difference_record(diff: Difference, c: str) -> dict:
    return {**rate_record("difference_", diff.rates.get(c)), "paired_probes": diff.paired, "note": diff.note}


def pretrained_vs_finetuned(runs: Sequence[Run], reader: OutcomeReader) -> Table | None:
    """The study's Table 2: per task, the pre-trained model, the model fine-tuned on that task alone
    (its final epoch) and the difference, from :func:`memtasks.report.analysis.before_after`."""
    finals = final_models(runs)
    shown = [
        c
        for c in before_after(runs, reader)
        if c.after.model.name in finals and not c.after.is_variant and len(c.after.model.trained_tasks) <= 1
    ]
    if not shown:
        return None
    categories = categories_of([r for c in shown for r in (c.before, c.after)])
    table = Table(
        "pretrained_vs_finetuned",
        "Pre-trained vs fine-tuned (Table 2)",
        "For each task, the pre-trained model, the model fine-tuned on that task, and the difference "
        "(fine-tuned minus pre-trained, percentage points) with a paired bootstrap interval over the same probes.",
        ["Task", "Model", *(CATEGORY_TITLES[c] for c in categories)],
        sortable=False,
    )
    for c in shown:
        before, after, diff = c.before, c.after, c.difference
        table.add([Cell(after.task), Cell(f"{model_label(before.model)}: {before.model.name}"), *(rate_cell(before.rates[k]) for k in categories)])
        table.add(
            [Cell(""), Cell(f"fine-tuned: {after.model.name} ({model_label(after.model)})"), *(rate_cell(after.rates[k]) for k in categories)]
        )
        table.add([Cell(""), Cell(difference_label(diff)), *(rate_cell(diff.rates[k], signed=True) for k in categories)], "difference")
        for k in categories:
            table.records.append(
                {
                    "task": after.task,
                    "pretrained": before.model.name,
                    "finetuned": after.model.name,
                    "method": after.model.method,
                    "category": k,
                    **rate_record("pretrained_", before.rates[k]),
                    **rate_record("finetuned_", after.rates[k]),
                    **_difference_record(diff, k),
                }
            )
    return table


def difference_label(diff: Difference) -> str:
    return "difference" + (f" ({diff.note})" if diff.note else f" (paired, {diff.paired} probes)")


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


def single_vs_multi(runs: Sequence[Run], reader: OutcomeReader) -> Table | None:
    """The study's Table 11: a task's single-task model vs a multi-task model that also trained on it."""
    pairs = single_multi_pairs(runs)
    if not pairs:
        return None
    table = Table(
        "single_vs_multi_task",
        "Single-task vs multi-task fine-tuning (Table 11)",
        "Memorization of a task by the model fine-tuned on it alone and by a model fine-tuned on a mixture "
        "that includes it; difference = multi-task minus single-task, paired over the same probes.",
        ["Task", "Single-task model", "Single-task", "Multi-task model", "Multi-task", "Difference"],
    )
    for single, multi in pairs:
        diff = difference(single, multi, reader)
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


def confidence_text(outcome: Outcome) -> str:
    """``p = 0.934, cross-encoder``: the probability a case was graded from and its grader; ``—`` when no
    grader looked at it (a verbatim copy) or its log was written before memtasks recorded them."""
    p = outcome.probability
    if p is None:
        return "—"
    # Fixed decimals would show the evidence grader's many tiny probabilities all as 0.000.
    text = f"p = {p:.3f}" if p >= 0.001 else f"p = {p:.1e}"
    return text + (f", {outcome.grader}" if outcome.grader else "")


def cases(runs: Sequence[Run], reader: OutcomeReader) -> Table | None:
    """Every memorized probe of the runs, member or not, with the grader's probability: why each case counted."""
    found = [(run, o) for run in runs for o in reader.cases(run) or ()]
    if not found:
        return None
    # Least confident first: where coincidences would be; cases no grader looked at last.
    found.sort(key=lambda item: (item[1].probability is None, item[1].probability or 0.0, item[0].model.name, item[0].task, item[1].id))
    table = Table(
        "cases",
        "Cases",
        "Every probe counted as memorized, from the runs' per-sample logs (--log_samples): the training record it "
        "matched, that record's BM25 rank, and the probability the case was graded from, with the grader that gave it. "
        "A paraphrase is high confidence when that probability is above its grader's own threshold. '—': no grader "
        "looked at the case (a verbatim copy) or the log was written before memtasks recorded it. "
        "Least confident first; click a column to sort.",
        ["Model", "Task", "Probe", "Member", "Category", "Matched record", "Rank", "Confidence"],
        after_figures=True,
    )
    for run, outcome in found[:CASES_SHOWN]:
        table.add(
            [
                Cell(run.model.name, run.model.name, str(run.samples)),
                Cell(run.task, run.task),
                Cell(outcome.id, outcome.id),
                Cell("yes" if outcome.member else "no", "yes" if outcome.member else "no"),
                Cell(CATEGORY_TITLES.get(outcome.category, outcome.category), outcome.category),
                Cell(outcome.matched_id or "—", outcome.matched_id or ""),
                Cell("—", float("-inf")) if outcome.rank is None else Cell(str(outcome.rank), outcome.rank),
                Cell(confidence_text(outcome), float("-inf") if outcome.probability is None else outcome.probability),
            ]
        )
    for run, outcome in found:
        table.records.append(
            {
                "model": run.model.name,
                "task": run.task,
                "probe_id": outcome.id,
                "member": outcome.member,
                "category": outcome.category,
                "matched_id": outcome.matched_id,
                "rank": outcome.rank,
                "probability": outcome.probability,
                "grader": outcome.grader,
                "samples_file": str(run.samples),
            }
        )
    if len(found) > CASES_SHOWN:
        table.notes.append(f"The {CASES_SHOWN:,} least confident of {len(found):,} cases are shown; csv/cases.csv (--format csv) holds every one.")
    return table


def _plain(rate: Rate) -> str:
    if not rate.scored:
        return "n/a"
    if math.isnan(rate.low):
        return f"{rate.value:.3f}"
    return f"{rate.value:.3f} [{rate.low:.3f}, {rate.high:.3f}]"


def build_tables(runs: Sequence[Run], attention: Sequence[AttentionRun], reader: OutcomeReader) -> list[Table]:
    """Every table the runs support, in report order."""
    order_size = size_order(runs)
    tables = [
        leaderboard(runs),
        pretrained_vs_finetuned(runs, reader),
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
            decoding_order,
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
        single_vs_multi(runs, reader),
        attention_table(runs, attention),
        conflicts(runs),
        cases(runs, reader),
    ]
    return [t for t in tables if t is not None]


def comparisons_markdown(comparisons: Sequence[Comparison]) -> str:
    """Markdown: one table per comparison, every rate before, after, their difference and each
    run's excess over its non-member floor, in the report's cell format (:func:`rate_text`)."""
    lines = []
    for c in comparisons:
        lines += [
            f"### {c.task}: {c.before.model.name} -> {c.after.model.name} ({c.probes} probes)",
            "",
            f"| category | before | after | {difference_label(c.difference)} | excess before | excess after |",
            "|---|---|---|---|---|---|",
        ]
        for name in RATE_NAMES:
            cells = [
                rate_text(c.before.rates[name]),
                rate_text(c.after.rates[name]),
                rate_text(c.difference.rates[name], signed=True),
                rate_text(c.before.excess.get(name, Rate.unscored()), signed=True),
                rate_text(c.after.excess.get(name, Rate.unscored()), signed=True),
            ]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)
