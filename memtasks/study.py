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

import contextlib
import difflib
import json
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from memtasks.datafiles import unreadable
from memtasks.harness import MODEL_NAME
from memtasks.manifest import MANIFEST, EvalStep, FinetuneStep, StudyManifest, StudyModel
from memtasks.outputs import OutputOverInputError, check_apart, check_writable, shown, working_directory, write_atomic
from memtasks.tasks import task_spec

if TYPE_CHECKING:
    from memtasks.finetune import FinetuneConfig
    from memtasks.report.analysis import Comparison

MIXTURES = ("single", "multi")
# The before/after summary a study writes beside its manifest (memtasks.report.summary).
SUMMARY = "summary.md"
# FinetuneConfig fields a study sets itself, from its models, tasks and finetune section: no option.
FIXED_OPTIONS = ("tasks", "model", "method", "epochs", "data_files", "eval_data_files", "save_epochs")
# Every key a study config may have, per section; anything else is a misspelling.
CONFIG_KEYS = {
    "": ("name", "output_dir", "models", "tasks", "data_files", "eval_data_files", "finetune", "evaluate", "device"),
    "models[]": ("name", "path", "size"),
    "finetune": ("methods", "mixtures", "epochs", "save_epochs", "options"),
    "evaluate": ("variants", "metadata", "lm_eval_args"),
}


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
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not UTF-8 text (byte {error.start})") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a study config is a mapping with name, models and tasks")
    _check_keys(path, "", raw)
    for key in ("name", "models", "tasks"):
        if not raw.get(key):
            raise ValueError(f"{path}: '{key}' is required")
    for section in ("finetune", "evaluate"):
        _check_keys(path, section, raw.get(section) or {})
    base = path.parent

    def local(value: str) -> str:
        # Relative paths in a config are relative to the config file.
        candidate = Path(value).expanduser()
        return str(candidate if candidate.is_absolute() else (base / candidate).resolve())

    models = []
    for i, entry in enumerate(raw["models"]):
        if not isinstance(entry, dict) or not entry.get("name") or not entry.get("path"):
            raise ValueError(f"{path}: models[{i}] needs a name and a path (Hugging Face id or directory)")
        _check_keys(path, "models[]", entry, f"models[{i}]")
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
    if evaluate.get("metadata"):
        # Checked here, not when lm-eval reads it after the first fine-tuning: a misspelled key would stop the study there.
        from memtasks.harness import hooks

        if not isinstance(evaluate["metadata"], dict):
            raise ValueError(f"{path}: 'evaluate.metadata' must be a mapping")
        hooks.check_probe_metadata(evaluate["metadata"], f"{path}: evaluate.metadata")
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


def _check_keys(path: Path, section: str, mapping: Any, where: str | None = None) -> None:
    """A section of a study config holds only the keys it may have; the error names the file and the key."""
    where = section if where is None else where
    if not isinstance(mapping, dict):
        raise ValueError(f"{path}: '{where}' must be a mapping")
    known = CONFIG_KEYS[section]
    unknown = sorted(set(mapping) - set(known))
    if unknown:
        key = f"{where}.{unknown[0]}" if where else unknown[0]
        raise ValueError(f"{path}: unknown key {key!r} (known{' in ' + where if where else ''}: {', '.join(known)})")


def _base_task(task: str, tasks: Sequence[str]) -> str:
    return next((t for t in sorted(tasks, key=len, reverse=True) if task == t or task.startswith(t + "_")), task)


class StudyInputError(ValueError):
    """What a study needs before it can start (a model, a data file, a writable folder); one line."""


@dataclass(frozen=True)
class _Probe:
    """One planned lm-eval run: step id, task, the model's identity and its ``--model_args``
    (paths relative to the study folder, where lm-eval runs)."""

    step: str
    task: str
    model: StudyModel
    model_args: str


@dataclass(frozen=True)
class _Tuning:
    """One planned fine-tuning and the probes of the models it makes."""

    name: str
    entry: ModelEntry
    method: str
    trained: tuple[str, ...]
    config: FinetuneConfig
    probes: tuple[_Probe, ...]

    @property
    def step(self) -> str:
        return f"{self.name}/finetune"


