"""Text alignment of one document pair (spec sections 2 to 6).

The suspicious document is the training suffix and the source document the
generation. Cases are kept as sentence-index spans ``(s0, s1, g0, g1)``
(inclusive) until they are turned into character offsets at the end.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from memtasks.detection.config import DetectorConfig
from memtasks.detection.text import Document, word_spans

CATEGORIES = ("verbatim", "idea", "paraphrase")

SentenceCase = tuple[int, int, int, int]


@dataclass(frozen=True)
class Detection:
    """One aligned passage: character offsets (end exclusive) in both texts."""

    susp_start: int
    susp_end: int
    src_start: int
    src_end: int


@dataclass(frozen=True)
class Alignment:
    """The outcome for one pair: its category (or ``"none"``) and its detections."""

    category: str
    detections: tuple[Detection, ...] = ()

    @property
    def detected(self) -> bool:
        return self.category != "none"


NO_ALIGNMENT = Alignment("none")


class _PairSpace:
    """TF-ISF weights of the sentences of both documents in one term space.

    weight(t, s) = tf(t, s) * ln(N / sf(t)), N = sentences of both documents,
    sf(t) = how many of them contain t.
    """

    def __init__(self, susp: Document, src: Document):
        ns, ng = susp.n_sentences, src.n_sentences
        n_entries_s = len(susp.terms)
        vocab, column = np.unique(np.concatenate([susp.terms, src.terms]), return_inverse=True)
        self.n_terms = len(vocab)
        sf = np.bincount(column, minlength=self.n_terms)
        weights = np.concatenate([susp.counts, src.counts]) * np.log((ns + ng) / sf)[column]
        self.column_s, self.column_g = column[:n_entries_s], column[n_entries_s:]
        self.weight_s, self.weight_g = weights[:n_entries_s], weights[n_entries_s:]
        self.susp, self.src = susp, src

        in_s = np.zeros(self.n_terms, dtype=bool)
        in_s[self.column_s] = True
        in_g = np.zeros(self.n_terms, dtype=bool)
        in_g[self.column_g] = True
        shared = in_s & in_g
        self.has_shared_terms = bool(shared.any())
        if not self.has_shared_terms:
            return
        # Only terms present on both sides add to dot products and intersections,
        # so the sentence matrices are built over those columns alone.
        shared_index = np.cumsum(shared) - 1
        n_shared = int(shared.sum())
        keep_s, keep_g = shared[self.column_s], shared[self.column_g]
        rows_s, rows_g = susp.rows[keep_s], src.rows[keep_g]
        cols_s, cols_g = shared_index[self.column_s[keep_s]], shared_index[self.column_g[keep_g]]
        dense_s = np.zeros((ns, n_shared))
        dense_g = np.zeros((ng, n_shared))
        dense_s[rows_s, cols_s] = self.weight_s[keep_s]
        dense_g[rows_g, cols_g] = self.weight_g[keep_g]
        norm_s = np.sqrt(np.bincount(susp.rows, weights=self.weight_s**2, minlength=ns))
        norm_g = np.sqrt(np.bincount(src.rows, weights=self.weight_g**2, minlength=ng))
        with np.errstate(divide="ignore", invalid="ignore"):
            cosine = (dense_s @ dense_g.T) / np.outer(norm_s, norm_g)
        self.cosine = np.nan_to_num(cosine, nan=0.0, posinf=0.0)
        # Term sets are built separately: a term found in every sentence weighs 0
        # but still counts for Dice.
        binary_s = np.zeros((ns, n_shared))
        binary_g = np.zeros((ng, n_shared))
        binary_s[rows_s, cols_s] = 1.0
        binary_g[rows_g, cols_g] = 1.0
        intersection = binary_s @ binary_g.T
        sizes_s, sizes_g = np.diff(susp.ptr), np.diff(src.ptr)
        self.dice = 2.0 * intersection / np.add.outer(sizes_s, sizes_g)

    def seeds(self, th1: float, th2: float) -> np.ndarray:
        """Sentence pairs (susp index, src index) above both thresholds, sorted."""
        if not self.has_shared_terms:
            return np.zeros((0, 2), dtype=np.int64)
        return np.argwhere((self.cosine > th1) & (self.dice > th2))

    def span_cosine(self, case: SentenceCase) -> float:
        """Cosine of the summed weight vectors of the case's two spans."""
        s0, s1, g0, g1 = case
        ps, pg = self.susp.ptr, self.src.ptr
        vec_s = np.bincount(self.column_s[ps[s0] : ps[s1 + 1]], weights=self.weight_s[ps[s0] : ps[s1 + 1]], minlength=self.n_terms)
        vec_g = np.bincount(self.column_g[pg[g0] : pg[g1 + 1]], weights=self.weight_g[pg[g0] : pg[g1 + 1]], minlength=self.n_terms)
        denominator = np.linalg.norm(vec_s) * np.linalg.norm(vec_g)
        return float(vec_s @ vec_g / denominator) if denominator > 0 else 0.0


