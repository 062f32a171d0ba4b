"""Text alignment of one document pair (spec sections 2 to 6).

The suspicious document is the training suffix and the source document the
generation. Cases are kept as sentence-index spans ``(s0, s1, g0, g1)``
(inclusive) until they are turned into character offsets at the end.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from memtasks.detection.config import DetectorConfig
from memtasks.detection.kernels import common_runs, pair_evidence, span_cosine
from memtasks.detection.text import Document

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
    """TF-ISF weights of the sentences of both documents in one term space (spec 2),
    the cosine of every sentence pair, and the seeds (spec 3): the first part of
    :func:`pair_evidence`."""

    def __init__(self, susp: Document, src: Document, similarities: tuple):
        self.susp, self.src = susp, src
        (self.seeds, self.cosine, self.column_s, self.weight_s, self.column_g, self.weight_g, self.n_terms) = similarities

    def span_cosine(self, case: SentenceCase) -> float:
        """Cosine of the summed weight vectors of the case's two spans (spec 4.3)."""
        s0, s1, g0, g1 = case
        ps, pg = self.susp.ptr, self.src.ptr
        return span_cosine(
            self.column_s, self.weight_s, ps[s0], ps[s1 + 1], self.column_g, self.weight_g, pg[g0], pg[g1 + 1], self.n_terms
        )


Seed = tuple[int, int]


def _split(seeds: list[Seed], side: int, maxgap: int) -> list[list[Seed]]:
    """Cut seeds, ordered on ``side``, wherever more than ``maxgap`` sentences lie between two."""
    ordered = sorted(seeds, key=lambda seed: (seed[side], seed[1 - side]))
    groups = [[ordered[0]]]
    for previous, seed in zip(ordered, ordered[1:]):
        if seed[side] - previous[side] - 1 > maxgap:
            groups.append([seed])
        else:
            groups[-1].append(seed)
    return groups


def _clusters(seeds: list[Seed], maxgap: int) -> list[list[Seed]]:
    """Alternate splits on the suspicious and the source side until none splits."""
    done: list[list[Seed]] = []
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


def _case_of(cluster: list[Seed]) -> SentenceCase:
    susp_side = [seed[0] for seed in cluster]
    src_side = [seed[1] for seed in cluster]
    return (min(susp_side), max(susp_side), min(src_side), max(src_side))


def _extend(space: _PairSpace, seeds: list[Seed], maxgap: int, config: DetectorConfig) -> list[SentenceCase]:
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


def _word_range(doc: Document, start: int, end: int) -> tuple[int, int]:
    """The words lying inside the character span [start, end), as ``(first, last + 1)``."""
    return int(np.searchsorted(doc.word_starts, start)), int(np.searchsorted(doc.word_ends, end, side="right"))


def _detections(susp: Document, src: Document, found: np.ndarray) -> list[Detection]:
    """Runs of :func:`common_runs` (word indexes) as detections, without the runs
    nested, on the source side, inside another (spec 6.1)."""
    if not len(found):
        return []
    runs = [
        Detection(int(susp.word_starts[a]), int(susp.word_ends[b]), int(src.word_starts[c]), int(src.word_ends[d]))
        for a, b, c, d in found.tolist()
    ]
    runs.sort(key=lambda r: (r.src_start, -r.src_end, r.susp_start))
    kept: list[Detection] = []
    reach = -1
    for run in runs:
        if run.src_end > reach:
            kept.append(run)
            reach = run.src_end
    return sorted(kept, key=lambda r: (r.susp_start, r.src_start))


def verbatim_runs(susp: Document, susp_span: tuple[int, int], src: Document, src_span: tuple[int, int], minlen: int) -> list[Detection]:
    """Maximal common runs of words between two character spans (spec 6.1).

    Words are compared lowercased and unstemmed, punctuation ignored. A run is
    kept when it is longer than ``minlen`` characters on the suspicious side and
    not nested, on the source side, inside another kept run.
    """
    lo_s, hi_s = _word_range(susp, *susp_span)
    lo_g, hi_g = _word_range(src, *src_span)
    # Integer character lengths: longer than minlen is at least minlen + 1.
    return _detections(susp, src, common_runs(susp.words, susp.ngrams, lo_s, hi_s, src.words, src.ngrams, lo_g, hi_g, minlen + 1))


