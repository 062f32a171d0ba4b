"""`memtasks attention`: a model from lm-eval's model registry, tasks from its task index.

The model loads exactly as ``lm_eval --model MODEL --model_args ARGS`` loads it
(with ``attn_implementation=eager`` added, since other implementations return
no attention weights); each task's (input, output) pairs come from its YAML's
fine-tuning format. Results are written where lm-eval writes its own:

    <output_path>/<model name, sanitized as lm-eval does>/attention_<task>_<date>.json
    <folder>/<name>_<task>_<date>.json          (an output_path <folder>/<name>.json)

An output path ending in ``.json`` gets no folder named after the model (for a
local model, its path on this machine), as in lm-eval.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from memtasks.attention.capture import DECODER_SEPARATOR, AttentionInputError, AttentionModelError
from memtasks.attention.measure import MEASURES, AttentionResult, measure_attention
from memtasks.datafiles import record_place
from memtasks.outputs import check_apart, check_writable, write_atomic
from memtasks.stats import BOOTSTRAP_SEED, INTERVAL_PERCENTILES, N_RESAMPLES
from memtasks.tasks import FineTuningFormat, TaskSpec, load_records, task_spec

DEFAULT_SAMPLES = 10
DEFAULT_SEED = 1234


@dataclass
class TaskRun:
    """One task's measurement and where its results JSON was written."""

    task: str
    result: AttentionResult
    records: int
    data: str
    path: Path | None = None


def load_lm(model: str, model_args: str, batch_size: int = 1, device: str | None = "cpu"):
    """Load a model through lm-eval's registry, with eager attention; returns (torch model, tokenizer, model_args used)."""
    from lm_eval.api.registry import get_model
    from lm_eval.utils import simple_parse_args_string

    parsed = simple_parse_args_string(model_args or "")
    implementation = parsed.get("attn_implementation")
    if implementation is None:
        model_args = ",".join(part for part in (model_args, "attn_implementation=eager") if part)
    elif implementation != "eager":
        raise AttentionModelError(
            f"attn_implementation={implementation} returns no attention weights: use attn_implementation=eager or leave it out"
        )
    lm = get_model(model).create_from_arg_string(model_args, {"batch_size": batch_size, "device": device})
    torch_model, tokenizer = getattr(lm, "model", None), getattr(lm, "tokenizer", None)
    if torch_model is None or tokenizer is None or not hasattr(torch_model, "config"):
        raise AttentionModelError(
            f"lm-eval model '{model}' exposes no Hugging Face model and tokenizer: attention needs a local model, e.g. --model hf"
        )
    return torch_model, tokenizer, model_args


# The model arguments (lm-eval's hf model) that name a local folder the model is read from.
MODEL_PATH_ARGS = ("pretrained", "peft", "tokenizer", "delta")


def _check_outputs(
    output_path: str | Path | None,
    plot_dir: str | Path | None,
    model_args: str,
    data_files: Mapping[str, str],
    include_path: Sequence[str | Path],
) -> None:
    """Before any work: the model is no unfinished fine-tuning, no output is, holds or lies inside the model,
    a data file or a task folder, and every output folder can be written."""
    from memtasks.finetune.config import check_finished

    arguments = dict(part.split("=", 1) for part in (model_args or "").split(",") if "=" in part)
    inputs = [(f"the model's {key}", arguments[key].strip()) for key in MODEL_PATH_ARGS if arguments.get(key, "").strip()]
    for what, path in inputs:
        check_finished(path, f"{what.removeprefix('the ')}")
    inputs += [(f"the data of {task}", path) for task, path in data_files.items()]
    inputs += [("the task folder", folder) for folder in include_path]
    # Results files are named by task and date, heatmaps attention_*.png: neither folder may be or lie inside
    # an input, but one may hold the inputs (--output_path . beside the data), whose files are never rewritten.
    check_apart([("--output_path", output_path), ("--plot", plot_dir)], inputs, holds=False)
    if output_path is not None:
        path = Path(output_path)
        check_writable(path.parent if path.suffix == ".json" else path)
    if plot_dir is not None:
        check_writable(plot_dir)


