"""Reading a results folder: which runs exist, of which model, on which task, in which setting.

Every ``*.json`` under the folder is read once. Three kinds are used:

- lm-eval results files (``results_<timestamp>.json``, written by ``lm_eval``,
  ``memtasks eval`` or a study): each memtasks task in them becomes a
  :class:`Run`; a task is a memtasks task when it reports ``mem_rate`` with its
  interval and ``probes``. Other tasks are skipped with a warning.
- attention results (``{"memtasks": {"kind": "attention"}, "results": ...}``,
  written by ``memtasks attention``): each task becomes an :class:`AttentionRun`;
  its heatmaps (``attention_*.png``) are shown as they are.
- study manifests (:class:`memtasks.manifest.StudyManifest`, ``manifest.json``
  with ``study`` and ``runs``): they name the model of each results file (base
  model, method, trained tasks, epochs, size, mixing). A manifest is read
  strictly: a misspelled or unknown field stops the report with an error
  naming the file and the field.

A model's identity comes, first found wins, from a study manifest listing the
results file, from the ``memtasks_finetune.json`` next to the ``peft=`` or
``pretrained=`` path of its model arguments (when that folder exists on this
machine), or from the model arguments alone.

Runs of the same (model, task) that differ in task version, task config or probe
set are never merged: the newest is kept and every run of the group is listed
as a conflict (see :func:`resolve`).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from memtasks.manifest import MANIFEST, ManifestError, StudyManifest, StudyModel
from memtasks.models import untrained
from memtasks.outcomes import BOUNDS, CATEGORY_METRICS, base_task
from memtasks.probes import DEFAULT_PREFIX_TOKENS
from memtasks.stats import Rate

REQUIRED_METRICS = ("mem_rate,none", "mem_rate_low,none", "mem_rate_high,none", "probes,none")
# Model arguments that place or batch the model without changing what it generates.
PLACEMENT_ARGS = frozenset({"device", "device_map", "parallelize", "batch_size", "max_batch_size", "trust_remote_code"})
_FUNCTION_SOURCE = re.compile(r"^\s*def \w+\(")
FINETUNE_MANIFEST = "memtasks_finetune.json"
# JSON files of model folders (a study keeps its models under its results folder): never results.
MODEL_FILES = frozenset(
    {
        FINETUNE_MANIFEST,
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "added_tokens.json",
        "vocab.json",
        "adapter_config.json",
        "trainer_state.json",
    }
)


class ReportInputError(ValueError):
    """Nothing usable in a results folder; the message names the folder and what was skipped."""


@dataclass(frozen=True)
class ModelInfo:
    """Who ran: the identity a leaderboard row is keyed on, and what is known of its training."""

    name: str
    path: str | None = None
    method: str = "pretrained"
    base: str | None = None
    trained_tasks: tuple[str, ...] = ()
    epochs: int | None = None
    size: str | None = None
    parameters: int | None = None
    mixing: str | None = None
    loss: str | None = None
    source: str = "model_args"
    untrained: bool = False  # random weights (memtasks tiny-models), not a pre-trained model

    @property
    def fine_tuned(self) -> bool:
        return self.method != "pretrained"


@dataclass
class Run:
    """One memtasks task of one results file."""

    task: str
    model: ModelInfo
    rates: dict[str, Rate]
    probes: int
    skipped_too_short: int
    version: str
    config_hash: str
    probe_hash: str | None
    date: float
    path: Path
    prefix_tokens: int
    decoding: str
    samples: Path | None = None
    model_settings: dict[str, str] = field(default_factory=dict)
    conflicts: list[Run] = field(default_factory=list)
    # The same rates over probes of text the model was not fine-tuned on, and
    # the excess (member minus non-member); NaN in runs without non-members.
    nonmember: dict[str, Rate] = field(default_factory=dict)
    excess: dict[str, Rate] = field(default_factory=dict)
    nonmember_probes: int = 0

    @property
    def base_task(self) -> str:
        """The task without its ablation suffix: ``mem_imdb_prefix10`` -> ``mem_imdb``."""
        return base_task(self.task)

    @property
    def is_variant(self) -> bool:
        return self.base_task != self.task


@dataclass
class AttentionRun:
    """Cross-attention dispersion (CAD) of one model on one task."""

    task: str
    model: ModelInfo
    cad: Rate
    values: dict[str, float]
    date: float
    path: Path


@dataclass
class Collection:
    """Everything usable found under a results folder, and what was skipped and why."""

    runs: list[Run] = field(default_factory=list)
    attention: list[AttentionRun] = field(default_factory=list)
    heatmaps: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    files: int = 0


def _number(value) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return float("nan")


def _model_args(config: Mapping) -> dict[str, str]:
    """lm-eval's ``model_args`` as a dict; older versions write the ``k=v,k=v`` string."""
    args = config.get("model_args") or {}
    if isinstance(args, str):
        pairs = (part.split("=", 1) for part in args.split(",") if "=" in part)
        return {k.strip(): v.strip() for k, v in pairs}
    return {str(k): str(v) for k, v in args.items()} if isinstance(args, Mapping) else {}


