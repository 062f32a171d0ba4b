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
from itertools import chain
from importlib import resources

import numpy as np

from memtasks.detection.kernels import index_sentences

MIN_TOKEN_CHARS = 3
MIN_SENTENCE_TOKENS = 3

# Penn-Treebank-style word tokens: runs of word characters joined by the
# connectors Treebank keeps inside a token (hyphen, period, slash, apostrophe,
# ampersand, at-sign; comma and colon only between digits, as in "1,000" and "10:30").
_TOKEN = re.compile(r"\w+(?:(?:[-./'’&@]|(?<=\d)[,:](?=\d))\w+)*")
# Treebank splits the negation off its word ("couldn't" -> "could", "n't"); both
# parts can be terms, so it is split before tokenizing.
_NEGATION = re.compile(r"(?<=\w)(n['’]t)\b", re.IGNORECASE)
# Treebank splits these clitics off too; they could never be terms, so only the
# word before them is kept as a term.
_CLITIC = re.compile(r"^(.+?)['’](?:s|m|d|ll|re|ve)$", re.IGNORECASE)

# A possible sentence end: terminal punctuation, closing quotes or brackets,
# whitespace, then (after opening quotes or brackets) the next word's first character.
_BOUNDARY = re.compile(r"([.!?]+)([\"'”’»)\]]*)(\s+)[\"'“‘«(\[]*(\w?)")
_OPENERS = "\"'“‘«(["
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
            before = text[max(start, match.start() - 64) : match.start()].split()
            word = before[-1].lstrip(_OPENERS).lower() if before else ""
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


def word_spans(text: str) -> list[tuple[int, int]]:
    """Spans of the Treebank-style word tokens of ``text``."""
    return [match.span() for match in _TOKEN.finditer(text)]


def _stemmer(name: str):
    # Imported here: importing nltk takes seconds, which commands that never
    # stem (``memtasks --help``, ``pan-eval`` errors) should not pay.
    from nltk.stem import PorterStemmer, SnowballStemmer

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


class _TermCache(dict):
    """token -> term id, 0 for a token that yields no term; filled on first sight."""

    def __init__(self, analyze):
        super().__init__()
        self._analyze = analyze

    def __missing__(self, token: str) -> int:
        term = self[token] = self._analyze(token)
        return term


class TermEncoder:
    """Maps raw tokens to term ids (stable ids of their stems), caching per token.

    A token yields no term when, lowercased and without a clitic ("'s", "'re"),
    it is shorter than 3 characters, does not start with a letter or digit
    (spec 1.3) or, with ``remove_stopwords``, is an English stop word.
    """

    def __init__(self, stemmer: str = "snowball", remove_stopwords: bool = False):
        self._stem = _stemmer(stemmer)
        self._stopwords = english_stopwords() if remove_stopwords else frozenset()
        self._stems: dict[str, int] = {}
        self._cache = _TermCache(self._analyze)

    def _analyze(self, token: str) -> int:
        word = token.lower()
        if "'" in word or "’" in word:
            clitic = _CLITIC.match(word)
            if clitic is not None:
                word = clitic.group(1)
        if len(word) < MIN_TOKEN_CHARS or not word[0].isalnum() or word in self._stopwords:
            return 0
        term = self._stems.get(word)
        if term is None:
            term = self._stems[word] = stable_id(self._stem(word))
        return term

    def terms(self, text: str, start: int, end: int) -> list[int]:
        """Term ids of ``text[start:end]``, in order, repeats kept."""
        chunk = text[start:end]
        if "n't" in chunk or "n’t" in chunk or "N'T" in chunk or "N’T" in chunk:
            chunk = _NEGATION.sub(r" \1", chunk)
        return list(filter(None, map(self._cache.__getitem__, _TOKEN.findall(chunk))))


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


def preprocess(text: str, encoder: TermEncoder) -> Document:
    """Sentences, tokens, stems and term counts of ``text`` (spec section 1).

    Sentences left without terms are dropped; a sentence with fewer than 3 terms
    is merged into the following one (repeatedly, while the merged sentence
    still has fewer than 3), and the last sentence is never merged forward.
    """
    spans = sentence_spans(text)
    per_sentence = [encoder.terms(text, start, end) for start, end in spans]
    terms = np.fromiter(chain.from_iterable(per_sentence), dtype=np.int64)
    lengths = np.fromiter(map(len, per_sentence), dtype=np.int64, count=len(per_sentence))
    (first, last, rows, terms, counts, ptr, sizes, vocab, entry_vocab, sf, term_ptr, term_entries) = index_sentences(
        terms, lengths, MIN_SENTENCE_TOKENS
    )
    bounds = np.asarray(spans, dtype=np.int64).reshape(-1, 2)
    return Document(
        text=text,
        starts=bounds[first, 0],
        ends=bounds[last, 1],
        terms=terms,
        counts=counts,
        ptr=ptr,
        rows=rows,
        sizes=sizes,
        vocab=vocab,
        entry_vocab=entry_vocab,
        sf=sf,
        term_ptr=term_ptr,
        term_entries=term_entries,
    )


_ARRAY_FIELDS = tuple(f for f in Document.__dataclass_fields__ if f != "text")


@dataclass(frozen=True)
class DocumentBatch:
    """Documents of consecutive texts with each array field concatenated.

    A batch crosses a process boundary as a couple of dozen arrays however
    many documents it holds, where a list of documents would pickle a dozen
    arrays per document.
    """

    arrays: dict[str, np.ndarray]
    offsets: dict[str, np.ndarray]

    @classmethod
    def pack(cls, documents: list[Document]) -> DocumentBatch:
        arrays, offsets = {}, {}
        for name in _ARRAY_FIELDS:
            parts = [getattr(d, name) for d in documents]
            arrays[name] = np.concatenate(parts) if parts else np.zeros(0)
            offsets[name] = np.concatenate(([0], np.cumsum([len(p) for p in parts]))).astype(np.int64)
        return cls(arrays, offsets)

    def __len__(self) -> int:
        return len(self.offsets["starts"]) - 1

    def document(self, index: int, text: str) -> Document:
        """The ``index``-th document of the batch, whose text is ``text``."""
        fields = {
            name: self.arrays[name][self.offsets[name][index] : self.offsets[name][index + 1]] for name in _ARRAY_FIELDS
        }
        return Document(text=text, **fields)
