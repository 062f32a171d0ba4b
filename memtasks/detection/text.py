"""Preprocessing of one document (spec section 1), done once per text.

A document becomes its sentences (character offsets into the original text),
per sentence the set of stemmed terms with their counts, and its words (offsets
and ids) for the verbatim comparison. Terms and words are hashes of the stems
and of the lowercased words, so that documents preprocessed in different worker
processes can be compared without sharing a vocabulary.

Verbatim runs are measured so that ``verbatim_minlen`` means the same amount of
text in every script (spec 11.7). The study's threshold is 50 characters,
"approximately 15 tokens" of English; a letter of a script written without
spaces (Han, Hiragana, Katakana, Thai, Lao, Khmer, Myanmar; with its combining
marks) is a word-sized unit of its own, about one token, so it counts as 50/15
= 10/3 characters. A run's length is the text from its first word's start to
its last word's end, every other character (letters of spaced scripts, digits,
spaces, punctuation) counting as one: a copied run of 15 Chinese characters
meets the 50-character threshold (14 do not), and text in spaced scripts
(English, German, ...) measures exactly its characters, as before. The
comparison is in exact integers: thirds of a character (``UNITS_PER_CHAR`` and
``UNITS_PER_UNSPACED_LETTER`` of :mod:`memtasks.detection.kernels`).
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
import zlib
from itertools import chain
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

from memtasks.detection.kernels import UNITS_PER_CHAR, UNITS_PER_UNSPACED_LETTER, WORD_END, WORD_START, index_batch
from memtasks.detection.stemming import stem

MIN_TOKEN_CHARS = 3
MIN_SENTENCE_TOKENS = 3

# Scripts written without spaces between words (Thai, Lao, Myanmar, Khmer,
# Hiragana, Katakana, Han): their words cannot be told apart without a
# dictionary, so each of their letters is a token of its own, together with the
# combining marks (vowel signs, tone marks, voicing marks) that follow it.
_UNSPACED_BLOCKS = ((0x0E00, 0x0EFF), (0x1000, 0x109F), (0x1780, 0x17FF), (0x3040, 0x30FF), (0x31F0, 0x31FF), (0xFF66, 0xFF9F))
# Han: the iteration and closing marks 々〆〇, the unified ideographs of the
# basic plane (extension A, main block, compatibility) and planes 2 and 3.
_HAN = "\u3005-\u3007\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003ffff"


def _char_class(keep) -> str:
    """The code points of the unspaced blocks for which ``keep`` holds, as ranges of a regex class."""
    points = [p for start, end in _UNSPACED_BLOCKS for p in range(start, end + 1) if keep(chr(p))]
    ranges: list[list[int]] = []
    for p in points:
        if ranges and ranges[-1][1] == p - 1:
            ranges[-1][1] = p
        else:
            ranges.append([p, p])
    return "".join(f"\\u{a:04x}-\\u{b:04x}" for a, b in ranges)


_UNSPACED_LETTERS = _char_class(str.isalnum) + _HAN
_UNSPACED_COMBINING = _char_class(lambda c: unicodedata.category(c).startswith("M"))
_UNSPACED_LETTER = re.compile(f"[{_UNSPACED_LETTERS}]")


def _word_pattern(word_char: str) -> str:
    """A Penn-Treebank-style word: runs of ``word_char`` joined by the connectors
    Treebank keeps inside a token (hyphen, period, slash, apostrophe, ampersand,
    at-sign; comma and colon only between digits, as in "1,000" and "10:30")."""
    return rf"{word_char}+(?:(?:[-./'’&@]|(?<=\d)[,:](?=\d)){word_char}+)*"


# Tokens: a letter of an unspaced script with its combining marks, or a word of
# the other scripts. The one group makes ``split`` keep the tokens.
_SPACED_WORD = _word_pattern(rf"[^\W{_UNSPACED_LETTERS}]")
_TOKEN = re.compile(rf"([{_UNSPACED_LETTERS}][{_UNSPACED_COMBINING}]*|{_SPACED_WORD})")
# The same tokens in ASCII text, which holds no unspaced letter: the plain word
# class is faster to match than the one that leaves those letters out.
_ASCII_TOKEN = re.compile("(" + _word_pattern(r"\w") + ")")


def _tokenizer(text: str) -> re.Pattern:
    return _ASCII_TOKEN if text.isascii() else _TOKEN

# Treebank splits the negation off its word ("couldn't" -> "could", "n't"); both
# parts can be terms, so it is split before tokenizing.
_NEGATION = re.compile(r"(?<=\w)(n['’]t)\b", re.IGNORECASE)
# Treebank splits these clitics off too; they could never be terms, so only the
# word before them is kept as a term.
_CLITIC = re.compile(r"^(.+?)['’](?:s|m|d|ll|re|ve)$", re.IGNORECASE)

# A possible sentence end. In spaced scripts: terminal punctuation, closing
# quotes or brackets, whitespace, then (after opening quotes or brackets) the
# next word's first character. In unspaced scripts: their own full stops and
# full-width marks, which end a sentence with or without whitespace after them.
_SPACED_ENDS = ".!?؟۔।॥"
_UNSPACED_ENDS = "。｡！？။។៕"
_CLOSERS = "\"'”’»)\\]）」』】〕〉》"
_BOUNDARY = re.compile(
    # The leading lookahead lets the regex engine skip straight to the marks,
    # which an alternation alone does not.
    rf"(?=[{_SPACED_ENDS}{_UNSPACED_ENDS}])"
    rf"(?:(?P<mark>[{_SPACED_ENDS}]+)(?P<closers>[{_CLOSERS}]*)(?P<space>\s+)[\"'“‘«(\[]*(?P<next>\w?)"
    rf"|(?P<wide>[{_UNSPACED_ENDS}]+[{_CLOSERS}]*)\s*)"
)
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
    period, question or exclamation mark (or the Arabic, Urdu and Devanagari
    ones) followed by whitespace ends a sentence unless the period closes a
    single-letter initial or a known abbreviation ("Mr.", "U.S.", "Jan.") that
    is not followed by a frequent sentence starter. Decimals never split, since
    their period is not followed by whitespace. The full stops and marks of
    scripts written without spaces (。！？ and their half- and full-width forms,
    Myanmar ။ and Khmer ។ ៕) end a sentence whatever follows. Closing quotes
    and brackets stay with the sentence they close.
    """
    abbreviations, starters = _splitter_parameters()
    spans = []
    start = len(text) - len(text.lstrip())
    for match in _BOUNDARY.finditer(text, start):
        if match.group("wide") is not None:
            end, next_start = match.end("wide"), match.end()
        else:
            if match.group("mark") == "." and _is_abbreviation(text, start, match, abbreviations, starters):
                continue
            end, next_start = match.end("closers"), match.end("space")
        if end > start:
            spans.append((start, end))
        start = next_start
    tail = text[start:].rstrip()
    if tail:
        spans.append((start, start + len(tail)))
    return spans