def run_study(
    config: StudyConfig,
    log: Callable[[str], None] = print,
    evaluate: Callable[[Sequence[str]], int] | None = None,
) -> StudyManifest:
    """Run every step of ``config`` that is not done yet; returns the manifest.

    ``evaluate`` runs lm-eval with a list of command-line arguments (default:
    ``memtasks.harness.run_lm_eval``). lm-eval runs inside the study folder and
    is given paths relative to it (``pretrained=./models/...``, data files),
    so the results it writes name no folder of this machine. Each probe run
    writes ``runs/<step>/results_<date>.json`` and
    ``runs/<step>/samples_<task>_<date>.jsonl``: the output path is given as a
    ``.json`` file, so lm-eval adds no folder named after the model's path.

    Before any step runs, every task, fine-tuning option, local model and data
    file that a step still to run needs is checked, and the study folder must
    be writable; a refused study writes nothing. A fine-tuning whose probes are
    all done is not redone (its model folder, not committed with a study's
    results, may be gone). A probe run is written into ``runs/<step>.partial``
    and moved into place once lm-eval has finished; the manifest lists a step
    only after its outputs are in place, so an interrupted step leaves nothing
    that looks finished.
    """
    from memtasks.finetune import Runtime, finetune, read_summary

    if evaluate is None:
        from memtasks.harness import run_lm_eval as evaluate

    out = config.output_dir.resolve()
    manifest = StudyManifest.load(out / MANIFEST, config.name)
    probe_tasks = {t: [t, *(f"{t}_{v}" for v in config.variants)] for t in config.tasks}
    for tasks in probe_tasks.values():
        for task in tasks:
            task_spec(task)
    pretrained, tunings = _plan(config, out, probe_tasks)
    pending = {probe.step for probe in [*pretrained.values(), *(p for t in tunings for p in t.probes)] if not manifest.done(probe.step)}
    # A fine-tuning is redone only for a probe still to run (or when the manifest never listed it).
    tunes = {t.step for t in tunings if any(p.step in pending for p in t.probes) or manifest.find(t.step) is None}
    if pending or tunes:
        _check_inputs(config, pretrained, tunings, pending, tunes)
        _check_outputs_apart(config, out, tunings, tunes)
        check_writable(out)

    def probe(item: _Probe) -> None:
        if item.step not in pending:
            log(f"[done] {item.step}")
            return
        log(f"[probe] {item.step}")
        started = time.time()
        results, samples = _run_probe(config, out, item, evaluate)
        manifest.record(
            EvalStep(
                id=item.step,
                task=item.task,
                model=item.model,
                results=_relative(results, out),
                samples=_relative(samples, out),
                seconds=round(time.time() - started, 1),
            )
        )

    for entry in config.models:
        for item in pretrained.values():
            if item.model.name == entry.name:
                probe(item)
        for tuning in (t for t in tunings if t.entry == entry):
            if tuning.step not in tunes:
                log(f"[done] {tuning.step}")
            else:
                model_dir = out / "models" / tuning.name
                finished = read_summary(model_dir) if model_dir.is_dir() else None
                done = bool(finished and finished.get("complete") and finished.get("config") == tuning.config.identity())
                log(f"[{'done' if done else 'finetune'}] {tuning.name}" + ("/finetune" if done else ""))
                summary = finetune(tuning.config, model_dir, Runtime(device=config.device))
                kept = {k: summary.get(k) for k in ("base_model", "method", "loss", "tasks", "epoch_losses", "examples_seen", "seconds", "quality")}
                if isinstance(kept["base_model"], str):
                    kept["base_model"] = _model_path(kept["base_model"], out)
                step = FinetuneStep(id=tuning.step, model_dir=_relative(model_dir, out), summary=kept)
                if manifest.find(step.id) != step:
                    manifest.record(step)
            for item in tuning.probes:
                probe(item)
    return manifest


