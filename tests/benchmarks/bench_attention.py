"""Peak memory and speed of attention measurement with 512-token inputs and all layers.

Builds randomly initialised models of real sizes offline (a GPT-2-small-sized
decoder: 12 layers, 12 heads, width 768; a T5-small-sized encoder-decoder: 6+6
layers, 8 heads, width 512) with a tokenizer trained on the test data, and
measures CAD on inputs cut to 512 tokens and outputs cut to 128, every layer.
Prints the process's peak resident memory before and after measuring, and how
much memory the attention tensors of the run would take if they were all held
(what ``output_attentions=True`` over a run would keep):

    python tests/benchmarks/bench_attention.py --kind decoder --samples 16
    python tests/benchmarks/bench_attention.py --kind decoder --samples 64

Peak memory should not grow with --samples: each layer's attention is reduced
to a few numbers and a (128 x 512) heatmap as soon as the layer has run.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

from memtasks.attention.measure import measure_attention
from memtasks.tiny import build_tiny_model, train_tokenizer

# The tiny-model loader is a test helper, in tests/.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tiny_training import load_tiny_model  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "data" / "example_probes.jsonl"
SIZES = {"decoder": {"d_model": 768, "layers": 12, "heads": 12}, "seq2seq": {"d_model": 512, "layers": 6, "heads": 8}}


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kind", choices=sorted(SIZES), default="decoder")
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--input-tokens", type=int, default=512)
    parser.add_argument("--output-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    texts = [json.loads(line)["suffix"] for line in DATA.read_text(encoding="utf-8").splitlines()]
    tokenizer = train_tokenizer(texts, vocab_size=2000)
    # Inputs and outputs long enough to be cut at the budgets: consecutive texts joined.
    pairs = [
        (" ".join(texts[i : i + 40]), " ".join(texts[i + 150 : i + 170])) for i in range(0, 3 * args.samples, 3)
    ][: args.samples]
    with tempfile.TemporaryDirectory() as tmp:
        path = build_tiny_model(args.kind, tokenizer, Path(tmp) / args.kind, **SIZES[args.kind])
        model, tokenizer = load_tiny_model(path)
    model.set_attn_implementation("eager")
    before = _peak_mib()
    started = time.perf_counter()
    result = measure_attention(
        model,
        tokenizer,
        pairs,
        layers="all",
        max_input_tokens=args.input_tokens,
        max_output_tokens=args.output_tokens,
        batch_size=args.batch_size,
    )
    seconds = time.perf_counter() - started
    after = _peak_mib()

    heads = result.values["cad"].shape[2]
    # What the run's attention tensors take when all are kept (float32):
    # cross-attention (T x S) per layer and head, or for a decoder-only model
    # the full self-attention over input + separator + output.
    if result.attention == "cross":
        cells = sum(args.output_tokens * args.input_tokens for _ in pairs)
    else:
        length = args.input_tokens + 1 + args.output_tokens
        cells = sum(length * length for _ in pairs)
    held = cells * heads * result.num_layers * 4 / 2**20
    truncated = sum(s.input_truncated for s in result.samples)
    summary = result.summary()
    print(f"{args.kind}: {result.num_layers} layers x {heads} heads, {len(pairs)} samples, batch {args.batch_size}")
    print(f"inputs cut to {args.input_tokens} tokens ({truncated}/{len(pairs)} were longer), outputs to {args.output_tokens}")
    print(f"CAD {summary['cad'][0]:.4f} [{summary['cad'][1]:.4f}, {summary['cad'][2]:.4f}], {seconds:.1f} s ({len(pairs) / seconds:.2f} samples/s)")
    print(f"peak resident memory: {before:.0f} MiB with the model loaded, {after:.0f} MiB after measuring (+{after - before:.0f} MiB)")
    print(f"all attention tensors of this run, if held: {held:.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
