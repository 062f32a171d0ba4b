"""Re-score finished memtasks runs with the installed detector and grader, from their per-sample logs.

A memtasks run writes an lm-eval results file (``results_<date>.json``) and, with
``--log_samples``, a per-sample log beside it (``samples_<task>_<date>.jsonl``)
that holds each probe's training suffix (``doc``) and the model's generation
(``filtered_resps``). Re-scoring needs nothing else: no model, no generation.

For each memtasks task of a results file, :func:`plan` rebuilds the records the
harness hands its aggregations (:func:`memtasks.harness.hooks.process_results`
on each logged document and generation, members and non-members), with the
scoring settings the run recorded in its rows (search corpus, ``k``, detector
``preset``, ``paraphrase_model``; a log written before those settings travelled
in the rows has the settings of its day: ``k`` 10, the ``memorization`` preset,
the search corpus its ``retrieval`` field names), and calls every aggregation of
the task's metric table (:data:`memtasks.harness.hooks.AGGREGATIONS`), exactly
as lm-eval does at the end of a run. So a re-scored results file holds what a
fresh run with the same generations would report, with the detector and grader
installed now. ``preset`` replaces the recorded detector preset, and ``summaries``
(True or False) whether summaries the detector cannot seed count as idea
(:mod:`memtasks.summaries`).

:func:`write` then rewrites, each file atomically, every per-probe outcome field
of the per-sample log and the task's entries in the results file, and adds
``memtasks_rescored`` to the results file: when, with which memtasks version,
detector settings and paraphrase grader, so that a reader can tell.

Refused, before anything is scored or written (:class:`RescoreError`, one line
naming the file): a file that is not an lm-eval results file of a memtasks
task, a task whose per-sample log is missing, and a redacted log (SHA-256
hashes instead of the text: :mod:`memtasks.harness.redact`).

Study manifests (:mod:`memtasks.manifest`) name these files by path only, so
they stay valid.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from memtasks.datafiles import decoded_lines
from memtasks.outcomes import CATEGORY_METRICS, METRICS, Outcome

RECORD_KEY = "memtasks_rescored"
RESULTS_GLOB = "results_*.json"
# A redacted log's texts: sha256: and 64 hex digits (memtasks.harness.redact.digest).
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
# What the harness logged before the scoring settings travelled in each row (before issue 13).
_LEGACY_K = 10
_LEGACY_PRESET = "memorization"
# The probe row fields process_results reads.
_DOC_FIELDS = ("id", "suffix", "records", "too_short")


class RescoreError(ValueError):
    """A run that cannot be re-scored; the message is one line naming the file."""


@dataclass
class TaskPlan:
    """One memtasks task of a results file: its per-sample log and what re-scoring gives."""

    task: str
    samples: Path
    lines: list[dict[str, Any]]
    settings: dict[str, Any] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    before: dict[str, Any] = field(default_factory=dict)
    changed: int = 0
    seconds: float = 0.0


@dataclass
class FilePlan:
    """A results file and its memtasks tasks, re-scored in memory (nothing written yet)."""

    results: Path
    data: dict[str, Any]
    tasks: list[TaskPlan]


def find_results(paths: Iterable[str | Path]) -> list[Path]:
    """The results files named, and those under each folder named (at any depth), each once, in order.

    A folder without any ``results_*.json`` and a path that does not exist are errors;
    files in a ``NAME.partial`` folder (a run stopped before it finished) are left out.
    """
    found: list[Path] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            under = [
                p for p in sorted(path.rglob(RESULTS_GLOB))
                if p.is_file() and not any(part.endswith(".partial") for part in p.relative_to(path).parts[:-1])
            ]
            if not under:
                raise RescoreError(f"{path}: no {RESULTS_GLOB} file under this folder")
            found += under
        elif path.is_file():
            found.append(path)
        else:
            raise RescoreError(f"{path}: no such file or folder")
    unique: dict[Path, Path] = {}
    for path in found:
        unique.setdefault(path.resolve(), path)
    return list(unique.values())


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise RescoreError(f"{path}: not UTF-8 text, not an lm-eval results file") from None
    except ValueError as error:
        raise RescoreError(f"{path}: not JSON ({error}), not an lm-eval results file") from None


def memtasks_tasks(path: Path, data: Any) -> list[str]:
    """The tasks of a results file that memtasks scored (they report ``mem_rate`` and ``probes``)."""
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict):
        raise RescoreError(f"{path}: not an lm-eval results file (no 'results' object)")
    tasks = []
    for task, metrics in data["results"].items():
        if isinstance(metrics, dict) and any(k.startswith("mem_rate,") for k in metrics) and any(k.startswith("probes,") for k in metrics):
            tasks.append(task)
    if not tasks:
        raise RescoreError(f"{path}: not a memtasks run (no task reports memtasks' 'mem_rate' and 'probes' metrics)")
    return tasks


def samples_path(results: Path, task: str) -> Path:
    """lm-eval's per-sample log of ``task`` written with ``results``: same folder, same timestamp."""
    stamp = results.stem.removeprefix("results_")
    return results.with_name(f"samples_{task}_{stamp}.jsonl")


