"""What counts as a case (issue 27): coincidences are not cases, near-copies are high whatever grades them."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

from memtasks.confidence import EvidenceConfidence
from memtasks.detection import Detector
from memtasks.grader import default_grader
from memtasks.scoring import Probe, score_probes

sys.path.insert(0, str(Path(__file__).resolve().parent / "tools"))
from planted_pairs import edit_words  # noqa: E402

# One-sentence topical coincidences a run counted as paraphrase_low (issue 27): they share a
# place name or an event and nothing else.
COINCIDENCES = (
    (
        "the United States, Mexico, the Caribbean, and Bermuda).",
        "countries, including lists for Africa, Asia, the Caribbean, Europe, South America, the South Pacific, "
        "the United Kingdom and the United States.",
    ),
    (
        "The film premiered at the 2018 Sundance Film Festival and was",
        "Rolling Stone talked to Morgen at the Sundance Film Festival, and the filmmaker revealed how he found "
        "the footage.",
    ),
)

# A news report and a movie review that share "no matter what" and "well enough" (issue 27):
# PAN's weighting aligns them too, so only the evidence can tell that nothing is restated.
SHARED_PHRASES = (
    "Could we have done more? Did we look after them well enough after the fact? It's a difficult one. These men "
    "didn't deserve it, no matter what choices they made. Society can be cruel. Strangled by hatred .",
    "having the film sit on the shelf for several months it laid an egg at the box office. No matter what they did "
    "to the film, they made it worse. They should have left well enough alone. Hey, the film company knows better "
    "than the filmmakers now....don't they?",
)

SUFFIX = (
    "The bishop of the diocese has exposed potentially hundreds of church members to the hepatitis A virus in late "
    "September and early October. The state health department has issued an alert to anyone who attended five "
    "churches and took communion. Bishop John Folda is taking time off after being diagnosed with hepatitis A. "
    "The bishop contracted the infection through contaminated food while attending a conference for newly ordained "
    "bishops in Italy last month."
)


def edited(text: str, share: float, seed: int) -> str:
    """``text`` with a ``share`` of its words dropped, replaced or swapped with the next, one in three each."""
    rng = random.Random(seed)
    words = text.split()
    chosen = set(rng.sample(range(len(words)), round(share * len(words))))
    return " ".join(edit_words(words, lambda i: i % 3 if i in chosen else None, lambda: "meanwhile"))


@pytest.mark.parametrize("suffix, generation", COINCIDENCES)
def test_a_one_sentence_coincidence_sharing_a_name_is_not_a_case(suffix, generation):
    # Only the smoothed short-text weighting aligns it, and nothing in the text supports it.
    assert Detector("memorization", weighting="pan").align(suffix, generation).category == "none"
    assert Detector("memorization").align(suffix, generation).category == "none"


def test_a_coincidence_that_pans_weighting_aligns_too_is_not_a_case():
    suffix, generation = SHARED_PHRASES
    assert Detector("memorization", weighting="pan", support=0.0).align(suffix, generation).category == "paraphrase"
    assert Detector("memorization").align(suffix, generation).category == "none"


@pytest.mark.parametrize("grader", [EvidenceConfidence(), default_grader()], ids=["evidence", "cross-encoder"])
@pytest.mark.parametrize("seed", range(3))
def test_a_copy_with_30_percent_of_its_words_edited_is_high_whatever_grades_it(grader, seed):
    probe = Probe("p", SUFFIX, edited(SUFFIX, 0.3, seed))
    [outcome] = score_probes([probe], paraphrase_classifier=grader).outcomes
    assert outcome.category in ("verbatim", "paraphrase_high")
