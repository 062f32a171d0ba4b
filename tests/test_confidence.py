"""Tests for memtasks.confidence: paraphrase confidence from the detector's own evidence."""

from __future__ import annotations

import json
import sys
from importlib import resources
from pathlib import Path

import pytest

from memtasks.confidence import EvidenceConfidence
from memtasks.detection.evidence import FEATURES, Evidence, content_words, evidence, load_coefficients, names
from memtasks.detection import Detection, Detector
from memtasks.paraphrase import HIGH, LOW

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TOOLS = Path(__file__).resolve().parent / "tools"
sys.path.insert(0, str(TOOLS))
from planted_pairs import COINCIDENCES, one_sentence_case  # noqa: E402


# Real training text (SQuAD v2 and IMDB suffixes of tests/data/example_probes.jsonl)
# and paraphrases written by hand: other words, other order, sentences merged.
PARAPHRASES = [
    (
        "the Carolingian dynasty. Most Norman knights remained poor and land-hungry, and by 1066 Normandy had been "
        "exporting fighting horsemen for more than a generation. Many Normans of Italy, France and England eventually "
        "served as avid Crusaders under the Italo-Norman prince Bohemund I and the Anglo-Norman king Richard the Lion-Heart.",
        "Most of the Norman knights stayed poor and hungry for land, so by 1066 Normandy had spent more than a generation "
        "exporting mounted fighters. In time many Normans from England, France and Italy became eager Crusaders, serving "
        "under the Anglo-Norman king Richard the Lion-Heart and the Italo-Norman prince Bohemund I.",
    ),
    (
        'there was hope and possibility. I think that the writer did an amazing job depicting what "might have been." '
        "Aidan Quinn was adorable as Paul and met the challenge head on. I was impressed with his accent and mannerisms. "
        "Jared Harris is also very talented and was quite believable as John.",
        'I believe the writer did an amazing job of showing what "might have been." As Paul, Aidan Quinn was adorable and '
        "met the challenge head on, and his accent and mannerisms impressed me. Jared Harris is very talented too and "
        "quite believable as John.",
    ),
]


@pytest.fixture(scope="module")
def grader() -> EvidenceConfidence:
    return EvidenceConfidence()


@pytest.fixture(scope="module")
def detector() -> Detector:
    return Detector("memorization")


@pytest.mark.parametrize("suffix, generation", COINCIDENCES)
def test_issue_coincidences_are_low_confidence(grader, suffix, generation):
    case = one_sentence_case(suffix, generation)
    assert grader.grade([case]) == [LOW]
    assert grader.score(*case) < 0.4


def test_coincidence_found_by_the_detector_is_low_confidence(grader, detector):
    # The Ebola pair inside longer texts, where the detector itself reports it.
    suffix = (
        "The outbreak began in Guinea in December 2013. Ebola is spread by direct contact with the bodily fluids of "
        "an infected person. There is no licensed vaccine or cure. Health workers are among those most at risk."
    )
    generation = (
        "The Ebola virus is spread through close contact with infected bodily fluids, including blood, sweat, and "
        "other bodily materials. Officials urged people to stay calm."
    )
    alignment = detector.align(suffix, generation)
    assert alignment.category == "paraphrase"
    assert grader.grade([(suffix, generation, alignment)]) == [LOW]


def test_template_with_other_names_is_low_confidence(grader, detector):
    # Live football commentary shares its template, not its text, with any other match.
    suffix = (
        "Corner, Bradford City. Conceded by Connor Ripley. Romain Vincelot (Bradford City) wins a free kick in the "
        "defensive half. Foul by Darius Osei (Oldham Athletic)."
    )
    generation = (
        "Attempt saved. Taylor Moore (Bury) header from the right side of the six yard box is saved. Paul Caddis "
        "(Bury) wins a free kick in the defensive half. Goal! Bury 2, Coventry City 1."
    )
    alignment = detector.align(suffix, generation)
    assert alignment.category == "paraphrase"
    assert grader.grade([(suffix, generation, alignment)]) == [LOW]


@pytest.mark.parametrize("suffix, generation", PARAPHRASES)
def test_multi_sentence_paraphrase_of_real_text_is_high_confidence(grader, detector, suffix, generation):
    alignment = detector.align(suffix, generation)
    assert alignment.category == "paraphrase"
    assert grader.grade([(suffix, generation, alignment)]) == [HIGH]
    assert grader.score(suffix, generation, alignment) > 0.9


