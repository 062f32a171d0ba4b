"""Coincidences and near-copies across corpora: news suffixes, encyclopedia and edited generations.

Records of one corpus can truly paraphrase each other (two patients asking the
same question, two news agencies on one event), so text unrelated to a
training set is drawn from **another** corpus than its suffixes: the training
suffixes are news (XSum documents after a 50-word prefix, AG News texts, CNN/
DailyMail articles after the prefix), the unrelated generations encyclopedia
passages (SQuAD 2.0 contexts, Wikipedia). Every news record and every SQuAD
context belongs to the ``dev`` or the ``heldout`` half by a hash of its text:
a rule is fitted on the dev half, its figures are taken on the held-out half.

Generations of a half:

==================  ============================================================================
``unrelated``       40-60 consecutive words of a SQuAD context from a random word on, or 1-3 of
                    its whole sentences (half each), paired with a random news suffix of the half
``unrelated_other`` the same cut from movie reviews (IMDB) and doctors' answers (ChatDoctor): other
                    genres, whose topics news also covers (films, health); SQuAD's sample holds
                    16 Wikipedia articles only, so its passages meet few news topics
``near_copy@s``     a window of the suffix (1 sentence up to about 80 words, at least 15 words)
                    with each word, with probability s, dropped, replaced by a word of an
                    unrelated passage, or swapped with the next; s in 0.1, 0.2, 0.3
``reversed``        the suffix's first 80 words, its sentences in reverse order and every fourth
                    word dropped (the near-copy of issue 27)
==================  ============================================================================

Each set is scored as ``memtasks score`` scores a file of probes: the news
suffixes of the half are the search corpus (BM25 top 10), the best-ranked
detection counts.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from pathlib import Path

from memtasks.detection import sentence_spans, word_spans
from memtasks.scoring import Probe

from planted_pairs import _edit_words, _window

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
SEED = 2024
PARTS = ("dev", "heldout")
PREFIX_WORDS = 50
NEAR_COPY_STRENGTHS = (0.1, 0.2, 0.3)


def part_of(text: str, seed: int = SEED) -> str:
    """``dev`` or ``heldout``, by SHA-256 of the seed and the text."""
    return PARTS[int(hashlib.sha256(f"{seed}\0{text}".encode()).hexdigest(), 16) % 2]


def _records(data: Path, name: str) -> list[dict]:
    # Split on "\n" only: IMDB's reviews hold U+2028, which str.splitlines() breaks on.
    return [json.loads(line) for line in (data / name).read_text("utf-8").split("\n") if line.strip()]


def _after_prefix(document: str) -> str:
    spans = word_spans(document)
    return document[spans[PREFIX_WORDS][0] :].strip() if len(spans) > PREFIX_WORDS + 15 else ""


def news_suffixes(part: str, data: Path = DATA, seed: int = SEED) -> list[tuple[str, str]]:
    """(id, suffix) of the half's news records: XSum and CNN/DailyMail after a 50-word prefix, AG News whole."""
    out = []
    for name, field, cut in (("xsum.jsonl", "document", True), ("cnn_dailymail_train_sample.jsonl", "document", True),
                             ("ag_news.jsonl", "text", False)):
        for i, record in enumerate(_records(data, name)):
            text = record[field]
            suffix = _after_prefix(text) if cut else text.strip()
            if suffix and part_of(text, seed) == part:
                out.append((f"{name.split('.')[0]}-{i}", suffix))
    return out


def encyclopedia(part: str, data: Path = DATA, seed: int = SEED) -> list[str]:
    """The half's distinct SQuAD contexts."""
    seen = dict.fromkeys(r["context"] for r in _records(data, "squad_v2.jsonl"))
    return [c for c in seen if part_of(c, seed) == part]


def reviews_and_answers(part: str, data: Path = DATA, seed: int = SEED) -> list[str]:
    """The half's distinct IMDB reviews (HTML line breaks as spaces) and ChatDoctor answers."""
    texts = [r["text"].replace("<br />", " ") for r in _records(data, "imdb.jsonl")]
    texts += [r["output"] for r in _records(data, "chatdoctor_icliniq.jsonl")]
    return [t for t in dict.fromkeys(" ".join(t.split()) for t in texts) if t and part_of(t, seed) == part]


def _sentences(text: str) -> list[str]:
    return [text[a:b] for a, b in sentence_spans(text)] or [text.strip()]


def _unrelated(passages: Sequence[str], rng: random.Random) -> str:
    passage = rng.choice(passages)
    if rng.random() < 0.5:
        words = passage.split()
        n = rng.randint(40, 60)
        start = rng.randrange(max(1, len(words) - n + 1))
        return " ".join(words[start : start + n])
    sentences = _sentences(passage)
    start = rng.randrange(len(sentences))
    return " ".join(sentences[start : start + rng.randint(1, 3)])


def near_copy(suffix: str, strength: float, vocabulary: Sequence[str], rng: random.Random) -> str:
    sentences = _sentences(suffix)
    start = 0 if rng.random() < 0.5 else rng.randrange(len(sentences))
    window = _window(sentences, start, rng.randint(15, 80), 120)
    if sum(len(s.split()) for s in window) < 15:
        window = _window(sentences, 0, 15, 120)
    return " ".join(" ".join(_edit_words(s.split(), strength, rng, vocabulary)) for s in window)


def reversed_copy(suffix: str) -> str:
    words = " ".join(reversed(_sentences(" ".join(suffix.split()[:80])))).split()
    return " ".join(w for i, w in enumerate(words) if i % 4 != 3)


def cross_corpus_sets(
    part: str, n_unrelated: int = 8000, n_copies: int = 500, data: Path = DATA, seed: int = SEED
) -> tuple[list[tuple[str, str]], dict[str, list[Probe]]]:
    """The half's search corpus (news suffixes) and its probe sets, by name (module docstring)."""
    corpus = news_suffixes(part, data, seed)
    passages = encyclopedia(part, data, seed)
    rng = random.Random(f"{seed}:{part}")
    sets: dict[str, list[Probe]] = {
        "unrelated": [
            Probe(f"u{i}", *[rng.choice(corpus)[1], _unrelated(passages, rng)]) for i in range(n_unrelated)
        ]
    }
    long_enough = [(doc_id, s) for doc_id, s in corpus if len(s.split()) >= 20]
    for strength in NEAR_COPY_STRENGTHS:
        probes = []
        for i in range(n_copies):
            doc_id, suffix = rng.choice(long_enough)
            vocabulary = _unrelated(passages, rng).split()
            probes.append(Probe(doc_id, suffix, near_copy(suffix, strength, vocabulary, rng)))
        sets[f"near_copy@{strength}"] = probes
    sets["reversed"] = [Probe(doc_id, s, reversed_copy(s)) for doc_id, s in rng.sample(long_enough, n_copies)]
    # Drawn last, from a generator of its own: the sets above are what they were before it existed.
    others, other_rng = reviews_and_answers(part, data, seed), random.Random(f"{seed}:{part}:other")
    sets["unrelated_other"] = [
        Probe(f"o{i}", *[other_rng.choice(corpus)[1], _unrelated(others, other_rng)]) for i in range(n_unrelated)
    ]
    return corpus, sets
