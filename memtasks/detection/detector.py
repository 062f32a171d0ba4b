"""The detector D: preprocess every text once, then align many pairs on several cores."""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import numpy as np
from tqdm.auto import tqdm

from memtasks.detection.align import NO_ALIGNMENT, Alignment, detect
from memtasks.detection.config import DetectorConfig, get_config
from memtasks.detection.evidence import default_evidence
from memtasks.detection.kernels import pairs_with_evidence
from memtasks.detection.text import Document, DocumentBatch, TermEncoder, preprocess, preprocess_batch
from memtasks.interrupts import kept_interrupts

_CHUNK = 256
# Work this small runs in the calling process: starting worker processes
# would cost more than it saves.
_MIN_CHUNKS_FOR_WORKERS = 4

# State of the alignment workers, set before they are forked: copied into
# each child when it starts, so documents are never pickled per task.
_shared: dict = {}
# Each worker's term encoders, by (stemmer, remove_stopwords): a token is
# analysed once per process, however many chunks hold it.
_encoders: dict[tuple[str, bool], TermEncoder] = {}


class WorkerKilledError(MemoryError):
    """A detection worker process ended without a result, most often killed by the
    system for lack of memory; the run cannot be completed."""


def align_documents(susp: Document, src: Document, config: DetectorConfig) -> Alignment:
    """:func:`detect`, and an idea or paraphrase pair dropped unless the detector's evidence
    supports it (``DetectorConfig.support``)."""
    alignment = detect(susp, src, config)
    if (
        config.support > 0
        and alignment.category in ("idea", "paraphrase")
        and default_evidence().score(susp.text, src.text, alignment) < config.support
    ):
        return NO_ALIGNMENT
    return alignment


def _preprocess_texts(stemmer: str, remove_stopwords: bool, texts: list[str]) -> DocumentBatch:
    """The documents of ``texts``, packed (runs in a worker)."""
    encoder = _encoders.get((stemmer, remove_stopwords))
    if encoder is None:
        encoder = _encoders[stemmer, remove_stopwords] = TermEncoder(stemmer, remove_stopwords)
    return preprocess_batch(texts, encoder)


def _document(index: int) -> Document:
    """A text's document, unpacked from the batch once per process."""
    unpacked = _shared["unpacked"]
    document = unpacked.get(index)
    if document is None:
        document = unpacked[index] = _shared["batch"].document(index, _shared["texts"][index])
    return document


def _align_chunk(start: int, stop: int) -> list[Alignment | None]:
    """Alignments of the pairs ``start:stop`` of the shared pair array."""
    config = _shared["config"]
    pairs = _shared["pairs"][start:stop]
    fields, offsets = _shared["fields"]
    found = pairs_with_evidence(fields, offsets, pairs, config.th1, config.th2, config.weighting == "smoothed", config.verbatim_minlen)
    # None stands for "no alignment": most pairs have none, and None costs
    # nothing to send back to the parent.
    results: list[Alignment | None] = [None] * len(pairs)
    for i in np.flatnonzero(found).tolist():
        alignment = align_documents(_document(int(pairs[i, 0])), _document(int(pairs[i, 1])), config)
        results[i] = alignment if alignment.detected else None
    return results


def _ignore_interrupts() -> None:
    # Ctrl-C reaches every process of the terminal's group: the parent alone
    # handles it, and stops the workers. They are forked with SIGINT blocked
    # (see _Workers.submit), so one that comes before this line is dropped too.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


KILLED_MESSAGE = (
    "a detection worker process was killed before it finished (most often the system stopping it for lack "
    "of memory); run again with fewer --workers (e.g. --workers 1) or on a smaller input"
)