def _is_abbreviation(text: str, start: int, match: re.Match, abbreviations: frozenset[str], starters: frozenset[str]) -> bool:
    """Whether the period of ``match`` closes an initial or an abbreviation that does not end the sentence."""
    before = text[max(start, match.start() - 64) : match.start()].split()
    word = before[-1].lstrip(_OPENERS).lower() if before else ""
    if len(word) == 1 and word.isalpha():
        return True
    if word in abbreviations:
        following = _NEXT_WORD.match(text, match.start("next"))
        return following is None or following.group().lower() not in starters
    return False


def word_spans(text: str) -> list[tuple[int, int]]:
    """Spans of the tokens of ``text``: Treebank-style words, and the single
    letters (with their combining marks) of scripts written without spaces."""
    return [match.span() for match in _tokenizer(text).finditer(text)]


def _stemmer(name: str):
    if name == "snowball":
        return stem
    if name == "porter":
        # Imported here: importing nltk takes seconds, which only this option pays.
        from nltk.stem import PorterStemmer

        return PorterStemmer().stem
    raise ValueError(f"unknown stemmer {name!r}: use 'snowball' or 'porter'")


@lru_cache(maxsize=1)
def english_stopwords() -> frozenset[str]:
    """The English stop-word list shipped with the package (lowercase)."""
    return frozenset(resources.files(__package__).joinpath("stopwords_en.txt").read_text("utf-8").split())


def stable_id(text: str) -> int:
    """A 64-bit id of a string, the same in every process and on every machine."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little", signed=True)


def word_term(stem: str) -> int:
    """The term id of a word's stem: an even :func:`stable_id`."""
    return stable_id(stem) & ~1


def letter_term(letter: str) -> int:
    """The term id of a letter of a script written without spaces: an odd :func:`stable_id`,
    so that the pair kernel can tell letters from words (see ``DetectorConfig.weighting``)."""
    return stable_id(letter) | 1


def word_id(token: str) -> int:
    """The id under which two tokens are the same word for the verbatim comparison:
    the CRC-32 checksum of the lowercased token. Two different words share one with
    probability 2**-32, which cannot create a run of several words."""
    return zlib.crc32(token.lower().encode("utf-8"))


class _Rows(dict):
    """token -> its row in the encoder's tables, assigned on first sight."""

    def __init__(self, add):
        super().__init__()
        self._add = add

    def __missing__(self, token: str) -> int:
        row = self[token] = self._add(token)
        return row


