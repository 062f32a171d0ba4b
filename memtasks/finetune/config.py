"""What defines a fine-tuning run, the checks that need no model, and the summary file a run leaves.

Standard library only: ``memtasks finetune`` refuses a bad option, a missing
model or data file and an occupied output folder with this module alone,
before torch or transformers are imported (they take seconds to load).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from memtasks.datafiles import unreadable
from memtasks.outputs import check_apart, check_writable, write_atomic

SUMMARY_FILE = "memtasks_finetune.json"
CHECKPOINTS = "checkpoints"
METHODS = ("full", "lora")
MIXINGS = ("proportional", "equal")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEFAULT_LEARNING_RATE = {"full": 1e-4, "lora": 1e-3}
OUTPUT_ONLY = "output-only"
WHOLE_SEQUENCE = "whole-sequence"


@dataclass(frozen=True)
class FinetuneConfig:
    """Everything that defines a fine-tuning run; two runs with equal configs train the same model.

    ``learning_rate`` defaults to 1e-4 for full fine-tuning and 1e-3 for LoRA.
    ``target_modules`` defaults to peft's choice for the architecture (T5: q, v;
    GPT-2: c_attn; Llama and GPT-NeoX families: q_proj, v_proj).
    The loss covers the output only, as in the study ("Training input = Prompt +
    Input, Training label = Output", every task): the instruction and input are
    read, never predicted. ``train_on_input`` puts the loss on the input too
    (a decoder-only model predicts every token of ``input + "\n" + output``;
    an encoder-decoder model's decoder writes the input before the output), so
    the model is trained to write its training inputs: not the study's recipe,
    and memorization of inputs then measures that training, not the task's.
    """

    tasks: tuple[str, ...]
    model: str
    method: str = "full"
    epochs: int = 3
    learning_rate: float | None = None
    warmup_ratio: float = 0.0
    batch_size: int = 8
    grad_accum: int = 1
    max_source_tokens: int = 512
    max_target_tokens: int = 128
    mixing: str = "proportional"
    max_examples: int | None = None
    data_files: Mapping[str, str] = field(default_factory=dict)
    eval_data_files: Mapping[str, str] = field(default_factory=dict)
    eval_examples: int = 100
    lora_rank: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] | None = None
    train_on_input: bool = False
    save_epochs: bool = False
    merge: bool = False
    seed: int = 1234

    def identity(self) -> dict[str, Any]:
        """The config as JSON values: what must match for an output directory to be resumed."""
        values = asdict(self)
        for key in ("tasks", "target_modules"):
            if values[key] is not None:
                values[key] = list(values[key])
        values["data_files"] = dict(self.data_files)
        values["eval_data_files"] = dict(self.eval_data_files)
        return values

    @property
    def loss(self) -> str:
        """Which tokens carry the loss: ``output-only`` (the study's recipe) or ``whole-sequence``."""
        return WHOLE_SEQUENCE if self.train_on_input else OUTPUT_ONLY

    @property
    def lr(self) -> float:
        return self.learning_rate if self.learning_rate is not None else DEFAULT_LEARNING_RATE[self.method]


@dataclass(frozen=True)
class Runtime:
    """How to run a fine-tuning, which may change when a run is resumed."""

    device: str = "auto"
    precision: str = "auto"
    save_steps: int = 200
    eval_batch_size: int = 16
    include_path: tuple[str, ...] = ()
    progress: bool = True


class FinetuneError(ValueError):
    """A fine-tuning run that cannot start; raised before any training."""


def validate(config: FinetuneConfig, runtime: Runtime, output_dir: str | Path) -> None:
    """Refuse a run whose options, model, data files or output folder are wrong, from the file system alone."""
    checks = [
        (config.method in METHODS, f"method must be one of {', '.join(METHODS)}, not {config.method!r}"),
        (config.mixing in MIXINGS, f"mixing must be one of {', '.join(MIXINGS)}, not {config.mixing!r}"),
        (bool(config.tasks), "name at least one task"),
        (config.epochs >= 1, "epochs must be at least 1"),
        (config.batch_size >= 1 and config.grad_accum >= 1, "batch size and gradient accumulation must be at least 1"),
        (runtime.device in DEVICES, f"device must be one of {', '.join(DEVICES)}, not {runtime.device!r}"),
        (runtime.precision in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)}, not {runtime.precision!r}"),
    ]
    for ok, message in checks:
        if not ok:
            raise FinetuneError(message)
    unknown = sorted((set(config.data_files) | set(config.eval_data_files)) - set(config.tasks))
    if unknown:
        raise FinetuneError(f"data files given for {', '.join(unknown)}, which is not among the tasks {', '.join(config.tasks)}")
    if looks_like_path(config.model) and not Path(config.model).is_dir():
        raise FinetuneError(f"model {config.model} does not exist (a local model is a directory saved by save_pretrained)")
    for kind, files in (("training", config.data_files), ("held-out", config.eval_data_files)):
        for task, paths in files.items():
            for path in [paths] if isinstance(paths, str) else paths:
                if unreadable(path):
                    raise FinetuneError(f"{kind} data file of {task}: {path} {unreadable(path)}")
    check_finished(config.model)
    inputs = [("the model", config.model if looks_like_path(config.model) else None)]
    for kind, files in (("the training data", config.data_files), ("the held-out data", config.eval_data_files)):
        inputs += [(f"{kind} of {task}", path) for task, paths in files.items() for path in ([paths] if isinstance(paths, str) else paths)]
    inputs += [("the task folder", folder) for folder in runtime.include_path]
    check_apart([("the output folder", output_dir)], inputs)
    check_writable(output_dir)


def looks_like_path(model: str) -> bool:
    """Whether ``model`` names a local directory rather than a Hugging Face id ("name" or "owner/name").

    So a missing local model is refused at once instead of after the hub's retries:
    anything else than "name" or "owner/name", and an "owner/name" whose owner is a
    local folder (``models/no-such-dir`` beside ``models/``).
    """
    owner, _, _ = model.partition("/")
    return (
        model.startswith((".", "/", "~"))
        or model.count("/") > 1
        or "\\" in model
        or Path(model).exists()
        or ("/" in model and Path(owner).is_dir())
    )


def check_finished(model: str | Path, what: str = "model") -> None:
    """Refuse a local model path that does not exist, before a loader takes it for a Hugging Face id (and
    answers that a repo id must be 'namespace/repo_name'), and a model folder whose fine-tuning stopped before
    it finished (its summary says ``complete: false``): it holds a half-trained model, or none. The command
    that made it resumes it."""
    if not Path(model).is_dir():
        if looks_like_path(str(model)) and not Path(model).exists():
            raise FinetuneError(f"{what} {model} does not exist (a local model is a folder saved by save_pretrained)")
        return
    summary = read_summary(model)
    if summary is not None and summary.get("complete") is False:
        raise FinetuneError(
            f"{what} {model} holds an unfinished fine-tuning run (complete: false): the memtasks finetune command that made it resumes it"
        )


def model_reference(model: str) -> str:
    """A local model as its absolute path, a Hugging Face id as it is."""
    return str(Path(model).resolve()) if Path(model).is_dir() else model


def claim(out: Path, config: FinetuneConfig, overwrite: bool) -> dict | None:
    """Check that ``out`` can be this run's directory; returns the summary of the same run found there, if any.

    Nothing is created or removed here (``finetune`` clears an overwritten directory once the
    run has passed its checks), so a run refused before training leaves ``out`` as it was.
    """
    if overwrite or not out.exists() or not any(out.iterdir()):
        return None
    summary = read_summary(out)
    if summary is None:
        raise FinetuneError(f"{out} is not empty and holds no memtasks run: choose a new output directory or pass --overwrite")
    if summary.get("config") != config.identity():
        differing = sorted(k for k, v in config.identity().items() if summary.get("config", {}).get(k) != v)
        raise FinetuneError(
            f"{out} holds another run (it differs in {', '.join(differing)}): choose a new output directory or pass --overwrite"
        )
    return summary


def read_summary(model_dir: str | Path) -> dict | None:
    """The training summary of a fine-tuned model directory, or None when it has none."""
    path = Path(model_dir) / SUMMARY_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise FinetuneError(f"{path}: not a readable training summary ({error.msg})") from None


def write_summary(out: Path, summary: dict) -> None:
    """Write ``summary`` into ``out`` whole or not at all: an interrupt leaves the previous one."""
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / SUMMARY_FILE, json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
