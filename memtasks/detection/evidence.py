"""The detector's evidence that a case restates its training suffix (spec section 11.3).

A detected case may reproduce its training suffix or happen to share a topic or a
template with it, e.g. "Ebola is spread by direct contact with the bodily fluids of
an infected person." against "The Ebola virus is spread through close contact with
infected bodily fluids, including blood, sweat, and other bodily materials.", or
"Romain Vincelot (Bradford City) wins a free kick in the defensive half." against
"Paul Caddis (Bury) wins a free kick in the defensive half.". The evidence p_e is a
logistic regression on four measures of the case's aligned spans (all its detections
together, suffix side S, generation side G):

    shared     distinct content words in both S and G. A content word is a token of
               3+ characters that starts with a letter or digit and is not a stop word
               (the detector's term rule, stop words removed), Snowball-stemmed; or a
               letter of a script written without spaces, which the tokenizer splits
    recall     shared / distinct content words of S
    precision  shared / distinct content words of G
    unmatched  names of one side that the other side lacks: |names(S) - words(G)| +
               |names(G) - words(S)|, where names are tokens with a digit and
               capitalized tokens that do not open their sentence and are not stop
               words (lowercased, without a clitic: "John's" -> "john")

    z = b + w1 ln(1 + shared) + w2 recall + w3 precision + w4 ln(1 + unmatched)
    p = 1 / (1 + exp(-z))

The weights ship in ``confidence.json`` in the memtasks package and are fitted by
``tests/tools/calibrate_confidence.py`` on planted pairs: copies, reorderings
and paraphrases of real training suffixes (label 1) and text taken from records
outside the training set (label 0), the classes weighted so that p is the
probability of a real copy when detected paraphrases are coincidences 4 times
as often as copies (as on a model that never saw the data). A coincidence
shares a handful of words of one sentence and swaps the names; a paraphrase of
training text keeps most words and names of its sentences.

The detector drops the cases p_e does not support (``DetectorConfig.support``);
:mod:`memtasks.confidence` grades paraphrases with it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from memtasks.detection.align import Alignment, Detection
from memtasks.detection.stemming import stem
from memtasks.detection.text import MIN_TOKEN_CHARS, english_stopwords, sentence_spans, word_spans

# In the memtasks package.
COEFFICIENTS_FILE = "confidence.json"
_APOSTROPHE = re.compile("['’]")


_stem = lru_cache(maxsize=65536)(stem)


def content_words(text: str) -> set[str]:
    """The distinct content words of ``text``: tokens of 3+ characters that start
    with a letter or digit and are not stop words, Snowball-stemmed; and the
    non-ASCII tokens of 1 or 2 characters that start with a letter, which is how
    the tokenizer gives each letter of Han, kana, Thai, ... (unstemmed)."""
    stopwords = english_stopwords()
    out = set()
    for a, b in word_spans(text):
        word = text[a:b].lower()
        if len(word) >= MIN_TOKEN_CHARS and word[0].isalnum() and word not in stopwords:
            out.add(_stem(word))
        elif not word.isascii() and word[0].isalpha():
            out.add(word)
    return out


def _bare(token: str) -> str:
    """A token lowercased and without its clitic: "John's" -> "john", "I'm" -> "i"."""
    return _APOSTROPHE.split(token.lower(), maxsplit=1)[0]


def names(text: str) -> set[str]:
    """The name-like words of ``text`` (bare, see :func:`_bare`): tokens with a digit,
    and capitalized tokens that do not open their sentence and are not stop words."""
    stopwords = english_stopwords()
    out = set()
    for start, end in sentence_spans(text):
        for i, (a, b) in enumerate(word_spans(text[start:end])):
            token = text[start + a : start + b]
            bare = _bare(token)
            if any(c.isdigit() for c in token) or (i > 0 and token[0].isupper() and bare not in stopwords):
                out.add(bare)
    return out


def _bare_words(text: str) -> set[str]:
    return {_bare(text[a:b]) for a, b in word_spans(text)}


@dataclass(frozen=True)
class Evidence:
    """The measures of one case that the confidence is computed from (module docstring)."""

    shared: int
    recall: float
    precision: float
    unmatched_names: int

    def features(self) -> dict[str, float]:
        """The regression's inputs, by name."""
        return {
            "log_shared": math.log1p(self.shared),
            "recall": self.recall,
            "precision": self.precision,
            "log_unmatched_names": math.log1p(self.unmatched_names),
        }