def _merged_spec(name: str, include_path: Sequence[str | Path], metadata: Mapping[str, Any], data_files: str | None) -> TaskSpec:
    spec = task_spec(name, include_path)
    if metadata:
        # A misspelled key would be ignored, and the task run with its default.
        from memtasks.harness import hooks

        hooks.check_probe_metadata(metadata, f"--metadata of task {name}")
    merged = {**spec.options, **metadata}
    if data_files is not None:
        merged["data_files"] = data_files
    return TaskSpec(spec.name, spec.yaml_path, merged, {})


def task_pairs(
    spec: TaskSpec, samples: int, seed: int = DEFAULT_SEED
) -> tuple[list[tuple[str, str]], list[str], int, str, FineTuningFormat]:
    """``samples`` records of the task drawn without replacement (seeded), as (input, output) pairs in its fine-tuning format.

    Returns the pairs, a name per pair ("FILE: record i"), the number of
    records, the data's description and the format.
    """
    if samples < 1:
        raise ValueError("samples must be at least 1")
    meta = spec.metadata
    fmt = FineTuningFormat.from_spec(spec)
    records, source = load_records(
        meta.get("dataset_path"), meta.get("dataset_name"), meta.get("split", "train"), meta.get("data_files"), where=spec.where(),
        revision=meta.get("revision"), load_kwargs=meta.get("load_kwargs"),
    )
    if len(records) == 0:
        raise ValueError(f"{spec.where()}: {source} has no records")
    picked = np.sort(np.random.default_rng(seed).choice(len(records), size=min(samples, len(records)), replace=False))
    pairs, names = [], []
    for i in picked.tolist():
        where = record_place(source, i)
        record = records[i]
        target = fmt.target(record, where)
        if not target.strip():
            raise AttentionInputError(
                f"{where}: field '{fmt.output_field}' (the output) is empty: there is no output token whose attention to measure"
            )
        pairs.append((fmt.source(record, where), target))
        names.append(where)
    return pairs, names, len(records), source, fmt


def results_path(output_path: str | Path, model_args: str, model: str, task: str, date_id: str) -> Path:
    """Where lm-eval would put this run's file: ``<stem>_<task>_<date>.json`` beside an output path
    ending in ``.json``; else output_path / sanitized model name / attention_<task>_<date>.json."""
    path = Path(output_path)
    if path.suffix == ".json":
        return path.with_name(f"{path.stem}_{task}_{date_id}.json")
    from lm_eval.loggers.evaluation_tracker import GeneralConfigTracker
    from lm_eval.utils import sanitize_model_name

    name = GeneralConfigTracker._get_model_name(model_args) or model
    return path / sanitize_model_name(name) / f"attention_{task}_{date_id}.json"


def results_json(run: TaskRun, spec: TaskSpec, model: str, model_args: str, config: Mapping[str, Any]) -> dict:
    """lm-eval's results shape for one task, with the per-layer, per-head and per-sample detail under "memtasks"."""
    result = run.result
    metrics: dict[str, Any] = {"alias": run.task}
    for name, (value, low, high) in result.summary().items():
        metrics[f"{name},none"], metrics[f"{name}_low,none"], metrics[f"{name}_high,none"] = value, low, high
    samples = result.samples
    metrics.update(
        {
            "samples,none": len(samples),
            "input_tokens,none": float(np.mean([s.input_tokens for s in samples])),
            "output_tokens,none": float(np.mean([s.output_tokens for s in samples])),
            "truncated_inputs,none": sum(s.input_truncated for s in samples),
            "truncated_outputs,none": sum(s.output_truncated for s in samples),
        }
    )
    per_sample = [
        {
            "record": s.where,
            "input_tokens": s.input_tokens,
            "output_tokens": s.output_tokens,
            "input_truncated": s.input_truncated,
            "output_truncated": s.output_truncated,
            **{m: float(v) for m, v in zip(MEASURES, (result.sample_values(m)[i] for m in MEASURES))},
        }
        for i, s in enumerate(samples)
    ]
    return {
        "results": {run.task: metrics},
        "configs": {run.task: {"task": run.task, "yaml": str(spec.yaml_path) if spec.yaml_path else None, "metadata": dict(spec.metadata)}},
        "versions": {run.task: spec.metadata.get("version")},
        "n-samples": {run.task: {"original": run.records, "effective": len(samples)}},
        "config": {"model": model, "model_args": model_args, **config},
        "date": datetime.now().timestamp(),
        "memtasks": {
            "kind": "attention",
            "attention": result.attention,
            "layers": result.layers,
            "num_layers": result.num_layers,
            "heads": int(result.values["cad"].shape[2]),
            "per_layer": {"layers": result.layers, **result.per_layer()},
            "per_head": result.per_head(),
            "per_sample": per_sample,
            "data": run.data,
            "max_input_tokens": result.max_input_tokens,
            "max_output_tokens": result.max_output_tokens,
            "include_instruction": result.include_instruction,
            "bootstrap": {
                "resamples": N_RESAMPLES,
                "seed": BOOTSTRAP_SEED,
                "percentiles": list(INTERVAL_PERCENTILES),
            },
        },
    }


