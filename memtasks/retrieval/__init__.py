"""Candidate retrieval: index training texts with ids, then top-k texts for each query.

Two backends rank identically: :class:`BM25Index` (embedded, the default) and
:class:`~memtasks.retrieval.elastic.ElasticsearchIndex` (an Elasticsearch
server); :meth:`RetrievalSettings.open` opens the one a run asks for.

The analyzer and the index are compiled with numba, which takes a while to
import: they are imported when first used, so that importing the settings
(every command line does) stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from memtasks.retrieval.settings import BACKENDS, RetrievalSettings

if TYPE_CHECKING:
    from memtasks.retrieval.analysis import analyze, query_terms
    from memtasks.retrieval.bm25 import BM25Index

_LAZY = {"analyze": "analysis", "query_terms": "analysis", "BM25Index": "bm25"}

__all__ = ["BACKENDS", "BM25Index", "RetrievalSettings", "analyze", "query_terms"]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(import_module(f"memtasks.retrieval.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'memtasks.retrieval' has no attribute {name!r}")
