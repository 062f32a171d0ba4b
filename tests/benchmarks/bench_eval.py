"""A whole ``memtasks eval`` task at scale, and the share of it that is memtasks' own.

Builds one training file of N distinct passages from the real text of
../shared/data (each passage a run of 40 consecutive words starting at a
fixed-seed position, so about a fifth are held out as non-members), a tiny
GPT-2 trained on nothing (a fast generator: generation is lm-eval's and the
model's, not memtasks'), and runs the task through ``memtasks eval`` with 20-word
prefixes. Then, in this process, times memtasks' parts on the same data:
building the probes (``load_probes``) and retrieval plus detection over the
run's logged generations (``task_rates``). Prints, e.g.:

    OMP_NUM_THREADS=2 python tests/benchmarks/bench_eval.py --n 12500 --batch-size 64

The share is (probes + scoring) / whole run; model loading, generation and
lm-eval's bookkeeping are the rest.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_retrieval import word_stream
FIELDS = {
    "xsum.jsonl": ["document"],
    "imdb.jsonl": ["text"],
    "squad_v2.jsonl": ["context"],
    "chatdoctor_icliniq.jsonl": ["input", "output"],
    "ag_news.jsonl": ["description"],
}
WORDS_PER_PASSAGE = 40
PREFIX_WORDS = 20


def passages(n: int, seed: int = 7) -> list[str]:
    words = word_stream(FIELDS)
    starts = np.random.default_rng(seed).choice(len(words) - WORDS_PER_PASSAGE, size=n, replace=False)
    return list(dict.fromkeys(" ".join(words[s : s + WORDS_PER_PASSAGE]) for s in starts.tolist()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=12_500, help="training passages (members and held-out non-members)")
    parser.add_argument("--batch-size", type=int, default=64, help="lm-eval's generation batch size")
    parser.add_argument("--max-gen-toks", type=int, default=64, help="new tokens per probe")
    args = parser.parse_args()

    from memtasks.harness import run_lm_eval
    from memtasks.harness.hooks import load_probes, process_results, task_rates
    from memtasks.tiny import build_tiny_model, train_tokenizer

    root = Path(tempfile.mkdtemp(prefix="bench-eval-"))
    texts = passages(args.n)
    data = root / "train.jsonl"
    data.write_text("".join(json.dumps({"document": t, "summary": "-"}) + "\n" for t in texts), encoding="utf-8")
    model = build_tiny_model("decoder", train_tokenizer(texts[:2000], vocab_size=2000), root / "model")
    metadata = {"data_files": str(data), "n_probes": None, "prefix_tokens": PREFIX_WORDS, "min_suffix_tokens": 10}

    started = time.perf_counter()
    code = run_lm_eval([
        "--model_args", f"pretrained={model},dtype=float32", "--tasks", "mem_xsum", "--device", "cpu",
        "--batch_size", str(args.batch_size), "--metadata", json.dumps(metadata),
        "--gen_kwargs", f"max_gen_toks={args.max_gen_toks}", "--output_path", str(root / "out"), "--log_samples",
    ])
    whole = time.perf_counter() - started
    if code:
        raise SystemExit(f"memtasks eval exited with {code}")
    logged = [json.loads(line) for line in next((root / "out").rglob("samples_*.jsonl")).read_text().splitlines()]
    generations = {row["doc"]["id"]: row["resps"][0][0] for row in logged}

    started = time.perf_counter()
    rows = list(load_probes(input_field="document", **metadata)["test"])
    probes_time = time.perf_counter() - started
    items = [process_results(row, [generations[row["id"]]])["mem_rate"] for row in rows]
    started = time.perf_counter()
    rates = task_rates(items)
    scoring_time = time.perf_counter() - started

    own = probes_time + scoring_time
    print(f"probes: {sum(r['member'] for r in rows)} members + {sum(not r['member'] for r in rows)} non-members")
    print(f"whole memtasks eval run: {whole:.1f} s")
    print(f"  building the probes:   {probes_time:.1f} s")
    print(f"  retrieval + detection: {scoring_time:.1f} s")
    print(f"  memtasks' own share:   {100 * own / whole:.1f}%")
    print(f"mem_rate {rates['']['memorization'].value:.4f}")


if __name__ == "__main__":
    main()
