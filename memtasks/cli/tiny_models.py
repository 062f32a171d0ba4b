"""``memtasks tiny-models``: tiny untrained models with a tokenizer trained on local text."""

from __future__ import annotations

import argparse
from pathlib import Path

from memtasks.cli.options import positive_int


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "tiny-models",
        help="build a tiny decoder-only and a tiny encoder-decoder model with a tokenizer trained on local text",
        description="Writes OUT_DIR/tiny-decoder (2-layer GPT-2) and OUT_DIR/tiny-seq2seq (2-layer T5), "
        "random weights; nothing is downloaded. A folder an earlier tiny-models made is replaced, any other refused.",
    )
    parser.add_argument("out_dir", type=Path, help="folder to write the two models into")
    parser.add_argument("--text", type=Path, required=True, help="JSONL (with --field) or plain text to train the tokenizer on")
    parser.add_argument("--field", default="text", help="JSONL field holding the text")
    parser.add_argument("--vocab-size", type=positive_int, default=2000, help="tokenizer vocabulary size")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from memtasks.models import untrained
    from memtasks.outputs import check_apart, check_writable
    from memtasks.probes import read_texts

    targets = [args.out_dir / f"tiny-{kind}" for kind in ("decoder", "seq2seq")]
    check_apart([("the model folder", target) for target in targets], [("--text", args.text)])
    for target in targets:
        if target.exists() and not untrained(target) and (not target.is_dir() or any(target.iterdir())):
            raise ValueError(f"{target}: holds something tiny-models did not make; give another OUT_DIR, or remove it")
    check_writable(args.out_dir)
    from memtasks.tiny import build_tiny_model, train_tokenizer
    texts = read_texts(args.text, args.field)
    tokenizer = train_tokenizer(texts, vocab_size=args.vocab_size)
    for kind in ("decoder", "seq2seq"):
        path = build_tiny_model(kind, tokenizer, args.out_dir / f"tiny-{kind}")
        print(f"{kind}: {path}")
    return 0