def _read_samples(path: Path, results: Path, task: str) -> list[dict[str, Any]]:
    if not path.is_file():
        raise RescoreError(
            f"{results}: task {task}: its per-sample log {path.name} is not beside it "
            "(run with --log_samples); without the generations it cannot be re-scored"
        )
    lines = []
    # decoded_lines splits on "\n" only (JSON strings may hold U+2028) and names the line of a byte that is not UTF-8.
    for number, line in decoded_lines(path, RescoreError):
        if not line.strip():
            continue
        try:
            sample = json.loads(line)
            doc = sample["doc"]
            generations = sample["filtered_resps"]
            if not isinstance(doc, dict) or any(key not in doc for key in _DOC_FIELDS):
                raise KeyError(f"'doc' lacks one of {', '.join(_DOC_FIELDS)}")
        except (ValueError, KeyError, TypeError) as error:
            raise RescoreError(f"{path}:{number}: not a memtasks probe sample ({type(error).__name__}: {error})") from None
        if _redacted(doc.get("suffix")) or any(_redacted(g) for g in _flat(generations)):
            raise RescoreError(
                f"{path}: a redacted per-sample log (SHA-256 hashes instead of the training text and generations); "
                "it cannot be re-scored"
            )
        lines.append(sample)
    if not lines:
        raise RescoreError(f"{path}: an empty per-sample log; nothing to re-score")
    return lines


def _flat(value: Any) -> list[Any]:
    if isinstance(value, (list, tuple)):
        return [x for v in value for x in _flat(v)]
    return [value]


def _redacted(text: Any) -> bool:
    return isinstance(text, str) and _DIGEST.fullmatch(text) is not None


def _settings(sample: dict[str, Any], task_config: dict[str, Any], task: str) -> dict[str, Any]:
    """The row's ``scoring`` settings (``{"source": ..., "scoring": ...}``) as the harness reads them.

    A row logged before the settings travelled in it (``paraphrase_model`` and
    ``retrieval`` fields) gets its day's settings, and the probe source of the
    task's metadata in the results file.
    """
    doc = sample["doc"]
    if doc.get("scoring"):
        return json.loads(doc["scoring"])
    from memtasks.harness.hooks import ProbeSource, ScoringSettings, row_settings

    metadata = task_config.get("metadata") if isinstance(task_config.get("metadata"), dict) else {}
    stem = Path(str(metadata.get("config_source") or task)).stem
    source = ProbeSource.from_metadata(metadata, where=f"task {stem}")
    retrieval = json.loads(doc["retrieval"]) if doc.get("retrieval") else {}
    scoring = ScoringSettings(
        retrieval=retrieval.get("backend"),
        search_corpus="split" if retrieval.get("corpus") else "probes",
        query_stopwords=bool(retrieval.get("query_stopwords", False)),
        es_index=retrieval.get("es_index"),
        k=_LEGACY_K,
        preset=_LEGACY_PRESET,
        paraphrase_model=doc.get("paraphrase_model") or None,
    )
    return row_settings(source, scoring)


def _locate(value: Any, results: Path) -> Any:
    """A data file the run named relatively (a study runs in its folder): found from the results file's folders up."""
    if isinstance(value, list):
        return [_locate(v, results) for v in value]
    if not isinstance(value, str) or Path(value).is_absolute() or "://" in value or Path(value).exists():
        return value
    for folder in results.resolve().parents:
        if (folder / value).exists():
            return str(folder / value)
    return value


