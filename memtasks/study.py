"""The study as one command: fine-tune, probe before and after, keep every result.

A study config (YAML) names pre-trained models, tasks, fine-tuning methods and
mixtures, and evaluation settings::

    name: my-study                  # results go to results/my-study/ (or output_dir)
    models:
      - {name: t5-small, path: google-t5/t5-small, size: 60M}
    tasks: [mem_xsum, mem_imdb]
    data_files: {mem_xsum: xsum.jsonl}     # optional local data, for fine-tuning and probes
    finetune:
      methods: [full, lora]
      mixtures: [single, multi]     # one model per task, and one on all tasks
      epochs: 3
      save_epochs: false            # also probe every epoch's checkpoint
      options: {batch_size: 8}      # any FinetuneConfig field
    evaluate:
      variants: [prefix10, topk40]  # also probe mem_<task>_<variant>
      metadata: {n_probes: 1000}    # lm-eval --metadata of every probe run
      lm_eval_args: [--batch_size, "16"]

``run_study`` probes each pre-trained model on each task, fine-tunes what needs
fine-tuning, probes each fine-tuned model on the tasks it was trained on, and
records every step in ``manifest.json``. Finished steps are skipped when the
study is run again; an interrupted fine-tuning resumes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from memtasks.finetune import FinetuneConfig, Runtime, finetune, read_summary
from memtasks.tasks import task_spec

MANIFEST = "manifest.json"
MIXTURES = ("single", "multi")


@dataclass(frozen=True)
class ModelEntry:
    name: str
    path: str
    size: str | None = None


@dataclass(frozen=True)
class StudyConfig:
    """A parsed study config; ``source`` is the file it came from (for error messages)."""

    name: str
    models: tuple[ModelEntry, ...]
    tasks: tuple[str, ...]
    output_dir: Path
    data_files: Mapping[str, str] = field(default_factory=dict)
    eval_data_files: Mapping[str, str] = field(default_factory=dict)
    methods: tuple[str, ...] = ("full",)
    mixtures: tuple[str, ...] = ("single",)
    epochs: int = 3
    save_epochs: bool = False
    finetune_options: Mapping[str, Any] = field(default_factory=dict)
    variants: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    lm_eval_args: tuple[str, ...] = ()
    device: str = "auto"
    source: str = "study config"


def read_study_config(path: str | Path) -> StudyConfig:
    """Parse and check a study config; every error names the file and the key."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: not valid YAML ({error})") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a study config is a mapping with name, models and tasks")
    known = {"name", "output_dir", "models", "tasks", "data_files", "eval_data_files", "finetune", "evaluate", "device"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"{path}: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})")
    for key in ("name", "models", "tasks"):
        if not raw.get(key):
            raise ValueError(f"{path}: '{key}' is required")
    base = path.parent

    def local(value: str) -> str:
        # Relative paths in a config are relative to the config file.
        candidate = Path(value).expanduser()
        return str(candidate if candidate.is_absolute() else (base / candidate).resolve())

    models = []
    for i, entry in enumerate(raw["models"]):
        if not isinstance(entry, dict) or not entry.get("name") or not entry.get("path"):
            raise ValueError(f"{path}: models[{i}] needs a name and a path (Hugging Face id or directory)")
        model_path = str(entry["path"])
        if model_path.startswith((".", "/", "~")):
            model_path = local(model_path)
        models.append(ModelEntry(str(entry["name"]), model_path, str(entry["size"]) if entry.get("size") else None))
    tune = raw.get("finetune") or {}
    evaluate = raw.get("evaluate") or {}
    mixtures = tuple(tune.get("mixtures", ["single"]))
    methods = tuple(tune.get("methods", ["full"]))
    for method in methods:
        if method not in ("full", "lora"):
            raise ValueError(f"{path}: finetune.methods: {method!r} is not one of full, lora")
    for mixture in mixtures:
        if mixture not in MIXTURES:
            raise ValueError(f"{path}: finetune.mixtures: {mixture!r} is not one of {', '.join(MIXTURES)}")
    output = raw.get("output_dir")
    return StudyConfig(
        name=str(raw["name"]),
        models=tuple(models),
        tasks=tuple(raw["tasks"]),
        output_dir=Path(local(output)) if output else Path("results") / str(raw["name"]),
        data_files={k: local(v) for k, v in (raw.get("data_files") or {}).items()},
        eval_data_files={k: local(v) for k, v in (raw.get("eval_data_files") or {}).items()},
        methods=methods,
        mixtures=mixtures,
        epochs=int(tune.get("epochs", 3)),
        save_epochs=bool(tune.get("save_epochs", False)),
        finetune_options=dict(tune.get("options") or {}),
        variants=tuple(evaluate.get("variants") or ()),
        metadata=dict(evaluate.get("metadata") or {}),
        lm_eval_args=tuple(str(a) for a in evaluate.get("lm_eval_args") or ()),
        device=str(raw.get("device", "auto")),
        source=str(path),
    )


