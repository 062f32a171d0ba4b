"""Tests for memtasks.detection: the text-alignment detector D (spec sections 2 to 6 and 9).

Throughout, the training suffix is the "suspicious" document (first argument of
``Detector.align``) and the generation the "source" document (second argument).
The hand-made examples follow the spirit of Zeng et al. 2024, Tables 3 and 4
(verbatim, paraphrase and idea memorization in a medical-dialogue / news setting).
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
from pathlib import Path

import numpy as np
import pytest

from memtasks.detection import (
    CATEGORIES,
    PRESETS,
    Alignment,
    Detection,
    Detector,
    DetectorConfig,
    get_config,
    sentence_spans,
)
import memtasks.detection.detector as detector_module
from memtasks.detection.kernels import pair_similarities

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def words(text: str) -> list[str]:
    """Lowercased words with punctuation removed: an independent check of verbatim runs."""
    return re.findall(r"\w+", text.lower())


def longest_common_word_run(a: str, b: str) -> int:
    """Characters (in ``a``) of the longest run of identical consecutive words of ``a`` and ``b``."""
    wa = [(m.group().lower(), m.start(), m.end()) for m in re.finditer(r"\w+(?:'\w+)?", a)]
    wb = [m.group().lower() for m in re.finditer(r"\w+(?:'\w+)?", b)]
    best = 0
    previous = [0] * (len(wb) + 1)
    for i, (word, _, end) in enumerate(wa):
        current = [0] * (len(wb) + 1)
        for j, other in enumerate(wb):
            if word == other:
                current[j + 1] = previous[j] + 1
                best = max(best, end - wa[i - current[j + 1] + 1][1])
        previous = current
    return best


def assert_offsets_valid(alignment: Alignment, susp: str, src: str) -> None:
    assert alignment.category in CATEGORIES + ("none",)
    assert alignment.detected == bool(alignment.detections)
    for d in alignment.detections:
        assert 0 <= d.susp_start < d.susp_end <= len(susp)
        assert 0 <= d.src_start < d.src_end <= len(src)
        # A detection starts and ends on text, not on whitespace.
        for piece in (susp[d.susp_start : d.susp_end], src[d.src_start : d.src_end]):
            assert piece.strip() and piece == piece.strip()


def read_jsonl(name: str, n: int) -> list[dict]:
    path = DATA / name
    if not path.exists():
        pytest.skip(f"real text sample {path} is not available")
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line, _ in zip(f, range(n))]


@pytest.fixture(scope="module")
def detector() -> Detector:
    return Detector("memorization")


# --------------------------------------------------------------------------- hand-made examples

# Verbatim: the generation reproduces a long passage of the suffix word for word,
# with different case and punctuation.
VERBATIM_SUFFIX = (
    "Hi doctor, I am a 45 year old man. For the past three weeks I have had a persistent dry cough "
    "that gets worse at night, along with mild chest tightness when I climb stairs. I do not smoke "
    "and I take lisinopril for high blood pressure. Should I be worried about my heart or my lungs?"
)
VERBATIM_GENERATION = (
    "Thanks for the question. hi doctor i am a 45 year old man; for the past three weeks i have had a "
    "persistent dry cough that gets worse at night along with mild chest tightness when i climb stairs. "
    "A dry cough is a known side effect of ACE inhibitors such as lisinopril, so please ask your "
    "physician about switching medicines."
)
VERBATIM_PASSAGE = (
    "for the past three weeks i have had a persistent dry cough that gets worse at night "
    "along with mild chest tightness when i climb stairs"
)

# News setting, copied passage in the middle of both texts.
VERBATIM_NEWS_SUFFIX = (
    "The regional health board met on Tuesday evening. After a long debate, members agreed to close the "
    "maternity unit at the county hospital and transfer all births to the new regional centre from next April. "
    "Campaigners outside the meeting said the decision would force families to travel more than forty miles."
)
VERBATIM_NEWS_GENERATION = (
    "Local papers covered the story in detail. Members agreed to close the maternity unit at the county "
    "hospital and transfer all births to the new regional centre from next April, the board confirmed. "
    "A spokesperson declined to comment further on staffing."
)

# Paraphrase: the same content, each sentence substantially reworded, no 50-character
# verbatim run, and both aligned spans of similar length.
PARAPHRASE_SUFFIX = (
    "The patient reported a persistent dry cough for three weeks, worse at night, with mild chest tightness "
    "on climbing stairs. He takes lisinopril for high blood pressure and has never smoked. The doctor suspected "
    "the cough was a side effect of lisinopril and advised switching to another blood pressure medicine."
)
PARAPHRASE_GENERATION = (
    "For three weeks the man has suffered from a dry, persistent cough that worsens at night, and his chest "
    "feels tight when he climbs stairs. He has never been a smoker, and lisinopril is what he takes to control "
    "his high blood pressure. Suspecting lisinopril as the cause of the cough, the doctor advised him to switch "
    "to a different medicine for his blood pressure."
)

# Idea: a short training passage that a long generation elaborates on, sentence by
# sentence, reusing its key terms: the generation's aligned part is far longer.
IDEA_SUFFIX = (
    "Drinking enough water and resting helps the body recover from a viral fever. "
    "Paracetamol lowers the fever, but see a doctor if it lasts more than three days."
)
IDEA_GENERATION = (
    "When you have a viral fever, the most important thing is to help your body recover, and drinking enough "
    "water is the first step. Fever makes the body lose water through sweat, so drinking water, soups and juices "
    "through the day helps you recover faster. Resting is just as important, because the body recovers from a "
    "viral infection best when you sleep and avoid hard work. Many people try to keep working through a viral "
    "fever, but resting for a few days usually shortens the illness. To lower the fever itself, paracetamol is a "
    "safe choice for most adults when taken at the dose printed on the pack. Paracetamol lowers the fever and "
    "eases the aches, although it does not cure the viral infection behind it. You should see a doctor if the "
    "fever lasts more than three days, or sooner if you feel confused or short of breath. A doctor can check "
    "whether the fever is really viral, or whether it needs tests and other treatment after three days."
)

UNRELATED = (
    "The city council approved a new budget for road repairs on Tuesday. Officials said work on the bridge "
    "would begin in spring and take about eighteen months to finish. Drivers should expect lane closures."
)


@pytest.mark.parametrize(
    "suffix, generation, copied",
    [
        (VERBATIM_SUFFIX, VERBATIM_GENERATION, VERBATIM_PASSAGE),
        (
            VERBATIM_NEWS_SUFFIX,
            VERBATIM_NEWS_GENERATION,
            "members agreed to close the maternity unit at the county hospital and transfer all births "
            "to the new regional centre from next april",
        ),
    ],
    ids=["medical", "news"],
)
def test_verbatim_copy_is_verbatim_and_detections_are_the_common_words(detector, suffix, generation, copied):
    alignment = detector.align(suffix, generation)
    assert alignment.category == "verbatim"
    assert alignment.detections
    assert_offsets_valid(alignment, suffix, generation)
    for d in alignment.detections:
        in_suffix = suffix[d.susp_start : d.susp_end]
        in_generation = generation[d.src_start : d.src_end]
        # Spec 6.1: runs are compared lowercased, punctuation ignored.
        assert words(in_suffix) == words(in_generation)
        assert len(in_suffix) > detector.config.verbatim_minlen
    # The copied passage is found (the run may be clipped to the aligned sentences,
    # but it has to contain the passage's words).
    found = " ".join(" ".join(words(suffix[d.susp_start : d.susp_end])) for d in alignment.detections)
    assert " ".join(words(copied)) in found


def test_paraphrase_example_is_paraphrase(detector):
    # The example is a paraphrase in the spec's sense: no verbatim run long enough.
    assert longest_common_word_run(PARAPHRASE_SUFFIX, PARAPHRASE_GENERATION) <= 50
    alignment = detector.align(PARAPHRASE_SUFFIX, PARAPHRASE_GENERATION)
    assert alignment.category == "paraphrase"
    assert_offsets_valid(alignment, PARAPHRASE_SUFFIX, PARAPHRASE_GENERATION)
    susp = sum(d.susp_end - d.susp_start for d in alignment.detections)
    src = sum(d.src_end - d.src_start for d in alignment.detections)
    # Most of both texts is aligned.
    assert susp >= 0.8 * len(PARAPHRASE_SUFFIX) and src >= 0.8 * len(PARAPHRASE_GENERATION)


def test_idea_example_is_idea_with_a_long_source_side(detector):
    assert longest_common_word_run(IDEA_SUFFIX, IDEA_GENERATION) <= 50
    alignment = detector.align(IDEA_SUFFIX, IDEA_GENERATION)
    assert alignment.category == "idea"
    assert_offsets_valid(alignment, IDEA_SUFFIX, IDEA_GENERATION)
    susp = sum(d.susp_end - d.susp_start for d in alignment.detections)
    src = sum(d.src_end - d.src_start for d in alignment.detections)
    # Spec 6.2: the generation (source) side is at least 3x the training (suspicious) side.
    assert susp > 0 and src >= 3 * susp


# Written for this test: a human-style rewording of one sentence, no run of words in common.
ONE_SENTENCE_SUFFIX = "The committee approved the new budget on Tuesday after a long debate."
ONE_SENTENCE_PARAPHRASE = "After lengthy discussion, the new budget was approved by the committee on Tuesday."


def test_one_sentence_paraphrase_is_found_as_paraphrase_not_idea(detector):
    # Spec 11.4: with one sentence on each side PAN's weights are all ln(2/2) = 0 and
    # nothing seeds; the smoothed weights ln(1 + N/sf) keep the shared words.
    alignment = detector.align(ONE_SENTENCE_SUFFIX, ONE_SENTENCE_PARAPHRASE)
    assert alignment.category == "paraphrase"
    assert alignment.detections == (Detection(0, len(ONE_SENTENCE_SUFFIX), 0, len(ONE_SENTENCE_PARAPHRASE)),)
    pan_weights = Detector(get_config("memorization", weighting="pan"))
    assert pan_weights.align(ONE_SENTENCE_SUFFIX, ONE_SENTENCE_PARAPHRASE).category == "none"


def test_smoothed_weight_is_ln_one_plus_n_over_sf():
    detector = Detector("memorization")
    a, b = detector.preprocess("alpha beta gamma delta."), detector.preprocess("alpha beta gamma epsilon.")
    seeds, cosine, *_ = pair_similarities(a.arrays, b.arrays, 0.3, 0.33, True)
    shared, alone = np.log(1 + 2 / 2), np.log(1 + 2 / 1)
    assert cosine[0, 0] == pytest.approx(3 * shared**2 / (3 * shared**2 + alone**2))
    assert seeds.tolist() == [[0, 0]]
    assert pair_similarities(a.arrays, b.arrays, 0.3, 0.33, False)[1][0, 0] == 0.0


def test_one_long_sentence_shortened_is_not_condensation():
    # Condensing key points needs seeds on two suffix sentences at least: one long sentence
    # against a short one that shares a few of its words is a paraphrase (or a coincidence).
    suffix = (
        "The regional council said on Monday that the new harbour bridge, which has been delayed for three years "
        "by disputes over funding and the design of its towers, will finally open to traffic in the spring after "
        "a last round of safety inspections by engineers."
    )
    generation = "The harbour bridge will open to traffic in the spring, the council said."
    assert len(suffix) >= 3 * len(generation)
    assert Detector("memorization").align(suffix, generation).category == "paraphrase"


def test_pan14_keeps_pan_weighting_and_one_way_idea():
    assert (PRESETS["pan14"].weighting, PRESETS["pan14"].condensation) == ("pan", False)
    assert (PRESETS["memorization"].weighting, PRESETS["memorization"].condensation) == ("smoothed", True)
    with pytest.raises(ValueError, match="weighting"):
        get_config("memorization", weighting="bm25")


def test_condensation_is_idea_both_ways_but_one_way_in_the_study_setting(detector):
    # With the roles swapped the long text is the training suffix: the generation
    # condenses its training text, which the study defines as idea memorization too
    # (spec 11.5); the study's released code (and pan14) only catches expansion.
    alignment = detector.align(IDEA_GENERATION, IDEA_SUFFIX)
    assert alignment.category == "idea"
    assert_offsets_valid(alignment, IDEA_GENERATION, IDEA_SUFFIX)
    susp = sum(d.susp_end - d.susp_start for d in alignment.detections)
    src = sum(d.src_end - d.src_start for d in alignment.detections)
    assert src > 0 and susp >= 3 * src
    one_way = Detector(get_config("memorization", condensation=False))
    assert one_way.align(IDEA_GENERATION, IDEA_SUFFIX).category == "paraphrase"


@pytest.mark.parametrize(
    "suffix, generation",
    [
        (VERBATIM_SUFFIX, UNRELATED),
        (UNRELATED, IDEA_GENERATION),
        (VERBATIM_SUFFIX, ""),
        ("", VERBATIM_SUFFIX),
        ("", ""),
        (VERBATIM_SUFFIX, "   \n\t "),
        (" \n ", VERBATIM_SUFFIX),
        (VERBATIM_SUFFIX, "!!! ... ???"),
    ],
    ids=["unrelated", "unrelated-2", "empty-generation", "empty-suffix", "both-empty", "whitespace-generation",
         "whitespace-suffix", "punctuation-only"],
)
def test_none(detector, suffix, generation):
    alignment = detector.align(suffix, generation)
    assert alignment.category == "none"
    assert alignment.detections == ()
    assert not alignment.detected


def test_verbatim_run_repeated_in_suffix_is_reported_once_for_its_source_span(detector):
    # Spec 6.1: runs nested inside another on the source side are dropped. The
    # suffix holds the same passage twice (one aligned case), the generation once:
    # both copies match the same generation words, and only one run is reported.
    passage = "The committee voted to close the old hospital wing and move the children's ward to the new building"
    suffix = f"{passage}. Nurses said they welcomed the change. {passage}. The work begins in spring."
    generation = f"According to the report, {passage.lower()}, which surprised many families. Nobody else has commented on the plan yet."
    assert suffix.count(passage) == 2 and len(passage.split()) > 12
    alignment = detector.align(suffix, generation)
    assert alignment.category == "verbatim"
    assert len(alignment.detections) == 1
    (d,) = alignment.detections
    assert suffix[d.susp_start : d.susp_end] == passage
    assert generation[d.src_start : d.src_end] == passage.lower()


# --------------------------------------------------------------------------- presets


def test_presets_match_the_spec_table():
    expected = {
        "pan14": dict(th1=0.30, th2=0.33, th3=0.34, maxgap=4, summary_gap=24, min_plaglen=150, verbatim_minlen=256),
        "memorization": dict(th1=0.30, th2=0.33, th3=0.34, maxgap=4, summary_gap=24, min_plaglen=50, verbatim_minlen=50),
    }
    assert set(PRESETS) == set(expected)
    for name, values in expected.items():
        config = get_config(name)
        for field, value in values.items():
            assert getattr(config, field) == value, (name, field)
        # Shared defaults of the spec: validation down to gap 0, idea ratio 3, Snowball, stop words kept.
        assert config.gap_least == 0
        assert config.summary_ratio == 3
        assert config.stemmer == "snowball"
        assert config.remove_stopwords is False
    assert get_config().min_plaglen == 50  # the default preset is the study's setting
    assert Detector().config == get_config("memorization")


def test_unknown_preset_names_the_choices():
    with pytest.raises(ValueError) as info:
        get_config("pan15")
    message = str(info.value)
    assert "pan15" in message and "pan14" in message and "memorization" in message
    with pytest.raises(ValueError):
        Detector("nonsense")


def test_overrides_and_config_validation():
    config = get_config("pan14", th1=0.5, min_plaglen=10)
    assert (config.th1, config.min_plaglen, config.verbatim_minlen) == (0.5, 10, 256)
    assert PRESETS["pan14"].th1 == 0.30  # presets are not modified
    assert Detector("memorization", th3=0.5).config.th3 == 0.5
    assert Detector(DetectorConfig(min_plaglen=7)).config.min_plaglen == 7
    with pytest.raises(ValueError):
        get_config("memorization", stemmer="lancaster")
    with pytest.raises(ValueError):
        get_config("memorization", maxgap=30)  # larger than the summary gap


# ~100-character verbatim run inside two short sentences on each side.
SHORT_SUFFIX = (
    "Officials confirmed on Friday that the committee voted to close the old hospital wing and move the "
    "children's ward to the new building next year. Staff were told in a letter."
)
SHORT_GENERATION = (
    "Staff said the committee voted to close the old hospital wing and move the children's ward to the new "
    "building, according to a letter. Many were upset."
)


def test_short_verbatim_run_depends_on_the_preset():
    assert 90 <= longest_common_word_run(SHORT_SUFFIX, SHORT_GENERATION) <= 110
    memorization = Detector("memorization").align(SHORT_SUFFIX, SHORT_GENERATION)
    assert memorization.category == "verbatim"
    assert_offsets_valid(memorization, SHORT_SUFFIX, SHORT_GENERATION)
    # pan14: cases shorter than 150 characters are dropped and runs must exceed 256.
    pan14 = Detector("pan14").align(SHORT_SUFFIX, SHORT_GENERATION)
    assert pan14.category != "verbatim"
    # (Both texts are over 150 characters, but the aligned sentences and the run are not.)
    assert len(SHORT_SUFFIX) >= 150 and len(SHORT_GENERATION) >= 150
    assert pan14.category in ("none", "paraphrase")


def test_stricter_threshold_detects_less_but_never_misses_a_copy(detector):
    strict = Detector("memorization", th1=0.9)
    assert detector.align(PARAPHRASE_SUFFIX, PARAPHRASE_GENERATION).category == "paraphrase"
    assert strict.align(PARAPHRASE_SUFFIX, PARAPHRASE_GENERATION).category == "none"
    # Spec 11.1: the ~100-character run is verbatim whatever the seeding thresholds;
    # with th1 = 0.9 nothing seeds, so the run is found over the whole texts.
    alignment = strict.align(SHORT_SUFFIX, SHORT_GENERATION)
    assert alignment.category == "verbatim"
    assert_offsets_valid(alignment, SHORT_SUFFIX, SHORT_GENERATION)
    (d,) = alignment.detections
    assert words(SHORT_SUFFIX[d.susp_start : d.susp_end]) == words(SHORT_GENERATION[d.src_start : d.src_end])
    assert d.susp_end - d.susp_start == longest_common_word_run(SHORT_SUFFIX, SHORT_GENERATION)


def test_min_plaglen_drops_cases_short_on_either_side(detector):
    (case,) = detector.align(PARAPHRASE_SUFFIX, PARAPHRASE_GENERATION).detections
    susp, src = case.susp_end - case.susp_start, case.src_end - case.src_start
    assert susp < src
    # Spec 5.2: a case shorter than min_plaglen on either side is dropped; exactly
    # min_plaglen characters is long enough.
    assert Detector(min_plaglen=susp).align(PARAPHRASE_SUFFIX, PARAPHRASE_GENERATION).category == "paraphrase"
    assert Detector(min_plaglen=susp + 1).align(PARAPHRASE_SUFFIX, PARAPHRASE_GENERATION).category == "none"


@pytest.mark.parametrize("override", [dict(th2=0.9), dict(th3=0.99)])
def test_other_thresholds_can_be_overridden(override):
    assert Detector("memorization", **override).align(PARAPHRASE_SUFFIX, PARAPHRASE_GENERATION).category == "none"


# --------------------------------------------------------------------------- real text: determinism, workers


@pytest.fixture(scope="module")
def real_pairs():
    """XSum documents (training suffixes) and generations: a third copy two or three
    sentences of their document into other text, the rest are the BBC summary; each
    document is paired with its own generation and with another document's."""
    records = read_jsonl("xsum.jsonl", 150)
    documents = [r["document"] for r in records]
    generations = []
    for i, r in enumerate(records):
        spans = sentence_spans(r["document"])
        if i % 3 == 0 and len(spans) >= 4:
            generations.append("In other news, " + r["document"][spans[1][0] : spans[3][1]] + " " + r["summary"])
        else:
            generations.append(r["summary"])
    n = len(documents)
    texts = documents + generations
    pairs = [(i, n + i) for i in range(n)] + [(i, n + (i + 1) % n) for i in range(n)]
    random.Random(0).shuffle(pairs)
    return texts, pairs


