"""Summaries as idea (memtasks/summaries.py, spec 11.5): a person's abstractive summary of
a suffix is idea, text on another subject that shares words with it is not, only pairs the
detector leaves open are looked at, and the sentence encoder runs as the model it is."""

from __future__ import annotations

import numpy as np
import pytest

from memtasks.confidence import EvidenceConfidence
from memtasks.grader import base_model_dir, default_grader
from memtasks.grader_runtime import OnnxEncoder, encoder_graph, read_weights
from memtasks.scoring import Probe, case_records, score_probes
from memtasks.summaries import SENTENCE_ENCODER, SummaryFinder, summary_finder

# Written for these tests: a news report, a person's summary of it in other words, and a
# passage on another subject (the garden hose's history) that shares some of its words.
DOCUMENT = (
    "The regional water authority announced on Monday that a hosepipe ban will come into force across the county "
    "from next week. Reservoir levels have fallen to 41 percent of capacity after the driest spring in more than "
    "fifty years, the authority said. Gardeners will no longer be allowed to water lawns or fill paddling pools with "
    "a hose, and washing cars with a hose is also banned. Businesses such as garden centres and farms are exempt, but "
    "the authority asked them to cut their use where they can. Anyone breaking the ban could be fined up to 1,000 "
    "pounds. The authority said the restrictions would stay in place until the reservoirs had recovered, which could "
    "take until the autumn. It also promised to speed up the repair of leaking pipes, which lose about a fifth of the "
    "water it supplies."
)
SUMMARY = (
    "Households across the county face a hosepipe ban from next week, after the driest spring in half a century "
    "left reservoirs less than half full; the ban may last until autumn."
)
ANOTHER_SUBJECT = (
    "The first garden hoses were made of leather and were used by fire brigades. Rubber hoses became common in "
    "the twentieth century, when gardeners began to water their lawns with them."
)
MEDICAL_ANSWER = (
    "Thanks for your question. A dry cough that lasts more than three weeks after a cold is common and is usually "
    "caused by irritated airways rather than a new infection. Honey in warm water, steam inhalation and staying away "
    "from smoke can soothe it. If you also have a fever, weight loss, night sweats or you cough up blood, please see "
    "your doctor for a chest examination and possibly an X-ray. An inhaler may be prescribed if the cough is worse at "
    "night or after exercise, because that can be a sign of asthma. Most such coughs settle within eight weeks."
)
MEDICAL_SUMMARY = (
    "A cough that lingers for weeks after a cold usually comes from irritated airways and can be eased at home, but "
    "fever, losing weight or blood in the cough need a doctor's check."
)


@pytest.fixture(scope="module")
def finder() -> SummaryFinder:
    return summary_finder(default_grader())


@pytest.mark.parametrize(("document", "summary"), [(DOCUMENT, SUMMARY), (MEDICAL_ANSWER, MEDICAL_SUMMARY)])
def test_a_hand_written_abstractive_summary_is_idea(document, summary):
    report = score_probes([Probe("p", document, summary)], summaries=True)
    outcome = report.outcomes[0]
    assert (outcome.category, outcome.grader) == ("idea", SENTENCE_ENCODER)
    assert outcome.probability > 0.5
    (detection,) = outcome.alignment.detections
    assert (detection.src_start, detection.src_end) == (0, len(summary))
    assert detection.susp_end - detection.susp_start > 2 * len(summary)


def test_summaries_are_looked_for_only_when_asked():
    # Without the finder the detector alone misses the summary; any grader can sit beside it.
    assert score_probes([Probe("p", DOCUMENT, SUMMARY)]).outcomes[0].category == "none"
    asked = score_probes([Probe("p", DOCUMENT, SUMMARY)], paraphrase_classifier=EvidenceConfidence(), summaries=True)
    assert asked.outcomes[0].category == "idea"
    assert any("summaries" in note for note in asked.notes)