@dataclass
class Manifest:
    """Every step of a study and where its outputs are; saved after each step."""

    path: Path
    study: str
    runs: list[dict] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path, study: str) -> Manifest:
        if path.is_file():
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(path, data.get("study", study), data.get("runs", []))
        return cls(path, study)

    def find(self, run_id: str) -> dict | None:
        return next((run for run in self.runs if run["id"] == run_id), None)

    def record(self, run: dict) -> None:
        ids = [r["id"] for r in self.runs]
        if run["id"] in ids:
            self.runs[ids.index(run["id"])] = run
        else:
            self.runs.append(run)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"study": self.study, "runs": self.runs}, indent=2) + "\n", encoding="utf-8")
        temporary.replace(self.path)

    def done(self, run_id: str) -> bool:
        run = self.find(run_id)
        if run is None or run.get("status") != "done":
            return False
        return all((self.path.parent / run[key]).exists() for key in ("results", "samples", "model_dir") if run.get(key))


def _base_task(task: str, tasks: Sequence[str]) -> str:
    return next((t for t in sorted(tasks, key=len, reverse=True) if task == t or task.startswith(t + "_")), task)


def run_study(
    config: StudyConfig,
    log: Callable[[str], None] = print,
    evaluate: Callable[[Sequence[str]], int] | None = None,
) -> Manifest:
    """Run every step of ``config`` that is not done yet; returns the manifest.

    ``evaluate`` runs lm-eval with a list of command-line arguments (default:
    ``memtasks.harness.run_lm_eval``).
    """
    if evaluate is None:
        from memtasks.harness import run_lm_eval as evaluate

    out = config.output_dir
    manifest = Manifest.load(out / MANIFEST, config.name)
    probe_tasks = {t: [t, *(f"{t}_{v}" for v in config.variants)] for t in config.tasks}
    for tasks in probe_tasks.values():
        for task in tasks:
            task_spec(task)

    def probe(run_id: str, model: dict, model_args: str, tasks: Sequence[str]) -> None:
        for task in tasks:
            step = f"{run_id}/{task}"
            if manifest.done(step):
                log(f"[done] {step}")
                continue
            log(f"[probe] {step}")
            run_dir = out / "runs" / step.replace("/", "__")
            metadata = dict(config.metadata)
            base = _base_task(task, config.tasks)
            if base in config.data_files:
                metadata["data_files"] = config.data_files[base]
            if base in config.eval_data_files:
                # The held-out records are never fine-tuned on (see memtasks.finetune): the task's non-members.
                metadata["nonmember_data_files"] = config.eval_data_files[base]
            started = time.time()
            arguments = [
                "--model", "hf",
                "--model_args", model_args,
                "--tasks", task,
                "--output_path", str(run_dir),
                "--log_samples",
                *(["--metadata", json.dumps(metadata)] if metadata else []),
                *config.lm_eval_args,
            ]
            code = evaluate(arguments)
            results = _newest(run_dir, "results_*.json", started)
            samples = _newest(run_dir, f"samples_{task}_*.jsonl", started)
            if code != 0 or results is None or samples is None:
                raise RuntimeError(f"{config.source}: lm-eval failed on {step} (exit code {code}); see its output above")
            manifest.record(
                {
                    "id": step,
                    "kind": "eval",
                    "task": task,
                    "model": model,
                    "model_args": model_args,
                    "results": str(results.relative_to(out)),
                    "samples": str(samples.relative_to(out)),
                    "status": "done",
                    "seconds": round(time.time() - started, 1),
                }
            )

    # Every fine-tuning config is built first, so a bad option stops the study before any step.
    plans = {
        entry.name: [(method, trained, _finetune_config(config, entry, method, trained)) for method in config.methods for trained in _mixtures(config)]
        for entry in config.models
    }
    for entry in config.models:
        pretrained = {"name": entry.name, "path": entry.path, "base": None, "method": "pretrained", "trained_tasks": [], "epochs": None, "size": entry.size}
        probe(f"{entry.name}/pretrained", pretrained, f"pretrained={entry.path}", [t for ts in probe_tasks.values() for t in ts])
        for method, trained, tune in plans[entry.name]:
            label = trained[0] if len(trained) == 1 else "multi"
            name = f"{entry.name}-{method}-{label}"
            model_dir = out / "models" / name
            finished = read_summary(model_dir) if model_dir.is_dir() else None
            done = bool(finished and finished.get("complete") and finished.get("config") == tune.identity())
            log(f"[{'done' if done else 'finetune'}] {name}" + ("/finetune" if done else ""))
            summary = finetune(tune, model_dir, Runtime(device=config.device))
            manifest.record(
                {
                    "id": f"{name}/finetune",
                    "kind": "finetune",
                    "model_dir": str(model_dir.relative_to(out)),
                    "summary": {k: summary.get(k) for k in ("base_model", "method", "tasks", "epoch_losses", "examples_seen", "seconds", "quality")},
                    "status": "done",
                }
            )
            checkpoints = [(config.epochs, model_dir)]
            if config.save_epochs:
                checkpoints += [(e, model_dir / f"epoch-{e}") for e in range(1, config.epochs)]
            for epochs, directory in checkpoints:
                run_name = name if directory == model_dir else f"{name}/epoch-{epochs}"
                model = {
                    "name": run_name,
                    "path": str(directory.relative_to(out)),
                    "base": entry.name,
                    "method": method,
                    "trained_tasks": list(trained),
                    "epochs": epochs,
                    "size": entry.size,
                }
                probe(run_name, model, _lm_eval_model_args(directory, entry.path, method), [t for task in trained for t in probe_tasks[task]])
    return manifest


