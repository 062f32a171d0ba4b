"""Compiled inner loop of the detector: TF-ISF weights and sentence similarities of a pair.

This is the part every pair pays for, so it runs as one compiled function
(numba) instead of a few dozen small numpy calls.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def pair_similarities(susp, src, th1, th2):  # pragma: no cover - compiled
    """TF-ISF weights of both documents in one term space, sentence similarities and seeds.

    ``susp`` and ``src`` are the arrays of :meth:`Document.arrays`. The weight
    of term t in sentence s is tf(t, s) * ln(N / sf(t)), with N the sentences of
    both documents and sf(t) how many of them contain t. Returns the seeds
    (sentence pairs with cosine > th1 and Dice > th2, sorted), the cosine
    matrix (suspicious x source), and per entry of each document its column in
    the pair's term space and its weight, and the number of columns.
    """
    vocab_s, entry_vocab_s, sf_s, term_ptr_s, term_entries_s, counts_s, rows_s, sizes_s = susp
    vocab_g, entry_vocab_g, sf_g, term_ptr_g, term_entries_g, counts_g, rows_g, sizes_g = src
    us, ug = vocab_s.size, vocab_g.size
    ns, ng = sizes_s.size, sizes_g.size
    # Merge the two sorted vocabularies: a column per distinct term of the pair.
    column_of_s = np.empty(us, np.int64)
    column_of_g = np.empty(ug, np.int64)
    partner_s = np.full(us, -1, np.int64)
    i = j = n_terms = 0
    while i < us or j < ug:
        if j == ug or (i < us and vocab_s[i] < vocab_g[j]):
            column_of_s[i] = n_terms
            i += 1
        elif i == us or vocab_g[j] < vocab_s[i]:
            column_of_g[j] = n_terms
            j += 1
        else:
            column_of_s[i] = n_terms
            column_of_g[j] = n_terms
            partner_s[i] = j
            i += 1
            j += 1
        n_terms += 1
    total = float(ns + ng)
    idf_s = np.empty(us)
    idf_g = np.log(total / sf_g)
    for u in range(us):
        partner = partner_s[u]
        idf_s[u] = np.log(total / (sf_s[u] + (sf_g[partner] if partner >= 0 else 0.0)))
        if partner >= 0:
            idf_g[partner] = idf_s[u]
    weight_s = np.empty(entry_vocab_s.size)
    norm_s = np.zeros(ns)
    for e in range(entry_vocab_s.size):
        w = counts_s[e] * idf_s[entry_vocab_s[e]]
        weight_s[e] = w
        norm_s[rows_s[e]] += w * w
    weight_g = np.empty(entry_vocab_g.size)
    norm_g = np.zeros(ng)
    for e in range(entry_vocab_g.size):
        w = counts_g[e] * idf_g[entry_vocab_g[e]]
        weight_g[e] = w
        norm_g[rows_g[e]] += w * w
    dot = np.zeros((ns, ng))
    shared = np.zeros((ns, ng))
    for u in range(us):
        v = partner_s[u]
        if v < 0:
            continue
        for a in range(term_ptr_s[u], term_ptr_s[u + 1]):
            entry_s = term_entries_s[a]
            row = rows_s[entry_s]
            for b in range(term_ptr_g[v], term_ptr_g[v + 1]):
                entry_g = term_entries_g[b]
                dot[row, rows_g[entry_g]] += weight_s[entry_s] * weight_g[entry_g]
                shared[row, rows_g[entry_g]] += 1.0
    cosine = np.zeros((ns, ng))
    n_seeds = 0
    for r in range(ns):
        for c in range(ng):
            if shared[r, c] > 0:
                denominator = np.sqrt(norm_s[r] * norm_g[c])
                if denominator > 0:
                    cosine[r, c] = dot[r, c] / denominator
                # dot now holds Dice, reusing the buffer.
                dot[r, c] = 2.0 * shared[r, c] / (sizes_s[r] + sizes_g[c])
                if cosine[r, c] > th1 and dot[r, c] > th2:
                    n_seeds += 1
    seeds = np.empty((n_seeds, 2), np.int64)
    k = 0
    for r in range(ns):
        for c in range(ng):
            if shared[r, c] > 0 and cosine[r, c] > th1 and dot[r, c] > th2:
                seeds[k, 0] = r
                seeds[k, 1] = c
                k += 1
    column_s = column_of_s[entry_vocab_s]
    column_g = column_of_g[entry_vocab_g]
    return seeds, cosine, column_s, weight_s, column_g, weight_g, n_terms


@njit(cache=True, nogil=True)
def common_runs(words_s, starts_s, ends_s, words_g, minlen):  # pragma: no cover - compiled
    """Maximal common runs of two word sequences, longer than ``minlen`` characters on the first.

    Dynamic programming over the word grid, one row at a time: ``run[j]`` is the
    length of the common run ending at (i, j). A run is maximal where it cannot
    be extended by the next pair of words. Returns an array of
    (first word s, last word s, first word g, last word g) rows.
    """
    n, m = words_s.size, words_g.size
    previous = np.zeros(m + 1, np.int64)
    current = np.zeros(m + 1, np.int64)
    found = []
    for i in range(n):
        for j in range(m):
            if words_s[i] == words_g[j]:
                length = previous[j] + 1
                current[j + 1] = length
                if i == n - 1 or j == m - 1 or words_s[i + 1] != words_g[j + 1]:
                    first = i - length + 1
                    if ends_s[i] - starts_s[first] > minlen:
                        found.append((first, i, j - length + 1, j))
            else:
                current[j + 1] = 0
        previous, current = current, previous
    runs = np.empty((len(found), 4), np.int64)
    for k in range(len(found)):
        runs[k, 0], runs[k, 1], runs[k, 2], runs[k, 3] = found[k]
    return runs


@njit(cache=True, nogil=True)
def span_cosine(column_s, weight_s, lo_s, hi_s, column_g, weight_g, lo_g, hi_g, n_terms):  # pragma: no cover - compiled
    """Cosine of the summed weight vectors of entries lo..hi of each document."""
    total_s = np.zeros(n_terms)
    total_g = np.zeros(n_terms)
    for e in range(lo_s, hi_s):
        total_s[column_s[e]] += weight_s[e]
    for e in range(lo_g, hi_g):
        total_g[column_g[e]] += weight_g[e]
    dot = norm_s = norm_g = 0.0
    for t in range(n_terms):
        dot += total_s[t] * total_g[t]
        norm_s += total_s[t] * total_s[t]
        norm_g += total_g[t] * total_g[t]
    if norm_s == 0.0 or norm_g == 0.0:
        return 0.0
    return dot / np.sqrt(norm_s * norm_g)


@njit(cache=True, nogil=True)
def index_sentences(terms, lengths, min_terms):  # pragma: no cover - compiled
    """Merge short sentences and build a document's term index (spec 1.6 and 2).

    ``terms`` holds the term ids of all sentences in order, ``lengths`` how many
    belong to each sentence. Sentences without terms are dropped; a sentence
    with fewer than ``min_terms`` terms is merged into the following one (while
    the merged sentence is still short), and the last sentence never merges
    forward. Returns, per merged sentence, its first and last original
    sentence; per entry (distinct term of a merged sentence, sorted) its row,
    term and count; the row pointers and sizes; and the inverted index
    (vocabulary, entry -> vocabulary index, sentence frequency, pointers, entries).
    """
    n = lengths.size
    offsets = np.zeros(n + 1, np.int64)
    for i in range(n):
        offsets[i + 1] = offsets[i] + lengths[i]
    last = -1
    for i in range(n):
        if lengths[i] > 0:
            last = i
    first_sentence = np.empty(n, np.int64)
    last_sentence = np.empty(n, np.int64)
    merged = 0
    pending_start = -1
    pending_terms = 0
    for i in range(last + 1):
        if lengths[i] == 0:
            continue
        start = i if pending_start < 0 else pending_start
        total = lengths[i] + pending_terms
        if total < min_terms and i < last:
            pending_start = start
            pending_terms = total
            continue
        first_sentence[merged] = start
        last_sentence[merged] = i
        merged += 1
        pending_start = -1
        pending_terms = 0
    first_sentence = first_sentence[:merged]
    last_sentence = last_sentence[:merged]

    entry_rows = np.empty(terms.size, np.int64)
    entry_terms = np.empty(terms.size, np.int64)
    entry_counts = np.empty(terms.size, np.float64)
    ptr = np.zeros(merged + 1, np.int64)
    n_entries = 0
    for row in range(merged):
        segment = np.sort(terms[offsets[first_sentence[row]] : offsets[last_sentence[row] + 1]])
        for k in range(segment.size):
            if k == 0 or segment[k] != segment[k - 1]:
                entry_rows[n_entries] = row
                entry_terms[n_entries] = segment[k]
                entry_counts[n_entries] = 1.0
                n_entries += 1
            else:
                entry_counts[n_entries - 1] += 1.0
        ptr[row + 1] = n_entries
    entry_rows = entry_rows[:n_entries]
    entry_terms = entry_terms[:n_entries]
    entry_counts = entry_counts[:n_entries]
    sizes = np.empty(merged, np.float64)
    for row in range(merged):
        sizes[row] = ptr[row + 1] - ptr[row]

    vocab = np.unique(entry_terms)
    entry_vocab = np.searchsorted(vocab, entry_terms)
    sf = np.zeros(vocab.size, np.float64)
    for e in range(n_entries):
        sf[entry_vocab[e]] += 1.0
    term_ptr = np.zeros(vocab.size + 1, np.int64)
    for u in range(vocab.size):
        term_ptr[u + 1] = term_ptr[u] + np.int64(sf[u])
    term_entries = np.argsort(entry_vocab, kind="mergesort")
    return (
        first_sentence, last_sentence, entry_rows, entry_terms, entry_counts, ptr, sizes,
        vocab, entry_vocab, sf, term_ptr, term_entries,
    )
