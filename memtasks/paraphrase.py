"""Paraphrase confidence (spec section 7) with a sequence-pair classification model.

For a paraphrase pair, both aligned spans are split into sentences and every
(generation sentence, training sentence) pair is scored with the model's
probability of "paraphrase". Pairs identical ignoring case score 0. The case
is a high-confidence paraphrase when some pair scores in (0.5, 0.99), else a
low-confidence one. The study used RoBERTa-base fine-tuned on MRPC; any Hugging
Face sequence-pair classifier (id or local path) can be given.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from tqdm.auto import tqdm

from memtasks.detection import Alignment, Detection, sentence_spans
from memtasks.outcomes import HIGH, LOW

# The progress bar of every grader, so that a run shows the same line whichever grades it.
GRADING_BAR = "grade paraphrases"



class Grade(NamedTuple):
    """A graded case: its category, the probability it was graded from, and what gave that
    probability (``"evidence"``, ``"cross-encoder"``, ``"sentence-encoder"`` for a summary
    (:mod:`memtasks.summaries`), or a Hugging Face model's id or path)."""

    category: str
    probability: float | None = None
    grader: str | None = None


_POSITIVE_NAMES = ("equivalent", "paraphrase", "entailment", "positive", "yes", "true")


def sentences(text: str) -> list[str]:
    """The sentences of ``text`` (the whole text when it has none)."""
    return [text[a:b] for a, b in sentence_spans(text)] or ([text] if text.strip() else [])


class ParaphraseClassifier:
    """Scores sentence pairs with a sequence-pair classifier, in batches.

    ``positive_label`` is the index of the "is a paraphrase" class; by default
    it is found in the model's label names ("equivalent", "paraphrase", ...)
    or, for a two-class model with generic names, taken to be 1.
    """

    def __init__(self, model: str, batch_size: int = 32, device: str = "cpu", positive_label: int | None = None):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self._torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(model)
        self.model = AutoModelForSequenceClassification.from_pretrained(model).to(device).eval()
        self.device = device
        self.batch_size = batch_size
        self.name = model
        self.positive_label = self._positive_label() if positive_label is None else positive_label

    def _positive_label(self) -> int:
        names = {int(i): str(n).lower() for i, n in self.model.config.id2label.items()}
        for index, name in names.items():
            if any(word in name for word in _POSITIVE_NAMES) and not name.startswith(("not", "non")):
                return index
        if len(names) == 2:
            return 1
        raise ValueError(f"{self.name}: cannot tell which of the labels {sorted(names.values())} means 'paraphrase'; give positive_label")

    def probabilities(self, pairs: Sequence[tuple[str, str]], progress: bool = False) -> np.ndarray:
        """P(paraphrase) of each (first, second) pair; ``progress`` shows a bar over the pairs."""
        out = np.zeros(len(pairs))
        with self._torch.no_grad(), tqdm(total=len(pairs), desc=GRADING_BAR, unit="pair", disable=not progress) as bar:
            for start in range(0, len(pairs), self.batch_size):
                batch = pairs[start : start + self.batch_size]
                encoded = self.tokenizer(
                    [a for a, _ in batch], [b for _, b in batch], padding=True, truncation=True, return_tensors="pt"
                ).to(self.device)
                logits = self.model(**encoded).logits
                out[start : start + len(batch)] = self._torch.softmax(logits, dim=-1)[:, self.positive_label].cpu().numpy()
                bar.update(len(batch))
        return out

    def grade(self, cases: Sequence[tuple[str, str, Alignment]], progress: bool = False) -> list[str]:
        """HIGH or LOW for each (training suffix, generation, alignment) case; ``progress`` shows a bar."""
        return [g.category for g in self.grades(cases, progress)]

    def grades(self, cases: Sequence[tuple[str, str, Alignment]], progress: bool = False) -> list[Grade]:
        """The :class:`Grade` of each (training suffix, generation, alignment) case: HIGH when
        some sentence pair scores in (0.5, 0.99), its probability the highest pair score below 0.99."""
        return self.confidence([case_spans(suffix, generation, a.detections) for suffix, generation, a in cases], progress)

    def confidence(self, cases: Sequence[Sequence[tuple[str, str]]], progress: bool = False) -> list[Grade]:
        """The :class:`Grade` of each case, given as its (training span, generation span) pairs.

        All sentence pairs of all cases are scored in one batched pass.
        """
        owners, pairs, identical = [], [], []
        for index, spans in enumerate(cases):
            for training, generation in spans:
                for g in sentences(generation):
                    for t in sentences(training):
                        owners.append(index)
                        pairs.append((g, t))
                        identical.append(g.strip().lower() == t.strip().lower())
        scores = self.probabilities(pairs, progress) if pairs else np.zeros(0)
        scores[np.asarray(identical, dtype=bool)] = 0.0
        best = np.zeros(len(cases))
        for owner, score in zip(owners, scores):
            if score < 0.99:
                best[owner] = max(best[owner], score)
        return [Grade(HIGH if p > 0.5 else LOW, float(p), self.name) for p in best]


def case_spans(suffix: str, generation: str, detections: Sequence[Detection]) -> list[tuple[str, str]]:
    """The (training span, generation span) texts of a pair's detections."""
    return [(suffix[d.susp_start : d.susp_end], generation[d.src_start : d.src_end]) for d in detections]
