"""Which retrieval backend a run uses, and opening it.

The backend is chosen by the caller (``memtasks score --retrieval``, a task's
``retrieval`` metadata) or else by ``MEMTASKS_RETRIEVAL``; ``embedded`` is the
default. The Elasticsearch server and its credentials come from the
``MEMTASKS_ES_*`` environment variables only (see :mod:`memtasks.retrieval.elastic`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass

BACKENDS = ("embedded", "elasticsearch")


@dataclass(frozen=True)
class RetrievalSettings:
    """How candidates are retrieved; holds no secret, so it can be logged and stored with results.

    ``query_stopwords`` removes English stop words from queries (the list of
    ``memtasks/detection/stopwords_en.txt``) in both backends; ``es_index``
    names an Elasticsearch index to keep and reuse instead of a temporary one.
    """

    backend: str = "embedded"
    query_stopwords: bool = False
    es_index: str | None = None

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise ValueError(f"retrieval backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.es_index is not None and (not self.es_index or self.es_index != self.es_index.lower()):
            raise ValueError(f"es_index must be a non-empty lowercase index name, got {self.es_index!r}")

    @classmethod
    def resolve(
        cls,
        backend: str | None = None,
        query_stopwords: bool = False,
        es_index: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> RetrievalSettings:
        """Settings with the backend taken from ``MEMTASKS_RETRIEVAL`` when not given."""
        env = os.environ if env is None else env
        return cls(backend or env.get("MEMTASKS_RETRIEVAL") or "embedded", bool(query_stopwords), es_index or None)

    def to_dict(self) -> dict:
        return asdict(self)

    def open(self):
        """A new, empty index of this backend (a context manager)."""
        if self.backend == "elasticsearch":
            from memtasks.retrieval.elastic import ElasticsearchIndex

            return ElasticsearchIndex(index=self.es_index, query_stopwords=self.query_stopwords)
        from memtasks.retrieval.bm25 import BM25Index

        return BM25Index(query_stopwords=self.query_stopwords)
