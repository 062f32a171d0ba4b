"""The embedded index ranks as Elasticsearch does: its standard analyzer, Lucene's BM25, ties by id.

The reference below is written directly from Lucene's formula (BM25Similarity,
SmallFloat.intToByte4, BooleanQuery's merging of repeated clauses) with numpy
float32 scalars for Java's floats; it shares no code with memtasks.retrieval
except the analyzer, which has tests of its own here.
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import regex

from memtasks.retrieval import BM25Index, analyze
from memtasks.retrieval.analysis import TOKEN_PATTERN, tokenize

DATA = Path(__file__).parent / "data" / "example_probes.jsonl"
F = np.float32


def lucene_length(length: int) -> int:
    """A length as Lucene stores it: exact below 24, then 24 + (length - 24) cut to 4 significant bits."""
    if length < 24:
        return length
    rest = length - 24
    drop = max(rest.bit_length() - 4, 0)
    return 24 + ((rest >> drop) << drop)


class LuceneReference:
    """Elasticsearch's BM25 ranking of ``docs``, written from the formula."""

    def __init__(self, docs: dict[int, str]):
        self.terms = {i: Counter(analyze(text)) for i, text in docs.items()}
        self.lengths = {i: sum(c.values()) for i, c in self.terms.items()}
        self.n_docs = sum(1 for n in self.lengths.values() if n > 0)
        self.avgdl = F(sum(self.lengths.values()) / self.n_docs)

    def top_k(self, query: str, k: int) -> list[tuple[int, float]]:
        weights = {}
        for term, boost in Counter(analyze(query)).items():
            n = sum(1 for c in self.terms.values() if c[term] > 0)
            if n:
                weights[term] = F(boost) * F(math.log(1 + (self.n_docs - n + 0.5) / (n + 0.5)))
        scores = {}
        for doc_id, counts in self.terms.items():
            dl = F(lucene_length(self.lengths[doc_id]))
            norm_inverse = F(1) / (F(1.2) * ((F(1) - F(0.75)) + F(0.75) * dl / self.avgdl))
            matched = [t for t in weights if counts[t] > 0]
            if matched:
                total = sum(float(weights[t] - weights[t] / (F(1) + F(counts[t]) * norm_inverse)) for t in matched)
                scores[doc_id] = F(total)
        ranked = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
        return [(doc_id, float(score)) for doc_id, score in ranked[:k]]


def fixture_corpus() -> tuple[dict[int, str], list[str]]:
    """Real suffixes, exact duplicates under other ids, and documents that tie only through the norm encoding."""
    records = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()]
    docs = {1000 + 3 * i: r["suffix"] for i, r in enumerate(records)}
    # The same text under a smaller and a larger id: an exact tie.
    docs[5] = records[0]["suffix"]
    docs[999_999] = records[1]["suffix"]
    # 100 and 103 terms are both stored as length 96, so
    # these two score exactly the same although one is longer.
    filler = "alpha beta gamma delta epsilon zeta eta theta iota kappa".split()
    docs[77] = "quokka " + " ".join(filler[i % 10] for i in range(99))
    docs[76] = "quokka " + " ".join(filler[i % 10] for i in range(102))
    # Documents without a term count neither in N nor in the average length.
    docs[3], docs[4] = "", "!!! ... ---"
    queries = [r["generation"] for r in records] + [r["suffix"][:300] for r in records[:50]]
    rng = random.Random(3)
    vocabulary = sorted({t for text in docs.values() for t in analyze(text)})
    for _ in range(60):
        words = rng.choices(vocabulary, k=rng.randint(1, 6))
        queries.append(" ".join(words * rng.randint(1, 4)) + " " + " ".join(rng.choices(vocabulary, k=3)))
    queries += ["quokka", "quokka quokka alpha", "the the the", "Don't stop"]
    return docs, queries


@pytest.fixture(scope="module")
def corpus():
    docs, queries = fixture_corpus()
    index = BM25Index()
    index.add(list(docs), list(docs.values()))
    return docs, queries, index


