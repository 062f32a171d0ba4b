"""The report's analyses of collected runs: before/after comparisons, run pairings and groupings, CAD points.

Nothing here renders: :mod:`memtasks.report.views` turns these into tables,
:mod:`memtasks.report.plots` into figures, and the demo and the study print
:func:`before_after` as they are.

The difference between a fine-tuned model and its pre-trained base (or between
two fine-tuning setups) on a task is

    d_c = (1/n) * sum_i ([after_i counts towards c] - [before_i counts towards c])

over the n probes both runs scored (a graded paraphrase counts as a
paraphrase, :func:`memtasks.outcomes.in_category`), with the paired bootstrap
interval of :func:`memtasks.stats.paired_difference`; it needs both runs'
per-sample logs and the same probe ids in both, else it is the difference of
the two rates without an interval.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from memtasks.outcomes import HIGH, HIGH_CONFIDENCE, LOW, NONE, RATE_NAMES, Outcome, read_outcomes
from memtasks.report.collect import AttentionRun, ModelInfo, Run
from memtasks.stats import Rate, difference_of_gains, paired_difference, permutation_p_value
from memtasks.stats import spearman as rank_correlation

MAIN_CATEGORIES = ("memorization", "verbatim", "idea", "paraphrase")
# The rates a before/after comparison pairs: every rate a run reports, and high-confidence memorization.
COMPARED = (*RATE_NAMES, HIGH_CONFIDENCE)
_EPOCH_DIR = re.compile(r"[/\\]epoch-\d+[/\\]?$")


def categories_of(runs: Iterable[Run]) -> tuple[str, ...]:
    """The main categories, plus paraphrase confidence when any run scored it."""
    runs = list(runs)
    graded = any(r.rates[c].scored for r in runs for c in (HIGH, LOW))
    return MAIN_CATEGORIES + ((HIGH, LOW) if graded else ())


def _normal(path: str | None) -> str | None:
    return os.path.normpath(path) if path else None


class OutcomeReader:
    """Per-probe outcomes of runs, read once per samples file; unreadable files become warnings."""

    def __init__(self) -> None:
        # Per file, the member probes' categories and the memorized outcomes: not every outcome,
        # which on a leaderboard-sized folder would hold half a million objects for nothing.
        self._cache: dict[Path, tuple[dict[str, str], list[Outcome]] | None] = {}
        self.warnings: list[str] = []

    def _read(self, run: Run) -> tuple[dict[str, str], list[Outcome]] | None:
        if run.samples is None:
            return None
        if run.samples not in self._cache:
            try:
                outcomes = read_outcomes(run.samples)
            except (ValueError, OSError, UnicodeDecodeError) as error:
                self.warnings.append(f"{error}; neither this run's cases nor a paired interval can be shown")
                self._cache[run.samples] = None
            else:
                categories = {o.id: o.category for o in outcomes if o.member}
                self._cache[run.samples] = categories, [o for o in outcomes if o.category != NONE]
        return self._cache[run.samples]

    def of(self, run: Run) -> dict[str, str] | None:
        """Probe id -> category of ``run``'s member probes; None without a readable per-sample log."""
        read = self._read(run)
        return None if read is None else read[0]

    def cases(self, run: Run) -> list[Outcome] | None:
        """The outcomes of ``run``'s memorized probes, members and non-members, in log order;
        None without a readable per-sample log."""
        read = self._read(run)
        return None if read is None else read[1]


@dataclass(frozen=True)
class Difference:
    """Change from ``before`` to ``after`` per rate name; intervals when the probes could be paired."""

    rates: dict[str, Rate]
    paired: int
    note: str = ""


def difference(before: Run, after: Run, reader: OutcomeReader) -> Difference:
    """``after - before`` for every rate of :data:`memtasks.outcomes.RATE_NAMES`, paired by probe id
    (see the module docstring)."""
    unpaired = {
        c: Rate(after.rates[c].value - before.rates[c].value, math.nan, math.nan)
        if after.rates[c].scored and before.rates[c].scored
        else Rate.unscored()
        for c in RATE_NAMES
    }
    pairs = paired_outcomes(before, after, reader)
    if isinstance(pairs, str):
        return Difference(unpaired, 0, pairs)
    return Difference(paired_difference(*pairs, categories=COMPARED[1:]), len(pairs[0]))