def _plan(config: StudyConfig, out: Path, probe_tasks: Mapping[str, list[str]]) -> tuple[dict[str, _Probe], list[_Tuning]]:
    """Every probe of a pre-trained model (by step id) and every fine-tuning with its probes, in run order;
    every fine-tuning config is built here, so a bad option stops the study before any step."""
    pretrained: dict[str, _Probe] = {}
    tunings: list[_Tuning] = []
    for entry in config.models:
        model = StudyModel(name=entry.name, path=_model_path(entry.path, out), size=entry.size)
        for task in (t for ts in probe_tasks.values() for t in ts):
            step = f"{entry.name}/pretrained/{task}"
            pretrained[step] = _Probe(step, task, model, f"pretrained={_argument_path(entry.path, out)}")
        for method in config.methods:
            for trained in _mixtures(config):
                tune = _finetune_config(config, entry, method, trained)
                name = f"{entry.name}-{method}-{trained[0] if len(trained) == 1 else 'multi'}"
                model_dir = out / "models" / name
                checkpoints = [(config.epochs, model_dir)]
                if config.save_epochs:
                    checkpoints += [(e, model_dir / f"epoch-{e}") for e in range(1, config.epochs)]
                probes = []
                for epochs, directory in checkpoints:
                    run_name = name if directory == model_dir else f"{name}/epoch-{epochs}"
                    model = StudyModel(
                        name=run_name,
                        path=_model_path(directory, out),
                        base=entry.name,
                        method=method,
                        trained_tasks=tuple(trained),
                        epochs=epochs,
                        size=entry.size,
                        mixing=tune.mixing,
                        loss=tune.loss,
                    )
                    arguments = _lm_eval_model_args(directory, entry.path, method, out)
                    probes += [_Probe(f"{run_name}/{t}", t, model, arguments) for task in trained for t in probe_tasks[task]]
                tunings.append(_Tuning(name, entry, method, tuple(trained), tune, tuple(probes)))
    return pretrained, tunings


def _check_inputs(
    config: StudyConfig, pretrained: Mapping[str, _Probe], tunings: Sequence[_Tuning], pending: set[str], tunes: set[str]
) -> None:
    """Every local model and data file a step still to run needs exists; else one line saying what is missing
    and, where it is known, what to run first."""
    from memtasks.models import MODELS

    names = {p.model.name for p in pretrained.values() if p.step in pending} | {t.entry.name for t in tunings if t.step in tunes}
    for entry in config.models:
        local = Path(entry.path)
        if entry.name in names and local.is_absolute() and not local.is_dir():
            where = shown(local)
            hint = (
                f": run `memtasks models get {local.name} {where}` first"
                if local.name in MODELS
                else " (a local model is a folder saved by save_pretrained)"
            )
            raise StudyInputError(f"{config.source}: model {entry.name}: {where} does not exist{hint}")
        if entry.name in names and local.is_absolute():
            from memtasks.finetune.config import check_finished

            try:
                check_finished(shown(local), "folder")
            except ValueError as error:
                raise StudyInputError(f"{config.source}: model {entry.name}: {error}") from None
    tasks = {_base_task(p.task, config.tasks) for p in pretrained.values() if p.step in pending}
    tasks |= {_base_task(p.task, config.tasks) for t in tunings for p in t.probes if p.step in pending}
    tasks |= {task for t in tunings if t.step in tunes for task in t.trained}
    from memtasks.datafiles import count_records, find_problem

    for key, files in (("data_files", config.data_files), ("eval_data_files", config.eval_data_files)):
        for task in sorted(tasks & set(files)):
            if unreadable(files[task]):
                raise StudyInputError(f"{config.source}: {key}.{task}: {shown(files[task])} {unreadable(files[task])}")
            # Read in full now, not when a step hours into the study reaches the file.
            try:
                count_records(shown(files[task]))
                find_problem(shown(files[task]))
            except ValueError as error:
                raise StudyInputError(f"{config.source}: {key}.{task}: {error}") from None
            _check_input_field(config, key, task, shown(files[task]))


