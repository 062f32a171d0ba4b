"""Compiled inner loop of the detector: TF-ISF weights and sentence similarities of a pair.

This is the part every pair pays for, so it runs as one compiled function
(numba) instead of a few dozen small numpy calls.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numba.typed import List


@njit(cache=True, nogil=True)
def pair_similarities(susp, src, th1, th2, smooth):  # pragma: no cover - compiled
    """TF-ISF weights of both documents in one term space, sentence similarities and seeds.

    ``susp`` and ``src`` are the arrays of :meth:`Document.arrays`. The weight
    of term t in sentence s is tf(t, s) * ln(N / sf(t)), with N the sentences of
    both documents and sf(t) how many of them contain t; with ``smooth`` it is
    tf(t, s) * ln(1 + N / sf(t)) for words (even term ids), which never zeroes a
    term that every sentence of a short pair shares (spec 11.4,
    ``DetectorConfig.weighting``). Returns the seeds
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
    # Letters of unspaced scripts (odd term ids) keep ln(N / sf): a small alphabet makes
    # any two sentences share most letters, which only PAN's weights discount.
    idf_g = np.empty(ug)
    for v in range(ug):
        idf_g[v] = np.log((1.0 if smooth and vocab_g[v] % 2 == 0 else 0.0) + total / sf_g[v])
    for u in range(us):
        partner = partner_s[u]
        offset = 1.0 if smooth and vocab_s[u] % 2 == 0 else 0.0
        idf_s[u] = np.log(offset + total / (sf_s[u] + (sf_g[partner] if partner >= 0 else 0.0)))
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


# Columns of a document's word array: the word's id, its start and its end, and
# its reach: the measured length of the text from its start to the word's end.
WORD_ID, WORD_START, WORD_END, WORD_REACH = 0, 1, 2, 3
# How ``verbatim_minlen`` measures a run of words (see memtasks.detection.text):
# in thirds of a character, where a letter of a script written without spaces
# (with its combining marks) counts as 10/3 characters, one token of the study's
# "50 characters (approximately 15 tokens)". Text in spaced scripts measures
# 3 units per character, so that its lengths are exactly its characters' counts.
UNITS_PER_CHAR = 3
UNITS_PER_UNSPACED_LETTER = 10
# Documents index their runs of this many words (see ``common_runs``): three
# words are few enough that almost any stretch of ``verbatim_minlen``
# characters holds more, and enough that unrelated texts share few of them.
INDEX_NGRAM = 3
# Multiplier of the polynomial hash of word n-grams (odd, so that multiplying
# by it loses no bits; the arithmetic wraps modulo 2**64).
_HASH_BASE = 0x5851F42D4C957F2D


@njit(cache=True, nogil=True)
def _ngram_hash(words, first, k):  # pragma: no cover - compiled
    """A 64-bit hash of the ids of the ``k`` words from ``first`` on."""
    value = 0
    for t in range(first, first + k):
        value = value * _HASH_BASE + words[t, WORD_ID]
    return value


@njit(cache=True, nogil=True)
def ngram_index(words, lo, hi, k):  # pragma: no cover - compiled
    """The first words of all runs of ``k`` consecutive words among ``lo..hi-1``,
    ordered by the runs' :func:`_ngram_hash`, so that equal runs are neighbours."""
    count = max(hi - lo - k + 1, 0)
    hashes = np.empty(count, np.int64)
    for i in range(count):
        hashes[i] = _ngram_hash(words, lo + i, k)
    return (np.argsort(hashes) + lo).astype(np.int32)