class TermEncoder:
    """Maps raw tokens to term ids (stable ids of their stems) and word ids, caching per token.

    A token yields no term when, lowercased and without a clitic ("'s", "'re"),
    it is shorter than 3 characters, does not start with a letter or digit
    (spec 1.3) or, with ``remove_stopwords``, is an English stop word. A letter
    of a script written without spaces (Han, kana, Thai, ...) is a token and a
    term of its own, unstemmed, whatever its length. A negation yields two
    terms ("couldn't" -> could, n't), as Treebank splits it.

    Each distinct token gets a row of three tables, analysed once: ``word_table``
    holds its :func:`word_id`, ``unit_table`` its measured length for
    ``verbatim_minlen`` (see the module's docstring), ``term_table`` its term
    ids, left-aligned and padded with 0 (no term). A text then costs one dictionary look-up per token,
    and the rest is array work.
    """

    def __init__(self, stemmer: str = "snowball", remove_stopwords: bool = False):
        self._stem = _stemmer(stemmer)
        self._stopwords = english_stopwords() if remove_stopwords else frozenset()
        self._stems: dict[str, int] = {}
        self._rows = _Rows(self._add)
        self.word_table = np.zeros(1024, dtype=np.int64)
        self.unit_table = np.zeros(1024, dtype=np.int64)
        self.term_table = np.zeros((1024, 2), dtype=np.int64)

    def rows(self, tokens: list[str]) -> np.ndarray:
        """The table row of each token (the tables may grow: read them afterwards)."""
        return np.fromiter(map(self._rows.__getitem__, tokens), dtype=np.int64, count=len(tokens))

    def terms(self, text: str, start: int, end: int) -> list[int]:
        """Term ids of ``text[start:end]``, in order, repeats kept."""
        rows = self.rows(_tokenizer(text).findall(text, start, end))
        terms = self.term_table[rows].ravel()
        return terms[terms != 0].tolist()

    def _add(self, token: str) -> int:
        """Analyse a token seen for the first time into the next row of the tables."""
        row = len(self._rows)
        terms = self._token_terms(token)
        rows, width = self.term_table.shape
        if row == rows or len(terms) > width:
            self._grow(2 * rows if row == rows else rows, max(width, len(terms)))
        self.word_table[row] = word_id(token)
        self.unit_table[row] = UNITS_PER_UNSPACED_LETTER if _UNSPACED_LETTER.match(token) else UNITS_PER_CHAR * len(token)
        for column, term in enumerate(terms):
            self.term_table[row, column] = term
        return row

    def _grow(self, rows: int, width: int) -> None:
        old_rows, old_width = self.term_table.shape
        word_table = np.zeros(rows, dtype=np.int64)
        word_table[:old_rows] = self.word_table
        unit_table = np.zeros(rows, dtype=np.int64)
        unit_table[:old_rows] = self.unit_table
        term_table = np.zeros((rows, width), dtype=np.int64)
        term_table[:old_rows, :old_width] = self.term_table
        self.word_table, self.unit_table, self.term_table = word_table, unit_table, term_table

    def _token_terms(self, token: str) -> list[int]:
        """The term ids of one token: none, one, or one per piece of a split negation."""
        if "'" in token or "’" in token:
            return [term for term in map(self._term, _TOKEN.findall(_NEGATION.sub(r" \1", token))) if term]
        term = self._term(token)
        return [term] if term else []

    def _term(self, token: str) -> int:
        """The term id of one token, 0 for none."""
        word = token.lower()
        if _UNSPACED_LETTER.match(word):
            return letter_term(word)
        if "'" in word or "’" in word:
            clitic = _CLITIC.match(word)
            if clitic is not None:
                word = clitic.group(1)
        if len(word) < MIN_TOKEN_CHARS or not word[0].isalnum() or word in self._stopwords:
            return 0
        term = self._stems.get(word)
        if term is None:
            term = self._stems[word] = word_term(self._stem(word))
        return term