def _check_input_field(config: StudyConfig, key: str, task: str, path: str) -> None:
    """Every record of a JSON Lines data file holds the text the task probes: refused here, named by the
    config key, not by lm-eval's ``--metadata`` a step reaches hours later."""
    from memtasks.datafiles import json_lines
    from memtasks.probes import input_text

    field = {**task_spec(task).metadata, **config.metadata}.get("input_field", "text")
    for number, record in json_lines(path):
        try:
            input_text(record, field, f"{path}:{number}")
        except ValueError as error:
            raise StudyInputError(f"{config.source}: {key}.{task}: {error}") from None


def _check_outputs_apart(config: StudyConfig, out: Path, tunings: Sequence[_Tuning], tunes: set[str]) -> None:
    """No file or folder the study writes (its manifest, its runs, the models it fine-tunes) is, holds or lies
    inside its config, a data file or a local model: a study's folder may hold its own inputs, as the demo's does."""
    outputs = [("the study's manifest", shown(out / MANIFEST)), ("the study's runs folder", shown(out / "runs"))]
    outputs += [(f"the fine-tuned model folder of {t.name}", shown(out / "models" / t.name)) for t in tunings if t.step in tunes]
    inputs = [("the study config", config.source)]
    for key, files in (("data_files", config.data_files), ("eval_data_files", config.eval_data_files)):
        inputs += [(f"{key}.{task}", shown(path)) for task, path in files.items()]
    inputs += [(f"the model of {entry.name}", shown(entry.path)) for entry in config.models if Path(entry.path).is_absolute()]
    try:
        check_apart(outputs, inputs)
    except OutputOverInputError as error:
        raise StudyInputError(f"{config.source}: {error}") from None


def _run_probe(config: StudyConfig, out: Path, item: _Probe, evaluate: Callable[[Sequence[str]], int]) -> tuple[Path, Path]:
    """lm-eval on one probe step, written into ``runs/<step>.partial`` and moved to ``runs/<step>`` when
    finished; the partial folder is removed whatever happens. Returns the results file and the samples log."""
    folder = out / "runs" / item.step.replace("/", "__")
    partial = folder.with_name(f"{folder.name}.partial")
    metadata = dict(config.metadata)
    base = _base_task(item.task, config.tasks)
    if base in config.data_files:
        metadata["data_files"] = _argument_path(config.data_files[base], out)
    if base in config.eval_data_files:
        # The held-out records are never fine-tuned on (see memtasks.finetune): the task's non-members.
        metadata["nonmember_data_files"] = _argument_path(config.eval_data_files[base], out)
    arguments = [
        "--model", MODEL_NAME,
        "--model_args", item.model_args,
        "--tasks", item.task,
        "--output_path", f"runs/{partial.name}/results.json",
        "--log_samples",
        *(["--metadata", json.dumps(metadata)] if metadata else []),
        *config.lm_eval_args,
    ]
    shutil.rmtree(partial, ignore_errors=True)
    made = [folder for folder in (out, out / "runs") if not folder.exists()]
    try:
        partial.mkdir(parents=True)
        with working_directory(out):
            try:
                code = evaluate(arguments)
            except Exception as error:
                raise _with_users_paths(error, out, [item.model_args.partition("=")[2], metadata.get("data_files"), metadata.get("nonmember_data_files")])
        results = _only(partial, "results_*.json")
        samples = _only(partial, f"samples_{item.task}_*.jsonl")
        if code != 0 or results is None or samples is None:
            raise RuntimeError(f"{config.source}: lm-eval failed on {item.step} (exit code {code}); see its output above")
        _check_complete(results, samples, item.step)
        # What the folder holds is no finished run (the manifest does not list the step): an earlier
        # attempt's files, which a reader would take for a second run beside this one.
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        # The results file last: it is what a reader of the folder takes for a finished run.
        return results.replace(folder / results.name), samples.replace(folder / samples.name)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
        # A step refused by lm-eval (a misspelled argument, say) leaves no empty folder made for it.
        for made_here in reversed(made):
            with contextlib.suppress(OSError):
                made_here.rmdir()