@njit(cache=True, nogil=True)
def sentence_terms(rows, term_table, token_starts, sentence_starts):  # pragma: no cover - compiled
    """The term ids of a text's tokens, in order, and how many lie in each sentence.

    Token ``k`` has the terms of row ``rows[k]`` of ``term_table`` (its non-zero
    entries) and lies in the last sentence that starts at or before it, since
    sentences cover every character but whitespace.
    """
    n_sentences = sentence_starts.size
    width = term_table.shape[1]
    terms = np.empty(rows.size * width, np.int64)
    lengths = np.zeros(n_sentences, np.int64)
    count = 0
    sentence = 0
    for k in range(rows.size):
        while sentence + 1 < n_sentences and sentence_starts[sentence + 1] <= token_starts[k]:
            sentence += 1
        for c in range(width):
            term = term_table[rows[k], c]
            if term != 0:
                terms[count] = term
                count += 1
                lengths[sentence] += 1
    return terms[:count], lengths


@njit(cache=True, nogil=True)
def run_units(words, first, last):  # pragma: no cover - compiled
    """The measured length (in units, see ``UNITS_PER_CHAR``) of the text from word
    ``first``'s start to word ``last``'s end; ``words`` is a whole document's word array."""
    before = UNITS_PER_CHAR * words[first, WORD_START]
    if first > 0:
        before = words[first - 1, WORD_REACH] + UNITS_PER_CHAR * (words[first, WORD_START] - words[first - 1, WORD_END])
    return words[last, WORD_REACH] - before


@njit(cache=True, nogil=True)
def _fewest_words(words, lo, hi, minlen):  # pragma: no cover - compiled
    """The fewest consecutive words among ``lo..hi-1`` that span at least ``minlen``
    characters (first word's start to last word's end, measured by :func:`run_units`);
    0 when no stretch does."""
    fewest = 0
    last = lo
    for first in range(lo, hi):
        # A stretch from a later first word needs a last word at least as far.
        last = max(last, first)
        while last < hi and run_units(words, first, last) < minlen * UNITS_PER_CHAR:
            last += 1
        if last == hi:
            break
        if fewest == 0 or last - first + 1 < fewest:
            fewest = last - first + 1
    return fewest


@njit(cache=True, nogil=True)
def _runs_from_ngrams(words_s, lo_s, hi_s, ngrams_s, words_g, lo_g, hi_g, ngrams_g, k, minlen):  # pragma: no cover - compiled
    """The maximal runs that start where a ``k``-word n-gram of one side recurs on the
    other, found by one merge of the two n-gram indexes, each extended word by word
    (which also rules out hash collisions) and kept when it spans ``minlen``
    characters on the first side (measured by :func:`run_units`)."""
    found = []
    a = b = 0
    while a < ngrams_s.size and b < ngrams_g.size:
        key = _ngram_hash(words_s, ngrams_s[a], k)
        other = _ngram_hash(words_g, ngrams_g[b], k)
        if key < other:
            a += 1
            continue
        if other < key:
            b += 1
            continue
        a_end, b_end = a + 1, b + 1
        while a_end < ngrams_s.size and _ngram_hash(words_s, ngrams_s[a_end], k) == key:
            a_end += 1
        while b_end < ngrams_g.size and _ngram_hash(words_g, ngrams_g[b_end], k) == key:
            b_end += 1
        for x in range(a, a_end):
            i = ngrams_s[x]
            if i < lo_s or i + k > hi_s:
                continue
            for y in range(b, b_end):
                j = ngrams_g[y]
                if j < lo_g or j + k > hi_g:
                    continue
                if i > lo_s and j > lo_g and words_s[i - 1, WORD_ID] == words_g[j - 1, WORD_ID]:
                    continue  # inside a run that starts earlier
                length = 0
                while i + length < hi_s and j + length < hi_g and words_s[i + length, WORD_ID] == words_g[j + length, WORD_ID]:
                    length += 1
                if length > 0 and run_units(words_s, i, i + length - 1) >= minlen * UNITS_PER_CHAR:
                    found.append((i, i + length - 1, j, j + length - 1))
        a, b = a_end, b_end
    runs = np.empty((len(found), 4), np.int64)
    for r in range(len(found)):
        runs[r, 0], runs[r, 1], runs[r, 2], runs[r, 3] = found[r]
    return runs


