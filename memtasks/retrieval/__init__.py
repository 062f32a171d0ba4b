"""Candidate retrieval: index training texts with ids, then top-k texts for each query.

Two backends rank identically: :class:`BM25Index` (embedded, the default) and
:class:`~memtasks.retrieval.elastic.ElasticsearchIndex` (an Elasticsearch
server); :meth:`RetrievalSettings.open` opens the one a run asks for.
"""

from memtasks.retrieval.analysis import analyze, query_terms
from memtasks.retrieval.bm25 import BM25Index
from memtasks.retrieval.settings import BACKENDS, RetrievalSettings

__all__ = ["BACKENDS", "BM25Index", "RetrievalSettings", "analyze", "query_terms"]
