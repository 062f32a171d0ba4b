"""A study's manifest: every step the study ran and where its outputs are (standard library only).

``memtasks study`` writes it (``<study folder>/manifest.json``) after each
step; ``memtasks report`` reads it to name the model of each results file.
Its JSON form::

    {"study": "demo",
     "runs": [{"id": "m/pretrained/mem_xsum", "kind": "eval", "task": "mem_xsum",
               "model": {"name": "m", "path": "models/m", "base": null, "method": "pretrained",
                         "trained_tasks": [], "epochs": null, "size": "135M", "mixing": null},
               "results": "runs/.../results_<date>.json", "samples": "runs/.../samples_mem_xsum_<date>.jsonl",
               "status": "done", "seconds": 24.6},
              {"id": "m-full-mem_xsum/finetune", "kind": "finetune", "model_dir": "models/m-full-mem_xsum",
               "summary": {...}, "status": "done"},
              {"id": "m/attention/mem_xsum", "kind": "attention", "task": "mem_xsum", "model": {...},
               "results": "attention/attention_mem_xsum_<date>.json", "samples": null, "status": "done"}]}

Paths are relative to the manifest's folder (a model's ``path`` too, when the
model lives in the study folder; else it is a Hugging Face id or a path as the
config gave it), so a study folder can be moved or committed. Reading is
strict: a missing, misspelled or unknown field is a :class:`ManifestError`
naming the file, the step and the field, never a silent default.

A step is listed only once it has finished and its outputs are in place:
the manifest is written to a temporary file renamed over the old one, so an
interrupted run leaves the previous manifest, never a partial one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memtasks.outputs import write_atomic

MANIFEST = "manifest.json"
METHODS = ("pretrained", "full", "lora")


class ManifestError(ValueError):
    """A study manifest that cannot be read; the message names the file and the field."""


@dataclass(frozen=True)
class StudyModel:
    """The model a step probed: its name in the study and how it was made.

    ``base`` is the name of the pre-trained model it was fine-tuned from
    (None for a pre-trained model); ``mixing`` is the fine-tuning mixture's
    weighting (``proportional`` or ``equal``, see
    :func:`memtasks.finetune.data.mix`) when it was fine-tuned; ``loss`` which
    tokens carried its fine-tuning loss (``output-only``, the study's recipe, or
    ``whole-sequence``; None for a pre-trained model or a study that predates it).
    """

    name: str
    path: str | None = None
    base: str | None = None
    method: str = "pretrained"
    trained_tasks: tuple[str, ...] = ()
    epochs: int | None = None
    size: str | None = None
    mixing: str | None = None
    loss: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": self.path,
            "base": self.base,
            "method": self.method,
            "trained_tasks": list(self.trained_tasks),
            "epochs": self.epochs,
            "size": self.size,
            "mixing": self.mixing,
            "loss": self.loss,
        }


@dataclass(frozen=True)
class EvalStep:
    """One lm-eval run of one model on one task: its results file and per-sample log."""

    id: str
    task: str
    model: StudyModel
    results: str
    samples: str | None = None
    status: str = "done"
    seconds: float | None = None

    kind = "eval"

    def outputs(self) -> tuple[str, ...]:
        return tuple(p for p in (self.results, self.samples) if p)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "task": self.task,
            "model": self.model.to_dict(),
            "results": self.results,
            "samples": self.samples,
            "status": self.status,
            "seconds": self.seconds,
        }


@dataclass(frozen=True)
class FinetuneStep:
    """One fine-tuning: the model folder and what its training summary said."""

    id: str
    model_dir: str
    summary: Mapping[str, Any] = field(default_factory=dict)
    status: str = "done"

    kind = "finetune"

    def outputs(self) -> tuple[str, ...]:
        return (self.model_dir,)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "model_dir": self.model_dir, "summary": dict(self.summary), "status": self.status}


@dataclass(frozen=True)
class AttentionStep(EvalStep):
    """``memtasks attention`` on one model and one task: its results file, in lm-eval's results shape.

    An :class:`EvalStep` of another kind: it names the model of a results file
    of one task, which is all the report needs to pair a model's attention
    dispersion with its memorization.
    """

    kind = "attention"


Step = EvalStep | FinetuneStep


@dataclass
class StudyManifest:
    """Every step of a study, in the order first run; :meth:`record` saves it after each step."""

    path: Path
    study: str
    runs: list[Step] = field(default_factory=list)

    @classmethod
    def read(cls, path: str | Path) -> StudyManifest:
        """The manifest at ``path``; raises :class:`ManifestError` naming the file and field of the first problem."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as error:
            raise ManifestError(f"{path}: not a readable manifest ({error})") from None
        return cls.from_dict(path, data)

    @classmethod
    def from_dict(cls, path: Path, data: Any) -> StudyManifest:
        fields = _fields(data, f"{path}", required={"study": str, "runs": list}, optional={})
        runs: list[Step] = []
        for i, entry in enumerate(fields["runs"]):
            runs.append(_step(entry, f"{path}: runs[{i}]"))
        ids = [run.id for run in runs]
        repeated = next((i for i in ids if ids.count(i) > 1), None)
        if repeated is not None:
            raise ManifestError(f"{path}: runs: step id {repeated!r} appears twice")
        return cls(path, fields["study"], runs)

    @classmethod
    def load(cls, path: str | Path, study: str) -> StudyManifest:
        """The manifest at ``path`` when there is one, else an empty one of ``study``."""
        path = Path(path)
        return cls.read(path) if path.is_file() else cls(path, study)

    @property
    def root(self) -> Path:
        """The study folder: what every path of the manifest is relative to."""
        return self.path.parent

    def evals(self) -> list[EvalStep]:
        """Every step that wrote a results file of one task: lm-eval runs and attention measurements."""
        return [run for run in self.runs if isinstance(run, EvalStep)]

    def find(self, run_id: str) -> Step | None:
        return next((run for run in self.runs if run.id == run_id), None)

    def record(self, run: Step) -> None:
        """Add ``run`` (or replace the step of the same id) and save the manifest atomically."""
        ids = [r.id for r in self.runs]
        if run.id in ids:
            self.runs[ids.index(run.id)] = run
        else:
            self.runs.append(run)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, json.dumps(self.to_dict(), indent=2) + "\n")

    def done(self, run_id: str) -> bool:
        """Whether step ``run_id`` finished and its outputs are still there."""
        run = self.find(run_id)
        return run is not None and run.status == "done" and all((self.root / p).exists() for p in run.outputs())

    def to_dict(self) -> dict[str, Any]:
        return {"study": self.study, "runs": [run.to_dict() for run in self.runs]}