def model_name(args: Mapping[str, str], fallback: str) -> str:
    """``pretrained`` (with ``@revision``), plus ``+ peft`` for an adapter: two adapters of one base differ."""
    name = args.get("pretrained") or fallback
    if args.get("revision") and args["revision"] != "main":
        name += f"@{args['revision']}"
    if args.get("peft"):
        name += f" + {args['peft']}"
    return name


def _finetune_manifest(args: Mapping[str, str]) -> tuple[dict, Path] | None:
    for key in ("peft", "pretrained"):
        if args.get(key):
            path = Path(args[key]) / FINETUNE_MANIFEST
            try:
                return json.loads(path.read_text(encoding="utf-8")), path
            except (OSError, ValueError):
                continue
    return None


def identify_model(config: Mapping, from_manifest: ModelInfo | None = None) -> ModelInfo:
    """The model of a results file's ``config``: study manifest, fine-tuning file or model arguments."""
    parameters = config.get("model_num_parameters")
    parameters = int(parameters) if isinstance(parameters, (int, float)) and parameters > 0 else None
    if from_manifest is not None:
        return ModelInfo(**{**from_manifest.__dict__, "parameters": from_manifest.parameters or parameters})
    args = _model_args(config)
    name = model_name(args, str(config.get("model") or "unknown model"))
    found = _finetune_manifest(args)
    if found is not None:
        meta, path = found
        epochs = meta.get("epochs")
        return ModelInfo(
            name=name,
            path=args.get("peft") or args.get("pretrained"),
            method=str(meta.get("method") or ("lora" if args.get("peft") else "full")),
            base=meta.get("base_model"),
            trained_tasks=tuple(meta.get("tasks") or ()),
            epochs=int(epochs) if isinstance(epochs, int) else None,
            parameters=parameters,
            mixing=meta.get("mixing"),
            loss=meta.get("loss"),
            source=str(path),
        )
    if args.get("peft"):
        return ModelInfo(name=name, path=args["peft"], method="lora", base=args.get("pretrained"), parameters=parameters)
    return ModelInfo(name=name, path=args.get("pretrained"), parameters=parameters, untrained=untrained(args.get("pretrained")))


def config_hash(task_config: Mapping, model_args: Mapping[str, str]) -> str:
    """A short hash of a task's config as it ran, without what only names the model or the code.

    Dropped: model arguments that lm-eval copies into ``metadata``, the YAML's path
    (``config_source``, which lm-eval adds there), and function
    bodies (``custom_dataset``, ``process_results``, aggregations) that lm-eval
    dumps as source code; a change of code is what the task ``version`` records.
    """

    def clean(value):
        if isinstance(value, Mapping):
            return {k: clean(v) for k, v in sorted(value.items())}
        if isinstance(value, list):
            return [clean(v) for v in value]
        if isinstance(value, str) and _FUNCTION_SOURCE.match(value):
            return "<function>"
        return value

    config = clean(dict(task_config))
    metadata = dict(config.get("metadata") or {})
    # Where the task's YAML lay on the machine that ran it says nothing about what ran.
    metadata.pop("config_source", None)
    for key in model_args:
        metadata.pop(key, None)
    config["metadata"] = metadata
    blob = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:12]