def test_top10_equals_lucene_formula_on_fixture_corpus(corpus):
    docs, queries, index = corpus
    reference = LuceneReference(docs)
    for query in queries:
        expected = reference.top_k(query, 10)
        got = index.search(query, 10)
        assert [doc_id for doc_id, _ in got] == [doc_id for doc_id, _ in expected], query[:80]
        # Bit-identical float scores, not merely the same order.
        assert [np.float32(s) for _, s in got] == [np.float32(s) for _, s in expected], query[:80]
    assert index.top_k(queries, k=10, workers=2) == [[d for d, _ in reference.top_k(q, 10)] for q in queries]


def test_exact_duplicates_tie_and_the_smaller_id_ranks_first(corpus):
    docs, _, index = corpus
    ranked = index.search(docs[5], 3)
    assert [ranked[0][0], ranked[1][0]] == [5, 1000]
    assert ranked[0][1] == ranked[1][1]


def test_lengths_are_compared_after_lucenes_norm_encoding(corpus):
    # With exact lengths the 100-term document would win; Lucene stores both
    # lengths as 96, so they tie and the tie goes to the smaller id.
    _, _, index = corpus
    (first, s1), (second, s2) = index.search("quokka", 2)
    assert (first, second) == (76, 77) and s1 == s2
    assert lucene_length(100) == lucene_length(103) == 96 and lucene_length(40) == 40 and lucene_length(41) == 40


def test_a_repeated_query_term_weighs_by_its_count():
    # "cat" in 2 of 4 documents (idf ln 2), "dog" in 1 (idf ln 10/3): one "cat"
    # loses to "dog", two win (2 ln 2 > ln 10/3), as clauses with boost 2.
    docs = {1: "cat alpha", 2: "dog alpha", 3: "cat beta gamma delta", 4: "epsilon zeta"}
    index = BM25Index()
    index.add(list(docs), list(docs.values()))
    assert index.top_k(["cat dog", "cat cat dog", "Cat CAT cat dog"], k=1) == [[2], [1], [1]]
    for query in ("cat cat dog", "cat cat cat dog dog"):
        assert index.search(query, 4) == LuceneReference(docs).top_k(query, 4)


@pytest.mark.parametrize(
    "text, terms",
    [
        # Where the standard tokenizer (UAX #29) differs from splitting on non-alphanumerics.
        ("Don't stop", ["don't", "stop"]),
        ("It rose 3.5% to 1,000.", ["it", "rose", "3.5", "to", "1,000"]),
        ("The U.S. team", ["the", "u.s", "team"]),
        ("snake_case and e.g. wi-fi", ["snake_case", "and", "e.g", "wi", "fi"]),
        ("ratio 16:9 at 10:30am", ["ratio", "16", "9", "at", "10", "30am"]),
        ("café naïve Straße", ["café", "naïve", "straße"]),
        # Java lowercases code point by code point: no final sigma, no combining dot.
        ("ΟΔΟΣ İstanbul", ["οδοσ", "istanbul"]),
        # Ideographs and hiragana one by one, katakana and Thai as runs, emoji kept.
        ("東京タワーはすごい", ["東", "京", "タワー", "は", "す", "ご", "い"]),
        ("ภาษาไทย ok", ["ภาษาไทย", "ok"]),
        ("good 👍🏽 🇫🇷!", ["good", "👍🏽", "🇫🇷"]),
        ("-- ... !!! ___", []),
    ],
)
def test_standard_analyzer(text, terms):
    assert analyze(text) == terms


def test_tokens_longer_than_255_are_split():
    assert [len(t) for t in analyze("a" * 600)] == [255, 255, 90]
    # Java counts UTF-16 code units: an astral letter counts two.
    assert [len(t) for t in tokenize("\U0001D400" * 200)] == [127, 73]


def test_fast_paths_find_the_longest_match_like_lucenes_scanner():
    # The analyzer's greedy patterns (and its ASCII shortcut) against
    # leftmost-longest matching of the same rules, on text built to stress
    # the mid-word and connector rules.
    longest = regex.compile("(?p)" + TOKEN_PATTERN, regex.VERSION1)
    rng = random.Random(11)
    alphabet = "ab1_:.',;\"- #*é’\u05d0\u0301東タ👍\u200d"
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 14)))
        assert tokenize(text) == longest.findall(text), repr(text)
    for line in DATA.read_text(encoding="utf-8").splitlines()[:100]:
        text = json.loads(line)["suffix"]
        assert tokenize(text) == longest.findall(text)