_OPTIONAL_STR = (str, type(None))
_OPTIONAL_INT = (int, type(None))
_OPTIONAL_NUMBER = (int, float, type(None))


def _fields(data: Any, where: str, required: Mapping[str, Any], optional: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` checked against its known fields and their JSON types; errors name ``where`` and the field."""
    if not isinstance(data, dict):
        raise ManifestError(f"{where}: expected a JSON object, got {type(data).__name__}")
    known = {**required, **optional}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ManifestError(f"{where}: unknown field {unknown[0]!r} (known: {', '.join(known)})")
    missing = [name for name in required if name not in data]
    if missing:
        raise ManifestError(f"{where}: field {missing[0]!r} is missing")
    for name, value in data.items():
        types = known[name]
        wrong = not isinstance(value, types) or (isinstance(value, bool) and bool not in _tuple(types))
        if wrong or (isinstance(value, float) and not math.isfinite(value)):
            raise ManifestError(f"{where}: field {name!r} has the wrong type ({type(value).__name__}: {value!r})")
    return dict(data)


def _tuple(types: Any) -> tuple:
    return types if isinstance(types, tuple) else (types,)


def _step(entry: Any, where: str) -> Step:
    kind = entry.get("kind") if isinstance(entry, dict) else None
    if kind in ("eval", "attention"):
        fields = _fields(
            entry,
            where,
            required={"id": str, "kind": str, "task": str, "model": dict, "results": str},
            optional={"samples": _OPTIONAL_STR, "status": str, "seconds": _OPTIONAL_NUMBER},
        )
        fields.pop("kind")
        fields["model"] = _model(fields["model"], f"{where}.model")
        return (EvalStep if kind == "eval" else AttentionStep)(**fields)
    if kind == "finetune":
        fields = _fields(
            entry,
            where,
            required={"id": str, "kind": str, "model_dir": str},
            optional={"summary": dict, "status": str},
        )
        fields.pop("kind")
        return FinetuneStep(**fields)
    if isinstance(entry, dict) and "kind" not in entry:
        raise ManifestError(f"{where}: field 'kind' is missing")
    shown = repr(kind) if isinstance(entry, dict) else type(entry).__name__
    raise ManifestError(f"{where}: field 'kind' must be 'eval', 'finetune' or 'attention', got {shown}")


def _model(data: Any, where: str) -> StudyModel:
    fields = _fields(
        data,
        where,
        required={"name": str, "method": str},
        optional={
            "path": _OPTIONAL_STR,
            "base": _OPTIONAL_STR,
            "trained_tasks": list,
            "epochs": _OPTIONAL_INT,
            "size": _OPTIONAL_STR,
            "mixing": _OPTIONAL_STR,
            "loss": _OPTIONAL_STR,
        },
    )
    if fields["method"] not in METHODS:
        raise ManifestError(f"{where}: field 'method' must be one of {', '.join(METHODS)}, got {fields['method']!r}")
    tasks = fields.get("trained_tasks", [])
    if not all(isinstance(task, str) for task in tasks):
        raise ManifestError(f"{where}: field 'trained_tasks' must list task names")
    fields["trained_tasks"] = tuple(tasks)
    return StudyModel(**fields)