def _case_runs(susp: Document, src: Document, cases: list[SentenceCase], minlen: int) -> list[Detection]:
    """The verbatim runs inside the cases (spec 6.1)."""
    spans = [_to_detection(susp, src, case) for case in cases]
    return [
        run
        for d in spans
        for run in verbatim_runs(susp, (d.susp_start, d.susp_end), src, (d.src_start, d.src_end), minlen)
    ]


def _classify_cases(space: _PairSpace, seeds: list[Seed], cases: list[SentenceCase], config: DetectorConfig) -> Alignment:
    """Idea, paraphrase or none for a pair without verbatim runs (spec 6.2, 6.3 and 11.5).

    Idea when the summary pass (gap ``summary_gap``) found something and one
    side of it is at least ``summary_ratio`` times the other: the generation
    expands the suffix (src >= r x susp, the study's rule) or, with
    ``condensation``, condenses it (susp >= r x src) from seeds on at least two
    of its sentences.
    """
    susp, src = space.susp, space.src
    summary = _filter(space, _extend(space, seeds, config.summary_gap, config), config)
    susp_total = sum(_susp_chars(susp, case) for case in summary)
    src_total = sum(_src_chars(src, case) for case in summary)
    expands = src_total > 0 and src_total >= config.summary_ratio * susp_total
    # Key points: seeds on two suffix sentences at least. One long suffix sentence that
    # shares a few words with a short generation is a coincidence far more often.
    condenses = (
        config.condensation
        and susp_total > 0
        and susp_total >= config.summary_ratio * src_total
        and len({i for i, _ in seeds if any(case[0] <= i <= case[1] for case in summary)}) >= 2
    )
    if expands or condenses:
        return Alignment("idea", tuple(_to_detection(susp, src, case) for case in summary))
    if cases:
        return Alignment("paraphrase", tuple(_to_detection(susp, src, case) for case in cases))
    return NO_ALIGNMENT


def detect(susp: Document, src: Document, config: DetectorConfig) -> Alignment:
    """Detect and classify what ``src`` (generation) reproduces of ``susp`` (training suffix).

    Verbatim comes first: the runs of spec 6.1 inside the cases or, when they
    hold none, the common runs of at least ``verbatim_minlen`` characters of
    the whole texts (spec 11.1). That second look makes a copy verbatim when
    nothing seeds, as between two one-sentence texts (every TF-ISF weight is
    then ln(2/2) = 0), or when the copy lies outside every case. It applies
    with every preset: a copy missed under some setting would be a blind spot,
    and on the PAN corpus (``pan14``) it only adds copies that the cases
    missed. Idea and paraphrase come after (spec 6.2 and 6.3).
    """
    similarities, copies = pair_evidence(
        susp.arrays, src.arrays, susp.words, susp.ngrams, src.words, src.ngrams, config.th1, config.th2,
        config.weighting == "smoothed", config.verbatim_minlen,
    )
    if not len(similarities[0]):
        # Most pairs: no seed, so no case, and only a copy of the whole texts counts.
        runs = _detections(susp, src, copies)
        return Alignment("verbatim", tuple(runs)) if runs else NO_ALIGNMENT
    space = _PairSpace(susp, src, similarities)
    seeds = [(int(i), int(j)) for i, j in space.seeds.tolist()]
    cases = _filter(space, _extend(space, seeds, config.maxgap, config), config)
    runs = _case_runs(susp, src, cases, config.verbatim_minlen) or _detections(susp, src, copies)
    if runs:
        return Alignment("verbatim", tuple(runs))
    return _classify_cases(space, seeds, cases, config)
