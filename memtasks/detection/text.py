"""Preprocessing of one document (spec section 1), done once per text.

A document becomes its sentences (character offsets into the original text) and,
per sentence, the set of stemmed terms with their counts. Terms are 64-bit hashes
of the stems so that documents preprocessed in different worker processes can be
compared without sharing a vocabulary.
"""

from __future__ import annotations

import hashlib
import json
import re
import zlib
from dataclasses import dataclass
from functools import cached_property, lru_cache
from importlib import resources

import numpy as np
from nltk.stem import PorterStemmer, SnowballStemmer

MIN_TOKEN_CHARS = 3
MIN_SENTENCE_TOKENS = 3

# Penn-Treebank-style word tokens: runs of word characters joined by the
# connectors Treebank keeps inside a token (hyphen, period, slash, apostrophe,
# ampersand, at-sign; comma and colon only between digits, as in "1,000" and "10:30").
_TOKEN = re.compile(r"\w+(?:(?:[-./'’&@]|(?<=\d)[,:](?=\d))\w+)*")
# Treebank splits these clitics off; "n't" survives the length filter, the others do not.
_NEGATION = re.compile(r"^(\w+)(n['’]t)$", re.IGNORECASE)
_CLITIC = re.compile(r"^(.+?)['’](?:s|m|d|ll|re|ve)$", re.IGNORECASE)

# A possible sentence end: terminal punctuation, closing quotes or brackets,
# whitespace, then (after opening quotes or brackets) the next word's first character.
_BOUNDARY = re.compile(r"([.!?]+)([\"'”’»)\]]*)(\s+)[\"'“‘«(\[]*(\w?)")
_LAST_WORD = re.compile(r"[^\s\"'“‘«(\[]*$")
_NEXT_WORD = re.compile(r"\w+")


@lru_cache(maxsize=1)
def _splitter_parameters() -> tuple[frozenset[str], frozenset[str]]:
    raw = json.loads(resources.files(__package__).joinpath("sentences_en.json").read_text("utf-8"))
    return frozenset(raw["abbreviations"]), frozenset(raw["sentence_starters"])


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Character spans ``(start, end)`` of the sentences of ``text``.

    Punkt-style decisions, with abbreviations and frequent sentence starters
    learned by Punkt's trainer from English news (``sentences_en.json``): a
    period, question or exclamation mark followed by whitespace ends a sentence
    unless the period closes a single-letter initial or a known abbreviation
    ("Mr.", "U.S.", "Jan.") that is not followed by a frequent sentence starter. Decimals never split, since
    their period is not followed by whitespace. Closing quotes stay with the
    sentence they close.
    """
    abbreviations, starters = _splitter_parameters()
    spans = []
    start = len(text) - len(text.lstrip())
    for match in _BOUNDARY.finditer(text, start):
        if match.group(1) == ".":
            word = _LAST_WORD.search(text, max(start, match.start() - 64), match.start()).group().lower()
            if len(word) == 1 and word.isalpha():
                continue
            if word in abbreviations:
                following = _NEXT_WORD.match(text, match.start(4))
                if following is None or following.group().lower() not in starters:
                    continue
        end = match.end(2)
        if end > start:
            spans.append((start, end))
        start = match.end(3)
    tail = text[start:].rstrip()
    if tail:
        spans.append((start, start + len(tail)))
    return spans


def _subtokens(token: str) -> list[tuple[int, int]]:
    """Offsets of the Treebank tokens inside one raw token: "don't" -> "do", "n't";
    "John's" -> "John" (the clitic "'s" is dropped: it could never be a term)."""
    if "'" not in token and "’" not in token:
        return [(0, len(token))]
    negation = _NEGATION.match(token)
    if negation is not None:
        cut = len(negation.group(1))
        return [(0, cut), (cut, len(token))]
    clitic = _CLITIC.match(token)
    return [(0, len(clitic.group(1)) if clitic is not None else len(token))]


def word_spans(text: str) -> list[tuple[int, int]]:
    """Spans of the Treebank-style word tokens of ``text``, clitics split off."""
    return [(m.start() + a, m.start() + b) for m in _TOKEN.finditer(text) for a, b in _subtokens(m.group())]


def _stemmer(name: str):
    if name == "snowball":
        return SnowballStemmer("english").stem
    if name == "porter":
        return PorterStemmer().stem
    raise ValueError(f"unknown stemmer {name!r}: use 'snowball' or 'porter'")


@lru_cache(maxsize=1)
def english_stopwords() -> frozenset[str]:
    """The English stop-word list shipped with the package (lowercase)."""
    return frozenset(resources.files(__package__).joinpath("stopwords_en.txt").read_text("utf-8").split())


def stable_id(text: str) -> int:
    """A 64-bit id of a string, the same in every process and on every machine."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little", signed=True)


class TermEncoder:
    """Maps raw tokens to the ids of the terms they yield, caching per token.

    A word yields no term when, lowercased, it is shorter than 3 characters,
    does not start with a letter or digit (spec 1.3) or, with
    ``remove_stopwords``, is an English stop word. "don't" is split as Treebank
    splits it, into "do" and "n't", so it yields the term "n't".
    """

    def __init__(self, stemmer: str = "snowball", remove_stopwords: bool = False):
        self._stem = _stemmer(stemmer)
        self._stopwords = english_stopwords() if remove_stopwords else frozenset()
        self._cache: dict[str, tuple[int, ...]] = {}

    def _analyze(self, token: str) -> tuple[int, ...]:
        terms = []
        for start, end in _subtokens(token):
            word = token[start:end].lower()
            if len(word) >= MIN_TOKEN_CHARS and word[0].isalnum() and word not in self._stopwords:
                terms.append(stable_id(self._stem(word)))
        return tuple(terms)

    def terms(self, text: str, start: int, end: int) -> list[int]:
        """Term ids of ``text[start:end]``, in order, repeats kept."""
        cache = self._cache
        out: list[int] = []
        for token in _TOKEN.findall(text, start, end):
            found = cache.get(token)
            if found is None:
                found = cache[token] = self._analyze(token)
            out.extend(found)
        return out