def test_a_passage_on_another_subject_sharing_words_is_not_a_summary(finder):
    (found,) = finder.measures([(DOCUMENT, ANOTHER_SUBJECT)])
    assert found is None or not found.summary
    assert score_probes([Probe("p", DOCUMENT, ANOTHER_SUBJECT)], summaries=True).outcomes[0].category == "none"


def test_a_summary_of_one_document_is_not_a_summary_of_another(finder):
    found = finder.measures([(DOCUMENT, MEDICAL_SUMMARY), (MEDICAL_ANSWER, SUMMARY)])
    assert not any(f is not None and f.summary for f in found)


@pytest.mark.parametrize(
    "generation",
    [
        DOCUMENT,  # as long as the suffix: no condensation
        " ".join(DOCUMENT.split(". ")[:4]) + ".",  # more than half the suffix
    ],
)
def test_only_a_shorter_text_in_fewer_sentences_is_a_candidate(generation):
    assert not SummaryFinder.candidate(DOCUMENT, generation)
    assert SummaryFinder.candidate(DOCUMENT, SUMMARY)


def test_the_best_ranked_detection_still_counts():
    # The copy of the first sentence ranks first (it shares the most words): its verbatim
    # match counts, and the summary of the other suffix is not looked at.
    copy = "The regional water authority announced on Monday that a hosepipe ban will come into force across the county"
    probes = [Probe("copy", DOCUMENT, copy), Probe("summary", MEDICAL_ANSWER, MEDICAL_SUMMARY)]
    outcomes = score_probes(probes, summaries=True).outcomes
    assert outcomes[0].category == "verbatim" and outcomes[0].matched_id == "copy"
    assert outcomes[1].category == "idea" and outcomes[1].matched_id == "summary"


def test_a_pair_the_detector_aligns_as_a_paraphrase_stays_a_paraphrase():
    # Two sentences of the suffix restated: shorter than the suffix, but no summary of it.
    restated = (
        "Across the county a hosepipe ban will start next week, the regional water authority said on Monday. "
        "Reservoirs are down to 41 percent of capacity following the driest spring in over fifty years, said the authority."
    )
    outcome = score_probes([Probe("p", DOCUMENT, restated)], summaries=True).outcomes[0]
    assert outcome.category in ("paraphrase_high", "paraphrase_low") and outcome.grader != SENTENCE_ENCODER


def test_cases_hold_the_summary_with_its_probability_and_grader():
    probes = [Probe("p", DOCUMENT, SUMMARY)]
    report = score_probes(probes, summaries=True)
    (record,) = case_records(probes, report.outcomes)
    assert (record["category"], record["grader"]) == ("idea", SENTENCE_ENCODER)
    assert record["probability"] == report.outcomes[0].probability
    (span,) = record["spans"]
    assert span["generation_text"] == SUMMARY and span["suffix_text"] in DOCUMENT


def test_measures_do_not_depend_on_the_pairs_beside_them(finder):
    alone = finder.measures([(DOCUMENT, SUMMARY)])
    together = finder.measures([(MEDICAL_ANSWER, MEDICAL_SUMMARY), (DOCUMENT, SUMMARY), (DOCUMENT, ANOTHER_SUBJECT)])
    assert together[1] == alone[0]


def test_the_finder_is_loaded_once_per_process():
    assert summary_finder(default_grader()) is summary_finder(default_grader())


def test_the_int8_sentence_encoder_embeds_as_the_model_it_is(finder):
    from sentence_transformers import SentenceTransformer

    texts = [DOCUMENT, SUMMARY, ANOTHER_SUBJECT, MEDICAL_SUMMARY]
    reference = SentenceTransformer(str(base_model_dir()), device="cpu").encode(texts, normalize_embeddings=True)
    weights, head, config = read_weights(base_model_dir(), None, 1.0)
    assert head is None
    exact = OnnxEncoder(encoder_graph(weights, None, config).SerializeToString(), threads=1)
    float32 = SummaryFinder()
    float32.__dict__["_encoder"] = exact
    assert np.allclose(float32.embeddings(texts), reference, atol=1e-4)
    cosine = (finder.embeddings(texts) * reference).sum(axis=1)
    assert cosine.min() > 0.98
