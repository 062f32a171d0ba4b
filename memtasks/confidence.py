"""Paraphrase confidence from the detector's own evidence (spec section 11.3).

Without a paraphrase classifier (spec section 7), a paraphrase case still gets a
confidence that it reproduces its training suffix: the detector's evidence p_e
(:mod:`memtasks.detection.evidence`, a logistic regression on the words and names
its aligned spans share). A case is a high-confidence paraphrase when p_e > 0.5.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from tqdm.auto import tqdm

from memtasks.detection import Alignment
from memtasks.detection.evidence import COEFFICIENTS_FILE, EvidenceModel
from memtasks.outcomes import HIGH, LOW
from memtasks.paraphrase import GRADING_BAR, Grade

# The name a case graded from this evidence records (memtasks.paraphrase.Grade).
EVIDENCE = "evidence"
THRESHOLD = 0.5

# A case: the matched training suffix, the generation and their alignment.
Case = tuple[str, str, Alignment]


class EvidenceConfidence(EvidenceModel):
    """High or low confidence for paraphrase cases, without a downloaded model.

    >>> grader = EvidenceConfidence()
    >>> grader.grade([(suffix, generation, alignment)])   # doctest: +SKIP
    ['paraphrase_low']

    ``score`` is the probability p_e, for logging; ``grade`` is HIGH when p_e > 0.5,
    else LOW. ``coefficients`` replaces the shipped ones (a path or a mapping of the
    same shape).
    """

    def __init__(self, coefficients: str | Path | Mapping | None = None):
        super().__init__(coefficients)
        if isinstance(coefficients, Mapping):
            source = "given coefficients"
        else:
            source = str(coefficients or f"memtasks/{COEFFICIENTS_FILE}")
        # Named like a classifier, for the report's note on where confidence came from.
        self.name = f"detector evidence ({source})"

    def scores(self, cases: Sequence[Case], progress: bool = False) -> list[float]:
        """:meth:`score` of each (suffix, generation, alignment) case; ``progress`` shows a bar."""
        return [self.score(*case) for case in tqdm(cases, desc=GRADING_BAR, unit="case", disable=not progress)]

    def grade(self, cases: Sequence[Case], progress: bool = False) -> list[str]:
        """HIGH or LOW for each (suffix, generation, alignment) case."""
        return [g.category for g in self.grades(cases, progress)]

    def grades(self, cases: Sequence[Case], progress: bool = False) -> list[Grade]:
        """The :class:`~memtasks.paraphrase.Grade` of each (suffix, generation, alignment) case:
        HIGH when p > 0.5, with p."""
        return [Grade(HIGH if p > THRESHOLD else LOW, p, EVIDENCE) for p in self.scores(cases, progress)]
