"""Memorization probes (Definition 1 of Zeng et al., 2024).

A training input x is cut into a prefix p of k tokens and the suffix s that
follows; the model continues p, and its continuation is compared with s.

Tokens here are whitespace-delimited words, whatever the model: every model is
probed with the same prefixes, and prefix + suffix is exactly the original text
(the whitespace between them goes to neither).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from dataclasses import dataclass, field

import numpy as np

DEFAULT_PREFIX_TOKENS = 50
DEFAULT_MIN_SUFFIX_TOKENS = 10
DEFAULT_N_PROBES = 10_000
DEFAULT_SEED = 1234

_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class MemorizationProbe:
    """One probe: the record it comes from, its prefix and its true suffix."""

    id: str
    prefix: str
    suffix: str


def split_prefix(text: str, prefix_tokens: int) -> tuple[str, str] | None:
    """``(prefix, suffix)`` of ``text`` at its ``prefix_tokens``-th word, or None
    when nothing follows the prefix."""
    words = _WORD.finditer(text)
    end = None
    for count, match in enumerate(words, start=1):
        if count == prefix_tokens:
            end = match.end()
            break
    if end is None:
        return None
    suffix = text[end:].lstrip()
    return (text[:end], suffix) if suffix else None


def count_words(text: str) -> int:
    """Number of whitespace-delimited words: the token unit of probes."""
    return len(_WORD.findall(text))


def field_value(record: Mapping, path: str):
    """The value at ``path`` in ``record``; dots reach into nested records ("translation.en").

    Raises KeyError(path) when a key on the way is missing.
    """
    value = record
    for key in path.split("."):
        if not isinstance(value, Mapping) or key not in value:
            raise KeyError(path)
        value = value[key]
    return value


@dataclass(frozen=True)
class ProbeSet:
    """Probes drawn from a dataset split, with what was skipped and why."""

    probes: list[MemorizationProbe]
    n_records: int
    n_too_short: int
    n_eligible: int
    # Every record long enough to probe, drawn or not: the whole split's
    # suffixes, for retrieval over the split (search_corpus: split).
    eligible: list[MemorizationProbe] = field(default_factory=list, repr=False)


def make_probes(
    records: Iterable[Mapping],
    field: str,
    prefix_tokens: int = DEFAULT_PREFIX_TOKENS,
    min_suffix_tokens: int = DEFAULT_MIN_SUFFIX_TOKENS,
    n: int | None = DEFAULT_N_PROBES,
    seed: int = DEFAULT_SEED,
    id_field: str | None = None,
    source: str = "dataset",
) -> ProbeSet:
    """Cut every record's ``field`` into prefix and suffix and draw ``n`` probes.

    Records whose text has fewer than ``prefix_tokens + min_suffix_tokens``
    words are skipped and counted. ``n`` eligible records (all of them when
    ``n`` is None or larger) are drawn without replacement with a fixed seed
    (numpy's PCG64, the same on every machine) and kept in dataset order.
    ``field`` may name a nested value with dots ("translation.en"). A record
    without ``field`` or whose ``field`` is not a string raises a ValueError
    naming ``source``, the record and the field.
    """
    if prefix_tokens < 1 or min_suffix_tokens < 1:
        raise ValueError("prefix_tokens and min_suffix_tokens must be at least 1")
    eligible: list[MemorizationProbe] = []
    n_records = too_short = 0
    for index, record in enumerate(records):
        n_records += 1
        try:
            text = field_value(record, field)
        except KeyError:
            raise ValueError(f"{source}: record {index}: field '{field}' is missing (fields: {', '.join(record)})") from None
        if not isinstance(text, str):
            raise ValueError(f"{source}: record {index}: field '{field}' must be text, got {type(text).__name__}")
        cut = split_prefix(text, prefix_tokens)
        if cut is None or count_words(cut[1]) < min_suffix_tokens:
            too_short += 1
            continue
        probe_id = str(record[id_field]) if id_field else str(index)
        eligible.append(MemorizationProbe(probe_id, cut[0], cut[1]))
    chosen = eligible
    if n is not None and n < len(eligible):
        picked = np.sort(np.random.default_rng(seed).choice(len(eligible), size=n, replace=False))
        chosen = [eligible[i] for i in picked]
    return ProbeSet(chosen, n_records, too_short, len(eligible), eligible)


def read_texts(path: str | Path, field: str = "text") -> list[str]:
    """Texts of a JSONL file's ``field`` (``.jsonl``/``.json``) or the lines of a plain text file."""
    path = Path(path)
    lines = path.read_text(encoding="utf-8").split("\n")
    if path.suffix not in (".jsonl", ".json"):
        return [line for line in lines if line.strip()]
    texts = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            value = field_value(json.loads(line), field)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}:{number}: invalid JSON ({error.msg})") from None
        except KeyError:
            value = None
        if not isinstance(value, str):
            raise ValueError(f"{path}:{number}: field '{field}' is missing or not text")
        texts.append(value)
    return texts
