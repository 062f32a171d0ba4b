"""A study's before/after summary: what ``memtasks demo`` writes to ``summary.md`` (and ``memtasks rescore`` again).

For each fine-tuned model and task it gives the gain, after minus before, in
memorization (any category, the study's measure) and in high-confidence
memorization (verbatim, idea, ``paraphrase_high``), each with its paired 90%
interval (:func:`memtasks.report.analysis.difference`). For each pair of tasks
the study found to differ (a summarization or dialogue task against a
sentiment, QA or translation one, :mod:`memtasks.report.reference`) it gives
the difference of their gains,

    g = gain(first task) - gain(second task)

with its interval (:func:`memtasks.stats.difference_of_gains`), and one
sentence saying whether the study's direction (g > 0) holds and whether the
interval excludes 0. Every category's table follows
(:func:`memtasks.report.views.comparisons_markdown`).
"""

from __future__ import annotations

from collections.abc import Sequence

from memtasks.manifest import StudyManifest
from memtasks.outcomes import HIGH, HIGH_CONFIDENCE, MEMORIZATION, base_task
from memtasks.report.analysis import Comparison, OutcomeReader, before_after, gain_difference
from memtasks.report.collect import Run, study_runs
from memtasks.report.reference import KINDS, expected_more
from memtasks.report.views import comparisons_markdown, rate_text
from memtasks.stats import Rate


def compare_before_after(manifest: StudyManifest, reader: OutcomeReader | None = None) -> list[Comparison]:
    """Every fine-tuned model of a study against its pre-trained base on each task both probed:
    the report's before/after analysis (:func:`memtasks.report.analysis.before_after`) over the
    runs the manifest lists."""
    reader = reader or OutcomeReader()
    comparisons = before_after(study_runs(manifest), reader)
    if reader.warnings:
        raise ValueError(reader.warnings[0])
    return comparisons


def study_summary(manifest: StudyManifest) -> str:
    """Markdown: the gains, the study's contrasts between tasks, then every category's table."""
    reader = OutcomeReader()
    return summary_markdown(compare_before_after(manifest, reader), reader)


def summary_markdown(comparisons: Sequence[Comparison], reader: OutcomeReader) -> str:
    """:func:`study_summary` of comparisons already made, whose per-sample logs ``reader`` has read."""
    lines = gains_markdown(comparisons)
    contrasts = [(a, b) for a in comparisons for b in comparisons if _same_recipe(a, b) and expected_more(a.task, b.task)]
    for first, second in contrasts:
        lines += ["", contrast_sentence(first, second, gain_difference(first, second, reader))]
    return "\n".join([*lines, "", comparisons_markdown(comparisons)])


def _same_recipe(a: Comparison, b: Comparison) -> bool:
    """Two fine-tunings of one base model that differ only in their task."""
    first, second = a.after.model, b.after.model
    return (first.base, first.method, first.epochs, first.loss, len(first.trained_tasks)) == (
        second.base, second.method, second.epochs, second.loss, len(second.trained_tasks)
    )


def gains_markdown(comparisons: Sequence[Comparison]) -> list[str]:
    """One row per fine-tuned model and task: the rates before and after and the paired gain."""
    lines = [
        "| task | fine-tuned model | loss | members / non-members | memorized before | after | gain [90% paired] "
        "| high-confidence before | after | gain [90% paired] | excess over non-members after [90%] |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in comparisons:
        gains = c.difference.rates
        cells = [
            c.task,
            c.after.model.name,
            c.after.model.loss or "not recorded",
            f"{c.after.probes} / {c.after.nonmember_probes}",
            rate_text(c.before.rates[MEMORIZATION]),
            rate_text(c.after.rates[MEMORIZATION]),
            rate_text(gains[MEMORIZATION], signed=True),
            rate_text(high_confidence(c.before)),
            rate_text(high_confidence(c.after)),
            rate_text(gains.get(HIGH_CONFIDENCE, Rate.unscored()), signed=True),
            rate_text(c.after.excess.get(MEMORIZATION, Rate.unscored()), signed=True),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def high_confidence(run: Run) -> Rate:
    """A run's share of verbatim, idea and ``paraphrase_high`` outcomes (no interval: runs report each category's)."""
    parts = [run.rates[name] for name in ("verbatim", "idea", HIGH)]
    if not all(part.scored for part in parts):
        return Rate.unscored()
    return Rate(sum(part.value for part in parts), float("nan"), float("nan"))


def contrast_sentence(first: Comparison, second: Comparison, gap: dict[str, Rate] | None) -> str:
    """Whether fine-tuning raised memorization more on ``first``'s task than on ``second``'s, as the study found."""
    kinds = f"{KINDS[base_task(first.task)]} ({first.task}) against {KINDS[base_task(second.task)]} ({second.task})"
    if gap is None:
        return f"**The study's direction, {kinds}:** cannot be judged here: the runs' probes could not be paired."
    gain, high = gap[MEMORIZATION], gap[HIGH_CONFIDENCE]
    figures = (
        f"the gain on {first.task} minus the gain on {second.task} is {rate_text(gain, signed=True)} "
        f"(high-confidence: {rate_text(high, signed=True)})"
    )
    if gain.value > 0 and gain.low > 0:
        verdict = "holds at this size, and the 90% interval of the difference excludes 0"
    elif gain.value > 0:
        verdict = "shows at this size, but the 90% interval of the difference holds 0: this run cannot tell the two tasks apart"
    elif gain.high < 0:
        verdict = "is reversed at this size, and the 90% interval of the difference excludes 0"
    else:
        verdict = "does not show at this size (the 90% interval of the difference holds 0)"
    # Whether a rise is memorization of the records trained on, or output the model now writes for any record.
    excess = first.after.excess.get(MEMORIZATION, Rate.unscored())
    rose = first.difference.rates[MEMORIZATION].value > 0
    floor = ""
    if rose and excess.scored and excess.low <= 0:
        floor = (
            f" Over held-out {first.task} records the model never trained on, its excess after fine-tuning is "
            f"{rate_text(excess, signed=True)}: the interval holds 0, so what rose is not specific to the "
            "records it trained on (a task's style of output, not memorized records)."
        )
    elif rose and excess.scored:
        floor = f" Over held-out {first.task} records it never trained on, its excess after fine-tuning is {rate_text(excess, signed=True)}."
    return f"**The study's direction, {kinds}:** {verdict}; {figures}.{floor}"
