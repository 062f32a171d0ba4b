"""The detector's stems: the Snowball English ("Porter2") stemmer of the Snowball project, through PyStemmer.

PyStemmer is the Snowball project's own C binding: it imports in under a
millisecond (NLTK, which the specification's code stems with, costs about
1.5 s of start-up, as it loads SciPy and scikit-learn). Words are lowercased
first and the curly apostrophes (’ ‘ ‛) read as ``'``, as NLTK reads them, so
"Britain’s" stems as "britain's" does.

The stems are Snowball 3's, which are not NLTK's everywhere: NLTK keeps an
older edition of the algorithm and its own bookkeeping of the regions R1 and
R2. Of the 80,376 distinct words of the benchmark text (../shared/data), 118
stem differently (0.15%), e.g. "added" -> "add" (NLTK: "ad"), "evening" ->
"evening" (NLTK: "even") and "biologist" -> "biolog" (NLTK: "biologist",
apart from "biology"); of the 134,998 of the PAN 2013 training corpus, 195. Measured before the switch from the
hand-written NLTK-exact stemmer this module held (2026-12-04): PAN 2013
plagdet 0.90296 -> 0.90292 (``memtasks pan-eval ../shared/pan13-train
--preset pan14``), every count of the held-out planted pairs
(``python tests/benchmarks/bench_confidence.py``) and of the held-out
category-validity sets (``python tests/benchmarks/bench_categories.py --part
heldout``) unchanged. tests/test_stemming.py pins stems where the editions
differ, so that a PyStemmer release that changes them fails CI instead of
moving rates.

A stemmer object keeps state while it stems, so each thread gets its own.
"""

from __future__ import annotations

import threading

import Stemmer

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201b": "'"})
_local = threading.local()


def _english() -> Stemmer.Stemmer:
    stemmer = getattr(_local, "english", None)
    if stemmer is None:
        # No cache of its own: the detector and the confidence keep each word's stem already.
        stemmer = _local.english = Stemmer.Stemmer("english", 0)
    return stemmer


def stem(word: str) -> str:
    """The Snowball English stem of ``word``, lowercased first, with curly apostrophes read as ``'``."""
    word = word.lower()
    if not word.isascii():
        word = word.translate(_APOSTROPHES)
    return _english().stemWord(word)