@dataclass(frozen=True)
class Words:
    """The words of a text, for the word-by-word comparison of verbatim runs.

    ``ids`` are CRC-32 checksums of the lowercased words: two different words
    share one with probability 2**-32, which cannot create a run of several words.
    """

    starts: np.ndarray
    ends: np.ndarray
    ids: np.ndarray


@dataclass(frozen=True)
class Document:
    """A preprocessed text: merged sentences and their term counts.

    Attributes:
        text: the original text.
        starts, ends: character offsets of each (merged) sentence in ``text``.
        terms: term ids, the distinct terms of sentence ``k`` at ``terms[ptr[k]:ptr[k+1]]``, sorted.
        counts: term frequency of each entry of ``terms`` in its sentence.
        ptr: sentence boundaries into ``terms`` (length = sentences + 1).
        rows: sentence index of every entry of ``terms``.
        sizes: number of distinct terms of each sentence.
        vocab: the distinct terms of the document, sorted.
        entry_vocab: index in ``vocab`` of every entry of ``terms``.
        sf: number of sentences containing each term of ``vocab``.
        term_ptr, term_entries: the entries of ``vocab[u]`` are
            ``term_entries[term_ptr[u]:term_ptr[u+1]]`` (an inverted index).
    """

    text: str
    starts: np.ndarray
    ends: np.ndarray
    terms: np.ndarray
    counts: np.ndarray
    ptr: np.ndarray
    rows: np.ndarray
    sizes: np.ndarray
    vocab: np.ndarray
    entry_vocab: np.ndarray
    sf: np.ndarray
    term_ptr: np.ndarray
    term_entries: np.ndarray

    @property
    def n_sentences(self) -> int:
        return len(self.starts)

    @property
    def arrays(self) -> tuple[np.ndarray, ...]:
        """What the compiled pair kernel reads."""
        return (self.vocab, self.entry_vocab, self.sf, self.term_ptr, self.term_entries, self.counts, self.rows, self.sizes)

    @cached_property
    def words(self) -> Words:
        """Word offsets and lowercased forms; computed on first use, since only
        pairs with a surviving case need them."""
        spans = word_spans(self.text)
        offsets = np.asarray(spans, dtype=np.int64).reshape(-1, 2)
        ids = np.fromiter((zlib.crc32(self.text[a:b].lower().encode("utf-8")) for a, b in spans), dtype=np.int64, count=len(spans))
        return Words(offsets[:, 0], offsets[:, 1], ids)


def _document(text: str, starts, ends, rows: np.ndarray, terms: np.ndarray, counts: np.ndarray) -> Document:
    """Assemble a document from its sentence spans and its (row, term) entries sorted by row, term."""
    n_sentences = len(starts)
    ptr = np.searchsorted(rows, np.arange(n_sentences + 1))
    vocab, entry_vocab = np.unique(terms, return_inverse=True)
    sf = np.bincount(entry_vocab, minlength=len(vocab))
    return Document(
        text=text,
        starts=np.asarray(starts, dtype=np.int64),
        ends=np.asarray(ends, dtype=np.int64),
        terms=terms,
        counts=counts,
        ptr=ptr,
        rows=rows,
        sizes=np.diff(ptr).astype(np.float64),
        vocab=vocab,
        entry_vocab=entry_vocab.astype(np.int64),
        sf=sf.astype(np.float64),
        term_ptr=np.concatenate(([0], np.cumsum(sf))).astype(np.int64),
        term_entries=np.argsort(entry_vocab, kind="stable").astype(np.int64),
    )


def _empty_document(text: str) -> Document:
    nothing = np.zeros(0, dtype=np.int64)
    return _document(text, nothing, nothing, nothing, nothing, np.zeros(0, dtype=np.float64))


def preprocess(text: str, encoder: TermEncoder) -> Document:
    """Sentences, tokens, stems and term counts of ``text`` (spec section 1).

    Sentences left without terms are dropped; a sentence with fewer than 3 terms
    is merged into the following one (repeatedly, while the merged sentence
    still has fewer than 3), and the last sentence is never merged forward.
    """
    sentences = []
    for start, end in sentence_spans(text):
        terms = encoder.terms(text, start, end)
        if terms:
            sentences.append((start, end, terms))
    merged: list[tuple[int, int, list[int]]] = []
    pending: tuple[int, list[int]] | None = None
    for index, (start, end, terms) in enumerate(sentences):
        if pending is not None:
            start, terms = pending[0], pending[1] + terms
            pending = None
        if len(terms) < MIN_SENTENCE_TOKENS and index < len(sentences) - 1:
            pending = (start, terms)
            continue
        merged.append((start, end, terms))
    if not merged:
        return _empty_document(text)
    rows = np.repeat(np.arange(len(merged)), [len(m[2]) for m in merged])
    terms = np.fromiter((t for m in merged for t in m[2]), dtype=np.int64, count=len(rows))
    order = np.lexsort((terms, rows))
    rows, terms = rows[order], terms[order]
    first = np.ones(len(terms), dtype=bool)
    first[1:] = (terms[1:] != terms[:-1]) | (rows[1:] != rows[:-1])
    positions = np.flatnonzero(first)
    return _document(
        text,
        [m[0] for m in merged],
        [m[1] for m in merged],
        rows[positions],
        terms[positions],
        np.diff(np.append(positions, len(terms))).astype(np.float64),
    )
