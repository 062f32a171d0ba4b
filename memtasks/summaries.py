"""Summaries as idea memorization (spec 11.5): a generation that states, in fewer and
shorter sentences, the key points of a longer stretch of its training suffix.

The detector's summary pass (spec 6.2) grows cases from seeds, sentence pairs that
share weighted words. A person's abstractive summary shares a word or two with each
of many sentences and seeds nothing, so the detector leaves it as none (or as a
paraphrase of one sentence). This module checks those pairs again with the sentence
encoder the paraphrase grader is built on: all-MiniLM-L6-v2, its last hidden states
mean-pooled and scaled to unit length, e(x).

A pair (suffix S, generation G) is a **candidate** when S has more sentences than G
and at least ``MIN_RATIO`` times its characters, G shares at least ``MIN_SHARED``
content words (:func:`memtasks.detection.evidence.content_words`) with S, that is at least
``MIN_COVER`` of G's content words, and these shared words are spread over S: at least
``MIN_SUPPORT`` sentences of S hold 2 of them each, and no sentence of S holds
``MAX_ONE_SENTENCE`` of them (a text that draws on one sentence restates it: a
paraphrase, not a summary). A candidate is measured by

    semantic  e(G) · e(T), where the stretch T is S's sentences from its start, as many
              as fit in ``STRETCH_TOKENS`` tokens (at least one): a model that continues
              a prefix summarizes what comes after it, and a maximum over later stretches
              too would give coincidences as many more chances (in the rule's first fit,
              at the same rate of coincidences: 57% of the development XSum summaries
              against 68%)
    coverage  mean over the sentences g of G of max over the sentences s of S of e(g) · e(s)
    cover     content words of G found in S / content words of G
    names     names of G (:func:`memtasks.detection.evidence.names`) that no word of S matches, and
    found     those that a word of S matches: a summary names who and what its document
              names, a text on the same subject names others ("the Scottish Parliament"
              against a news report on the Welsh assembly)

    z = b + w1 semantic + w2 coverage + w3 cover + w4 ln(1 + names) + w5 ln(1 + found),
    p = 1 / (1 + exp(-z))

and is idea when p > 0.5. The weights are fitted by ``tests/tools/fit_summaries.py``
on the development half of human summaries against their documents (XSum,
CNN/DailyMail) as summaries, and as coincidences encyclopedia passages, movie reviews
and doctors' answers against their top-10 news suffixes, and encyclopedia passages
against other passages of the same article. The bias is then set so that at most
0.05% of each cross-corpus set and 3% of the same-article pairs become idea: text on
the subject of a document is semantically close to it, and is not its summary.

It is off by default (``memtasks score --summaries``, task metadata ``summaries: true``):
a model that continues an article's prefix writes about the same event with the same
names, which reads to the encoder like a summary of what follows. On the committed
SmolLM2-135M study it makes the pre-trained model, which never saw the articles, 21%
memorized on CNN/DailyMail members and 25% on non-members (5% each without it). Telling
the two apart needs the prefix, which scoring does not see.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm.auto import tqdm

from memtasks.detection.evidence import content_words, introduced_names, names
from memtasks.detection import Alignment, Detection, sentence_spans
from memtasks.grader import CrossEncoderGrader, Grader, base_model_dir
from memtasks.grader_runtime import Encoder, load_encoder, load_tokenizer

if TYPE_CHECKING:
    from tokenizers import Tokenizer

# The name a summary found here records as its grader (memtasks.paraphrase.Grade).
SENTENCE_ENCODER = "sentence-encoder"
SUMMARY_BAR = "find summaries"
MIN_RATIO = 2.0
MIN_SHARED = 4
MIN_COVER = 0.3
MIN_SUPPORT = 2
MAX_ONE_SENTENCE = 0.8
# all-MiniLM-L6-v2 was trained on texts of up to 256 tokens.
STRETCH_TOKENS = 256
THRESHOLD = 0.5
INTERCEPT = -13.03
WEIGHTS = {"semantic": 12.67, "coverage": 3.67, "cover": 7.41, "log_names": -0.53, "log_found": 0.39}


@dataclass(frozen=True)
class SummaryMeasures:
    """The measures of one candidate pair (module docstring), and the stretch of the suffix
    (character offsets) that ``semantic`` was taken from."""

    semantic: float
    coverage: float
    cover: float
    names: int
    found: int
    stretch: tuple[int, int]

    def features(self) -> dict[str, float]:
        """The regression's inputs, by the names of ``WEIGHTS``."""
        return {
            "semantic": self.semantic, "coverage": self.coverage, "cover": self.cover,
            "log_names": math.log1p(self.names), "log_found": math.log1p(self.found),
        }

    @property
    def summary(self) -> bool:
        """Whether the pair is idea: p > ``THRESHOLD``."""
        return self.probability() > THRESHOLD

    def probability(self) -> float:
        """p = 1 / (1 + exp(-z)), z = ``INTERCEPT`` + sum of ``WEIGHTS`` x measure."""
        z = INTERCEPT + sum(WEIGHTS[name] * value for name, value in self.features().items())
        return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


