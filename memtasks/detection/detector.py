"""The detector D: preprocess every text once, then align many pairs on several cores."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator, Sequence

from tqdm.auto import tqdm

from memtasks.detection.align import NO_ALIGNMENT, Alignment, align_documents
from memtasks.detection.config import DetectorConfig, get_config
from memtasks.detection.text import Document, DocumentBatch, TermEncoder, preprocess

_CHUNK = 256

# State handed to forked workers: copied into each child when the pool starts,
# so texts and documents are never pickled per task.
_shared: dict = {}


def _preprocess_chunk(indices: range) -> list[DocumentBatch]:
    encoder = _shared.setdefault("encoder", TermEncoder(_shared["config"].stemmer, _shared["config"].remove_stopwords))
    texts = _shared["texts"]
    return [DocumentBatch.pack([preprocess(texts[i], encoder) for i in indices])]


def _document(index: int) -> Document:
    """A text's document, unpacked from its batch once per process."""
    unpacked = _shared["unpacked"]
    document = unpacked.get(index)
    if document is None:
        batch = _shared["batches"][index // _CHUNK]
        document = unpacked[index] = batch.document(index % _CHUNK, _shared["texts"][index])
    return document


def _align_chunk(pairs: Sequence[tuple[int, int]]) -> list[Alignment | None]:
    config = _shared["config"]
    # None stands for "no alignment": most pairs have none, and None costs
    # nothing to send back to the parent.
    return [(a if a.detected else None) for a in (align_documents(_document(s), _document(g), config) for s, g in pairs)]


def _chunks(items: Sequence, size: int) -> list[Sequence]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _map(function, chunks: list, workers: int, progress: tqdm | None) -> Iterator:
    """Apply ``function`` to each chunk in order, in ``workers`` forked processes;
    yield the items of the results, advancing ``progress`` by each chunk's size."""
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


def _warm_up(config: DetectorConfig) -> None:
    """Compile (or load) the numba kernels here, before workers are forked,
    so that each worker does not do it again."""
    detector = Detector(config)
    text = "A warm-up sentence with several words. It aligns with itself word for word, and that is verbatim."
    detector.align(text, text)


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
            _warm_up(self.config)
            with tqdm(total=len(texts), desc="preprocess", unit="text", disable=not progress) as bar:
                _shared["batches"] = list(_map(_preprocess_chunk, _chunks(range(len(texts)), _CHUNK), workers, bar))
            _shared["unpacked"] = {}
            with tqdm(total=len(pairs), desc="align", unit="pair", disable=not progress) as bar:
                return [a or NO_ALIGNMENT for a in _map(_align_chunk, _chunks(list(pairs), _CHUNK), workers, bar)]
        finally:
            _shared.clear()