def test_grades_keep_the_order_of_the_cases(grader, detector):
    cases = [(s, g, detector.align(s, g)) for s, g in PARAPHRASES] + [one_sentence_case(*COINCIDENCES[0])]
    assert grader.grade(cases) == [HIGH, HIGH, LOW]
    assert grader.grade(cases[::-1]) == [LOW, HIGH, HIGH]


def test_deterministic(detector):
    suffix, generation = PARAPHRASES[0]
    alignment = detector.align(suffix, generation)
    scores = {EvidenceConfidence().score(suffix, generation, alignment) for _ in range(3)}
    assert len(scores) == 1


def test_evidence_measures():
    suffix = "Alice met Bob in Paris on Monday."
    generation = "On Monday, Alice met Carol in Paris."
    found = evidence(suffix, generation, [Detection(0, len(suffix), 0, len(generation))])
    # Content words alice, met, bob, paris, monday / monday, alice, met, carol, paris;
    # names Bob, Paris, Monday / Monday, Alice, Carol, Paris: Bob and Carol lack a match.
    assert found == Evidence(shared=4, recall=0.8, precision=0.8, unmatched_names=2)


def test_evidence_counts_only_the_aligned_spans():
    suffix = "Alice met Bob in Paris on Monday. The weather was cold and wet."
    generation = "On Monday, Alice met Carol in Paris. Rain fell all day long."
    aligned = [Detection(0, suffix.index(" The"), 0, generation.index(" Rain"))]
    assert evidence(suffix, generation, aligned) == Evidence(4, 0.8, 0.8, 2)


def test_names_and_content_words():
    assert names("He met John's sister in 2019 and I'm sure she's Irish.") == {"john", "2019", "irish"}
    assert content_words("The dogs were running") == {"dog", "run"}
    # Each letter of a script written without spaces is a token, hence a content word.
    assert {"猫", "喜"} <= content_words("我们喜欢猫。")


def test_probability_stays_in_bounds(grader):
    assert grader.probability(Evidence(10**9, 1.0, 1.0, 0)) == pytest.approx(1.0)
    assert grader.probability(Evidence(0, 0.0, 0.0, 10**9)) == pytest.approx(0.0)


def test_shipped_coefficients_load():
    data = json.loads(resources.files("memtasks").joinpath("confidence.json").read_text("utf-8"))
    assert set(data["weights"]) == set(FEATURES)
    grader = EvidenceConfidence()
    assert grader.intercept == data["intercept"]
    assert grader.name == "detector evidence (memtasks/confidence.json)"
    # More shared content words and fewer unmatched names can only raise the confidence.
    assert grader.weights["log_shared"] > 0 > grader.weights["log_unmatched_names"]


def test_other_coefficients(tmp_path):
    coefficients = {"intercept": 0.0, "weights": dict.fromkeys(FEATURES, 0.0)}
    assert EvidenceConfidence(coefficients).probability(Evidence(3, 0.5, 0.5, 1)) == 0.5
    path = tmp_path / "c.json"
    path.write_text(json.dumps(coefficients))
    assert EvidenceConfidence(path).name == f"detector evidence ({path})"
    with pytest.raises(ValueError, match="weight for each of"):
        load_coefficients({"intercept": 0.0, "weights": {"recall": 1.0}})


@pytest.mark.slow
def test_held_out_planted_pairs_meet_the_targets():
    """A small held-out planted set, end to end (BM25 top 10, detector, confidence)."""
    if not DATA.is_dir():
        pytest.skip(f"{DATA} not found (the shared real-text samples)")
    sys.path.insert(0, str(TOOLS))
    try:
        from planted_pairs import COPIES, HIGH_CONFIDENCE, graded, planted_set
    finally:
        sys.path.remove(str(TOOLS))
    scored = planted_set("heldout", max_records=100)
    categories = graded(scored, EvidenceConfidence())
    unrelated = [c for s, c in zip(scored, categories) if not s.planted.is_copy]
    copies = [c for s, c in zip(scored, categories) if s.planted.kind in COPIES]
    assert len(unrelated) > 2000 and len(copies) > 800
    assert sum(c in HIGH_CONFIDENCE for c in unrelated) / len(unrelated) <= 0.005
    assert sum(c in HIGH_CONFIDENCE for c in copies) / len(copies) >= 0.95
