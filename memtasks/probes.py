"""Memorization probes (Definition 1 of Zeng et al., 2024).

A training input x is cut into a prefix p of k tokens and the suffix s that
follows; the model continues p, and its continuation is compared with s.

Tokens here are whitespace-delimited words, whatever the model: every model is
probed with the same prefixes, and prefix + suffix is exactly the original text
(the whitespace between them goes to neither).
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from dataclasses import dataclass, field

import numpy as np

from memtasks.datafiles import decoded_lines, fields_of, parse_json_line, record_place

DEFAULT_PREFIX_TOKENS = 50
DEFAULT_MIN_SUFFIX_TOKENS = 10
DEFAULT_N_PROBES = 10_000
DEFAULT_SEED = 1234
# Share of a training split's distinct inputs kept out of fine-tuning and probed
# as non-members (the false-positive floor).
DEFAULT_HOLDOUT = 0.2

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


def required_value(record: Mapping, path: str, place: str):
    """The value at ``path`` in ``record`` (:func:`field_value`); a ValueError naming ``place`` and the
    fields the record has when it is missing or null."""
    try:
        value = field_value(record, path)
    except KeyError:
        value = None
    if value is None:
        # datasets fills a column that a record lacks with None: missing and null are one case.
        raise ValueError(f"{place}: field '{path}' is missing ({fields_of(record)})")
    return value


def input_text(record: Mapping, field: str, place: str) -> str:
    """The text ``record`` holds in ``field``; a ValueError naming ``place`` when it is missing, null
    or not text."""
    text = required_value(record, field, place)
    if not isinstance(text, str):
        raise ValueError(f"{place}: field '{field}' must be text, got {type(text).__name__}")
    return text


def held_out(text: str, fraction: float, seed: int = DEFAULT_SEED) -> bool:
    """Whether a training input belongs to the held-out slice of its split.

    u(x) = first 64 bits of SHA-256(seed, x) / 2**64 is uniform on [0, 1); x is
    held out when u(x) < ``fraction``. The decision depends on the input text
    alone, not on its position, so records that share a passage (a SQuAD
    context asked about five times) all fall on the same side, the slice is
    the same whatever order the split is read in, and ``memtasks finetune``
    and the probes agree on it without sharing state.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"holdout must be at least 0 and below 1, got {fraction}")
    digest = hashlib.sha256(f"{seed}\0{text}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


@dataclass(frozen=True)
class ProbeSet:
    """Probes drawn from a dataset split, with what was skipped and why."""

    probes: list[MemorizationProbe]
    n_records: int
    n_too_short: int
    n_eligible: int
    # Records whose input repeats an earlier record's, folded into it: each
    # distinct input is probed (and indexed) once.
    n_duplicates: int = 0
    # Records left out by ``keep`` (the other side of a holdout).
    n_excluded: int = 0
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
    keep: Callable[[str], bool] | None = None,
) -> ProbeSet:
    """Cut every record's ``field`` into prefix and suffix and draw ``n`` probes.

    Records whose text has fewer than ``prefix_tokens + min_suffix_tokens``
    words are skipped and counted, and so is every record whose text equals an
    earlier record's (QA datasets repeat a passage once per question): its
    input is probed once, under the first record's id. ``keep``, when given,
    selects the records to probe by their text (one side of a holdout); the
    others are counted as excluded. ``n`` eligible records (all of them when
    ``n`` is None or larger) are drawn without replacement with a fixed seed
    (numpy's PCG64, the same on every machine) and kept in dataset order.
    ``field`` may name a nested value with dots ("translation.en"). A record
    without ``field`` (or with null there) or whose ``field`` is not a string raises a ValueError
    naming ``source``, the record and the field.
    """
    if prefix_tokens < 1 or min_suffix_tokens < 1:
        raise ValueError("prefix_tokens and min_suffix_tokens must be at least 1")
    eligible: list[MemorizationProbe] = []
    n_records = too_short = duplicates = excluded = 0
    seen: set[str] = set()
    for index, record in enumerate(records):
        n_records += 1
        text = input_text(record, field, record_place(source, index))
        if keep is not None and not keep(text):
            excluded += 1
            continue
        if text in seen:
            duplicates += 1
            continue
        seen.add(text)
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
    return ProbeSet(chosen, n_records, too_short, len(eligible), duplicates, excluded, eligible)


def read_texts(path: str | Path, field: str = "text") -> list[str]:
    """Texts of a JSONL file's ``field`` (``.jsonl``/``.json``) or the non-blank lines of a plain text file.

    A UTF-8 byte order mark at the start is dropped; a line that is not valid
    UTF-8, not valid JSON or without a text ``field`` raises a ValueError
    naming the file and line, and so does a file with no text at all.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(path))
    texts = []
    for number, line in decoded_lines(path):
        if not line.strip():
            continue
        if path.suffix not in (".jsonl", ".json"):
            texts.append(line)
            continue
        try:
            value = field_value(parse_json_line(line, f"{path}:{number}"), field)
        except KeyError:
            value = None
        if not isinstance(value, str):
            raise ValueError(f"{path}:{number}: field '{field}' is missing or not text")
        texts.append(value)
    if not texts:
        raise ValueError(f"{path}: no texts (the file is empty or holds only blank lines)")
    return texts