def _grader_record(paraphrase_model: str | None) -> dict[str, Any]:
    """The paraphrase grader a task's settings pick, by name (and the shipped weights' digest)."""
    if paraphrase_model and paraphrase_model not in ("cross-encoder",):
        if paraphrase_model == "evidence":
            return {"grader": "the detector's evidence (memtasks.confidence)"}
        return {"grader": paraphrase_model}
    try:
        from importlib import resources

        from memtasks import grader

        default = grader.default_grader()
        weights = resources.files("memtasks").joinpath(grader.ADAPTER_FILE).read_bytes()
        return {"grader": default.name, "grader_weights_sha256": hashlib.sha256(weights).hexdigest()}
    except (ImportError, AttributeError, OSError) as error:
        return {"grader": f"the installed default ({type(error).__name__})"}


def plan(results: str | Path, preset: str | None = None, progress: bool = False, summaries: bool | None = None) -> FilePlan:
    """Re-score every memtasks task of one results file in memory; see :func:`check` for the refusals."""
    checked = check(results)
    for task in checked.tasks:
        _score(checked, task, preset, progress, summaries)
    return checked


def check(results: str | Path) -> FilePlan:
    """Read a results file and its memtasks tasks' per-sample logs; refuse what cannot be re-scored."""
    results = Path(results)
    data = _read_json(results)
    tasks = []
    for task in memtasks_tasks(results, data):
        samples = samples_path(results, task)
        tasks.append(TaskPlan(task, samples, _read_samples(samples, results, task)))
    return FilePlan(results, data, tasks)


def _score(file: FilePlan, task: TaskPlan, preset: str | None, progress: bool, summaries: bool | None = None) -> None:
    from memtasks.detection import PRESETS, get_config
    from memtasks.harness import hooks

    started = time.perf_counter()
    configs = file.data.get("configs") if isinstance(file.data.get("configs"), dict) else {}
    task_config = configs.get(task.task) if isinstance(configs.get(task.task), dict) else {}
    metrics = file.data["results"][task.task]
    by_filter: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for index, sample in enumerate(task.lines):
        by_filter.setdefault(str(sample.get("filter", "none")), []).append((index, sample))
    outcome_fields = set(METRICS)
    for filter_name, samples in by_filter.items():
        settings = _settings(samples[0][1], task_config, task.task)
        if preset is not None:
            if preset not in PRESETS:
                raise RescoreError(f"unknown preset {preset!r}: choose one of {', '.join(PRESETS)}")
            settings["scoring"]["preset"] = preset
        if summaries is not None:
            settings["scoring"]["summaries"] = summaries
        if settings["scoring"].get("search_corpus") == "split":
            source = settings["source"]
            for key in ("data_files", "nonmember_data_files"):
                if source.get(key):
                    source[key] = _locate(source[key], file.results)
        scoring = json.dumps(settings, sort_keys=True)
        items = []
        for index, sample in samples:
            doc = dict(sample["doc"])
            doc["scoring"] = scoring
            doc.setdefault("position", sample.get("doc_id", index))
            record = hooks.process_results(doc, sample["filtered_resps"])
            items.append(record[METRICS[0]])
        members, nonmembers = (_number(metrics.get(f"{count},{filter_name}")) for count in ("probes", "nonmember_probes"))
        expected = None if members is None else members + (nonmembers or 0)
        if expected is not None and expected != len(items):
            raise RescoreError(
                f"{task.samples}: {len(items)} probe samples for filter {filter_name!r}, but {file.results.name} "
                f"reports {expected:g} probes of task {task.task}; the log does not belong to these results"
            )
        # Every metric of the table, through the aggregations lm-eval calls at the end of a run.
        for metric in METRICS:
            key = f"{metric},{filter_name}"
            task.before[key] = metrics.get(key)
            task.values[key] = hooks.AGGREGATIONS[metric](items)
        for (index, sample), item in zip(samples, items):
            outcome = str(item)
            old = {name: sample[name] for name in sample if name in outcome_fields}
            if any(_category(value) != _category(outcome) for value in old.values()):
                task.changed += 1
            for name in old:
                sample[name] = outcome
            task.lines[index] = sample
        scoring_settings = settings["scoring"]

        task.settings = {
            "preset": scoring_settings["preset"],
            "detector": get_config(scoring_settings["preset"]).to_dict(),
            "k": scoring_settings["k"],
            "search_corpus": scoring_settings["search_corpus"],
            "summaries": bool(scoring_settings.get("summaries", False)),
            **_grader_record(scoring_settings.get("paraphrase_model")),
        }
    task.seconds = time.perf_counter() - started
    if progress:
        print(f"{file.results}: {task.task}: re-scored in {task.seconds:.1f} s", file=sys.stderr)


