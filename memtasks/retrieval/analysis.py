"""Elasticsearch's ``standard`` analyzer: what both retrieval backends index.

The ``standard`` analyzer is Lucene's StandardTokenizer (the word-break rules of
Unicode UAX #29, tokens of at most 255 UTF-16 code units) followed by a
lowercase filter that maps each code point on its own (Java's
``Character.toLowerCase``). The tokenizer keeps "don't", "3.5", "1,000",
"U.S" (without the final full stop) and "foo_bar" as one token each; it emits
every CJK ideograph and every hiragana character as a token of its own, keeps
katakana, Hangul and South-East Asian runs (Thai, Lao, Khmer, Myanmar) whole,
emits emoji sequences as tokens, and drops punctuation and symbols.

The tokenizer is the automaton of Lucene 9's grammar
(:mod:`memtasks.retrieval.grammar`) over its Unicode 12.1 character classes
(:mod:`memtasks.retrieval.unicode`), run by a compiled scanner that works as
the generated Java one: at each position the longest match of any rule, within
a buffer of 255 UTF-16 units from the token's start (a longer token is cut at
the last point the grammar accepts, and scanning resumes there, so that what
cannot start a token, e.g. a full stop or a combining mark, is skipped);
where no rule matches, one code point is skipped.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import numpy as np
from numba import njit

from memtasks.retrieval.grammar import token_automaton
from memtasks.retrieval.unicode import character_classes

MAX_TOKEN_LENGTH = 255


@njit(cache=True, nogil=True)
def scan(points, blocks, classes, transitions, accepting, starts, ends):
    """Write the spans ``[starts[i], ends[i])`` of the tokens of ``points`` (code points); returns their number.

    ``starts`` and ``ends`` need room for one token per code point.
    """
    n = 0
    p = 0
    size = points.shape[0]
    while p < size:
        state = 0
        last = -1
        units = 0
        q = p
        while q < size:
            c = points[q]
            units += 2 if c > 0xFFFF else 1
            if units > MAX_TOKEN_LENGTH:
                break
            state = transitions[state, classes[blocks[c >> 8] * 256 + (c & 255)]]
            if state < 0:
                break
            q += 1
            if accepting[state]:
                last = q
        if last < 0:
            p += 1
        else:
            starts[n] = p
            ends[n] = last
            n += 1
            p = last
    return n


@lru_cache(maxsize=1)
def scanner_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(blocks, classes, transitions, accepting): what :func:`scan` needs besides the text."""
    tables = character_classes()
    transitions, accepting = token_automaton()
    return tables.blocks, tables.classes, transitions, accepting


def code_points(text: str) -> np.ndarray:
    """The code points of ``text`` (lone surrogates kept as they are, as Java's chars)."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), np.uint32)


def token_spans(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (code point offsets) of each token of Lucene's StandardTokenizer, in order."""
    starts = np.empty(points.shape[0], np.int64)
    ends = np.empty(points.shape[0], np.int64)
    n = scan(points, *scanner_tables(), starts, ends)
    return starts[:n], ends[:n]


def tokenize(text: str) -> list[str]:
    """The tokens of Lucene's StandardTokenizer (not lowercased), in order."""
    starts, ends = token_spans(code_points(text))
    return [text[s:e] for s, e in zip(starts.tolist(), ends.tolist())]


def _lower_code_points(text: str) -> str:
    # Java lowercases each code point by its simple mapping: "İ" -> "i" and
    # "Σ" -> "σ" even at the end of a word, where str.lower() gives "i̇" and "ς".
    return "".join("i" if char == "\u0130" else char.lower() for char in text)


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