def _mixtures(config: StudyConfig) -> list[tuple[str, ...]]:
    mixtures = []
    if "single" in config.mixtures:
        mixtures += [(task,) for task in config.tasks]
    if "multi" in config.mixtures and len(config.tasks) > 1:
        mixtures.append(tuple(config.tasks))
    return mixtures


def _finetune_config(config: StudyConfig, entry: ModelEntry, method: str, tasks: tuple[str, ...]) -> FinetuneConfig:
    options = dict(config.finetune_options)
    try:
        return FinetuneConfig(
            tasks=tasks,
            model=entry.path,
            method=method,
            epochs=config.epochs,
            data_files={t: config.data_files[t] for t in tasks if t in config.data_files},
            eval_data_files={t: config.eval_data_files[t] for t in tasks if t in config.eval_data_files},
            save_epochs=config.save_epochs,
            **options,
        )
    except TypeError as error:
        raise ValueError(f"{config.source}: finetune.options: {error}") from None


def _lm_eval_model_args(model_dir: Path, base: str, method: str) -> str:
    if method == "lora":
        return f"pretrained={base},peft={model_dir.resolve()}"
    return f"pretrained={model_dir.resolve()}"


def _newest(folder: Path, pattern: str, since: float) -> Path | None:
    found = [p for p in folder.rglob(pattern) if p.stat().st_mtime >= since - 1]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


@dataclass(frozen=True)
class Comparison:
    """Memorization of one task before and after fine-tuning, on the same probes."""

    task: str
    before: str
    after: str
    probes: int
    rates_before: dict
    rates_after: dict
    difference: dict
    # Member minus non-member rates of each run; None when it probed no non-member.
    excess_before: dict | None = None
    excess_after: dict | None = None


def compare_before_after(manifest: Manifest) -> list[Comparison]:
    """Every (pre-trained, fine-tuned) pair of runs of a task in a study, with paired differences."""
    from memtasks.harness import read_probe_outcomes
    from memtasks.scoring import excess_rates, paired_difference, rates_of

    root = manifest.path.parent
    evals = [run for run in manifest.runs if run.get("kind") == "eval" and run.get("status") == "done"]
    pretrained = {(r["model"]["name"], r["task"]): r for r in evals if r["model"]["method"] == "pretrained"}
    comparisons = []
    for run in evals:
        model = run["model"]
        base = pretrained.get((model.get("base"), run["task"]))
        if model["method"] == "pretrained" or base is None:
            continue
        before = read_probe_outcomes(root / base["samples"])
        after = read_probe_outcomes(root / run["samples"])
        if set(before) != set(after):
            raise ValueError(f"{root / run['samples']}: probes differ from {root / base['samples']}; cannot pair them")
        ids = sorted(before)
        b, a = [before[i] for i in ids], [after[i] for i in ids]
        excess = []
        for samples in (root / base["samples"], root / run["samples"]):
            control = list(read_probe_outcomes(samples, members=False).values())
            members = list(read_probe_outcomes(samples).values())
            excess.append(excess_rates(members, control) if control else None)
        comparisons.append(
            Comparison(
                run["task"], base["model"]["name"], model["name"], len(ids), rates_of(b), rates_of(a),
                paired_difference(b, a), *excess,
            )
        )
    return comparisons
