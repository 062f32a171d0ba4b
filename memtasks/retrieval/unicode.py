"""The Unicode 12.1 character classes of Lucene 9's StandardTokenizer, and Java's lowercase.

Lucene 9 (Elasticsearch 8) generates its tokenizer from Unicode 12.1 data; the
properties it names ship with memtasks as range tables
(``unicode_12_1.json``, rebuilt by ``tests/tools/unicode_tables.py``), so the
analyzer does not depend on the Unicode version of any installed module.

Every code point gets one *class*: the combination of the properties and
literal characters that the grammar (:mod:`memtasks.retrieval.grammar`) tells
apart. A two-level table maps a code point to its class:
``classes[blocks[cp >> 8] * 256 + (cp & 255)]``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

N_CODE_POINTS = 0x110000

# Word_Break values the grammar uses, in the order of their feature codes (0 = any other value).
WORD_BREAK = (
    "ALetter", "Hebrew_Letter", "Numeric", "Katakana", "ExtendNumLet", "MidLetter", "MidNum",
    "MidNumLet", "Single_Quote", "Double_Quote", "Format", "Extend", "ZWJ", "Regional_Indicator",
)
# Binary properties and scripts the grammar uses, one bit each.
FLAGS = (
    "Script/Han", "Script/Hiragana", "Line_Break/Complex_Context", "Binary_Property/Emoji",
    "Binary_Property/Emoji_Modifier", "Binary_Property/Emoji_Modifier_Base",
    "Binary_Property/Extended_Pictographic",
)
# Characters the emoji rules name one by one (feature codes, 0 = none of them).
LITERALS = {
    "keycap_base": [*range(0x30, 0x3A), ord("#"), ord("*")],
    "keycap": [0x20E3],
    "emoji_presentation": [0xFE0F],
    "text_presentation": [0xFE0E],
    # Emoji that are also ordinary symbols (copyright, registered, trade mark, wavy dash,
    # part alternation mark): never an emoji token on their own.
    "accidental_emoji": [0xA9, 0xAE, 0x2122, 0x3030, 0x303D],
    "tag_spec": list(range(0xE0020, 0xE007F)),
    "tag_term": [0xE007F],
}


@dataclass(frozen=True)
class Feature:
    """What the grammar can ask about a class: its Word_Break value, its flags, the literal it is."""

    word_break: str | None
    flags: frozenset[str]
    literal: str | None

    def has(self, flag: str) -> bool:
        return flag in self.flags


@dataclass(frozen=True)
class CharacterClasses:
    """The class of every code point (two-level table) and what each class is."""

    blocks: np.ndarray  # int32, one entry per 256 code points
    classes: np.ndarray  # uint8, 256 entries per distinct block
    features: tuple[Feature, ...]

    def of(self, code_point: int) -> int:
        return int(self.classes[self.blocks[code_point >> 8] * 256 + (code_point & 255)])


def _mask(flat: list[int]) -> np.ndarray:
    """Boolean array over all code points from half-open ranges [s0, e0, s1, e1, ...]."""
    delta = np.zeros(N_CODE_POINTS + 1, np.int8)
    np.add.at(delta, np.asarray(flat[::2], np.int64), 1)
    np.add.at(delta, np.asarray(flat[1::2], np.int64), -1)
    return np.cumsum(delta[:-1]).astype(bool)


@lru_cache(maxsize=1)
def character_classes() -> CharacterClasses:
    """Classes of Lucene 9's tokenizer over all code points, from the shipped Unicode 12.1 tables."""
    document = json.loads(resources.files("memtasks.retrieval").joinpath("unicode_12_1.json").read_text("utf-8"))
    ranges = document["ranges"]
    code = np.zeros(N_CODE_POINTS, np.int32)
    for value, name in enumerate(WORD_BREAK, start=1):
        code[_mask(ranges[f"Word_Break/{name}"])] = value
    for bit, name in enumerate(FLAGS):
        code |= _mask(ranges[name]).astype(np.int32) << (4 + bit)
    shift = 4 + len(FLAGS)
    for value, (name, points) in enumerate(LITERALS.items(), start=1):
        code[np.asarray(points)] |= value << shift
    present = np.zeros(1 << (shift + 3), bool)
    present[code] = True
    keys = np.flatnonzero(present)
    if len(keys) > 255:
        raise RuntimeError(f"{len(keys)} character classes do not fit a byte")
    per_point = (np.cumsum(present) - 1).astype(np.uint8)[code]
    literal_names = [None, *LITERALS]
    features = tuple(
        Feature(
            WORD_BREAK[(key & 15) - 1] if key & 15 else None,
            frozenset(name for bit, name in enumerate(FLAGS) if key >> (4 + bit) & 1),
            literal_names[key >> shift],
        )
        for key in keys.tolist()
    )
    # Most blocks of 256 code points repeat (unassigned, all letters, all ideographs): stored once.
    distinct: dict[bytes, int] = {}
    blocks = np.array([distinct.setdefault(row.tobytes(), len(distinct)) for row in per_point.reshape(-1, 256)], np.int32)
    unique_blocks = np.frombuffer(b"".join(distinct), np.uint8)
    return CharacterClasses(blocks, unique_blocks, features)


@lru_cache(maxsize=1)
def lowercase_table() -> np.ndarray:
    """Java's ``Character.toLowerCase`` of every code point, as this Python's Unicode data gives it.

    Java maps each code point on its own (simple case mapping): "İ" -> "i" and
    "Σ" -> "σ" also at the end of a word, where ``str.lower`` gives "i̇" and "ς".
    """
    table = np.arange(N_CODE_POINTS, dtype=np.uint32)
    # No character beyond the first three planes has a case mapping (planes 3
    # to 16 hold ideographs, tags, selectors and private use only).
    points = table[:0x30000]
    # Each character lowercased between line breaks: no final-sigma context; the
    # only character whose lowercase is longer than one (U+0130) is set by hand.
    keep = (points < 0xD800) | (points > 0xDFFF)
    keep[0x130] = False
    text = "\n".join(map(chr, points[keep].tolist())).lower()
    points[keep] = np.frombuffer(text.encode("utf-32-le"), np.uint32)[::2]
    points[0x130] = ord("i")
    return table