@dataclass(frozen=True)
class Document:
    """A preprocessed text: merged sentences and their term counts, and its words.

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
        words: a row per token of ``text``: its :func:`word_id`, its
            character offsets and its reach, the measured length of the text
            up to its end (columns ``WORD_ID``, ``WORD_START``, ``WORD_END``,
            ``WORD_REACH``), for the word-by-word comparison of verbatim runs.
        ngrams: the first word of every run of ``INDEX_NGRAM`` words, ordered
            by a hash of the run: where two texts may share a run of words (see
            :func:`~memtasks.detection.kernels.common_runs`).
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
    words: np.ndarray
    ngrams: np.ndarray

    @property
    def n_sentences(self) -> int:
        return len(self.starts)

    @property
    def arrays(self) -> tuple[np.ndarray, ...]:
        """What the compiled pair kernel reads."""
        return (self.vocab, self.entry_vocab, self.sf, self.term_ptr, self.term_entries, self.counts, self.rows, self.sizes)

    @property
    def word_starts(self) -> np.ndarray:
        return self.words[:, WORD_START]

    @property
    def word_ends(self) -> np.ndarray:
        return self.words[:, WORD_END]


def preprocess(text: str, encoder: TermEncoder) -> Document:
    """Sentences, tokens, stems and term counts of ``text`` (spec section 1), and its words.

    Sentences left without terms are dropped; a sentence with fewer than 3 terms
    is merged into the following one (repeatedly, while the merged sentence
    still has fewer than 3), and the last sentence is never merged forward.
    The text is tokenized once: its tokens are both the words of the verbatim
    comparison and, by the sentence they lie in, the sources of the terms.
    """
    return preprocess_batch([text], encoder).document(0, text)


def preprocess_batch(texts: Sequence[str], encoder: TermEncoder) -> DocumentBatch:
    """The documents of ``texts`` (one or more; see :func:`preprocess`), packed: the
    Python work per text is finding its sentences and tokens, the rest is one compiled call."""
    if not texts:
        raise ValueError("no texts to preprocess")
    tokens: list[str] = []
    part_lengths: list[int] = []
    part_counts = np.empty(len(texts), np.int64)
    bounds: list[int] = []
    sentence_counts = np.empty(len(texts), np.int64)
    for i, text in enumerate(texts):
        spans = sentence_spans(text)
        bounds.extend(chain.from_iterable(spans))
        sentence_counts[i] = len(spans)
        # Split around the tokens: gap, token, gap, ..., token, gap. The
        # cumulative lengths of the parts are then the tokens' offsets, with no
        # match object per token.
        parts = _tokenizer(text).split(text)
        tokens.extend(parts[1::2])
        part_lengths.extend(map(len, parts))
        part_counts[i] = len(parts)
    rows = encoder.rows(tokens)
    spans = np.fromiter(bounds, dtype=np.int64, count=len(bounds)).reshape(-1, 2)
    fields, offsets = index_batch(
        rows, encoder.term_table, encoder.word_table, encoder.unit_table, np.fromiter(part_lengths, dtype=np.int64, count=len(part_lengths)),
        _pointers(part_counts), np.ascontiguousarray(spans[:, 0]), np.ascontiguousarray(spans[:, 1]),
        _pointers(sentence_counts), MIN_SENTENCE_TOKENS,
    )
    return DocumentBatch(dict(zip(_ARRAY_FIELDS, fields)), dict(zip(_ARRAY_FIELDS, offsets)))


def _pointers(counts: np.ndarray) -> np.ndarray:
    """Where each of consecutive runs of ``counts`` items starts, and the end."""
    pointers = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=pointers[1:])
    return pointers


_ARRAY_FIELDS = tuple(f for f in Document.__dataclass_fields__ if f != "text")
# Document.arrays, then the words and their n-gram index.
_KERNEL_FIELDS = ("vocab", "entry_vocab", "sf", "term_ptr", "term_entries", "counts", "rows", "sizes", "words", "ngrams")


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
    def join(cls, batches: list[DocumentBatch]) -> DocumentBatch:
        """One batch of the documents of ``batches``, in order."""
        arrays, offsets = {}, {}
        for name in _ARRAY_FIELDS:
            arrays[name] = np.concatenate([b.arrays[name] for b in batches])
            shifts = np.cumsum([0] + [len(b.arrays[name]) for b in batches[:-1]])
            offsets[name] = np.concatenate(
                [b.offsets[name][:-1] + shift for b, shift in zip(batches, shifts)] + [[len(arrays[name])]]
            ).astype(np.int64)
        return cls(arrays, offsets)

    def __len__(self) -> int:
        return len(self.offsets["starts"]) - 1

    def kernel_fields(self) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
        """The fields :func:`~memtasks.detection.kernels.pairs_with_evidence` reads (each
        document's ``arrays``, ``words`` and ``ngrams``, concatenated) and their offsets."""
        return tuple(self.arrays[name] for name in _KERNEL_FIELDS), tuple(self.offsets[name] for name in _KERNEL_FIELDS)

    def document(self, index: int, text: str) -> Document:
        """The ``index``-th document of the batch, whose text is ``text``."""
        fields = {
            name: self.arrays[name][self.offsets[name][index] : self.offsets[name][index + 1]] for name in _ARRAY_FIELDS
        }
        return Document(text=text, **fields)