def run_attention(
    model: str,
    model_args: str,
    tasks: Sequence[str],
    *,
    layers: str | Sequence[int] = "last",
    samples: int = DEFAULT_SAMPLES,
    output_path: str | Path | None = "results",
    plot_dir: str | Path | None = None,
    data_files: Mapping[str, str] | None = None,
    metadata: Mapping[str, Any] | None = None,
    include_path: Sequence[str | Path] = (),
    batch_size: int = 1,
    device: str | None = "cpu",
    max_input_tokens: int = 512,
    max_output_tokens: int = 128,
    include_instruction: bool = False,
    separator: str = DECODER_SEPARATOR,
    seed: int = DEFAULT_SEED,
    progress: bool = True,
) -> list[TaskRun]:
    """Measure attention dispersion of one model on several tasks; write results JSON and heatmaps.

    ``data_files`` maps a task to local files replacing its dataset;
    ``metadata`` overrides every task's YAML metadata (as lm-eval's
    ``--metadata``), except that a key naming a task of the run holds
    overrides for that task alone (``{"mem_squad_v2": {"output_field":
    "answers"}}``). Tasks and data are checked before the model loads.
    """
    if not tasks:
        raise ValueError("no tasks given")
    data_files = dict(data_files or {})
    unknown = sorted(set(data_files) - set(tasks))
    if unknown:
        raise ValueError(f"data files given for {', '.join(unknown)}, which is not among the tasks ({', '.join(tasks)})")
    metadata = dict(metadata or {})
    # Keys naming a task of the run hold that task's own overrides.
    shared = {key: value for key, value in metadata.items() if key not in tasks}
    for name in tasks:
        if name in metadata and not isinstance(metadata[name], Mapping):
            raise ValueError(f"metadata for task {name} must be a JSON object, not {metadata[name]!r}")
    stray = sorted(key for key, value in shared.items() if isinstance(value, Mapping))
    if stray:
        raise ValueError(f"metadata given for {', '.join(stray)}, which is not among the tasks ({', '.join(tasks)})")
    _check_outputs(output_path, plot_dir, model_args, data_files, include_path)
    specs = {
        name: _merged_spec(name, include_path, {**shared, **metadata.get(name, {})}, data_files.get(name)) for name in tasks
    }
    prepared = {name: task_pairs(spec, samples, seed) for name, spec in specs.items()}
    torch_model, tokenizer, used_args = load_lm(model, model_args, batch_size, device)
    date_id = datetime.now().isoformat().replace(":", "-")
    config = {
        "batch_size": batch_size,
        "device": device,
        "layers": layers if isinstance(layers, str) else list(layers),
        "samples": samples,
        "seed": seed,
        "max_input_tokens": max_input_tokens,
        "max_output_tokens": max_output_tokens,
        "include_instruction": include_instruction,
        "separator": separator,
    }
    runs = []
    for name, (pairs, names, n_records, source, fmt) in prepared.items():
        result = measure_attention(
            torch_model,
            tokenizer,
            pairs,
            names=names,
            layers=layers,
            instruction=fmt.instruction,
            include_instruction=include_instruction,
            max_input_tokens=max_input_tokens,
            max_output_tokens=max_output_tokens,
            batch_size=batch_size,
            separator=separator,
            progress=progress,
        )
        run = TaskRun(name, result, n_records, source)
        if output_path is not None:
            run.path = results_path(output_path, used_args, model, name, date_id)
            run.path.parent.mkdir(parents=True, exist_ok=True)
            document = results_json(run, specs[name], model, used_args, config)
            write_atomic(run.path, json.dumps(document, indent=2, default=str, allow_nan=False) + "\n")
        runs.append(run)
    if plot_dir is not None:
        from memtasks.attention.plots import write_plots

        write_plots({run.task: run.result for run in runs}, plot_dir)
    return runs
