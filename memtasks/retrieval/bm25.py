"""Embedded BM25 retrieval that ranks exactly as Elasticsearch does; no server.

Scores are Lucene's BM25 (Lucene 8 and later, so Elasticsearch 7, 8 and 9) with
k1 = 1.2 and b = 0.75, computed with the same single-precision operations in
the same order, so that equal scores, near-ties and their order come out as in
Elasticsearch and not only the ranking in exact arithmetic::

    idf(t)     = ln(1 + (N - n(t) + 0.5) / (n(t) + 0.5))                  (double, then float)
    avgdl      = sumTotalTermFreq / N                                      (double, then float)
    inv(dl)    = 1 / (k1 * ((1 - b) + b * dl / avgdl))                     (float)
    w(t)       = boost(t) * idf(t)                                         (float)
    s(t, d)    = w(t) - w(t) / (1 + tf(t, d) * inv(dl(d)))                 (float; = w * tf / (tf + k1 * (...)))
    score(d)   = float(sum over query terms t of s(t, d), summed in double)

N is the number of documents with at least one term, n(t) the number that
contain t, and dl(d) is not the document's length but its length after
Lucene's one-byte norm encoding (SmallFloat.intToByte4, exact up to 40, then
about 3 significant bits). A term repeated in the query is one clause with
boost = its count (Lucene merges duplicate SHOULD clauses that way). Ties are
broken by the smaller document id.

Queries are scored over the postings of their terms (compiled with numba),
skipping only documents that provably cannot reach the top k (see
``_search``), so the top-k is that of the exhaustive computation, not a
rescored shortlist.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from numba import njit
from tqdm.auto import tqdm

from memtasks.retrieval.analysis import stopwords
from memtasks.retrieval.vocabulary import Vocabulary, analyzed_ids, scan_texts

K1 = np.float32(1.2)
B = np.float32(0.75)
# Lucene's SmallFloat.intToByte4: lengths below 24 are stored as they are; the
# rest as 24 + a 4-bit-mantissa float of (length - 24).
_FREE_VALUES = 24


def _int4_to_long(code: int) -> int:
    bits, shift = code & 0x07, (code >> 3) - 1
    return bits if shift == -1 else (bits | 0x08) << shift


def decoded_lengths() -> np.ndarray:
    """The document length each of the 256 norm bytes decodes to (Lucene's LENGTH_TABLE)."""
    table = [b if b < _FREE_VALUES else _FREE_VALUES + _int4_to_long(b - _FREE_VALUES) for b in range(256)]
    return np.array(table, dtype=np.float32)


_DECODED = decoded_lengths().astype(np.int64)


def encode_lengths(lengths: np.ndarray) -> np.ndarray:
    """Norm byte of each length: the largest byte whose decoded length does not exceed it."""
    return (np.searchsorted(_DECODED, np.asarray(lengths, dtype=np.int64), side="right") - 1).astype(np.uint8)


def idf(doc_freq: np.ndarray | int, doc_count: int) -> np.ndarray:
    """Lucene's BM25 idf, computed in double and rounded to float."""
    doc_freq = np.asarray(doc_freq, dtype=np.float64)
    return np.log(1.0 + (doc_count - doc_freq + 0.5) / (doc_freq + 0.5)).astype(np.float32)


def norm_inverses(avgdl: np.float32) -> np.ndarray:
    """1 / (k1 * ((1 - b) + b * dl / avgdl)) for each norm byte, in float as Lucene's cache."""
    lengths = decoded_lengths()
    return np.float32(1.0) / (K1 * ((np.float32(1.0) - B) + B * lengths / np.float32(avgdl)))


@njit(cache=True)
def _build_postings(term_ids, doc_starts, n_terms):
    """Postings (documents in order, with term counts) of each term, from the token stream."""
    n_docs = doc_starts.shape[0] - 1
    last = np.full(n_terms, -1, np.int64)
    doc_freq = np.zeros(n_terms, np.int64)
    for d in range(n_docs):
        for i in range(doc_starts[d], doc_starts[d + 1]):
            t = term_ids[i]
            if last[t] != d:
                last[t] = d
                doc_freq[t] += 1
    offsets = np.zeros(n_terms + 1, np.int64)
    offsets[1:] = np.cumsum(doc_freq)
    docs = np.empty(offsets[-1], np.int32)
    freqs = np.zeros(offsets[-1], np.int32)
    fill = offsets[:-1].copy()
    last[:] = -1
    for d in range(n_docs):
        for i in range(doc_starts[d], doc_starts[d + 1]):
            t = term_ids[i]
            if last[t] != d:
                last[t] = d
                docs[fill[t]] = d
                freqs[fill[t]] = 1
                fill[t] += 1
            else:
                freqs[fill[t] - 1] += 1
    return offsets, docs, freqs, doc_freq


# Bounds that decide what can still reach the top k are widened by this
# factor, so that rounding in double sums can never prune a document.
_SAFETY = 1.0 + 1e-6


@njit(cache=True, nogil=True)
def _term_score(weight, scaled):
    # scaled = float(tf) * inv(dl), a float product as in Java, not fused with the rest.
    return weight - weight / (np.float32(1.0) + scaled)


@njit(cache=True, nogil=True)
def _impacts(offsets, docs, freqs, norms, inverse):
    """Each posting's tf * inv(dl) (float, as in the score), and each term's largest.

    A term's best score is then w - w / (1 + its largest): each float operation
    of the score is monotonic, so no posting of the term scores above it.
    """
    n_terms = offsets.shape[0] - 1
    scaled = np.empty(docs.shape[0], np.float32)
    best = np.zeros(n_terms, np.float32)
    for t in range(n_terms):
        for p in range(offsets[t], offsets[t + 1]):
            scaled[p] = np.float32(freqs[p]) * inverse[norms[docs[p]]]
            best[t] = max(best[t], scaled[p])
    return scaled, best


@njit(cache=True, nogil=True)
def _gallop(values, start, target):
    """First index >= ``start`` of sorted ``values`` whose value is >= ``target`` (exponential, then binary search)."""
    n = values.shape[0]
    if start >= n or values[start] >= target:
        return start
    low, step = start, 1
    high = start + 1
    while high < n and values[high] < target:
        low = high
        step *= 2
        high = low + step
    high = min(high, n)
    # values[low] < target <= values[high] (or high == n).
    return low + 1 + np.searchsorted(values[low + 1 : high], target)


# How many times the search may score a new top k in full to raise its floor.
_PILOT_ROUNDS = 8
# What one look-up of a document in a posting list costs, in postings read.
_LOOKUP_COST = 64


@njit(cache=True, nogil=True)
def _in(values, n, value):
    for c in range(n):
        if values[c] == value:
            return True
    return False


@njit(cache=True, nogil=True)
def _whole_score(d, terms, weights, order, offsets, docs, scaled):
    """Document ``d``'s score for all the query's terms, summed in the search's order (so the same double)."""
    total = 0.0
    for j in range(terms.shape[0]):
        t = terms[order[j]]
        at = offsets[t] + np.searchsorted(docs[offsets[t] : offsets[t + 1]], d)
        if at < offsets[t + 1] and docs[at] == d:
            total += np.float64(_term_score(weights[order[j]], scaled[at]))
    return total


@njit(cache=True, nogil=True)
def _new_top(top, n_top, updated, n_updated, total, in_top, buffer, k, threshold):
    """The best k of the current top and the updated documents (all of them while fewer than k), and the k-th score."""
    if n_top + n_updated < k:
        for c in range(n_updated):
            top[n_top] = updated[c]
            in_top[updated[c]] = True
            n_top += 1
        return n_top, threshold
    m = 0
    for c in range(n_top):
        buffer[m] = total[top[c]]
        m += 1
    for c in range(n_updated):
        buffer[m] = total[updated[c]]
        m += 1
    threshold = np.partition(buffer[:m], m - k)[m - k]
    # The documents above the k-th score (fewer than k), then as many at it as fit.
    chosen = np.empty(k, np.int32)
    n_chosen = 0
    for above in (True, False):
        for c in range(n_top + n_updated):
            d = top[c] if c < n_top else updated[c - n_top]
            if n_chosen < k and ((total[d] > threshold) if above else (total[d] == threshold)):
                chosen[n_chosen] = d
                n_chosen += 1
    for c in range(n_top):
        in_top[top[c]] = False
    for c in range(k):
        top[c] = chosen[c]
        in_top[chosen[c]] = True
    return k, threshold


@njit(cache=True, nogil=True)
def _search(terms, weights, offsets, docs, scaled, max_scaled, keys, k, total, seen, touched, buffer,
            updated, in_top):
    """The ``k`` best documents for one query: (document indices, float scores), best first.

    Terms are visited from the highest weight down, every posting scored,
    keeping a current top k of partial scores (the previous top k and the
    documents the term raised suffice: no other partial score changed). Once
    the k-th best partial score exceeds the sum of the best scores of the
    terms left (MaxScore), no document not yet seen can reach the top k;
    when the seen documents that still can (partial score + best scores left
    >= k-th best partial score) are few enough that looking the remaining terms
    up for each is cheaper than reading their postings, the search switches to
    those look-ups, dropping documents as the best scores left shrink. The result
    is the exact top k of the exhaustive computation.
    """
    n_terms = terms.shape[0]
    order = np.argsort(-weights, kind="mergesort")
    remaining = np.zeros(n_terms + 1)
    postings_left = np.zeros(n_terms + 1, np.int64)
    for i in range(n_terms - 1, -1, -1):
        weight = weights[order[i]]
        top_score = _term_score(weight, max_scaled[terms[order[i]]])
        remaining[i] = remaining[i + 1] + np.float64(top_score)
        postings_left[i] = postings_left[i + 1] + offsets[terms[order[i]] + 1] - offsets[terms[order[i]]]
    n_touched = 0
    threshold = 0.0
    switch = n_terms
    top = np.empty(max(k, 1), np.int32)
    n_top = 0
    # The lowest score a document needs to place: the larger of the k-th best
    # partial score and the k-th best whole score of documents scored in full.
    floor = 0.0
    pilot = np.empty(_PILOT_ROUNDS * max(k, 1), np.int32)
    pilot_scores = np.empty(pilot.shape[0], np.float64)
    n_pilot = 0
    for i in range(n_terms):
        t, weight = terms[order[i]], weights[order[i]]
        n_updated = 0
        for p in range(offsets[t], offsets[t + 1]):
            d = docs[p]
            if not seen[d]:
                seen[d] = True
                touched[n_touched] = d
                n_touched += 1
            total[d] += np.float64(_term_score(weight, scaled[p]))
            # Below the k-th best before this term, a document stays below it.
            if k > 0 and total[d] >= threshold and not in_top[d]:
                updated[n_updated] = d
                n_updated += 1
        if k > 0:
            n_top, threshold = _new_top(top, n_top, updated, n_updated, total, in_top, buffer, k, threshold)
        bound = np.float32(remaining[i + 1] * _SAFETY)
        if (n_top == k > 0 and i + 1 < n_terms and bound >= np.float32(floor) and n_pilot + k <= pilot.shape[0]
                and k * n_terms * _LOOKUP_COST * 8 < postings_left[i + 1]):
            # Whole scores of the current top k (k * terms look-ups, worth it
            # when far more postings are left): the k-th best of them is a
            # score some k documents reach, so nothing below it can place.
            grew = False
            for c in range(k):
                if not _in(pilot, n_pilot, top[c]):
                    pilot[n_pilot] = top[c]
                    pilot_scores[n_pilot] = _whole_score(top[c], terms, weights, order, offsets, docs, scaled)
                    n_pilot += 1
                    grew = True
            if grew:
                floor = max(floor, np.partition(pilot_scores[:n_pilot], n_pilot - k)[n_pilot - k])
        floor = max(floor, threshold)
        if 0 < k <= n_touched and i + 1 < n_terms and bound < np.float32(floor):
            # Count the documents that can still reach the top k, stopping as
            # soon as there are too many to look up.
            budget = postings_left[i + 1]
            alive = 0
            for c in range(n_touched):
                if np.float32((total[touched[c]] + remaining[i + 1]) * _SAFETY) >= np.float32(floor):
                    alive += 1
                    if alive * (n_terms - i - 1) * _LOOKUP_COST >= budget:
                        break
            if alive * (n_terms - i - 1) * _LOOKUP_COST < budget:
                switch = i + 1
                break
    for c in range(n_top):
        in_top[top[c]] = False
    candidates = touched[:n_touched].copy()
    for j in range(switch, n_terms):
        keep = np.empty(candidates.shape[0], np.bool_)
        for c in range(candidates.shape[0]):
            keep[c] = np.float32((total[candidates[c]] + remaining[j]) * _SAFETY) >= np.float32(floor)
        candidates = candidates[keep]
        if j == switch:
            # In increasing order, so that each posting list is walked forwards once.
            candidates.sort()
        t, weight = terms[order[j]], weights[order[j]]
        base = offsets[t]
        postings = docs[base : offsets[t + 1]]
        at = 0
        for d in candidates:
            at = _gallop(postings, at, d)
            if at == postings.shape[0]:
                break
            if postings[at] == d:
                total[d] += np.float64(_term_score(weight, scaled[base + at]))
        if candidates.shape[0] > k:
            floor = max(floor, np.partition(total[candidates], candidates.shape[0] - k)[candidates.shape[0] - k])
    scores = np.empty(candidates.shape[0], np.float32)
    for c in range(candidates.shape[0]):
        scores[c] = np.float32(total[candidates[c]])
    for c in range(n_touched):
        total[touched[c]] = 0.0
        seen[touched[c]] = False
    n = candidates.shape[0]
    if n == 0 or k == 0:
        return candidates[:0], scores[:0]
    take = min(k, n)
    cut = np.partition(scores, n - take)[n - take]
    chosen = np.nonzero(scores >= cut)[0]
    # Every document tied with the k-th score is a candidate; order by id, then
    # (stable) by score, and cut.
    chosen = chosen[np.argsort(keys[candidates[chosen]], kind="mergesort")]
    chosen = chosen[np.argsort(-scores[chosen], kind="mergesort")][:take]
    return candidates[chosen], scores[chosen]


# Code points analyzed per compiled call: bounds the scanner's buffers.
_BATCH_POINTS = 1 << 22


def _batches(texts: Sequence[str]) -> Iterator[Sequence[str]]:
    """Consecutive runs of ``texts`` of about _BATCH_POINTS code points (at least one text each)."""
    start, size = 0, 0
    for i, text in enumerate(texts):
        size += len(text) + 1
        if size >= _BATCH_POINTS:
            yield texts[start : i + 1]
            start, size = i + 1, 0
    if start < len(texts):
        yield texts[start:]


# Queries searched per compiled call: the progress bar moves, and a stop asked
# for (Ctrl-C) is seen, between calls, a few tenths of a second apart at most
# for queries of a few hundred words.
_CHUNK = 32


@njit(cache=True, nogil=True)
def _search_many(tokens, bounds, first, last, idf, offsets, docs, scaled, max_scaled, keys, k,
                 total, seen, touched, buffer, updated, in_top, position, found, scores):
    """Search queries ``first`` to ``last``: rows of ``found`` and ``scores``.

    A query's terms are its distinct indexed terms in order of first
    appearance, each weighing its count times its idf.
    """
    for q in range(first, last):
        n_terms = 0
        terms = np.empty(bounds[q + 1] - bounds[q], np.int64)
        counts = np.zeros(bounds[q + 1] - bounds[q], np.float32)
        for i in range(bounds[q], bounds[q + 1]):
            t = tokens[i]
            if t < 0:
                continue
            if position[t] < 0:
                position[t] = n_terms
                terms[n_terms] = t
                n_terms += 1
            counts[position[t]] += np.float32(1.0)
        terms = terms[:n_terms]
        weights = np.empty(n_terms, np.float32)
        for j in range(n_terms):
            position[terms[j]] = -1
            weights[j] = counts[j] * idf[terms[j]]
        chosen, best = _search(terms, weights, offsets, docs, scaled, max_scaled, keys, k,
                               total, seen, touched, buffer, updated, in_top)
        found[q, : chosen.shape[0]] = chosen
        scores[q, : chosen.shape[0]] = best


class BM25Index:
    """BM25 index of texts under integer ids, analyzed like Elasticsearch's ``standard`` analyzer.

    >>> index = BM25Index()
    >>> index.add([0, 1], ["a cat sat", "a dog ran"])
    >>> index.top_k(["the cat"], k=1)
    [[0]]

    ``query_stopwords`` removes English stop words from queries (not from the
    indexed texts), as the Elasticsearch backend does with the same list.
    """

    def __init__(self, query_stopwords: bool = False):
        self.query_stopwords = query_stopwords
        self._vocabulary = Vocabulary()
        self._term_ids: list[np.ndarray] = []
        self._lengths: list[np.ndarray] = []
        self._keys: list[np.ndarray] = []
        self._frozen: dict | None = None
        self._read_only = False

    def __enter__(self) -> BM25Index:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        """Nothing to release (the interface of the server backends, which delete their index)."""

    def __len__(self) -> int:
        return sum(len(k) for k in self._keys) if self._frozen is None else len(self._frozen["keys"])

    def add(self, ids: Sequence[int], texts: Iterable[str], progress: bool = False) -> None:
        """Index ``texts`` under ``ids``; they are searchable at once."""
        if self._read_only:
            raise RuntimeError("this index was loaded from disk and is read-only")
        keys = np.fromiter((int(i) for i in ids), np.int64)
        texts = list(texts) if not isinstance(texts, Sequence) else texts
        if len(keys) != len(texts):
            raise ValueError(f"{len(keys)} ids for {len(texts)} texts")
        every = np.concatenate([*self._keys, keys])
        if len(np.unique(every)) != len(every):
            raise ValueError("document ids must be unique")
        bar = tqdm(total=len(texts), desc="index", unit="text", disable=not progress)
        batches = list(_batches(texts))
        if len(batches) == 1:
            # Scanned in this thread: the warm-up's texts are one batch, and a kernel compiled
            # in a pool thread (seconds on a first run) would hold Ctrl-C until it was done.
            self._number(*scan_texts(batches[0]), bar)
        else:
            self._scan_ahead(batches, bar)
        bar.close()
        self._keys.append(keys)
        self._frozen = None

    def _scan_ahead(self, batches: Sequence[Sequence[str]], bar) -> None:
        # Batches are scanned by two threads, one ahead of the numbering, which
        # must follow the texts' order (term ids are given by first appearance).
        with ThreadPoolExecutor(max_workers=2) as pool:
            pending: deque = deque()
            try:
                for batch in batches:
                    pending.append(pool.submit(scan_texts, batch))
                    if len(pending) > 2:
                        self._number(*pending.popleft().result(), bar)
                while pending:
                    self._number(*pending.popleft().result(), bar)
            except BaseException:
                # Ctrl-C: only the batches being scanned finish (a fraction of a second).
                pool.shutdown(wait=False, cancel_futures=True)
                raise

    def _number(self, points: np.ndarray, starts: np.ndarray, ends: np.ndarray, counts: np.ndarray, bar) -> None:
        self._term_ids.append(self._vocabulary.ids(points, starts, ends))
        self._lengths.append(counts)
        bar.update(len(counts))

    def _index(self) -> dict:
        if self._frozen is None:
            if not sum(len(k) for k in self._keys):
                raise RuntimeError("the index is empty: call add() first")
            lengths = np.concatenate(self._lengths)
            starts = np.zeros(len(lengths) + 1, np.int64)
            starts[1:] = np.cumsum(lengths)
            offsets, docs, freqs, doc_freq = _build_postings(
                np.concatenate(self._term_ids), starts, len(self._vocabulary)
            )
            self._frozen = self._statistics(offsets, docs, freqs, doc_freq, lengths, np.concatenate(self._keys))
        return self._frozen

    def _statistics(self, offsets, docs, freqs, doc_freq, lengths, keys) -> dict:
        # Documents without a single term have no postings and, as in Lucene,
        # count neither in N nor in the average length.
        doc_count = int(np.count_nonzero(lengths))
        avgdl = np.float32(lengths.sum() / doc_count) if doc_count else np.float32(1.0)
        norms, inverse = encode_lengths(lengths), norm_inverses(avgdl)
        scaled, max_scaled = _impacts(offsets, docs, freqs, norms, inverse)
        return {
            "offsets": offsets,
            "docs": docs,
            "freqs": freqs,
            "idf": idf(doc_freq, max(doc_count, 1)),
            "norms": norms,
            "inverse": inverse,
            "scaled": scaled,
            "max_scaled": max_scaled,
            "keys": keys,
            "lengths": lengths,
            "doc_freq": doc_freq,
        }

    def _query_tokens(self, queries: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Term ids of the queries' terms (-1 for terms not indexed or removed stop words) and each query's bounds."""
        # Batch by batch, as the indexed texts: Ctrl-C is seen between compiled calls.
        analyzed = [analyzed_ids(batch, self._vocabulary, insert=False) for batch in _batches(queries)]
        ids = np.concatenate([a[0] for a in analyzed]) if analyzed else np.empty(0, np.int32)
        counts = np.concatenate([a[1] for a in analyzed]) if analyzed else np.empty(0, np.int64)
        if self.query_stopwords:
            stop = sorted(stopwords())
            stop_ids = analyzed_ids(stop, self._vocabulary, insert=False)[0]
            ids[np.isin(ids, stop_ids[stop_ids >= 0])] = -1
        bounds = np.zeros(len(queries) + 1, np.int64)
        bounds[1:] = np.cumsum(counts)
        return ids, bounds

    def _search_all(self, queries: Sequence[str], k: int, workers: int, progress: bool) -> tuple[np.ndarray, np.ndarray]:
        """Document indices and scores of the ``k`` best for each query (-1 and NaN pad shorter lists)."""
        index = self._index()
        k = max(k, 0)
        tokens, bounds = self._query_tokens(queries)
        found = np.full((len(queries), k), -1, np.int64)
        scores = np.full((len(queries), k), np.nan, np.float32)
        n = len(index["keys"])
        arrays = (index["idf"], index["offsets"], index["docs"], index["scaled"], index["max_scaled"], index["keys"])
        bar = tqdm(total=len(queries), desc="retrieve", unit="query", disable=not progress)
        workers = max(1, min(workers, len(queries)))
        shares = np.linspace(0, len(queries), workers + 1).astype(int)

        stop = threading.Event()

        def run(share: int) -> None:
            scratch = (np.zeros(n, np.float64), np.zeros(n, np.bool_), np.empty(n, np.int32),
                       np.empty(n, np.float64), np.empty(n, np.int32), np.zeros(n, np.bool_),
                       np.full(len(self._vocabulary), -1, np.int32))
            for first in range(shares[share], shares[share + 1], _CHUNK):
                if stop.is_set():
                    return
                last = min(first + _CHUNK, shares[share + 1])
                _search_many(tokens, bounds, first, last, *arrays, k, *scratch, found, scores)
                bar.update(last - first)

        if workers == 1:
            # Searched in this thread, so that the kernel compiles here on a first run (the warm-up's
            # search): compiling in a pool thread, it held Ctrl-C and the exit for 10-15 s.
            run(0)
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                try:
                    list(pool.map(run, range(workers)))
                except BaseException:
                    # Ctrl-C (or a failed share): the other threads stop after their current chunk
                    # instead of searching the rest of their share while the process waits to exit.
                    stop.set()
                    raise
        bar.close()
        return found, scores

    def search(self, text: str, k: int) -> list[tuple[int, float]]:
        """The ``k`` best ``(id, score)`` for one query, best first; scores are Elasticsearch's."""
        found, scores = self._search_all([text], k, 1, False)
        keys = self._index()["keys"]
        return [(int(keys[d]), float(s)) for d, s in zip(found[0], scores[0]) if d >= 0]

    def top_k(self, queries: Iterable[str], k: int = 10, workers: int = 1, progress: bool = False) -> list[list[int]]:
        """Ids of the ``k`` best texts for each query, best first.

        The compiled search releases the GIL, so ``workers`` threads search
        contiguous shares of the queries in parallel, each with its own
        buffers; the results are in query order and do not depend on ``workers``.
        """
        queries = list(queries)
        found, _ = self._search_all(queries, k, workers, progress)
        keys = self._index()["keys"]
        return [keys[row[row >= 0]].tolist() for row in found]

    def save(self, path: str | Path) -> None:
        """Write the index to the folder ``path`` (created if needed)."""
        index = self._index()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        for name in ("offsets", "docs", "freqs", "doc_freq", "lengths", "keys"):
            np.save(path / f"{name}.npy", index[name])
        terms = self._vocabulary.terms()
        (path / "terms.json").write_text(json.dumps(terms, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path, query_stopwords: bool = False) -> BM25Index:
        """An index written by :meth:`save`, its arrays memory-mapped; it can be searched, not extended."""
        path = Path(path)
        try:
            arrays = {
                name: np.load(path / f"{name}.npy", mmap_mode="r")
                for name in ("offsets", "docs", "freqs", "doc_freq", "lengths", "keys")
            }
            terms = json.loads((path / "terms.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise OSError(f"{path}: not a memtasks BM25 index ({error})") from None
        index = cls(query_stopwords)
        index._vocabulary = Vocabulary.of_terms(terms)
        index._read_only = True
        index._frozen = index._statistics(
            arrays["offsets"], arrays["docs"], arrays["freqs"], arrays["doc_freq"],
            np.asarray(arrays["lengths"]), np.asarray(arrays["keys"]),
        )
        return index