def prefix_tokens(task_config: Mapping) -> int:
    """The prefix length a task probed with: ``dataset_kwargs`` over ``metadata`` over the default."""
    for section in ("dataset_kwargs", "metadata"):
        value = (task_config.get(section) or {}).get("prefix_tokens")
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return DEFAULT_PREFIX_TOKENS


def decoding(task_config: Mapping) -> str:
    """``greedy`` or the sampling setting of a task's ``generation_kwargs`` (``top-k 40``, ``top-p 0.8``, ...)."""
    kwargs = task_config.get("generation_kwargs") or {}
    if not kwargs.get("do_sample"):
        return "greedy"
    parts = []
    if kwargs.get("top_k") is not None:
        parts.append(f"top-k {kwargs['top_k']}")
    if kwargs.get("top_p") is not None:
        parts.append(f"top-p {kwargs['top_p']}")
    if kwargs.get("temperature") is not None or not parts:
        parts.append(f"temperature {kwargs.get('temperature', 1.0)}")
    return ", ".join(parts)


def _interval(metrics: Mapping, metric: str) -> Rate:
    """A rate with its interval from lm-eval's per-task metrics; NaN for what the run did not report."""
    return Rate(*(_number(metrics.get(f"{metric}{bound},none")) for bound in BOUNDS))


def _model_settings(config: Mapping, args: Mapping[str, str]) -> dict[str, str]:
    """What of a run's model could change its generations: the lm-eval model class (``hf`` and
    ``memtasks-hf`` give encoder-decoders different budgets) and the model arguments but placement."""
    settings = {k: v for k, v in args.items() if k not in PLACEMENT_ARGS}
    if config.get("model"):
        settings["model class"] = str(config["model"])
    return settings


def samples_file(results_path: Path, task: str) -> Path | None:
    """lm-eval's per-sample log of ``task`` written with ``results_path``: same folder, same timestamp."""
    stamp = results_path.stem.removeprefix("results_")
    candidate = results_path.with_name(f"samples_{task}_{stamp}.jsonl")
    return candidate if candidate.exists() else None


# (resolved results file, task) -> the model the study says ran it, and its per-sample log.
StudyIndex = dict[tuple[Path, str], tuple[ModelInfo, Path | None]]


def model_info(model: StudyModel, root: Path, source: Path) -> ModelInfo:
    """A study's model as the report names it; a path in the study folder ``root`` (``./...``) becomes absolute."""
    path = model.path
    if path is not None and path.startswith("./"):
        path = os.path.abspath(root / path)
    return ModelInfo(
        name=model.name,
        path=path,
        method=model.method,
        base=model.base,
        trained_tasks=model.trained_tasks,
        epochs=model.epochs,
        size=model.size,
        mixing=model.mixing,
        loss=model.loss,
        source=str(source),
        untrained=model.method == "pretrained" and untrained(path),
    )


def _index_study(manifest: StudyManifest, out: StudyIndex) -> None:
    for step in manifest.evals():
        info = model_info(step.model, manifest.root, manifest.path)
        samples = manifest.root / step.samples if step.samples else None
        out[((manifest.root / step.results).resolve(), step.task)] = (info, samples)


def is_study_manifest(path: Path, data: Mapping) -> bool:
    """A JSON object with a ``study`` field, or a ``manifest.json`` with ``runs``."""
    return "study" in data or (path.name == MANIFEST and "runs" in data)