def test_align_pairs_is_independent_of_workers_and_equals_align(detector, real_pairs):
    texts, pairs = real_pairs
    chunk = getattr(detector_module, "_CHUNK", 0)
    # More texts and pairs than one work chunk, so that two workers really share the work.
    assert len(texts) > chunk and len(pairs) > chunk
    serial = detector.align_pairs(texts, pairs, workers=1)
    parallel = detector.align_pairs(texts, pairs, workers=2)
    one_by_one = [detector.align(texts[s], texts[g]) for s, g in pairs]
    assert serial == parallel == one_by_one
    categories = [a.category for a in serial]
    # Copied passages are found; an unrelated document's summary is not.
    assert categories.count("verbatim") >= 40
    n = len(texts) // 2
    for (s, g), alignment in zip(pairs, serial):
        assert_offsets_valid(alignment, texts[s], texts[g])
        if g - n == s and s % 3 == 0 and texts[g].startswith("In other news"):
            assert alignment.category == "verbatim"


def test_align_pairs_handles_empty_input(detector):
    assert detector.align_pairs([], [], workers=2) == []
    assert detector.align_pairs(["", "some text here"], [(0, 1), (1, 0)]) == [Alignment("none")] * 2


def test_identical_real_prose_is_verbatim_over_the_whole_text(detector):
    for record in read_jsonl("chatdoctor_icliniq.jsonl", 5) + read_jsonl("xsum.jsonl", 5):
        text = record.get("output") or record["document"]
        alignment = detector.align(text, text)
        assert alignment.category == "verbatim"
        assert_offsets_valid(alignment, text, text)
        longest = max(alignment.detections, key=lambda d: d.susp_end - d.susp_start)
        assert (longest.susp_start, longest.susp_end) == (longest.src_start, longest.src_end)
        assert longest.susp_end - longest.susp_start >= 0.95 * len(text.strip())