@njit(cache=True, nogil=True)
def common_runs(words_s, ngrams_s, lo_s, hi_s, words_g, ngrams_g, lo_g, hi_g, minlen):  # pragma: no cover - compiled
    """Maximal common runs of words ``lo_s..hi_s-1`` of one text and ``lo_g..hi_g-1`` of
    another, at least ``minlen`` characters long on the first, a letter of a script
    written without spaces counting as 10/3 characters (:func:`run_units`).

    ``words_*`` and ``ngrams_*`` are the documents' ``words`` and ``ngrams``
    arrays. A run is maximal when the words before it, and the words after it,
    differ (or a range ends there). Near-linear, instead of a walk over the
    whole word grid: a run of ``minlen`` characters holds at least ``k`` words,
    ``k`` the fewest words of any stretch of ``minlen`` characters of the first
    range, so it starts where an n-gram of min(k, INDEX_NGRAM) words recurs in
    the other text; the documents' n-gram indexes give those places by one
    merge (for k < INDEX_NGRAM, indexes of k-grams are built here). The
    work grows with the texts' lengths, the recurring n-grams and the runs they
    start. Returns an array of (first word s, last word s, first word g, last
    word g) rows.
    """
    k = _fewest_words(words_s, lo_s, hi_s, minlen)
    if k == 0 or hi_g - lo_g < k:
        return np.empty((0, 4), np.int64)
    if k >= INDEX_NGRAM:
        return _runs_from_ngrams(words_s, lo_s, hi_s, ngrams_s, words_g, lo_g, hi_g, ngrams_g, INDEX_NGRAM, minlen)
    short_s = ngram_index(words_s, lo_s, hi_s, k)
    short_g = ngram_index(words_g, lo_g, hi_g, k)
    return _runs_from_ngrams(words_s, lo_s, hi_s, short_s, words_g, lo_g, hi_g, short_g, k, minlen)


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


@njit(cache=True, nogil=True)
def index_document(rows, term_table, word_table, unit_table, offsets, sentence_starts, min_terms):  # pragma: no cover - compiled
    """All compiled preprocessing of one text, in one call (one dispatch per text).

    Token ``k`` is row ``rows[k]`` of the encoder's tables and spans
    ``offsets[2k]`` to ``offsets[2k + 1]``. Returns what :func:`index_sentences`
    returns for the tokens' terms (see :func:`sentence_terms`), the word array
    (a row per token: word id, start, end, reach; the reach adds up the
    characters between tokens, ``UNITS_PER_CHAR`` each, and the tokens'
    ``unit_table`` lengths) and its :func:`ngram_index` of ``INDEX_NGRAM`` words.
    """
    # 32-bit columns: half the memory that every pair reads. Word ids are
    # CRC-32 values, wrapped to signed, which keeps them distinct.
    words = np.empty((rows.size, 4), np.int32)
    reach = 0
    end = 0
    for k in range(rows.size):
        words[k, WORD_ID] = word_table[rows[k]]
        words[k, WORD_START] = offsets[2 * k]
        words[k, WORD_END] = offsets[2 * k + 1]
        reach += UNITS_PER_CHAR * (offsets[2 * k] - end) + unit_table[rows[k]]
        end = offsets[2 * k + 1]
        words[k, WORD_REACH] = reach
    terms, lengths = sentence_terms(rows, term_table, words[:, WORD_START], sentence_starts)
    sentences = index_sentences(terms, lengths, min_terms)
    return sentences, words, ngram_index(words, 0, rows.size, INDEX_NGRAM)


@njit(cache=True, nogil=True)
def pair_evidence(susp, src, words_s, ngrams_s, words_g, ngrams_g, th1, th2, smooth, minlen):  # pragma: no cover - compiled
    """All compiled work on one pair, in one call (one dispatch per pair): the
    sentence similarities and seeds of :func:`pair_similarities`, and the
    whole texts' :func:`common_runs` of at least ``minlen`` characters
    (spec 11.1), needed whenever the cases hold no verbatim run, which is most
    pairs."""
    copies = common_runs(words_s, ngrams_s, 0, words_s.shape[0], words_g, ngrams_g, 0, words_g.shape[0], minlen)
    return pair_similarities(susp, src, th1, th2, smooth), copies


