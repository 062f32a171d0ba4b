"""Fine-tuning examples of one task or a mixture of tasks, in the tasks' own format."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from memtasks.datafiles import fields_of, record_place, record_places
from memtasks.finetune.config import MIXINGS
from memtasks.probes import field_value
from memtasks.tasks import FineTuningFormat, TaskSpec, is_member, load_records


@dataclass(frozen=True)
class Example:
    """One fine-tuning pair and the task it belongs to."""

    task: str
    source: str
    target: str
    references: tuple[str, ...] = ()


def task_examples(
    spec: TaskSpec,
    split: str | None = None,
    data_files: str | Sequence[str] | None = None,
    limit: int | None = None,
    training: bool = True,
    holdout: float | None = None,
) -> list[Example]:
    """A task's records as fine-tuning examples (the first ``limit`` of them when given).

    ``split`` defaults to the task's training split; ``data_files`` replaces the
    Hugging Face dataset with local files. For ``training`` examples, the
    records of the task's held-out slice (:func:`memtasks.tasks.is_member`;
    ``holdout`` replaces the share the metadata gives) are left out before
    ``limit`` applies: the probes use them as non-members.
    """
    fmt = FineTuningFormat.from_spec(spec)
    meta = spec.metadata
    records, source = load_records(
        meta.get("dataset_path"),
        meta.get("dataset_name"),
        split or meta.get("split", "train"),
        data_files,
        where=spec.where(),
        revision=meta.get("revision"),
        load_kwargs=meta.get("load_kwargs"),
    )
    where = f"{spec.where()}, {source}"
    indices = list(range(len(records)))
    if training:
        options = {**spec.metadata, "holdout": holdout} if holdout is not None else spec.metadata
        indices = _members(records, spec.metadata["input_field"], options, where)
    if limit is not None:
        indices = indices[:limit]
    if len(indices) != len(records):
        records = records.select(indices)
    # Errors name a record by its place in the file, whatever was left out before it.
    place = record_places(where)
    return [Example(spec.name, fmt.source(r, place(i)), fmt.target(r, place(i)), fmt.references(r)) for i, r in zip(indices, records)]


def _members(records, field: str, options: Mapping, where: str) -> list[int]:
    """Indices of the records fine-tuned on: those outside the held-out slice (and those with no text, refused later)."""
    keep = []
    for index, record in enumerate(records):
        try:
            text = field_value(record, field)
        except KeyError:
            raise ValueError(f"{record_place(where, index)}: field '{field}' is missing ({fields_of(record)})") from None
        if not isinstance(text, str) or is_member(text, options):
            keep.append(index)
    return keep


def mix(per_task: Mapping[str, list[Example]], mixing: str = "proportional", seed: int = 1234) -> list[Example]:
    """One training set from several tasks.

    ``proportional`` keeps every example, so each task weighs as much as its
    size; ``equal`` draws (without replacement, seeded) as many examples from
    each task as the smallest task has, so each task is 1/T of the mixture.
    """
    if mixing not in MIXINGS:
        raise ValueError(f"mixing must be one of {', '.join(MIXINGS)}, not {mixing!r}")
    empty = [task for task, examples in per_task.items() if not examples]
    if empty:
        raise ValueError(f"no training examples for {', '.join(empty)}")
    if mixing == "proportional" or len(per_task) == 1:
        return [example for examples in per_task.values() for example in examples]
    size = min(len(examples) for examples in per_task.values())
    rng = np.random.default_rng(seed)
    mixed = []
    for examples in per_task.values():
        picked = np.sort(rng.choice(len(examples), size=size, replace=False))
        mixed.extend(examples[i] for i in picked)
    return mixed