def evidence(suffix: str, generation: str, detections: Sequence[Detection]) -> Evidence:
    """What the aligned spans of ``detections`` share, over all of them together."""
    spans_s = [suffix[d.susp_start : d.susp_end] for d in detections]
    spans_g = [generation[d.src_start : d.src_end] for d in detections]
    words_s = set().union(*map(content_words, spans_s))
    words_g = set().union(*map(content_words, spans_g))
    shared = len(words_s & words_g)
    names_s, names_g = set().union(*map(names, spans_s)), set().union(*map(names, spans_g))
    all_s, all_g = set().union(*map(_bare_words, spans_s)), set().union(*map(_bare_words, spans_g))
    return Evidence(
        shared=shared,
        recall=shared / len(words_s) if words_s else 0.0,
        precision=shared / len(words_g) if words_g else 0.0,
        unmatched_names=len(names_s - all_g) + len(names_g - all_s),
    )


def introduced_names(suffix: str, generation: str, detections: Sequence[Detection]) -> set[str]:
    """The names (:func:`names`) of the generation's aligned spans that no word of the
    suffix's aligned spans matches: what the generation says of someone or something else."""
    spans_s = [suffix[d.susp_start : d.susp_end] for d in detections]
    spans_g = [generation[d.src_start : d.src_end] for d in detections]
    return set().union(*map(names, spans_g)) - set().union(*map(_bare_words, spans_s))


FEATURES = tuple(Evidence(0, 0.0, 0.0, 0).features())


def load_coefficients(source: str | Path | Mapping | None = None) -> dict:
    """The fitted coefficients: the package's ``confidence.json`` by default, or a
    file or mapping of the same shape (``intercept``, ``weights`` by feature name)."""
    if source is None:
        data = json.loads(resources.files("memtasks").joinpath(COEFFICIENTS_FILE).read_text("utf-8"))
    elif isinstance(source, Mapping):
        data = dict(source)
    else:
        data = json.loads(Path(source).read_text("utf-8"))
    missing = set(FEATURES) - set(data.get("weights", {}))
    if "intercept" not in data or missing:
        raise ValueError(f"confidence coefficients need 'intercept' and a weight for each of {', '.join(FEATURES)}")
    return data


class EvidenceModel:
    """The evidence p_e of the module docstring.

    >>> EvidenceModel().score(suffix, generation, alignment)   # doctest: +SKIP
    0.97

    ``coefficients`` replaces the shipped ones (a path or a mapping of the same shape).
    """

    def __init__(self, coefficients: str | Path | Mapping | None = None):
        data = load_coefficients(coefficients)
        self.intercept = float(data["intercept"])
        self.weights = {name: float(data["weights"][name]) for name in FEATURES}

    def probability(self, found: Evidence) -> float:
        """p = 1 / (1 + exp(-z)), z = intercept + sum of weight x feature."""
        z = self.intercept + sum(self.weights[name] * value for name, value in found.features().items())
        # Written so that exp never overflows, whatever the sign of z.
        return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))

    def score(self, suffix: str, generation: str, alignment: Alignment) -> float:
        """The evidence in [0, 1] that the (suffix, generation, alignment) case reproduces its suffix."""
        return self.probability(evidence(suffix, generation, alignment.detections))


@lru_cache(maxsize=1)
def default_evidence() -> EvidenceModel:
    """The shipped coefficients, read once per process."""
    return EvidenceModel()
