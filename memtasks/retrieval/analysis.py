"""Elasticsearch's ``standard`` analyzer in Python: what both retrieval backends index.

The ``standard`` analyzer is Lucene's StandardTokenizer (the word-break rules of
Unicode UAX #29, tokens of at most 255 UTF-16 code units) followed by a
lowercase filter that maps each code point on its own (Java's
``Character.toLowerCase``). The tokenizer keeps "don't", "3.5", "1,000",
"U.S" (without the final full stop) and "foo_bar" as one token each; it emits
every CJK ideograph and every hiragana character as a token of its own, keeps
katakana, Hangul and South-East Asian runs (Thai, Lao, Khmer, Myanmar) whole,
emits emoji sequences as tokens, and drops punctuation and symbols.

Where it cannot match exactly (documented in the README): Lucene's grammar is
generated from Unicode 9 data, the ``regex`` module uses a newer Unicode, so
characters assigned after Unicode 9 may split differently; a token longer than
255 code units is cut at 255 where Lucene's scanner may, in rare constructions
(a quote or full stop exactly at the cut), end it a few characters earlier.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources

import regex

MAX_TOKEN_LENGTH = 255

_EXT = r"[\p{WB=Format}\p{WB=Extend}\p{WB=ZWJ}]*"
_EMOJI_START = r"[\p{WB=ZWJ}\p{Extended_Pictographic}\p{Emoji}\p{Emoji_Modifier_Base}\p{Emoji_Modifier}]"
# Inside an emoji sequence a ZWJ that joins the next emoji is left to the join,
# so that greedy matching finds the whole sequence.
_EXT_NO_SELECTOR = rf"(?:[[\p{{WB=Format}}\p{{WB=Extend}}]--[\uFE0E\uFE0F]]|\p{{WB=ZWJ}}(?!{_EMOJI_START}))*"
_AHLETTER = rf"[\p{{WB=ALetter}}\p{{WB=Hebrew_Letter}}]{_EXT}"
_HEBREW = rf"\p{{WB=Hebrew_Letter}}{_EXT}"
_NUMERIC = rf"[\p{{WB=Numeric}}[\p{{Block=Halfwidth_And_Fullwidth_Forms}}&&\p{{Nd}}]]{_EXT}"
_KATAKANA = rf"\p{{WB=Katakana}}{_EXT}"
_MID_LETTER = rf"[\p{{WB=MidLetter}}\p{{WB=MidNumLet}}\p{{WB=Single_Quote}}]{_EXT}"
_MID_NUMERIC = rf"[\p{{WB=MidNum}}\p{{WB=MidNumLet}}\p{{WB=Single_Quote}}]{_EXT}"
_EXTEND_NUM_LET = rf"\p{{WB=ExtendNumLet}}{_EXT}"
_SINGLE_QUOTE = rf"\p{{WB=Single_Quote}}{_EXT}"
_DOUBLE_QUOTE = rf"\p{{WB=Double_Quote}}{_EXT}"

# WB7a-c (quotes after a Hebrew letter) where a run of letters ends in one.
_AFTER_HEBREW = r"(?<=\p{WB=Hebrew_Letter}[\p{WB=Format}\p{WB=Extend}\p{WB=ZWJ}]*)"

# A word (UAX #29 rules WB5-WB13b): letters and digits joined directly, through
# connector punctuation ("_"), or through one mid-word character between two
# letters ("don't", "U.S") or two digits ("3.5", "1,000").
_CORE = (
    rf"(?:{_KATAKANA}(?:(?:{_EXTEND_NUM_LET})*{_KATAKANA})*"
    rf"|(?:{_HEBREW}(?:{_SINGLE_QUOTE}|{_DOUBLE_QUOTE}{_HEBREW})"
    rf"|{_NUMERIC}(?:(?:(?:{_EXTEND_NUM_LET})*|{_MID_NUMERIC}){_NUMERIC})*"
    rf"|{_AHLETTER}(?:(?:(?:{_EXTEND_NUM_LET})*|{_MID_LETTER}){_AHLETTER}|{_AFTER_HEBREW}{_DOUBLE_QUOTE}{_HEBREW})*"
    rf"(?:{_AFTER_HEBREW}{_SINGLE_QUOTE})?)+)"
)
_WORD = rf"(?:{_EXTEND_NUM_LET})*{_CORE}(?:(?:{_EXTEND_NUM_LET})+{_CORE})*(?:{_EXTEND_NUM_LET})*"

# Emoji sequences (Unicode TR #51): presentation, modifier, ZWJ, tag, keycap and flag sequences.
_EMOJI_CHAR = (
    r"[\p{Extended_Pictographic}[\p{Emoji}--[\p{WB=Regional_Indicator}0-9#*\u00A9\u00AE\u2122\u3030\u303D"
    r"\p{Emoji_Modifier}]]]"
)
_EMOJI_ELEMENT = (
    rf"(?:\p{{WB=ZWJ}}*{_EMOJI_CHAR}{_EXT_NO_SELECTOR}\uFE0F?"
    rf"|(?:\p{{WB=ZWJ}}*\p{{Emoji_Modifier_Base}}{_EXT_NO_SELECTOR})?\p{{Emoji_Modifier}}{_EXT_NO_SELECTOR})"
)
_EMOJI = (
    rf"{_EMOJI_ELEMENT}(?:[\U000E0020-\U000E007E]+\U000E007F|(?:\p{{WB=ZWJ}}{_EMOJI_ELEMENT})*)"
    rf"|[0-9#*]{_EXT_NO_SELECTOR}\uFE0F?\u20E3{_EXT_NO_SELECTOR}"
    rf"|(?:\p{{WB=Regional_Indicator}}{_EXT}){{2}}"
)

# Lucene's generated scanner takes the longest match of any rule at each
# position and skips characters no rule matches. These alternatives and their
# greedy repetitions find that longest match (the tests compare them with
# leftmost-longest POSIX matching, which is several times slower).
TOKEN_PATTERN = rf"{_EMOJI}|{_WORD}|(?:\p{{LB=SA}}{_EXT})+|\p{{Script=Han}}{_EXT}|\p{{Script=Hiragana}}{_EXT}"


@lru_cache(maxsize=1)
def _token() -> regex.Pattern:
    # Compiling the Unicode property classes takes most of a second: only
    # texts with non-ASCII characters pay for it.
    return regex.compile(TOKEN_PATTERN, regex.VERSION1)


# The same rules restricted to ASCII text, where they reduce to: runs of
# letters and digits joined by "_", by one of ":.'" between two letters or one
# of ",.;'" between two digits. The standard library's engine runs this about
# seven times faster than the full pattern.
_ASCII_TOKEN = re.compile(
    r"_*[A-Za-z0-9]+(?:(?:_+|(?<=[A-Za-z])[:.'](?=[A-Za-z])|(?<=[0-9])[,.;'](?=[0-9]))[A-Za-z0-9]+)*_*"
)
_NON_ASCII_WORD = re.compile(r"[^ \t\n\r\f\v]*[^\x00-\x7f][^ \t\n\r\f\v]*")


def _utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _split_long(token: str) -> list[str]:
    """Cut a token into pieces of at most MAX_TOKEN_LENGTH UTF-16 code units."""
    pieces, piece, units = [], [], 0
    for char in token:
        width = 2 if ord(char) > 0xFFFF else 1
        if units + width > MAX_TOKEN_LENGTH:
            pieces.append("".join(piece))
            piece, units = [], 0
        piece.append(char)
        units += width
    pieces.append("".join(piece))
    return pieces


def _lower_code_points(text: str) -> str:
    # Java lowercases each code point by its simple mapping: "İ" -> "i" and
    # "Σ" -> "σ" even at the end of a word, where str.lower() gives "i̇" and "ς".
    return "".join("i" if char == "\u0130" else char.lower() for char in text)


def tokenize(text: str) -> list[str]:
    """The tokens of Lucene's StandardTokenizer (not lowercased), in order."""
    if text.isascii():
        tokens = _ASCII_TOKEN.findall(text)
    else:
        # No token spans ASCII whitespace, so only the words holding a
        # non-ASCII character need the full pattern.
        tokens, start = [], 0
        for word in _NON_ASCII_WORD.finditer(text):
            tokens += _ASCII_TOKEN.findall(text, start, word.start())
            tokens += _token().findall(word.group())
            start = word.end()
        tokens += _ASCII_TOKEN.findall(text, start)
    if any(len(token) > MAX_TOKEN_LENGTH // 2 for token in tokens):
        tokens = [piece for token in tokens for piece in (
            _split_long(token) if _utf16_length(token) > MAX_TOKEN_LENGTH else [token])]
    return tokens


def analyze(text: str) -> list[str]:
    """The terms Elasticsearch's ``standard`` analyzer indexes for ``text``, in order, repeats kept."""
    tokens = tokenize(text)
    if not tokens:
        return tokens
    # One str.lower() over all tokens is much faster than one per token; the
    # separator keeps the final-sigma rule from seeing neighbouring tokens,
    # and texts with the two characters it gets wrong take the slow path.
    joined = "\n".join(tokens)
    if "\u03a3" in joined or "\u0130" in joined:
        return [_lower_code_points(token) for token in tokens]
    return joined.lower().split("\n")


@lru_cache(maxsize=1)
def stopwords() -> frozenset[str]:
    """The English stop words removed from queries with ``query_stopwords``."""
    text = resources.files("memtasks.detection").joinpath("stopwords_en.txt").read_text(encoding="utf-8")
    return frozenset(text.split())


def query_terms(text: str, remove_stopwords: bool = False) -> list[str]:
    """The analyzed terms of a query, stop words removed when asked."""
    terms = analyze(text)
    if remove_stopwords:
        stop = stopwords()
        terms = [term for term in terms if term not in stop]
    return terms
