"""What a memorization task's YAML says, for the commands beside the harness.

The probes, the fine-tuning recipe and the attention measures all read the same
task definition: ``task_spec`` finds a task's YAML through lm-eval's task index
(memtasks' folder plus any ``include_path``), ``load_records`` loads its split,
and ``FineTuningFormat`` turns a record into the (source, target) pair the task
is fine-tuned on, the study's "instruction + input -> output" format:

    source = instruction + "\\n\\n" + input        (or the task's Jinja ``finetune_input``)
    target = output, with integer or boolean labels named by ``output_labels``
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from memtasks.datafiles import DataFileError, count_records, find_problem, record_places, unreadable
from memtasks.outcomes import base_task
from memtasks.probes import DEFAULT_HOLDOUT, DEFAULT_SEED, field_value, held_out, required_value

LOCAL_FORMATS = {"jsonl": "json", "json": "json", "csv": "csv", "parquet": "parquet"}


def task_configs_dir() -> Path:
    """The folder of memtasks' lm-eval task YAMLs (for ``--include_path``)."""
    return Path(str(resources.files("memtasks.task_configs")))


@dataclass(frozen=True)
class TaskSpec:
    """A task's name, YAML file and ``metadata`` (dataset, fields, fine-tuning format)."""

    name: str
    yaml_path: Path | None
    metadata: Mapping[str, Any]
    dataset_kwargs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def options(self) -> dict[str, Any]:
        """What ``load_probes`` receives: the metadata with ``dataset_kwargs`` on top, as lm-eval merges them."""
        return {**self.metadata, **self.dataset_kwargs}

    def where(self) -> str:
        return f"task {self.name} ({self.yaml_path})" if self.yaml_path else f"task {self.name}"


@lru_cache(maxsize=4)
def _task_index(include_path: tuple[str, ...]) -> dict:
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=[*include_path, str(task_configs_dir())], include_defaults=False)
    return manager.task_index


def known_tasks(include_path: Sequence[str | Path] = ()) -> set[str]:
    """Names of the tasks, groups and tags in memtasks' folder and ``include_path`` (not lm-eval's own)."""
    return set(_task_index(tuple(str(p) for p in include_path)))


def task_spec(name: str, include_path: Sequence[str | Path] = ()) -> TaskSpec:
    """The definition of task ``name`` from memtasks' task folder and ``include_path``."""
    index = _task_index(tuple(str(p) for p in include_path))
    entry = index.get(name)
    if entry is None:
        known = sorted(n for n, e in index.items() if n.startswith("mem_") and e.kind.name == "TASK" and base_task(n) == n)
        raise ValueError(f"unknown task '{name}' (memorization tasks: {', '.join(known)}, and their variants)")
    if entry.kind.name != "TASK":
        raise ValueError(f"'{name}' is a {entry.kind.name.lower()}, not a task: name its tasks one by one")
    config = entry.cfg or {}
    return TaskSpec(name, entry.yaml_path, dict(config.get("metadata") or {}), dict(config.get("dataset_kwargs") or {}))


def holdout_fraction(options: Mapping[str, Any]) -> float:
    """The share of a task's training inputs kept out of fine-tuning and probed as non-members.

    ``holdout`` from the task's metadata; by default ``DEFAULT_HOLDOUT``, or 0
    when the metadata names non-members of its own (``nonmember_split`` or
    ``nonmember_data_files``): a model fine-tuned on the whole split is then
    probed on all of it.
    """
    value = options.get("holdout")
    if value is None:
        own = options.get("nonmember_split") or options.get("nonmember_data_files")
        return 0.0 if own else DEFAULT_HOLDOUT
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"metadata 'holdout' must be a number at least 0 and below 1, got {value!r}")
    return float(value)


def is_member(text: str, options: Mapping[str, Any]) -> bool:
    """Whether a training input is fine-tuned on (not in the task's held-out slice)."""
    fraction = holdout_fraction(options)
    return fraction == 0 or not held_out(text, fraction, int(options.get("seed", DEFAULT_SEED)))


def load_records(
    dataset_path: str | None = None,
    dataset_name: str | None = None,
    split: str = "train",
    data_files: str | Sequence[str] | None = None,
    where: str = "task",
    revision: str | None = None,
    load_kwargs: Mapping[str, Any] | None = None,
):
    """A task's records as a ``datasets.Dataset``, with a description of where they came from.

    ``data_files`` (JSON, JSONL, CSV or parquet, by extension) replaces the
    Hugging Face dataset ``dataset_path``/``dataset_name``/``split``, loaded at
    ``revision`` (a branch, tag or commit: a loading-script dataset's
    ``refs/convert/parquet``) with any other ``load_dataset`` arguments in ``load_kwargs``.
    A local file that is empty, not UTF-8, malformed or nested too deeply for
    ``datasets`` raises :class:`memtasks.datafiles.DataFileError` naming
    ``where``, the file and the line; a file's every record is a row, none skipped.
    """
    import datasets

    if data_files:
        files = [data_files] if isinstance(data_files, str) else list(data_files)
        return _load_local(files, where), files[0]
    if dataset_path is None:
        raise ValueError(f"{where}: needs dataset_path or data_files in its metadata")
    if load_kwargs is not None and not isinstance(load_kwargs, Mapping):
        raise ValueError(f"{where}: metadata 'load_kwargs' must be a mapping of load_dataset arguments, got {load_kwargs!r}")
    extra = dict(load_kwargs or {})
    if revision:
        extra["revision"] = revision
    return datasets.load_dataset(dataset_path, dataset_name, split=split, **extra), f"{dataset_path}:{split}"