@njit(cache=True, nogil=True)
def pairs_with_evidence(fields, offsets, pairs, th1, th2, smooth, minlen):  # pragma: no cover - compiled
    """Which pairs of a set of documents have a seed or a whole-text copy, in one call.

    ``fields`` are the documents' ``arrays`` followed by their ``words`` and
    ``ngrams``, each concatenated over all documents; ``offsets[f][d]`` is
    where document ``d`` starts in ``fields[f]``. A pair without either has no
    alignment (see ``align_documents``), which is most pairs: they are settled
    here with no call per pair from Python.
    """
    found = np.zeros(pairs.shape[0], np.bool_)
    for p in range(pairs.shape[0]):
        s, g = pairs[p, 0], pairs[p, 1]
        susp = (
            fields[0][offsets[0][s] : offsets[0][s + 1]], fields[1][offsets[1][s] : offsets[1][s + 1]],
            fields[2][offsets[2][s] : offsets[2][s + 1]], fields[3][offsets[3][s] : offsets[3][s + 1]],
            fields[4][offsets[4][s] : offsets[4][s + 1]], fields[5][offsets[5][s] : offsets[5][s + 1]],
            fields[6][offsets[6][s] : offsets[6][s + 1]], fields[7][offsets[7][s] : offsets[7][s + 1]],
        )
        src = (
            fields[0][offsets[0][g] : offsets[0][g + 1]], fields[1][offsets[1][g] : offsets[1][g + 1]],
            fields[2][offsets[2][g] : offsets[2][g + 1]], fields[3][offsets[3][g] : offsets[3][g + 1]],
            fields[4][offsets[4][g] : offsets[4][g + 1]], fields[5][offsets[5][g] : offsets[5][g + 1]],
            fields[6][offsets[6][g] : offsets[6][g + 1]], fields[7][offsets[7][g] : offsets[7][g + 1]],
        )
        similarities, copies = pair_evidence(
            susp, src,
            fields[8][offsets[8][s] : offsets[8][s + 1]], fields[9][offsets[9][s] : offsets[9][s + 1]],
            fields[8][offsets[8][g] : offsets[8][g + 1]], fields[9][offsets[9][g] : offsets[9][g + 1]],
            th1, th2, smooth, minlen,
        )
        found[p] = similarities[0].shape[0] > 0 or copies.shape[0] > 0
    return found


@njit(cache=True, nogil=True)
def _joined(parts):  # pragma: no cover - compiled
    """The 1-D arrays of the typed list ``parts`` end to end, and where each starts (and the end)."""
    offsets = np.zeros(len(parts) + 1, np.int64)
    for i in range(len(parts)):
        offsets[i + 1] = offsets[i] + parts[i].shape[0]
    out = np.empty(offsets[-1], parts[0].dtype)
    for i in range(len(parts)):
        out[offsets[i] : offsets[i + 1]] = parts[i]
    return out, offsets


@njit(cache=True, nogil=True)
def _joined_words(parts):  # pragma: no cover - compiled
    """:func:`_joined` for word arrays (a row per word)."""
    offsets = np.zeros(len(parts) + 1, np.int64)
    for i in range(len(parts)):
        offsets[i + 1] = offsets[i] + parts[i].shape[0]
    out = np.empty((offsets[-1], 4), np.int32)
    for i in range(len(parts)):
        out[offsets[i] : offsets[i + 1]] = parts[i]
    return out, offsets