class _Workers:
    """Up to ``count`` forked worker processes, started on the first task; with
    ``count`` <= 1 tasks run in the calling process as they are submitted."""

    def __init__(self, count: int):
        self.count = count
        self._executor: ProcessPoolExecutor | None = None

    def submit(self, function: Callable, *args) -> Future:
        if self.count <= 1:
            future: Future = Future()
            future.set_result(function(*args))
            return future
        first = self._executor is None
        if first:
            self._executor = ProcessPoolExecutor(
                self.count, mp_context=multiprocessing.get_context("fork"), initializer=_ignore_interrupts
            )
            # The first task forks the workers (all of them, with "fork"): a Ctrl-C
            # meanwhile waits for this process, and never reaches a worker that
            # does not ignore it yet (it would print a traceback of its own).
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            return self._executor.submit(function, *args)
        except BrokenProcessPool:
            raise WorkerKilledError(KILLED_MESSAGE) from None
        finally:
            if first:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})

    def close(self, stop: bool = False) -> None:
        """Wait for the workers to finish and end; with ``stop`` (Ctrl-C or a failure), end them now."""
        executor, self._executor = self._executor, None
        if executor is None:
            return
        if stop:
            # Their tasks are of no use any more: waiting for the ones running
            # (and for a long pair, or a text of 100,000 characters) would keep
            # the run alive for nothing. Their results are dropped with them.
            processes = list((executor._processes or {}).values())
            for process in processes:
                process.kill()
            for process in processes:
                process.join()
            # A worker killed while sending a result leaves half a message in the
            # result pipe, which the executor's thread would wait on for ever:
            # with this process's end closed too, it reads the end of the pipe.
            executor._result_queue._writer.close()
        executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> _Workers:
        return self

    def __exit__(self, exc_type, *exc_info) -> None:
        self.close(stop=exc_type is not None)


def _results(futures: Sequence[Future], sizes: Sequence[int], bar: tqdm) -> list:
    """Each future's result, in order, advancing ``bar`` by the matching size."""
    out = []
    try:
        for future, size in zip(futures, sizes):
            out.append(future.result())
            bar.update(size)
    except BrokenProcessPool:
        raise WorkerKilledError(KILLED_MESSAGE) from None
    return out


class PendingDocuments:
    """Texts being preprocessed by a :class:`Preprocessor`'s workers."""

    def __init__(self, futures: list[Future], sizes: list[int]):
        self.futures, self.sizes = futures, sizes