def paired_outcomes(before: Run, after: Run, reader: OutcomeReader) -> tuple[list[str], list[str]] | str:
    """The two runs' outcomes of the same member probes, in probe-id order; else why they cannot be paired."""
    first, second = reader.of(before), reader.of(after)
    if first is None or second is None:
        return "no interval: per-sample logs (--log_samples) missing for a run"
    if set(first) != set(second):
        shared = len(set(first) & set(second))
        return f"no interval: different probes ({len(first)} and {len(second)} probes, {shared} shared)"
    ids = sorted(first)
    return [first[i] for i in ids], [second[i] for i in ids]


def gain_difference(first: Comparison, second: Comparison, reader: OutcomeReader) -> dict[str, Rate] | None:
    """How much more fine-tuning raised each rate on ``first``'s task than on ``second``'s
    (:func:`memtasks.stats.difference_of_gains`); None when either comparison's probes cannot be paired."""
    a = paired_outcomes(first.before, first.after, reader)
    b = paired_outcomes(second.before, second.after, reader)
    if isinstance(a, str) or isinstance(b, str) or not a[0] or not b[0]:
        return None
    return difference_of_gains(a, b, categories=COMPARED[1:])


@dataclass(frozen=True)
class Comparison:
    """A fine-tuned model's run of a task against its pre-trained base's run of the same task."""

    before: Run
    after: Run
    difference: Difference

    @property
    def task(self) -> str:
        return self.after.task

    @property
    def probes(self) -> int:
        """The probes paired, else the fine-tuned run's member probes."""
        return self.difference.paired or self.after.probes


def before_after(runs: Sequence[Run], reader: OutcomeReader) -> list[Comparison]:
    """Every fine-tuned run whose pre-trained base ran the same task, with the paired difference,
    ordered by task and fine-tuned model.

    The one before/after analysis: ``memtasks report`` (its Table 2),
    ``memtasks study`` and ``memtasks demo`` all show these numbers.
    """
    comparisons = []
    for after in runs:
        if not after.model.fine_tuned:
            continue
        before = base_run(runs, after.model, after.task)
        if before is not None:
            comparisons.append(Comparison(before, after, difference(before, after, reader)))
    return sorted(comparisons, key=lambda c: (c.task, c.after.model.name))


def model_label(model: ModelInfo) -> str:
    """What kind of model: ``pre-trained``, ``full fine-tuning on mem_xsum, 3 epochs, output-only loss``, ..."""
    if not model.fine_tuned:
        return "untrained (random weights)" if model.untrained else "pre-trained"
    method = {"full": "full fine-tuning", "lora": "LoRA"}.get(model.method, model.method)
    parts = [method]
    if model.trained_tasks:
        parts.append("on " + " + ".join(model.trained_tasks))
    if model.mixing and len(model.trained_tasks) > 1:
        parts.append(f"({model.mixing} mixing)")
    text = " ".join(parts)
    if model.epochs is not None:
        text += f", {model.epochs} epoch{'s' if model.epochs != 1 else ''}"
    if model.loss:
        text += f", {model.loss} loss"
    return text


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
    return (model.base, model.method, model.trained_tasks, model.mixing, model.loss, model.size, _normal(where))


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


def decoding_order(name: object) -> tuple:
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


def single_multi_pairs(runs: Sequence[Run]) -> list[tuple[Run, Run]]:
    """(single-task run, multi-task run) of each task: the model fine-tuned on the task alone and a
    model of the same base and method fine-tuned on a mixture that includes it (final epochs, no variants)."""
    finals = final_models(runs)
    candidates = [r for r in runs if r.model.name in finals and not r.is_variant]
    pairs = []
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
                pairs.append((single, multi))
    return sorted(pairs, key=lambda p: (p[0].task, p[1].model.name))


@dataclass
class CadPoint:
    """One task's cross-attention dispersion next to a memorization rate; ``setup`` groups comparable points."""

    task: str
    cad_model: str
    cad: Rate
    memorization_model: str
    memorization: Rate
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
    rho = rank_correlation(x, y)
    return rho, permutation_p_value(x, y, rho)


def correlations(points: Sequence[CadPoint]) -> dict[str, tuple[float, float] | str]:
    """:func:`spearman` per setup (points of different fine-tuning methods are not ranked together)."""
    setups = sorted({p.setup for p in points})
    return {setup: spearman([p for p in points if p.setup == setup]) for setup in setups}
