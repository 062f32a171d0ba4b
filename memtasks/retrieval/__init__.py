"""Candidate retrieval: index training texts with ids, then top-k texts for each query."""

from memtasks.retrieval.bm25 import BM25Index, analyze

__all__ = ["BM25Index", "analyze"]