def _category(outcome: Any) -> tuple[str, str | None] | None:
    try:
        parsed = Outcome.from_json(outcome)
    except (ValueError, KeyError, TypeError):
        return None
    return parsed.category, parsed.matched_id


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def rescored_data(file: FilePlan) -> dict[str, Any]:
    """The results file's new content: its memtasks tasks' entries replaced, ``memtasks_rescored`` recorded."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        installed = version("memtasks")
    except PackageNotFoundError:
        installed = None
    data = file.data
    for task in file.tasks:
        entry = data["results"][task.task]
        for key, value in task.values.items():
            new = key not in entry
            entry[key] = value
            if new:
                # A metric the run's table did not have yet: written as lm-eval writes one it does not bootstrap.
                metric, filter_name = key.split(",", 1)
                entry[f"{metric}_stderr,{filter_name}"] = "N/A"
    record = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "memtasks_version": installed,
        "tasks": {task.task: task.settings for task in file.tasks},
        "note": "every memtasks metric and per-probe outcome was recomputed from the logged generations "
        "with the detector and paraphrase grader named here; the generations are the original run's",
    }
    data[RECORD_KEY] = record
    return data


def write(files: Sequence[FilePlan]) -> None:
    """Write each planned file: its per-sample logs and results file written whole, then renamed, the results file last."""
    from memtasks.outputs import write_together

    for file in files:
        # Together: a failed write leaves both as they were, never a re-scored log beside the old rates.
        logs = {task.samples: "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in task.lines) for task in file.tasks}
        write_together({**logs, file.results: json.dumps(rescored_data(file), indent=2, ensure_ascii=False)})


def rescore(
    paths: Iterable[str | Path], preset: str | None = None, dry_run: bool = False, progress: bool = False,
    summaries: bool | None = None,
) -> list[FilePlan]:
    """Re-score every memtasks run named (files or folders); all are checked before any is scored or written.
    ``preset`` and ``summaries`` replace what each run recorded (:func:`plan`)."""
    files = [check(path) for path in find_results(paths)]
    for file in files:
        for task in file.tasks:
            _score(file, task, preset, progress, summaries)
    if not dry_run:
        write(files)
    return files


def demo_summaries(files: Sequence[FilePlan]) -> list[Path]:
    """The ``summary.md`` of each study folder (a demo's too) whose manifest lists a re-scored results file.

    ``memtasks study`` and ``memtasks demo`` write that summary from the runs' per-sample logs
    (:func:`memtasks.report.summary.study_summary`); :func:`refresh_summary` writes it again.
    """
    from memtasks.manifest import MANIFEST, ManifestError, StudyManifest

    found: list[Path] = []
    for file in files:
        results = file.results.resolve()
        for folder in results.parents:
            manifest, summary = folder / MANIFEST, folder / "summary.md"
            if not (manifest.is_file() and summary.is_file()) or summary in found:
                continue
            try:
                steps = StudyManifest.read(manifest).evals()
            except ManifestError:
                continue
            if any((folder / step.results).resolve() == results for step in steps):
                found.append(summary)
    return found


def refresh_summary(summary: Path) -> None:
    """Write a study folder's ``summary.md`` again from its manifest's runs, as ``memtasks study`` writes it."""
    from memtasks.manifest import MANIFEST, StudyManifest
    from memtasks.outputs import write_atomic
    from memtasks.report.summary import study_summary

    write_atomic(summary, study_summary(StudyManifest.read(summary.with_name(MANIFEST))))


def summary_lines(files: Sequence[FilePlan]) -> list[str]:
    """One line per task: the member rates before and after, and how many probe outcomes changed."""
    lines = []
    for file in files:
        for task in file.tasks:
            shown = []
            for category, metric in CATEGORY_METRICS.items():
                key = f"{metric},none"
                if key in task.values:
                    shown.append(f"{category} {_pct(task.before.get(key))} -> {_pct(task.values[key])}")
            floor = "nonmember_mem_rate,none"
            if task.values.get(floor) is not None or task.before.get(floor) is not None:
                shown.append(f"non-member memorization {_pct(task.before.get(floor))} -> {_pct(task.values.get(floor))}")
            n = len(task.lines)
            lines.append(f"{file.results}: {task.task}: {task.changed} of {n} probe outcomes changed; member " + ", ".join(shown))
    return lines


def _pct(value: Any) -> str:
    return "n/a" if not isinstance(value, (int, float)) else f"{100 * value:.2f}%"