def study_runs(manifest: StudyManifest) -> list[Run]:
    """The memtasks runs a study's eval steps point at, each named by the manifest.

    Raises ``ValueError`` naming the file when a listed results file is missing
    or holds no usable run of its step's task.
    """
    index: StudyIndex = {}
    _index_study(manifest, index)
    found = Collection()
    for step in manifest.evals():
        path = manifest.root / step.results
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as error:
            raise ValueError(f"{manifest.path}: step {step.id}: results file {path} is not readable ({error})") from None
        if not isinstance(data, dict) or not isinstance(data.get("results"), dict) or step.task not in data["results"]:
            raise ValueError(f"{manifest.path}: step {step.id}: {path} has no results of task {step.task!r}")
        _read_results(path, {**data, "results": {step.task: data["results"][step.task]}}, index, found)
    if found.warnings:
        raise ValueError(found.warnings[0])
    return found.runs


def collect(results_dir: str | Path, exclude: Iterable[str | Path] = (), progress: bool = False) -> Collection:
    """Every memtasks run and attention run under ``results_dir`` (any nesting), with warnings for what was skipped."""
    from tqdm.auto import tqdm

    root = Path(results_dir)
    if not root.is_dir():
        raise ReportInputError(f"{root}: not a folder")
    excluded = [Path(e).resolve() for e in exclude]

    unfinished: set[Path] = set()

    def wanted(pattern: str) -> list[Path]:
        paths = []
        for p in sorted(root.rglob(pattern)):
            if not p.is_file() or any(p.resolve().is_relative_to(e) for e in excluded):
                continue
            # A run stopped without cleaning up (killed) leaves its outputs in a NAME.partial folder:
            # they look like results but were never finished.
            partial = next((root.joinpath(*p.relative_to(root).parts[: i + 1]) for i, part in enumerate(p.relative_to(root).parts[:-1]) if part.endswith(".partial")), None)
            if partial is not None:
                unfinished.add(partial)
                continue
            paths.append(p)
        return paths

    paths = [p for p in wanted("*.json") if p.name not in MODEL_FILES]
    found = Collection(files=len(paths), heatmaps=wanted("attention_*.png"))
    found.warnings += [f"{folder}: skipped, an unfinished run (a .partial folder a stopped run left)" for folder in sorted(unfinished)]
    parsed: list[tuple[Path, dict]] = []
    manifests: StudyIndex = {}
    for path in tqdm(paths, desc="reading results", unit="file", disable=not progress):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as error:
            found.warnings.append(f"{path}: skipped, not readable JSON ({error})")
            continue
        if not isinstance(data, dict):
            if path.name.startswith("results_"):
                found.warnings.append(f"{path}: skipped, not a JSON object")
            continue
        if is_study_manifest(path, data):
            try:
                _index_study(StudyManifest.from_dict(path, data), manifests)
            except ManifestError as error:
                raise ReportInputError(str(error)) from None
        elif isinstance(data.get("results"), dict):
            parsed.append((path, data))
        elif path.name.startswith("results_"):
            found.warnings.append(f"{path}: skipped, no 'results' object (not an lm-eval results file)")
    for path, data in parsed:
        _read_results(path, data, manifests, found)
    return found


