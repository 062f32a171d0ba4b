"""Term ids of analyzed texts without a Python object per token.

Texts are scanned into token spans (:func:`memtasks.retrieval.analysis.scan`),
each token is lowercased code point by code point and looked up, by its 64-bit
FNV-1a hash and then by its code points, in an open-addressing table of the
terms seen so far; new terms get the next id. All of it is compiled; Python
only sees arrays.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numba import njit

from memtasks.retrieval.analysis import code_points, scan, scanner_tables
from memtasks.retrieval.unicode import lowercase_table

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


@njit(cache=True, nogil=True)
def _hash(points, lower, start, end):
    h = _FNV_OFFSET
    for i in range(start, end):
        h = (h ^ np.uint64(lower[points[i]])) * _FNV_PRIME
    return h


@njit(cache=True, nogil=True)
def _find(points, lower, start, end, h, slots, hashes, offsets, arena):
    """Slot of the term (found or where it would go)."""
    mask = slots.shape[0] - 1
    slot = np.int64(h & np.uint64(mask))
    length = end - start
    while True:
        term = slots[slot]
        if term < 0:
            return slot
        if hashes[term] == h and offsets[term + 1] - offsets[term] == length:
            base = offsets[term]
            same = True
            for i in range(length):
                if arena[base + i] != lower[points[start + i]]:
                    same = False
                    break
            if same:
                return slot
        slot = (slot + 1) & mask


@njit(cache=True, nogil=True)
def _intern(points, starts, ends, first, lower, slots, hashes, offsets, arena, n_terms, used, insert, ids):
    """Term ids of tokens ``first...``, adding new terms when ``insert`` (else -1 for them).

    Stops before a token that would fill the table past half or overflow the
    term arrays; returns (next token, number of terms, code points used).
    """
    for t in range(first, starts.shape[0]):
        start, end = starts[t], ends[t]
        h = _hash(points, lower, start, end)
        slot = _find(points, lower, start, end, h, slots, hashes, offsets, arena)
        term = slots[slot]
        if term < 0 and insert:
            length = end - start
            if 2 * (n_terms + 1) > slots.shape[0] or n_terms + 2 > offsets.shape[0] or used + length > arena.shape[0]:
                return t, n_terms, used
            for i in range(length):
                arena[used + i] = lower[points[start + i]]
            used += length
            hashes[n_terms] = h
            offsets[n_terms + 1] = used
            slots[slot] = n_terms
            term = n_terms
            n_terms += 1
        ids[t] = term
    return starts.shape[0], n_terms, used


@njit(cache=True, nogil=True)
def _rehash(slots, hashes, n_terms):
    mask = slots.shape[0] - 1
    for term in range(n_terms):
        slot = np.int64(hashes[term] & np.uint64(mask))
        while slots[slot] >= 0:
            slot = (slot + 1) & mask
        slots[slot] = term


class Vocabulary:
    """Distinct lowercased terms, numbered in order of first appearance."""

    def __init__(self):
        self._slots = np.full(1 << 16, -1, np.int32)
        self._hashes = np.empty(1 << 15, np.uint64)
        self._offsets = np.zeros(1 << 15, np.int64)
        self._arena = np.empty(1 << 18, np.uint32)
        self._n = 0
        self._used = 0
        self._lower = lowercase_table()

    def __len__(self) -> int:
        return self._n

    def _grow(self, extra_points: int) -> None:
        if 2 * (self._n + 1) > self._slots.shape[0]:
            self._slots = np.full(self._slots.shape[0] * 2, -1, np.int32)
            _rehash(self._slots, self._hashes, self._n)
        if self._n + 2 > self._offsets.shape[0]:
            self._offsets = np.concatenate([self._offsets, np.zeros_like(self._offsets)])
            self._hashes = np.concatenate([self._hashes, np.empty_like(self._hashes)])
        if self._used + extra_points > self._arena.shape[0]:
            size = max(2 * self._arena.shape[0], self._used + extra_points)
            self._arena = np.concatenate([self._arena, np.empty(size - self._arena.shape[0], np.uint32)])

    def ids(self, points: np.ndarray, starts: np.ndarray, ends: np.ndarray, insert: bool = True) -> np.ndarray:
        """Term id of each token span of ``points``; -1 for terms not in the vocabulary when not ``insert``."""
        ids = np.empty(starts.shape[0], np.int32)
        done = 0
        while True:
            done, self._n, self._used = _intern(
                points, starts, ends, done, self._lower, self._slots, self._hashes,
                self._offsets, self._arena, self._n, self._used, insert, ids,
            )
            if done == starts.shape[0]:
                return ids
            self._grow(int(ends[done] - starts[done]))

    def terms(self) -> list[str]:
        """The terms in id order."""
        text = self._arena[: self._used].tobytes().decode("utf-32-le", "surrogatepass")
        bounds = self._offsets[: self._n + 1].tolist()
        return [text[a:b] for a, b in zip(bounds, bounds[1:])]

    @classmethod
    def of_terms(cls, terms: Sequence[str]) -> Vocabulary:
        """A vocabulary holding ``terms`` (already analyzed) under ids 0, 1, ..."""
        vocabulary = cls()
        if not terms:
            return vocabulary
        points = code_points("".join(terms))
        lengths = np.fromiter((len(t) for t in terms), np.int64, len(terms))
        ends = np.cumsum(lengths)
        ids = vocabulary.ids(points, ends - lengths, ends)
        if not np.array_equal(ids, np.arange(len(terms))):
            raise ValueError("the terms are not distinct lowercase terms")
        return vocabulary


def scan_texts(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The code points of ``texts`` joined by line breaks, their token spans, and the number of tokens of each text.

    No token crosses the line break between two texts, as no rule of the
    grammar matches a line break. The scan releases the GIL.
    """
    lengths = np.fromiter((len(t) for t in texts), np.int64, len(texts))
    points = code_points("\n".join(texts))
    starts = np.empty(points.shape[0], np.int64)
    ends = np.empty(points.shape[0], np.int64)
    n = scan(points, *scanner_tables(), starts, ends)
    starts, ends = starts[:n].copy(), ends[:n].copy()
    text_starts = np.cumsum(lengths + 1) - lengths - 1
    counts = np.diff(np.searchsorted(starts, text_starts, side="left"), append=n)
    return points, starts, ends, counts


def analyzed_ids(texts: Sequence[str], vocabulary: Vocabulary, insert: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Term ids of all ``texts`` in order, and the number of terms of each text."""
    points, starts, ends, counts = scan_texts(texts)
    return vocabulary.ids(points, starts, ends, insert), counts
