"""Embedded BM25 retrieval with tantivy: no server, an index in memory or on disk."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor

import tantivy
from tqdm.auto import tqdm

# The index's "default" analyzer, rebuilt from tantivy's own parts so that query
# terms are exactly the indexed terms (Python's notion of a letter and of
# lowercasing differs from Rust's in several scripts).
_ANALYZER = (
    tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
    .filter(tantivy.Filter.remove_long(40))
    .filter(tantivy.Filter.lowercase())
    .build()
)


def analyze(text: str) -> list[str]:
    """The index terms of ``text``, in order, repeats kept."""
    return _ANALYZER.analyze(text)


class BM25Index:
    """A BM25 index of texts with integer ids; top-k ties are broken by smaller id.

    >>> index = BM25Index()
    >>> index.add([0, 1], ["a cat sat", "a dog ran"])
    >>> index.top_k(["the cat"], k=1)
    [[0]]

    A query's repeated term counts once per occurrence, as in a match query.
    Scores are tantivy's BM25 (k1 = 1.2, b = 0.75).
    """

    def __init__(self, path: str | None = None, heap_bytes: int = 256_000_000):
        builder = tantivy.SchemaBuilder()
        builder.add_integer_field("id", stored=False, indexed=False, fast=True)
        builder.add_text_field("body", stored=False, tokenizer_name="default", index_option="freq")
        self._schema = builder.build()
        self._index = tantivy.Index(self._schema, path=path)
        self._heap_bytes = heap_bytes
        self._searcher = None

    def add(self, ids: Sequence[int], texts: Sequence[str], progress: bool = False) -> None:
        """Index ``texts`` under ``ids`` (commits, so they are searchable at once)."""
        if len(ids) != len(texts):
            raise ValueError(f"{len(ids)} ids for {len(texts)} texts")
        writer = self._index.writer(heap_size=self._heap_bytes, num_threads=1)
        for doc_id, text in tqdm(zip(ids, texts), total=len(texts), desc="index", unit="text", disable=not progress):
            writer.add_document(tantivy.Document(id=int(doc_id), body=text))
        writer.commit()
        writer.wait_merging_threads()
        self._index.reload()
        self._searcher = self._index.searcher()

    def _query(self, text: str) -> tantivy.Query | None:
        counts = Counter(analyze(text))
        if not counts:
            return None
        clauses = []
        for term, count in counts.items():
            query = tantivy.Query.term_query(self._schema, "body", term)
            # A term repeated n times scores n times, like n separate clauses.
            clauses.append((tantivy.Occur.Should, tantivy.Query.boost_query(query, float(count)) if count > 1 else query))
        return tantivy.Query.boolean_query(clauses)

    def search(self, text: str, k: int) -> list[tuple[int, float]]:
        """The ``k`` best ``(id, score)`` for one query, best first."""
        if self._searcher is None:
            raise RuntimeError("the index is empty: call add() first")
        query = self._query(text)
        if query is None or k <= 0:
            return []
        limit = k
        while True:
            hits = self._searcher.search(query, limit=limit, count=False).hits
            # Fetch past the k-th hit until its score is no longer tied, so that
            # the tie-break by id sees every tied document.
            if len(hits) < limit or hits[-1][0] < hits[k - 1][0]:
                break
            limit *= 2
        ids = self._searcher.fast_field_values("id", [address for _, address in hits])
        ranked = sorted(zip(ids, (score for score, _ in hits)), key=lambda pair: (-pair[1], pair[0]))
        return ranked[:k]

    def top_k(self, queries: Iterable[str], k: int = 10, workers: int = 1, progress: bool = False) -> list[list[int]]:
        """Ids of the ``k`` best texts for each query, best first.

        tantivy searches without holding the GIL, so ``workers`` threads search
        in parallel; the order of the results is the order of the queries.
        """
        queries = list(queries)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = pool.map(lambda query: [doc_id for doc_id, _ in self.search(query, k)], queries)
            return list(tqdm(results, total=len(queries), desc="retrieve", unit="query", disable=not progress))