def _read_results(path: Path, data: dict, manifests: StudyIndex, found: Collection) -> None:
    config = data.get("config") if isinstance(data.get("config"), dict) else {}
    args = _model_args(config)
    configs = data.get("configs") if isinstance(data.get("configs"), dict) else {}
    groups = set(data.get("group_subtasks") or {}) | set(data.get("groups") or {})
    date = _number(data.get("date"))
    if math.isnan(date):
        date = path.stat().st_mtime
    resolved = path.resolve()
    is_attention = isinstance(data.get("memtasks"), dict) and data["memtasks"].get("kind") == "attention"
    for task, metrics in sorted(data["results"].items()):
        if not isinstance(metrics, dict):
            found.warnings.append(f"{path}: task {task!r} skipped, its results are not an object")
            continue
        from_manifest, manifest_samples = manifests.get((resolved, task), (None, None))
        model = identify_model(config, from_manifest)
        if is_attention:
            if "cad,none" not in metrics:
                found.warnings.append(f"{path}: task {task!r} skipped, attention results without 'cad,none'")
                continue
            values = {k.removesuffix(",none"): _number(v) for k, v in metrics.items() if k.endswith(",none")}
            found.attention.append(AttentionRun(task, model, _interval(metrics, "cad"), values, date, path))
            continue
        missing = [m for m in REQUIRED_METRICS if m not in metrics]
        if missing:
            if task in groups:
                continue
            if len(missing) == len(REQUIRED_METRICS):
                found.warnings.append(f"{path}: task {task!r} skipped, not a memtasks task (no 'mem_rate,none' metric)")
            else:
                found.warnings.append(f"{path}: task {task!r} skipped, partial results: missing {', '.join(missing)}")
            continue
        task_config = configs.get(task) if isinstance(configs.get(task), dict) else {}
        samples = manifest_samples if manifest_samples is not None and manifest_samples.exists() else samples_file(path, task)
        found.runs.append(
            Run(
                task=task,
                model=model,
                rates={category: _interval(metrics, metric) for category, metric in CATEGORY_METRICS.items()},
                probes=int(_number(metrics["probes,none"])),
                skipped_too_short=int(_number(metrics.get("skipped_too_short,none", 0))),
                version=str((data.get("versions") or {}).get(task, "?")),
                config_hash=config_hash(task_config, args),
                probe_hash=(data.get("task_hashes") or {}).get(task),
                date=date,
                path=path,
                prefix_tokens=prefix_tokens(task_config),
                decoding=decoding(task_config),
                samples=samples,
                model_settings=_model_settings(config, args),
                nonmember={category: _interval(metrics, f"nonmember_{metric}") for category, metric in CATEGORY_METRICS.items()},
                excess={category: _interval(metrics, f"excess_{metric}") for category, metric in CATEGORY_METRICS.items()},
                nonmember_probes=int(_number(metrics.get("nonmember_probes,none", 0))),
            )
        )


def resolve(runs: list[Run]) -> list[Run]:
    """One run per (model, task): the newest, with the others of its group in ``conflicts``.

    Repeats of the same measurement (same version, config and probe set; a probe
    set unknown in one of them counts as the same) are listed too, so the
    report can say which file a number comes from; only differing ones are
    flagged (:func:`is_flagged`).
    """
    groups: dict[tuple[str, str], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.model.name, run.task), []).append(run)
    kept = []
    for group in groups.values():
        group.sort(key=lambda r: (r.date, str(r.path)), reverse=True)
        newest = group[0]
        newest.conflicts = group[1:]
        kept.append(newest)
    return sorted(kept, key=lambda r: (r.model.name, r.task))


def differs(a: Run, b: Run) -> list[str]:
    """What makes two runs of a (model, task) different measurements: task version, task config,
    probe set, or model arguments other than placement and batching (``dtype``, ``revision``, ...)."""
    reasons = []
    if a.version != b.version:
        reasons.append(f"task version {b.version} vs {a.version}")
    if a.config_hash != b.config_hash:
        reasons.append(f"task config {b.config_hash} vs {a.config_hash}")
    if a.probe_hash and b.probe_hash and a.probe_hash != b.probe_hash:
        reasons.append(f"probe set {b.probe_hash[:12]} vs {a.probe_hash[:12]}")
    if a.model_settings != b.model_settings:
        changed = sorted(set(a.model_settings.items()) ^ set(b.model_settings.items()))
        keys = sorted({k for k, _ in changed})
        shown = ", ".join(f"{k}={b.model_settings.get(k, '-')} vs {a.model_settings.get(k, '-')}" for k in keys)
        reasons.append(f"model arguments {shown}")
    return reasons


def is_flagged(run: Run) -> bool:
    """Whether an older run of the same (model, task) measured something else."""
    return any(differs(run, other) for other in run.conflicts)
