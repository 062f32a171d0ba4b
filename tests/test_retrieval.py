"""Tests for memtasks.retrieval: the embedded BM25 index (top-k, ties, workers, queries without terms)."""

from __future__ import annotations

import random

import pytest

from memtasks.retrieval import BM25Index, analyze


def make_index(docs: dict[int, str]) -> BM25Index:
    index = BM25Index()
    index.add(list(docs), list(docs.values()))
    return index


def test_document_sharing_the_rare_term_ranks_first():
    # Every document shares "the", "report" and "said" with the query; only
    # document 11 shares the rare term "quokka". It is also the longest
    # document, so length normalization works against it on the common terms.
    docs = {i: f"the report said on monday that the {word} was seen" for i, word in enumerate(
        ["fox", "owl", "badger", "heron", "otter", "stoat", "hare", "deer", "wren", "vole"])}
    docs[11] = "the report said on monday that a quokka was seen in the park near the river bank by walkers"
    index = make_index(docs)
    assert index.top_k(["the report said quokka"], k=3)[0][0] == 11
    # Matching is case-insensitive and ignores punctuation, like the index analyzer.
    assert index.top_k(["QUOKKA!"], k=3) == [[11]]


def test_ties_are_broken_by_smaller_id():
    index = make_index({7: "the cat sat", 3: "the cat sat", 5: "the cat sat"})
    assert index.top_k(["cat"], k=3) == [[3, 5, 7]]
    assert index.top_k(["cat"], k=2) == [[3, 5]]
    scores = [score for _, score in index.search("cat", 3)]
    assert scores[0] == scores[1] == scores[2]


def test_ties_past_k_are_all_seen_before_the_cut():
    # 60 identical documents under shuffled ids, plus one better match: the k
    # best must be the best match, then the smallest tied ids, whatever order
    # the index visits its tied hits in.
    ids = list(range(100, 160))
    random.Random(0).shuffle(ids)
    docs = {i: "storm over the harbour" for i in ids}
    docs[500] = "storm storm over the harbour wall"
    index = make_index(docs)
    assert index.top_k(["storm"], k=5) == [[500, 100, 101, 102, 103]]


def test_repeated_query_term_counts_once_per_occurrence():
    # idf = ln(1 + (N - n + 0.5) / (n + 0.5)) with N = 4 documents:
    #   "cat" is in 2 documents: idf = ln(2)      ~ 0.69
    #   "dog" is in 1 document:  idf = ln(10 / 3) ~ 1.20
    # Documents 1 and 2 have the same length, so their term-frequency parts are
    # equal: for "cat dog" the dog document wins (1.20 > 0.69), for
    # "cat cat dog" the cat document wins (2 * 0.69 = 1.39 > 1.20).
    index = make_index({1: "cat alpha", 2: "dog alpha", 3: "cat beta gamma delta", 4: "epsilon zeta"})
    assert index.top_k(["cat dog"], k=1) == [[2]]
    assert index.top_k(["cat cat dog"], k=1) == [[1]]
    once = dict(index.search("cat", 4))
    twice = dict(index.search("cat cat", 4))
    assert twice[1] == pytest.approx(2 * once[1])
    assert twice[3] == pytest.approx(2 * once[3])


@pytest.mark.parametrize("query", ["", "   \n\t", "!!! ... --- ???", "_", "___ -- \u2014 \u2022 ++"])
def test_query_without_indexable_terms_returns_nothing(query):
    index = make_index({0: "a cat sat", 1: "a dog ran"})
    assert analyze(query) == []
    assert index.search(query, 5) == []
    assert index.top_k([query], k=5) == [[]]


def test_query_with_unknown_terms_returns_nothing():
    index = make_index({0: "a cat sat", 1: "a dog ran"})
    assert index.top_k(["zebra giraffe"], k=5) == [[]]


def test_k_larger_than_corpus_returns_every_match_best_first():
    index = make_index({0: "red apple pie", 1: "green apple", 2: "blue sky", 3: "apple apple tart"})
    ranked = index.search("apple", 50)
    assert sorted(doc_id for doc_id, _ in ranked) == [0, 1, 3]  # document 2 does not match
    scores = [score for _, score in ranked]
    assert scores == sorted(scores, reverse=True)
    assert index.top_k(["apple"], k=50) == [[doc_id for doc_id, _ in ranked]]


def test_k_limits_the_number_of_results():
    index = make_index({i: f"shared word number {i}" for i in range(20)})
    assert len(index.top_k(["shared"], k=7)[0]) == 7
    assert index.top_k(["shared"], k=0) == [[]]


def test_results_do_not_depend_on_workers_and_follow_query_order():
    rng = random.Random(42)
    vocabulary = [f"w{i}" for i in range(60)]
    docs = {i: " ".join(rng.choices(vocabulary, k=rng.randint(5, 30))) for i in range(300)}
    index = make_index(docs)
    # Query i is document i's own text, so document i must be among its results,
    # in the same position of the output as query i.
    queries = [docs[i] for i in range(300)] + [" ".join(rng.choices(vocabulary, k=4)) for _ in range(200)]
    one = index.top_k(queries, k=10, workers=1)
    two = index.top_k(queries, k=10, workers=2)
    assert one == two
    assert one == [[doc_id for doc_id, _ in index.search(q, 10)] for q in queries]
    assert all(i in one[i] for i in range(300))


def test_searching_before_add_raises():
    index = BM25Index()
    with pytest.raises(RuntimeError, match="add"):
        index.search("cat", 3)
    with pytest.raises(RuntimeError, match="add"):
        index.top_k(["cat"], k=3)


def test_add_rejects_mismatched_ids_and_texts():
    with pytest.raises(ValueError):
        BM25Index().add([1, 2], ["only one text"])


@pytest.mark.parametrize(
    "text",
    [
        "naïve café Straße",
        "हिन्दी",
        "İstanbul",
        "ΟΔΟΣ",
    ],
)
def test_a_text_retrieves_itself(text):
    # The query analyzer must produce the index's own terms, or a verbatim copy
    # of a training suffix is never retrieved and cannot be scored.
    index = make_index({1: text, 2: "unrelated words"})
    assert index.top_k([text], k=1) == [[1]]
