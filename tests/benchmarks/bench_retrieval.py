"""Scale of the embedded BM25 index: build time, query time and peak memory.

Synthesizes N training suffixes (default 1,000,000) of 90 to 110 words from the
real English text of ../shared/data: every suffix is a run of consecutive words
starting at a random position of that text (numpy PCG64, fixed seed), so word
frequencies and punctuation are those of real text. Queries (default 10,000)
stand in for generations: half are a suffix of the index with a fifth of its
words dropped (what a memorized continuation looks like), half a 64-word run
starting anywhere in the text. Prints build time, query time and the peak
resident memory of the process, e.g.:

    python tests/benchmarks/bench_retrieval.py --n 1000000 --queries 10000 --workers 2
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np

from memtasks.retrieval import BM25Index

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
FIELDS = {
    "xsum.jsonl": ["document", "summary"],
    "imdb.jsonl": ["text"],
    "squad_v2.jsonl": ["context", "question"],
    "chatdoctor_icliniq.jsonl": ["input", "output"],
    "ag_news.jsonl": ["description"],
    "wmt22_en_de.jsonl": ["en"],
}


def word_stream(fields_of: dict[str, list[str]] = FIELDS) -> list[str]:
    """Every word of the named text fields of ../shared/data, file by file, in order."""
    words: list[str] = []
    for name, fields in fields_of.items():
        for line in (DATA / name).read_text(encoding="utf-8").split("\n"):
            if not line.strip():
                continue
            record = json.loads(line)
            for field in fields:
                if isinstance(record.get(field), str):
                    words += record[field].split()
    return words


def synthesize(n: int, n_queries: int, seed: int) -> tuple[list[str], list[str]]:
    words = word_stream()
    rng = np.random.default_rng(seed)
    lengths = rng.integers(90, 111, size=n)
    starts = rng.integers(0, len(words) - 111, size=n)
    suffixes = [" ".join(words[s : s + m]) for s, m in zip(starts, lengths)]
    queries = []
    for i in range(n_queries):
        if i % 2 == 0:
            doc = suffixes[int(rng.integers(n))].split()
            keep = rng.random(len(doc)) >= 0.2
            queries.append(" ".join(w for w, k in zip(doc, keep) if k))
        else:
            start = int(rng.integers(0, len(words) - 64))
            queries.append(" ".join(words[start : start + 64]))
    return suffixes, queries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args()

    started = time.perf_counter()
    suffixes, queries = synthesize(args.n, args.queries, args.seed)
    words = sum(len(s.split()) for s in suffixes)
    print(f"synthesized {len(suffixes):,} suffixes ({words / len(suffixes):.1f} words on average) "
          f"and {len(queries):,} queries in {time.perf_counter() - started:.1f} s")

    index = BM25Index()
    started = time.perf_counter()
    index.add(range(len(suffixes)), suffixes, progress=True)
    analyzed = time.perf_counter() - started
    index.top_k(queries[:1], k=10)  # builds the postings (and compiles the search on a first run)
    built = time.perf_counter() - started
    print(f"build: {built:.1f} s ({analyzed:.1f} s analyzing text, {built - analyzed:.1f} s postings)")

    for workers in sorted({1, args.workers}):
        started = time.perf_counter()
        ranked = index.top_k(queries, k=10, workers=workers, progress=True)
        elapsed = time.perf_counter() - started
        print(f"query: {len(queries):,} queries, top-10, {workers} worker(s): {elapsed:.1f} s "
              f"({len(queries) / elapsed:.0f} queries/s)")
    hits = sum(1 for i in range(0, len(queries), 2) if ranked[i])
    print(f"queries with results: {hits} of {len(range(0, len(queries), 2))} perturbed copies")
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"peak resident memory: {peak_kib / 1024:,.0f} MiB")


if __name__ == "__main__":
    main()