def _with_users_paths(error: Exception, out: Path, given: Sequence[str | None]) -> Exception:
    """``error`` with the paths lm-eval was given, relative to the study folder where it runs
    (``../../data/x.jsonl``), written as the absolute paths the user can open from anywhere."""
    if len(error.args) == 1 and isinstance(error.args[0], str):
        message = error.args[0]
        # The longest first, so that a path is not rewritten inside a longer one.
        for path in sorted({p for p in given if p and not Path(p).is_absolute() and (out / p).exists()}, key=len, reverse=True):
            message = message.replace(path, os.path.normpath(out / path))
        error.args = (message,)
    return error


def _check_complete(results: Path, samples: Path, step: str) -> None:
    """Refuse to adopt a probe run whose results file or samples log is not whole JSON (cut short by a
    full disk, say, by a writer that did not report it); the error names the file."""
    for path, read in ((results, _results_document), (samples, _json_lines)):
        try:
            read(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as error:
            raise ValueError(
                f"{path.absolute()}: not a complete lm-eval output ({error}): step {step} is not recorded; run the study again"
            ) from None


def _results_document(text: str) -> None:
    document = json.loads(text)
    if not isinstance(document, dict) or not isinstance(document.get("results"), dict):
        raise ValueError("no 'results' mapping")


def _json_lines(text: str) -> None:
    for line in text.splitlines():
        json.loads(line)


def _only(folder: Path, pattern: str) -> Path | None:
    found = sorted(folder.glob(pattern))
    return found[0] if len(found) == 1 else None


def _relative(path: str | Path, root: Path) -> str:
    """A path inside the study folder relative to it (with ``/`` on every system); any other path as given."""
    try:
        return Path(path).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def _model_path(path: str | Path, root: Path) -> str:
    """A model's path for the manifest: ``./...`` inside the study folder, else a Hugging Face id or a path as given."""
    if not Path(path).is_absolute():
        return str(path)
    relative = _relative(path, root)
    return relative if Path(relative).is_absolute() else f"./{relative}"


def _argument_path(path: str | Path, root: Path) -> str:
    """A local path as lm-eval, running in the study folder ``root``, is given it: relative to ``root``
    (``./models/m``, ``data/x.jsonl``, ``../m``); a Hugging Face id as it is."""
    if not Path(path).is_absolute():
        return str(path)
    try:
        relative = Path(os.path.relpath(Path(path).resolve(), root.resolve())).as_posix()
    except ValueError:
        # Another drive (Windows): no relative path exists.
        return str(path)
    return relative if relative.startswith("..") else f"./{relative}"


def _mixtures(config: StudyConfig) -> list[tuple[str, ...]]:
    mixtures = []
    if "single" in config.mixtures:
        mixtures += [(task,) for task in config.tasks]
    if "multi" in config.mixtures and len(config.tasks) > 1:
        mixtures.append(tuple(config.tasks))
    return mixtures


def _finetune_config(config: StudyConfig, entry: ModelEntry, method: str, tasks: tuple[str, ...]) -> FinetuneConfig:
    from memtasks.finetune import FinetuneConfig

    options = dict(config.finetune_options)
    known = sorted(f.name for f in fields(FinetuneConfig) if f.name not in FIXED_OPTIONS)
    for key in options:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(known)})"
            raise ValueError(f"{config.source}: unknown key 'finetune.options.{key}'{hint}")
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


def _lm_eval_model_args(model_dir: Path, base: str, method: str, root: Path) -> str:
    if method == "lora":
        return f"pretrained={_argument_path(base, root)},peft={_argument_path(model_dir, root)}"
    return f"pretrained={_argument_path(model_dir, root)}"


def write_summary(manifest: StudyManifest) -> list[Comparison]:
    """Every before/after comparison of the study (:func:`memtasks.report.summary.compare_before_after`),
    with their summary (:func:`memtasks.report.summary.study_summary`) written into ``summary.md`` beside
    the manifest; nothing is written when no fine-tuned model was probed on a task its base was probed on."""
    from memtasks.report.analysis import OutcomeReader
    from memtasks.report.summary import compare_before_after, summary_markdown

    reader = OutcomeReader()
    comparisons = compare_before_after(manifest, reader)
    if comparisons:
        write_atomic(manifest.root / SUMMARY, summary_markdown(comparisons, reader))
    return comparisons