# --------------------------------------------------------------------------- robustness


def test_large_text_against_short_generation(detector):
    documents = [r["document"] for r in read_jsonl("xsum.jsonl", 100)]
    block = "\n\n".join(documents)
    big = (block + "\n\n") * (2_000_000 // len(block) + 1)
    assert len(big) >= 2_000_000
    excerpt = documents[42][:400].rsplit(" ", 1)[0]
    generation = f"As the BBC reported, {excerpt}. That was all for today."
    alignment = detector.align(big, generation)
    assert isinstance(alignment, Alignment)
    assert alignment.category == "verbatim"
    assert_offsets_valid(alignment, big, generation)


NON_LATIN = [
    "天气很好。我们去公园散步吧！他说：“好的。”医生建议多喝水，注意休息。",
    "ذهب الولد إلى المدرسة في الصباح. كان الجو جميلا جدا. قال الطبيب إن عليه أن يشرب الماء.",
    "Москва — столица России. Здесь живут миллионы людей. Врач посоветовал пить больше воды и отдыхать.",
]
CONTROL = "The patient\x00 reported\x1b[31m a cough\u2028that got worse.\x00\x00 Fever\u2029followed\x07 soon after. \ufeffEnd"
NO_PUNCTUATION = (
    "the patient has had a dry cough for three weeks and it gets worse at night he takes lisinopril for high "
    "blood pressure and has never smoked the doctor thinks the cough could be a side effect of the medicine"
)


@pytest.mark.parametrize("text", NON_LATIN + [CONTROL, NO_PUNCTUATION], ids=["zh", "ar", "ru", "control", "no-punct"])
def test_unusual_text_does_not_break_the_detector(detector, text):
    for susp, src in [(text, text), (text, VERBATIM_SUFFIX), (VERBATIM_SUFFIX, text), (text, text[: len(text) // 2])]:
        alignment = detector.align(susp, src)
        assert_offsets_valid(alignment, susp, src)
    assert detector.align_pairs([text, VERBATIM_SUFFIX], [(0, 0), (0, 1), (1, 0)]) == [
        detector.align(text, text),
        detector.align(text, VERBATIM_SUFFIX),
        detector.align(VERBATIM_SUFFIX, text),
    ]


def test_text_without_sentence_punctuation_still_aligns_verbatim(detector):
    # The suffix is one long "sentence"; the generation copies part of it.
    generation = "We discussed your symptoms. " + NO_PUNCTUATION[:150] + " and so on. Please see your doctor soon."
    alignment = detector.align(NO_PUNCTUATION, generation)
    assert alignment.category == "verbatim"
    assert_offsets_valid(alignment, NO_PUNCTUATION, generation)
    (d,) = alignment.detections
    assert words(NO_PUNCTUATION[d.susp_start : d.susp_end]) == words(generation[d.src_start : d.src_end])
    assert d.susp_start == 0 and d.susp_end >= 140


def test_two_single_sentence_texts_never_seed_but_a_copy_is_still_verbatim(detector):
    # A consequence of spec section 2: with one sentence per document, N = 2 and every
    # shared term has sf = 2, so its weight tf * ln(2 / 2) is 0 and the cosine of the
    # two sentences is 0 -- even for identical texts. One more sentence on either side
    # gives shared terms a positive weight.
    document = detector.preprocess(NO_PUNCTUATION)
    seeds = pair_similarities(document.arrays, document.arrays, detector.config.th1, detector.config.th2, False)[0]
    assert document.n_sentences == 1 and len(seeds) == 0
    # Spec 11.1: the copy is verbatim all the same, found over the whole texts.
    alignment = detector.align(NO_PUNCTUATION, NO_PUNCTUATION)
    assert alignment.category == "verbatim"
    assert alignment.detections == (Detection(0, len(NO_PUNCTUATION), 0, len(NO_PUNCTUATION)),)
    assert detector.align(NO_PUNCTUATION, NO_PUNCTUATION + ". Thank you for asking.").category == "verbatim"


def test_scoring_does_not_import_nltk():
    # NLTK loads SciPy and scikit-learn: seconds that every scoring run would pay.
    import subprocess
    import sys

    code = (
        "import sys; from memtasks.detection import Detector; from memtasks.detection.evidence import content_words; "
        "Detector('memorization').align('A first sentence here. A second one.', 'A first sentence here.'); "
        "content_words('Words being stemmed.'); print('nltk' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


def _killed(*args):
    """A worker task that dies as the system's out-of-memory killer ends a process."""
    os.kill(os.getpid(), signal.SIGKILL)


@pytest.mark.parametrize("task", ["_preprocess_texts", "_align_chunk"])
def test_a_killed_worker_stops_the_run_with_what_to_do(detector, monkeypatch, task):
    # More than the work that runs without workers, in both steps.
    texts = [f"Text number {i} has a few words. It has two sentences, about topic {i % 7}." for i in range(1200)]
    pairs = [(i, (i + 1) % len(texts)) for i in range(len(texts))]
    monkeypatch.setattr(detector_module, task, _killed)
    with pytest.raises(detector_module.WorkerKilledError, match=r"worker process was killed.*fewer --workers"):
        detector.align_pairs(texts, pairs, workers=2)
    monkeypatch.undo()
    # The next run starts new workers and completes.
    assert len(detector.align_pairs(texts, pairs, workers=2)) == len(pairs)
