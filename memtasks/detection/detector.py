"""The detector D: preprocess every text once, then align many pairs on several cores."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator, Sequence

from tqdm.auto import tqdm

from memtasks.detection.align import Alignment, align_documents
from memtasks.detection.config import DetectorConfig, get_config
from memtasks.detection.text import Document, TermEncoder, preprocess

_CHUNK = 256

# State handed to forked workers: copied into each child when the pool starts,
# so texts and documents are never pickled per task.
_shared: dict = {}


def _preprocess_chunk(indices: range) -> list[Document]:
    encoder = _shared.setdefault("encoder", TermEncoder(_shared["config"].stemmer, _shared["config"].remove_stopwords))
    texts = _shared["texts"]
    return [preprocess(texts[i], encoder) for i in indices]


def _align_chunk(pairs: Sequence[tuple[int, int]]) -> list[Alignment]:
    documents, config = _shared["documents"], _shared["config"]
    return [align_documents(documents[s], documents[g], config) for s, g in pairs]


def _chunks(items: Sequence, size: int) -> list[Sequence]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _map(function, chunks: list, workers: int, progress: tqdm | None) -> Iterator:
    """Apply ``function`` to each chunk in order, in ``workers`` forked processes."""
    if workers <= 1 or len(chunks) <= 1:
        pool = None
        results = map(function, chunks)
    else:
        pool = multiprocessing.get_context("fork").Pool(workers)
        results = pool.imap(function, chunks)
    try:
        for chunk, result in zip(chunks, results):
            if progress is not None:
                progress.update(len(chunk))
            yield from result
    finally:
        if pool is not None:
            pool.terminate()


def default_workers() -> int:
    """All cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class Detector:
    """The text-alignment detector of spec sections 1 to 6.

    >>> detector = Detector("memorization")
    >>> detector.align(training_suffix, generation).category   # doctest: +SKIP
    'verbatim'

    ``align_pairs`` is the batch form: each distinct text is preprocessed once,
    and pairs are aligned in ``workers`` processes; results do not depend on
    the number of workers.
    """

    def __init__(self, config: DetectorConfig | str = "memorization", **overrides):
        self.config = get_config(config, **overrides)
        self._encoder = TermEncoder(self.config.stemmer, self.config.remove_stopwords)

    def preprocess(self, text: str) -> Document:
        return preprocess(text, self._encoder)

    def align(self, susp_text: str, src_text: str) -> Alignment:
        """Align one pair: ``susp_text`` is the training suffix, ``src_text`` the generation."""
        return align_documents(self.preprocess(susp_text), self.preprocess(src_text), self.config)

    def align_pairs(
        self,
        texts: Sequence[str],
        pairs: Sequence[tuple[int, int]],
        workers: int = 1,
        progress: bool = False,
    ) -> list[Alignment]:
        """Align ``(suspicious index, source index)`` pairs of ``texts``, in order."""
        _shared.clear()
        _shared.update(texts=texts, config=self.config)
        try:
            with tqdm(total=len(texts), desc="preprocess", unit="text", disable=not progress) as bar:
                documents = list(_map(_preprocess_chunk, _chunks(range(len(texts)), _CHUNK), workers, bar))
            _shared["documents"] = documents
            with tqdm(total=len(pairs), desc="align", unit="pair", disable=not progress) as bar:
                return list(_map(_align_chunk, _chunks(list(pairs), _CHUNK), workers, bar))
        finally:
            _shared.clear()