class Preprocessor:
    """Worker processes that preprocess texts in the background, for
    :meth:`Detector.align_batches`. Use as a context manager::

        with detector.preprocessor(workers=2) as pre:
            generations = pre.submit(generation_texts)   # starts now
            ...                                          # e.g. retrieval, meanwhile
            suffixes = pre.submit(suffix_texts)
            batches = pre.collect([suffixes, generations])
    """

    def __init__(self, config: DetectorConfig, workers: int, expected_texts: int):
        # Fewer chunks than this run here; more are worth the workers' start-up.
        self._workers = _Workers(workers if expected_texts >= _MIN_CHUNKS_FOR_WORKERS * _CHUNK else 1)
        self._settings = (config.stemmer, config.remove_stopwords)

    def submit(self, texts: Sequence[str]) -> PendingDocuments:
        chunks = [list(texts[i : i + _CHUNK]) for i in range(0, len(texts), _CHUNK)]
        futures = [self._workers.submit(_preprocess_texts, *self._settings, chunk) for chunk in chunks]
        return PendingDocuments(futures, [len(chunk) for chunk in chunks])

    def collect(self, pending: Sequence[PendingDocuments], progress: bool = False) -> list[DocumentBatch]:
        """The documents of each submission in turn, as batches in the order of their texts."""
        futures = [f for p in pending for f in p.futures]
        sizes = [n for p in pending for n in p.sizes]
        with tqdm(total=sum(sizes), desc="preprocess", unit="text", disable=not progress) as bar:
            return _results(futures, sizes, bar)

    def close(self, stop: bool = False) -> None:
        """End the workers: once their tasks are done or, with ``stop``, now (see :meth:`_Workers.close`)."""
        self._workers.close(stop)
        # Without workers the encoders lived here: their tables go with the run.
        _encoders.clear()

    def __enter__(self) -> Preprocessor:
        return self

    def __exit__(self, exc_type, *exc_info) -> None:
        self.close(stop=exc_type is not None)


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
    the number of workers. A worker killed on the way (e.g. by the system,
    out of memory) stops the run with :class:`WorkerKilledError`.
    """

    def __init__(self, config: DetectorConfig | str = "memorization", **overrides):
        self.config = get_config(config, **overrides)
        self._encoder = TermEncoder(self.config.stemmer, self.config.remove_stopwords)

    def preprocess(self, text: str) -> Document:
        return preprocess(text, self._encoder)

    def align(self, susp_text: str, src_text: str) -> Alignment:
        """Align one pair: ``susp_text`` is the training suffix, ``src_text`` the generation."""
        return align_documents(self.preprocess(susp_text), self.preprocess(src_text), self.config)

    def warm_up(self) -> None:
        """Compile, or load from numba's cache, every kernel that aligning pairs runs;
        done before workers are forked, so that each does not do it again."""
        text = "A warm-up sentence with several words. It aligns with itself word for word."
        batch = preprocess_batch([text], self._encoder)
        document = batch.document(0, text)
        align_documents(document, document, self.config)
        fields, offsets = batch.kernel_fields()
        pairs_with_evidence(fields, offsets, np.zeros((1, 2), np.int64), self.config.th1, self.config.th2, self.config.weighting == "smoothed", self.config.verbatim_minlen)

    def preprocessor(self, workers: int = 1, expected_texts: int = 0) -> Preprocessor:
        """Worker processes to preprocess texts ahead of :meth:`align_batches`; with
        fewer than a few chunks' worth of ``expected_texts``, the work runs here."""
        with kept_interrupts():
            self.warm_up()
        return Preprocessor(self.config, workers, expected_texts)

    def align_pairs(
        self,
        texts: Sequence[str],
        pairs: Sequence[tuple[int, int]],
        workers: int = 1,
        progress: bool = False,
    ) -> list[Alignment]:
        """Align ``(suspicious index, source index)`` pairs of ``texts``, in order."""
        with self.preprocessor(workers, len(texts)) as preprocessor:
            batches = preprocessor.collect([preprocessor.submit(texts)], progress)
        return self.align_batches(texts, batches, pairs, workers, progress)

    def align_batches(
        self,
        texts: Sequence[str],
        batches: Sequence[DocumentBatch],
        pairs: Sequence[tuple[int, int]],
        workers: int = 1,
        progress: bool = False,
    ) -> list[Alignment]:
        """Align ``pairs`` of ``texts``, whose documents ``batches`` hold in the same order
        (from :meth:`Preprocessor.collect`)."""
        if sum(len(b) for b in batches) != len(texts):
            raise ValueError(f"documents of {sum(len(b) for b in batches)} texts for {len(texts)} texts")
        if not pairs:
            return []
        _shared.clear()
        _shared.update(texts=texts, config=self.config, unpacked={})
        _shared["batch"] = batch = DocumentBatch.join(batches)
        _shared["fields"] = batch.kernel_fields()
        _shared["pairs"] = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        spans = [(i, min(i + _CHUNK, len(pairs))) for i in range(0, len(pairs), _CHUNK)]
        try:
            with _Workers(workers if len(spans) >= _MIN_CHUNKS_FOR_WORKERS else 1) as pool:
                futures = [pool.submit(_align_chunk, *span) for span in spans]
                with tqdm(total=len(pairs), desc="align", unit="pair", disable=not progress) as bar:
                    chunks = _results(futures, [b - a for a, b in spans], bar)
        finally:
            _shared.clear()
        return [a or NO_ALIGNMENT for chunk in chunks for a in chunk]