def _split(seeds: np.ndarray, side: int, maxgap: int) -> list[np.ndarray]:
    """Cut seeds, ordered on ``side``, wherever more than ``maxgap`` sentences lie between two."""
    order = np.lexsort((seeds[:, 1 - side], seeds[:, side]))
    ordered = seeds[order]
    gaps = np.diff(ordered[:, side]) - 1
    cuts = np.flatnonzero(gaps > maxgap) + 1
    return np.split(ordered, cuts) if len(cuts) else [ordered]


def _clusters(seeds: np.ndarray, maxgap: int) -> list[np.ndarray]:
    """Alternate splits on the suspicious and the source side until none splits."""
    done: list[np.ndarray] = []
    pending = [(seeds, 0, False)]
    while pending:
        group, side, other_side_stable = pending.pop()
        parts = _split(group, side, maxgap)
        if len(parts) == 1:
            if other_side_stable:
                done.append(group)
            else:
                pending.append((group, 1 - side, True))
        else:
            pending.extend((part, 1 - side, False) for part in reversed(parts))
    return done


def _case_of(cluster: np.ndarray) -> SentenceCase:
    return (int(cluster[:, 0].min()), int(cluster[:, 0].max()), int(cluster[:, 1].min()), int(cluster[:, 1].max()))


def _extend(space: _PairSpace, seeds: np.ndarray, maxgap: int, config: DetectorConfig) -> list[SentenceCase]:
    """Clusters of seeds as validated cases (spec 4), retried with smaller gaps."""
    cases: list[SentenceCase] = []
    pending = [(cluster, maxgap) for cluster in _clusters(seeds, maxgap)]
    while pending:
        cluster, gap = pending.pop()
        case = _case_of(cluster)
        if space.span_cosine(case) > config.th3:
            cases.append(case)
        elif gap - 1 >= config.gap_least:
            pending.extend((sub, gap - 1) for sub in _clusters(cluster, gap - 1))
    return sorted(set(cases))


def _overlap_score(space: _PairSpace, case: SentenceCase, lo: int, hi: int) -> float:
    """How well the case's source span explains its suspicious sentences lo..hi (spec 5.1)."""
    s0, s1, g0, g1 = case
    best = space.cosine[s0 : s1 + 1, g0 : g1 + 1].max(axis=1)
    inside = np.zeros(len(best), dtype=bool)
    inside[lo - s0 : hi - s0 + 1] = True
    overlap_mean = float(best[inside].mean())
    rest_mean = float(best[~inside].mean()) if (~inside).any() else 0.0
    return overlap_mean + (1.0 - overlap_mean) * rest_mean


def _remove_overlaps(space: _PairSpace, cases: list[SentenceCase]) -> list[SentenceCase]:
    cases = sorted(cases)
    i = 0
    while i < len(cases):
        j = i + 1
        removed = False
        while j < len(cases) and cases[j][0] <= cases[i][1]:
            a, b = cases[i], cases[j]
            lo, hi = b[0], min(a[1], b[1])
            score_a, score_b = _overlap_score(space, a, lo, hi), _overlap_score(space, b, lo, hi)
            if score_a > 0.99 and score_b > 0.99:
                keep_a = _susp_chars(space.susp, a) >= _susp_chars(space.susp, b)
            else:
                keep_a = score_a >= score_b
            if keep_a:
                del cases[j]
            else:
                del cases[i]
                removed = True
                break
        if not removed:
            i += 1
    return cases


def _susp_chars(doc: Document, case: SentenceCase) -> int:
    return int(doc.ends[case[1]] - doc.starts[case[0]])


def _src_chars(doc: Document, case: SentenceCase) -> int:
    return int(doc.ends[case[3]] - doc.starts[case[2]])