def _load_local(files: Sequence[str], where: str):
    """Local data files as one ``datasets.Dataset``, checked before and after ``datasets`` reads them.

    Every record of the files becomes a row: a file that ``datasets`` cannot
    read, or reads into another number of rows than it has records, is an
    error naming the file and, where one is at fault, the line
    (:mod:`memtasks.datafiles`).
    """
    import datasets

    builders = set()
    counts = []
    for file in files:
        if unreadable(file):
            raise FileNotFoundError(f"{where}: data file {file} {unreadable(file)}")
        suffix = Path(file).suffix.lstrip(".")
        if suffix not in LOCAL_FORMATS:
            raise ValueError(f"{where}: {file}: cannot read .{suffix} files: use JSON, JSONL, CSV or parquet")
        builders.add(LOCAL_FORMATS[suffix])
        counts.append(_checked(count_records, file, where))
        # Every line parsed before datasets reads the file: on a malformed one it would log a pyarrow line of its own.
        _checked(find_problem, file, where)
    if len(builders) > 1:
        raise ValueError(f"{where}: data files {', '.join(files)} mix formats: give files of one format")
    named = files[0] if len(files) == 1 else f"{files[0]} and {len(files) - 1} more"
    try:
        with _no_progress_bars():  # reading a local file takes a moment; a bar per file would only add lines
            records = datasets.load_dataset(builders.pop(), data_files=list(files), split="train")
    except (datasets.exceptions.DatasetGenerationError, ValueError) as error:
        for file in files:
            _checked(find_problem, file, where)
        cause = error.__cause__ or error
        raise DataFileError(f"{where}: cannot read {named}: {' '.join(str(cause).split()) or type(cause).__name__}") from None
    if None not in counts and len(records) != sum(counts):
        for file in files:
            _checked(find_problem, file, where)
        raise DataFileError(f"{where}: {named}: {sum(counts)} records in the file, but datasets read {len(records)}")
    if len(records) == 0:
        raise DataFileError(f"{where}: {named} holds no records")
    return records


@contextmanager
def _no_progress_bars() -> Iterator[None]:
    """datasets' progress bars off for the duration, as they were after."""
    import datasets

    were_on = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if were_on:
            datasets.enable_progress_bars()


def _checked(check, file: str, where: str):
    """``check(file)``, its error prefixed with ``where``."""
    try:
        return check(file)
    except DataFileError as error:
        raise DataFileError(f"{where}: {error}") from None


@dataclass(frozen=True)
class FineTuningFormat:
    """How a task's records become fine-tuning pairs (the study's Table 8 format).

    ``input_template`` is Jinja over the record's fields plus ``instruction``
    and ``input`` (the value of ``input_field``); list outputs (extractive QA
    answers) train on their first item, or on ``empty_output`` when empty.
    """

    instruction: str
    input_field: str
    output_field: str
    input_template: str = "{{ instruction }}\n\n{{ input }}"
    output_labels: tuple[str, ...] | None = None
    empty_output: str | None = None

    @classmethod
    def from_spec(cls, spec: TaskSpec) -> FineTuningFormat:
        meta = spec.metadata
        missing = [key for key in ("instruction", "input_field", "output_field") if not meta.get(key)]
        if missing:
            raise ValueError(
                f"{spec.where()} has no fine-tuning fields: add {', '.join(missing)} to its metadata"
            )
        labels = meta.get("output_labels")
        return cls(
            instruction=str(meta["instruction"]),
            input_field=str(meta["input_field"]),
            output_field=str(meta["output_field"]),
            input_template=str(meta.get("finetune_input") or cls.input_template),
            output_labels=tuple(str(label) for label in labels) if labels else None,
            empty_output=meta.get("empty_output"),
        )

    def source(self, record: Mapping[str, Any], where: str = "record") -> str:
        text = self._field(record, self.input_field, where)
        if not isinstance(text, str):
            raise ValueError(f"{where}: field '{self.input_field}' must be text, got {type(text).__name__}")
        # A record may have fields named "instruction" or "input" itself (ChatDoctor data does).
        return _template(self.input_template).render({**record, "instruction": self.instruction, "input": text})

    def target(self, record: Mapping[str, Any], where: str = "record") -> str:
        value = self._field(record, self.output_field, where)
        if isinstance(value, (list, tuple)):
            if not value:
                if self.empty_output is None:
                    raise ValueError(f"{where}: field '{self.output_field}' is an empty list and the task sets no empty_output")
                return str(self.empty_output)
            value = value[0]
        if isinstance(value, bool) or isinstance(value, int):
            if self.output_labels is None:
                raise ValueError(f"{where}: field '{self.output_field}' is a label id ({value}): the task needs output_labels")
            if not 0 <= int(value) < len(self.output_labels):
                raise ValueError(f"{where}: field '{self.output_field}' = {value} has no name in output_labels {list(self.output_labels)}")
            return self.output_labels[int(value)]
        if not isinstance(value, str):
            raise ValueError(f"{where}: field '{self.output_field}' must be text or a label, got {type(value).__name__}")
        return value

    def references(self, record: Mapping[str, Any]) -> tuple[str, ...]:
        """Every acceptable output (all answers of a QA record), for quality checks."""
        try:
            value = field_value(record, self.output_field)
        except KeyError:
            return ()
        if isinstance(value, (list, tuple)) and value:
            return tuple(str(v) for v in value)
        return (self.target(record),)

    def pairs(self, records, source: str) -> list[tuple[str, str]]:
        """Every record's (source, target); a bad record raises naming ``source``, its index and the field."""
        place = record_places(source)
        return [(self.source(record, place(i)), self.target(record, place(i))) for i, record in enumerate(records)]

    @staticmethod
    def _field(record: Mapping[str, Any], path: str, where: str):
        return required_value(record, path, where)


@lru_cache(maxsize=32)
def _template(text: str):
    import jinja2

    return jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False).from_string(text)