def _spans(text: str) -> list[tuple[int, int]]:
    return sentence_spans(text) or ([(0, len(text))] if text.strip() else [])


class _Texts:
    """Sentence spans and content words of texts, each worked out once."""

    def __init__(self):
        self._spans: dict[str, list[tuple[int, int]]] = {}
        self._words: dict[str, frozenset[str]] = {}

    def spans(self, text: str) -> list[tuple[int, int]]:
        found = self._spans.get(text)
        if found is None:
            found = self._spans[text] = _spans(text)
        return found

    def words(self, text: str) -> frozenset[str]:
        found = self._words.get(text)
        if found is None:
            found = self._words[text] = frozenset(content_words(text))
        return found


class SummaryFinder:
    """Finds the pairs whose generation summarizes a stretch of its suffix (module docstring).

    >>> finder = SummaryFinder()
    >>> [found.summary for found in finder.measures([(document, summary)])]   # doctest: +SKIP
    [True]

    ``model_dir`` is the encoder's folder (default: the paraphrase grader's base,
    :func:`memtasks.grader.base_model_dir`); ``device`` "cpu" or a torch device (default:
    a GPU where torch sees one, else the CPU, in int8 ONNX Runtime).
    """

    def __init__(self, model_dir: str | Path | None = None, device: str | None = None):
        self.model_dir = Path(model_dir) if model_dir is not None else base_model_dir()
        self.device = device
        self.name = "sentence encoder all-MiniLM-L6-v2 (memtasks.summaries)"

    @cached_property
    def _tokenizer(self) -> Tokenizer:
        return load_tokenizer(self.model_dir, STRETCH_TOKENS)

    @cached_property
    def _encoder(self) -> Encoder:
        return load_encoder(self.model_dir, None, 1.0, self.device)

    def embeddings(self, texts: Sequence[str]) -> np.ndarray:
        """e(x) of each text: unit-length mean-pooled embeddings (len(texts) x 384)."""
        if not texts:
            return np.zeros((0, 0), np.float32)
        encodings = self._tokenizer.encode_batch(list(texts))
        pooled = self._encoder.run([(e.ids, e.type_ids) for e in encodings])
        return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)

    @staticmethod
    def candidate(suffix: str, generation: str, texts: _Texts | None = None) -> bool:
        """Whether the pair is a candidate (module docstring): a test on words alone, the
        cheapest parts first (most pairs of a run are no candidate)."""
        if len(suffix.strip()) < MIN_RATIO * len(generation.strip()):
            return False
        texts = texts or _Texts()
        suffix_spans = texts.spans(suffix)
        if len(suffix_spans) <= len(texts.spans(generation)):
            return False
        wanted = texts.words(generation)
        shared = wanted & texts.words(suffix)
        if len(shared) < MIN_SHARED or len(shared) < MIN_COVER * len(wanted):
            return False
        held = [len(texts.words(suffix[a:b]) & shared) for a, b in suffix_spans]
        return sum(n >= 2 for n in held) >= MIN_SUPPORT and max(held) < MAX_ONE_SENTENCE * len(shared)

    def _stretch(self, suffix: str, texts: _Texts) -> tuple[int, int]:
        """The suffix's sentences from its start, as many as fit in ``STRETCH_TOKENS`` tokens
        with the encoder's two special tokens (at least one, cut to fit)."""
        spans = texts.spans(suffix)
        lengths = [len(e.ids) for e in self._tokenizer.encode_batch([suffix[a:b] for a, b in spans], add_special_tokens=False)]
        end, used = spans[0][1], lengths[0]
        for (_, b), n in zip(spans[1:], lengths[1:]):
            used += n
            if used > STRETCH_TOKENS - 2:
                break
            end = b
        return spans[0][0], end

    def measures(self, pairs: Sequence[tuple[str, str]], progress: bool = False) -> list[SummaryMeasures | None]:
        """The measures of each (suffix, generation) pair; None for a pair that is no candidate.
        Each distinct text is embedded once per call."""
        cache = _Texts()
        chosen = [i for i, (s, g) in enumerate(pairs) if self.candidate(s, g, cache)]
        out: list[SummaryMeasures | None] = [None] * len(pairs)
        if not chosen:
            return out
        stretches = {s: self._stretch(s, cache) for s in dict.fromkeys(pairs[i][0] for i in chosen)}
        texts = dict.fromkeys(
            [s[a:b] for s, (a, b) in stretches.items()]
            + [s[a:b] for s in stretches for a, b in cache.spans(s)]
            + [x for i in chosen for x in (pairs[i][1], *(pairs[i][1][a:b] for a, b in cache.spans(pairs[i][1])))]
        )
        vectors: dict[str, np.ndarray] = {}
        order = list(texts)
        with tqdm(total=len(order), desc=SUMMARY_BAR, unit="text", disable=not progress) as bar:
            for first in range(0, len(order), 256):
                batch = order[first : first + 256]
                vectors.update(zip(batch, self.embeddings(batch)))
                bar.update(len(batch))
        for i in chosen:
            suffix, generation = pairs[i]
            start, end = stretches[suffix]
            suffix_sentences = np.stack([vectors[suffix[a:b]] for a, b in cache.spans(suffix)])
            generation_sentences = np.stack([vectors[generation[a:b]] for a, b in cache.spans(generation)])
            wanted = cache.words(generation)
            introduced = introduced_names(suffix, generation, [Detection(0, len(suffix), 0, len(generation))])
            out[i] = SummaryMeasures(
                semantic=float(vectors[suffix[start:end]] @ vectors[generation]),
                coverage=float((generation_sentences @ suffix_sentences.T).max(axis=1).mean()),
                cover=len(wanted & cache.words(suffix)) / len(wanted),
                names=len(introduced),
                found=len(names(generation) - introduced),
                stretch=(start, end),
            )
        return out

    def alignment(self, suffix: str, generation: str, found: SummaryMeasures) -> Alignment:
        """The idea alignment of a summary: its stretch of the suffix against the whole generation."""
        spans = _spans(generation)
        return Alignment("idea", (Detection(*found.stretch, spans[0][0], spans[-1][1]),))


@lru_cache(maxsize=4)
def _finder(model_dir: Path | None, device: str | None) -> SummaryFinder:
    return SummaryFinder(model_dir, device)


def summary_finder(grader: Grader) -> SummaryFinder:
    """The finder scoring uses beside ``grader``, one per process: beside the cross-encoder its
    base encoder, on its device; beside another grader the shipped base."""
    if isinstance(grader, CrossEncoderGrader):
        return _finder(grader.model_dir, grader.device)
    return _finder(None, None)
