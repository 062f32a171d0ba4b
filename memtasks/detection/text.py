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
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np
from nltk.stem import PorterStemmer, SnowballStemmer
from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer

MIN_TOKEN_CHARS = 3
MIN_SENTENCE_TOKENS = 3

# Penn-Treebank-style word tokens: runs of word characters joined by the
# connectors Treebank keeps inside a token (hyphen, period, slash, apostrophe,
# ampersand, at-sign; comma and colon only between digits, as in "1,000" and "10:30").
_TOKEN = re.compile(r"\w+(?:(?:[-./'’&@]|(?<=\d)[,:](?=\d))\w+)*")
# Treebank splits these clitics off; "n't" survives the length filter, the others do not.
_NEGATION = re.compile(r"^(\w+)(n['’]t)$", re.IGNORECASE)
_CLITIC = re.compile(r"^(.+?)['’](?:s|m|d|ll|re|ve)$", re.IGNORECASE)


@lru_cache(maxsize=1)
def sentence_splitter() -> PunktSentenceTokenizer:
    """The Punkt sentence splitter with parameters shipped in the package.

    The parameters (abbreviations, collocations, sentence starters, orthographic
    context) were learned unsupervised from English news text and extended with a
    hand-checked abbreviation list, so no NLTK data download is needed.
    """
    raw = json.loads(resources.files(__package__).joinpath("punkt_en.json").read_text("utf-8"))
    params = PunktParameters()
    params.abbrev_types = set(raw["abbrev_types"])
    params.collocations = {tuple(pair) for pair in raw["collocations"]}
    params.sent_starters = set(raw["sent_starters"])
    for word, flags in raw["ortho_context"].items():
        params.ortho_context[word] = flags
    return PunktSentenceTokenizer(params)


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Character spans ``(start, end)`` of the sentences of ``text``."""
    return list(sentence_splitter().span_tokenize(text))


def word_spans(text: str) -> list[tuple[int, int]]:
    """Spans of the Treebank-style word tokens of ``text``, clitics split off."""
    spans = []
    for match in _TOKEN.finditer(text):
        start, end = match.span()
        token = match.group()
        if "'" in token or "’" in token:
            negation = _NEGATION.match(token)
            clitic = _CLITIC.match(token) if negation is None else None
            if negation is not None:
                cut = start + len(negation.group(1))
                spans.append((start, cut))
                spans.append((cut, end))
                continue
            if clitic is not None:
                end = start + len(clitic.group(1))
        spans.append((start, end))
    return spans


def _stemmer(name: str):
    if name == "snowball":
        return SnowballStemmer("english").stem
    if name == "porter":
        return PorterStemmer().stem
    raise ValueError(f"unknown stemmer {name!r}: use 'snowball' or 'porter'")


@lru_cache(maxsize=1)
def english_stopwords() -> frozenset[str]:
    """The English stop-word list shipped with the package (lowercase)."""
    words = resources.files(__package__).joinpath("stopwords_en.txt").read_text("utf-8").split()
    return frozenset(words)


class TermEncoder:
    """Maps a raw token to its term id (hash of its stem), caching per token.

    Tokens shorter than 3 characters or not starting with a letter or digit are
    dropped (spec 1.3); with ``remove_stopwords`` so are English stop words.
    """

    def __init__(self, stemmer: str = "snowball", remove_stopwords: bool = False):
        self._stem = _stemmer(stemmer)
        self._stopwords = english_stopwords() if remove_stopwords else frozenset()
        self._cache: dict[str, int | None] = {}

    def __call__(self, token: str) -> int | None:
        term = self._cache.get(token, -1)
        if term != -1:
            return term
        lowered = token.lower()
        if len(lowered) < MIN_TOKEN_CHARS or not lowered[0].isalnum() or lowered in self._stopwords:
            term = None
        else:
            stem = self._stem(lowered)
            term = int.from_bytes(hashlib.blake2b(stem.encode("utf-8"), digest_size=8).digest(), "little", signed=True)
        self._cache[token] = term
        return term


@dataclass(frozen=True)
class Document:
    """A preprocessed text: merged sentences and their term counts.

    Attributes:
        starts, ends: character offsets of each (merged) sentence in the original text.
        terms: term ids, the distinct terms of sentence ``k`` at ``terms[ptr[k]:ptr[k+1]]``.
        counts: term frequency of each entry of ``terms`` in its sentence.
        ptr: sentence boundaries into ``terms`` (length = sentences + 1).
    """

    starts: np.ndarray
    ends: np.ndarray
    terms: np.ndarray
    counts: np.ndarray
    ptr: np.ndarray

    @property
    def n_sentences(self) -> int:
        return len(self.starts)

    @property
    def rows(self) -> np.ndarray:
        """Sentence index of every entry of ``terms``."""
        return np.repeat(np.arange(self.n_sentences), np.diff(self.ptr))


EMPTY_DOCUMENT = Document(
    starts=np.zeros(0, dtype=np.int64),
    ends=np.zeros(0, dtype=np.int64),
    terms=np.zeros(0, dtype=np.int64),
    counts=np.zeros(0, dtype=np.float64),
    ptr=np.zeros(1, dtype=np.int64),
)


def preprocess(text: str, encode: TermEncoder) -> Document:
    """Sentences, tokens, stems and term counts of ``text`` (spec section 1).

    Sentences left without terms are dropped; a sentence with fewer than 3 terms
    is merged into the following one, and the last sentence is never merged forward.
    """
    sentences: list[tuple[int, int, list[int]]] = []
    for start, end in sentence_spans(text):
        sentence = text[start:end]
        terms = [t for t in (encode(sentence[a:b]) for a, b in word_spans(sentence)) if t is not None]
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
        return EMPTY_DOCUMENT
    all_terms, all_counts, ptr = [], [], [0]
    for _, _, terms in merged:
        unique, counts = np.unique(np.asarray(terms, dtype=np.int64), return_counts=True)
        all_terms.append(unique)
        all_counts.append(counts)
        ptr.append(ptr[-1] + len(unique))
    return Document(
        starts=np.array([m[0] for m in merged], dtype=np.int64),
        ends=np.array([m[1] for m in merged], dtype=np.int64),
        terms=np.concatenate(all_terms),
        counts=np.concatenate(all_counts).astype(np.float64),
        ptr=np.asarray(ptr, dtype=np.int64),
    )
