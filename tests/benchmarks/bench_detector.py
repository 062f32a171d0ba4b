"""Detector throughput in the memorization setting, on real text.

Builds N probes (default 10,000) from the English texts of ../shared/data: each
record is cut into windows of up to 150 words, each window into a 50-word
prefix and its suffix, and a stand-in generation is made for it with a fixed seed: a verbatim copy of the suffix's start (5%),
the suffix with words dropped and sentences reordered (10%), or held-out text
of the same dataset that is not among the training suffixes (85%, what an
unmemorized continuation looks like to retrieval). Retrieval takes the top-10 suffixes per generation
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
    "chatdoctor_icliniq.jsonl#input": "input",
    "ag_news.jsonl": "description",
    "wmt22_en_de.jsonl": "en",
}
# Sources of short texts (single sentences, one-paragraph news items) whose
# consecutive records are joined into documents of at least a window's length.
JOINED = {"ag_news.jsonl", "wmt22_en_de.jsonl"}
PREFIX_WORDS = 50
MIN_SUFFIX_WORDS = 20
WINDOW_WORDS = 150
GENERATION_WORDS = 150


def _records(data_dir: Path) -> list[tuple[str, str]]:
    seen, records = set(), []
    for name, field in SOURCES.items():
        joined: list[str] = []
        for line in (data_dir / name.split("#")[0]).read_text(encoding="utf-8").split("\n"):
            if not line.strip():
                continue
            text = json.loads(line)[field]
            if text in seen:
                continue
            seen.add(text)
            if name not in JOINED:
                records.append((name, text))
                continue
            joined.append(text)
            if sum(len(t.split()) for t in joined) >= WINDOW_WORDS:
                records.append((name, " ".join(joined)))
                joined = []
    return records


def _paraphrase(text: str, rng: random.Random) -> str:
    sentences = [s for s in text.split(". ") if s]
    rng.shuffle(sentences)
    words = " ".join(sentences).split()
    return " ".join(w for w in words if rng.random() > 0.15)


def build_probes(n: int, window: int = WINDOW_WORDS, data_dir: Path = DATA, seed: int = 0) -> list[Probe]:
    """``n`` probes with stand-in generations.

    Each record is cut into consecutive, non-overlapping windows of up to
    ``window`` words (a training input each: 50-word prefix, the rest suffix),
    so that no two suffixes share text by construction. The windows beyond the
    first ``n`` are held out as unmemorized generations (reused when few).
    """
    rng = random.Random(seed)
    inputs: list[tuple[str, str]] = []
    for source, text in _records(data_dir):
        words = text.split()
        for start in range(0, len(words), window):
            piece = words[start : start + window]
            if len(piece) >= PREFIX_WORDS + MIN_SUFFIX_WORDS:
                inputs.append((source, " ".join(piece[PREFIX_WORDS:])))
    if len(inputs) <= n:
        raise SystemExit(f"only {len(inputs)} windows of {window} words in {data_dir}: need more than --n {n}")
    rng.shuffle(inputs)
    held_out, inputs = inputs[n:], inputs[:n]
    by_source: dict[str, list[str]] = {}
    for source, suffix in held_out:
        by_source.setdefault(source, []).append(suffix)
    probes = []
    for number, (source, suffix) in enumerate(inputs):
        draw = rng.random()
        if draw < 0.05:
            generation = " ".join(suffix.split()[: rng.randint(20, GENERATION_WORDS)])
        elif draw < 0.15:
            generation = _paraphrase(" ".join(suffix.split()[:GENERATION_WORDS]), rng)
        else:
            pool = by_source.get(source) or [text for _, text in held_out]
            generation = " ".join(rng.choice(pool).split()[:GENERATION_WORDS])
        probes.append(Probe(f"{source}:{number}", suffix, generation))
    return probes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--window", type=int, default=WINDOW_WORDS, help="words per training input (prefix + suffix)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/memtasks-bench-probes.jsonl"))
    args = parser.parse_args()

    probes = build_probes(args.n, args.window)
    with args.out.open("w", encoding="utf-8") as handle:
        for p in probes:
            handle.write(json.dumps({"id": p.id, "suffix": p.suffix, "generation": p.generation}) + "\n")
    words = sum(len(p.suffix.split()) for p in probes) / len(probes)
    print(f"{len(probes)} probes written to {args.out} (suffixes {words:.0f} words on average)")

    started = time.perf_counter()
    index = BM25Index()
    index.add(range(len(probes)), [p.suffix for p in probes])
    candidates = index.top_k([p.generation for p in probes], k=args.k, workers=default_workers())
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
