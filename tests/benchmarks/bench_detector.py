"""Detector throughput in the memorization setting, on real text.

Builds N probes (default 10,000) from the English texts of ../shared/data: each
record is cut into a 50-word prefix and its suffix, and a stand-in generation
is made for it with a fixed seed: a verbatim copy of the suffix's start (5%),
the suffix with words dropped and sentences reordered (10%), or the suffix of
another record of the same dataset (85%, what an unmemorized continuation
looks like to retrieval). Retrieval takes the top-10 suffixes per generation
with BM25, and the detector aligns every (suffix, generation) pair.

Prints pairs per second for 1 and for all workers (preprocessing included),
the retrieval time and the category counts, and writes the probes as JSONL so
that ``memtasks score`` can be timed on the same input:

    python tests/benchmarks/bench_detector.py [--n 10000] [--out /tmp/probes.jsonl]
    /usr/bin/time -v memtasks score /tmp/probes.jsonl --json
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import Counter
from pathlib import Path

from memtasks.detection import Detector, default_workers
from memtasks.retrieval import BM25Index
from memtasks.scoring import Probe

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
SOURCES = {
    "xsum.jsonl": "document",
    "imdb.jsonl": "text",
    "squad_v2.jsonl": "context",
    "chatdoctor_icliniq.jsonl": "output",
    "ag_news.jsonl": "description",
}
PREFIX_WORDS = 50
MIN_SUFFIX_WORDS = 20
GENERATION_WORDS = 150


def _records(data_dir: Path) -> list[tuple[str, str]]:
    seen, records = set(), []
    for name, field in SOURCES.items():
        for line in (data_dir / name).read_text(encoding="utf-8").split("\n"):
            if line.strip():
                text = json.loads(line)[field]
                if text not in seen:
                    seen.add(text)
                    records.append((name, text))
    return records


def _paraphrase(text: str, rng: random.Random) -> str:
    sentences = [s for s in text.split(". ") if s]
    rng.shuffle(sentences)
    words = " ".join(sentences).split()
    return " ".join(w for w in words if rng.random() > 0.15)


def build_probes(n: int, data_dir: Path = DATA, seed: int = 0) -> list[Probe]:
    """``n`` probes with stand-in generations; records are cut again at later offsets if needed."""
    rng = random.Random(seed)
    records = _records(data_dir)
    by_source: dict[str, list[str]] = {}
    probes: list[Probe] = []
    offset = 0
    while len(probes) < n:
        for source, text in records:
            words = text.split()
            if len(words) < offset + PREFIX_WORDS + MIN_SUFFIX_WORDS:
                continue
            suffix = " ".join(words[offset + PREFIX_WORDS :])
            by_source.setdefault(source, []).append(suffix)
            probes.append(Probe(f"{source}:{offset}:{len(probes)}", suffix, ""))
            if len(probes) == n:
                break
        offset += 25
    final = []
    for probe in probes:
        source = probe.id.split(":")[0]
        draw = rng.random()
        if draw < 0.05:
            generation = " ".join(probe.suffix.split()[: rng.randint(20, GENERATION_WORDS)])
        elif draw < 0.15:
            generation = _paraphrase(" ".join(probe.suffix.split()[:GENERATION_WORDS]), rng)
        else:
            other = rng.choice(by_source[source])
            generation = " ".join(other.split()[:GENERATION_WORDS])
        final.append(Probe(probe.id, probe.suffix, generation))
    return final


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("/tmp/memtasks-bench-probes.jsonl"))
    args = parser.parse_args()

    probes = build_probes(args.n)
    with args.out.open("w", encoding="utf-8") as handle:
        for p in probes:
            handle.write(json.dumps({"id": p.id, "suffix": p.suffix, "generation": p.generation}) + "\n")
    words = sum(len(p.suffix.split()) for p in probes) / len(probes)
    print(f"{len(probes)} probes written to {args.out} (suffixes {words:.0f} words on average)")

    started = time.perf_counter()
    index = BM25Index()
    index.add(range(len(probes)), [p.suffix for p in probes])
    candidates = index.top_k([p.generation for p in probes], k=args.k)
    print(f"retrieval: {time.perf_counter() - started:.1f} s for indexing {len(probes)} suffixes and {len(probes)} queries")

    texts = [p.suffix for p in probes] + [p.generation for p in probes]
    pairs = [(c, len(probes) + i) for i, found in enumerate(candidates) for c in found]
    detector = Detector("memorization")
    results = {}
    for workers in sorted({1, default_workers()}):
        started = time.perf_counter()
        results[workers] = detector.align_pairs(texts, pairs, workers=workers)
        seconds = time.perf_counter() - started
        print(f"detection, {workers} worker(s): {len(pairs)} pairs in {seconds:.1f} s = {len(pairs) / seconds:,.0f} pairs/s")
    outputs = list(results.values())
    assert all(o == outputs[0] for o in outputs), "results differ between worker counts"
    print("pair categories:", dict(Counter(a.category for a in outputs[0])))


if __name__ == "__main__":
    main()