@njit(cache=True, nogil=True)
def index_batch(rows, term_table, word_table, unit_table, part_lengths, part_ptr, sentence_starts, sentence_ends, sentence_ptr, min_terms):  # pragma: no cover - compiled
    """:func:`index_document` for many texts in one call, their arrays concatenated.

    Text ``d`` has the tokens ``rows[t0:t1]`` (``t0`` counted from ``part_ptr``:
    a text's parts are gap, token, gap, ..., token, gap, so ``(parts - 1) / 2``
    tokens), the parts' lengths ``part_lengths[part_ptr[d]:part_ptr[d + 1]]``
    and the sentence spans ``sentence_starts/ends[sentence_ptr[d]:sentence_ptr[d + 1]]``.
    Returns the fields of :class:`~memtasks.detection.text.Document` but the
    text (starts, ends, terms, counts, ptr, rows, sizes, vocab, entry_vocab,
    sf, term_ptr, term_entries, words, ngrams), each concatenated over the
    texts, then the offsets of each text in each of them.
    """
    starts_l = List()
    ends_l = List()
    terms_l = List()
    counts_l = List()
    ptr_l = List()
    rows_l = List()
    sizes_l = List()
    vocab_l = List()
    entry_vocab_l = List()
    sf_l = List()
    term_ptr_l = List()
    term_entries_l = List()
    words_l = List()
    ngrams_l = List()
    first_token = 0
    for d in range(part_ptr.size - 1):
        lengths = part_lengths[part_ptr[d] : part_ptr[d + 1]]
        n_tokens = (lengths.size - 1) // 2
        offsets = np.cumsum(lengths)
        bounds_start = sentence_starts[sentence_ptr[d] : sentence_ptr[d + 1]]
        bounds_end = sentence_ends[sentence_ptr[d] : sentence_ptr[d + 1]]
        sentences, words, ngrams = index_document(
            rows[first_token : first_token + n_tokens], term_table, word_table, unit_table, offsets, bounds_start, min_terms
        )
        first_token += n_tokens
        (first, last, entry_rows, terms, counts, ptr, sizes, vocab, entry_vocab, sf, term_ptr, term_entries) = sentences
        starts = np.empty(first.size, np.int64)
        ends = np.empty(last.size, np.int64)
        for k in range(first.size):
            starts[k] = bounds_start[first[k]]
            ends[k] = bounds_end[last[k]]
        starts_l.append(starts)
        ends_l.append(ends)
        terms_l.append(terms)
        counts_l.append(counts)
        ptr_l.append(ptr)
        rows_l.append(entry_rows)
        sizes_l.append(sizes)
        vocab_l.append(vocab)
        entry_vocab_l.append(entry_vocab)
        sf_l.append(sf)
        term_ptr_l.append(term_ptr)
        term_entries_l.append(term_entries)
        words_l.append(words)
        ngrams_l.append(ngrams)
    starts, o_starts = _joined(starts_l)
    ends, o_ends = _joined(ends_l)
    terms, o_terms = _joined(terms_l)
    counts, o_counts = _joined(counts_l)
    ptr, o_ptr = _joined(ptr_l)
    entry_rows, o_rows = _joined(rows_l)
    sizes, o_sizes = _joined(sizes_l)
    vocab, o_vocab = _joined(vocab_l)
    entry_vocab, o_entry_vocab = _joined(entry_vocab_l)
    sf, o_sf = _joined(sf_l)
    term_ptr, o_term_ptr = _joined(term_ptr_l)
    term_entries, o_term_entries = _joined(term_entries_l)
    words, o_words = _joined_words(words_l)
    ngrams, o_ngrams = _joined(ngrams_l)
    fields = (starts, ends, terms, counts, ptr, entry_rows, sizes, vocab, entry_vocab, sf, term_ptr, term_entries, words, ngrams)
    offsets = (
        o_starts, o_ends, o_terms, o_counts, o_ptr, o_rows, o_sizes, o_vocab, o_entry_vocab, o_sf, o_term_ptr,
        o_term_entries, o_words, o_ngrams,
    )
    return fields, offsets