def _filter(space: _PairSpace, cases: list[SentenceCase], config: DetectorConfig) -> list[SentenceCase]:
    """Resolve suspicious-side overlaps, then drop short cases (spec 5)."""
    cases = _remove_overlaps(space, cases)
    return [
        case
        for case in cases
        if _susp_chars(space.susp, case) >= config.min_plaglen and _src_chars(space.src, case) >= config.min_plaglen
    ]


def _to_detection(susp: Document, src: Document, case: SentenceCase) -> Detection:
    s0, s1, g0, g1 = case
    return Detection(int(susp.starts[s0]), int(susp.ends[s1]), int(src.starts[g0]), int(src.ends[g1]))


def _words(text: str, start: int, end: int) -> tuple[list[str], np.ndarray]:
    spans = word_spans(text[start:end])
    words = [text[start + a : start + b].lower() for a, b in spans]
    return words, np.asarray(spans, dtype=np.int64).reshape(-1, 2) + start


def verbatim_runs(susp_text: str, susp_span: tuple[int, int], src_text: str, src_span: tuple[int, int], minlen: int) -> list[Detection]:
    """Maximal common runs of words between two spans (spec 6.1).

    Words are compared lowercased and unstemmed, punctuation ignored. A run is
    kept when it is longer than ``minlen`` characters on the suspicious side and
    not nested, on the source side, inside another kept run.
    """
    words_s, offsets_s = _words(susp_text, *susp_span)
    words_g, offsets_g = _words(src_text, *src_span)
    if not words_s or not words_g:
        return []
    ids = {}
    ids_s = np.array([ids.setdefault(w, len(ids)) for w in words_s])
    ids_g = np.array([ids.get(w, -1) for w in words_g])
    equal = np.zeros((len(ids_s) + 2, len(ids_g) + 2), dtype=bool)
    equal[1:-1, 1:-1] = ids_s[:, None] == ids_g[None, :]
    core = equal[1:-1, 1:-1]
    starts = np.argwhere(core & ~equal[:-2, :-2])
    ends = np.argwhere(core & ~equal[2:, 2:])
    # Along each diagonal, starts and ends alternate, so sorting both by
    # (diagonal, position) pairs every run's start with its end.
    starts = starts[np.lexsort((starts[:, 0], starts[:, 1] - starts[:, 0]))]
    ends = ends[np.lexsort((ends[:, 0], ends[:, 1] - ends[:, 0]))]
    char_start_s = offsets_s[starts[:, 0], 0]
    char_end_s = offsets_s[ends[:, 0], 1]
    long_enough = (char_end_s - char_start_s) > minlen
    runs = [
        Detection(int(offsets_s[a[0], 0]), int(offsets_s[b[0], 1]), int(offsets_g[a[1], 0]), int(offsets_g[b[1], 1]))
        for a, b in zip(starts[long_enough], ends[long_enough])
    ]
    runs.sort(key=lambda r: (r.src_start, -r.src_end, r.susp_start))
    kept: list[Detection] = []
    reach = -1
    for run in runs:
        if run.src_end > reach:
            kept.append(run)
            reach = run.src_end
    return sorted(kept, key=lambda r: (r.susp_start, r.src_start))


def align_documents(susp: Document, susp_text: str, src: Document, src_text: str, config: DetectorConfig) -> Alignment:
    """Detect and classify what ``src`` (generation) reproduces of ``susp`` (training suffix)."""
    if susp.n_sentences == 0 or src.n_sentences == 0:
        return NO_ALIGNMENT
    space = _PairSpace(susp, src)
    seeds = space.seeds(config.th1, config.th2)
    if not len(seeds):
        return NO_ALIGNMENT
    cases = _filter(space, _extend(space, seeds, config.maxgap, config), config)
    runs = [
        run
        for detection in (_to_detection(susp, src, case) for case in cases)
        for run in verbatim_runs(
            susp_text,
            (detection.susp_start, detection.susp_end),
            src_text,
            (detection.src_start, detection.src_end),
            config.verbatim_minlen,
        )
    ]
    if runs:
        return Alignment("verbatim", tuple(runs))
    summary = _filter(space, _extend(space, seeds, config.summary_gap, config), config)
    susp_total = sum(_susp_chars(susp, case) for case in summary)
    src_total = sum(_src_chars(src, case) for case in summary)
    if src_total > 0 and src_total >= config.summary_ratio * susp_total:
        return Alignment("idea", tuple(_to_detection(susp, src, case) for case in summary))
    if cases:
        return Alignment("paraphrase", tuple(_to_detection(susp, src, case) for case in cases))
    return NO_ALIGNMENT
