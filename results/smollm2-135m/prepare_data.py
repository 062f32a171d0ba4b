"""Task-shaped copies of the shared real-text samples for the SmolLM2-135M study.

    python results/smollm2-135m/prepare_data.py [--shared ../shared/data] [--train 150] [--heldout 30]
        [--size mem_cnn_dailymail=80:20] [--all] [--per-input 2] [--out DIR]

For each task, the first ``--train`` distinct inputs of a sample become the
fine-tuning file (every one a member) and the next ``--heldout`` distinct
inputs the held-out file (``--size TASK=TRAIN:HELDOUT`` sets both for one
task: the CNN/DailyMail sample holds 100 articles; ``--all`` trains on 80% of
every distinct input a sample holds and holds out the rest, the largest study
the samples allow), which the study uses to measure held-out quality and
probes as non-members (the false-positive floor). Only inputs long enough to
probe count (the task's prefix plus 10 words: 60 words, 25 for translation), so
every training input is probed. Both halves come from the
same file, so they share its distribution. Fields are renamed to those of each
task's Hugging Face dataset (SQuAD answers under ``answers.text``, WMT pairs
under ``translation``); texts are unchanged. Writes ``data/`` next to this file, or ``--out``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent

# task -> (shared file, input field, reshaping of one record)
SOURCES = {
    "mem_cnn_dailymail": (
        "cnn_dailymail_train_sample.jsonl",
        "document",
        lambda r: {"id": r["id"], "article": r["document"], "highlights": r["summary"]},
    ),
    "mem_xsum": ("xsum.jsonl", "document", lambda r: {"document": r["document"], "summary": r["summary"]}),
    "mem_healthcaremagic": ("chatdoctor_icliniq.jsonl", "input", lambda r: {"input": r["input"], "output": r["output"]}),
    "mem_imdb": ("imdb.jsonl", "text", lambda r: {"text": r["text"], "label": r["label"]}),
    "mem_squad_v2": (
        "squad_v2.jsonl",
        "context",
        lambda r: {"context": r["context"], "question": r["question"], "answers": {"text": r["answers"]}},
    ),
    "mem_wmt16_en_de": (
        "wmt22_en_de.jsonl",
        "en",
        lambda r: {"translation": {"en": r["en"], "de": r["de"]}} if r["direction"] == "en-de" else None,
    ),
}


def split_records(
    path: Path, field: str, reshape, n_train: int | None, n_heldout: int | None, per_input: int, min_words: int
) -> tuple[list[dict], list[dict]]:
    """The records of the first ``n_train`` distinct inputs and of the next ``n_heldout``
    (None: 80% of the distinct inputs, and the other 20%).

    Records sharing an input (SQuAD questions about one context) stay together,
    so no held-out input is ever trained on.
    """
    order: list[str] = []
    groups: dict[str, list[dict]] = {}
    # JSON strings may hold U+2028 and other characters that splitlines() would break on.
    for line in path.read_text(encoding="utf-8").split("\n"):
        if not line.strip():
            continue
        record = json.loads(line)
        shaped = reshape(record)
        if shaped is None:
            continue
        key = record[field]
        if len(key.split()) < min_words:
            continue
        if key not in groups:
            order.append(key)
            groups[key] = []
        if len(groups[key]) < per_input:
            groups[key].append(shaped)
    if n_train is None or n_heldout is None:
        n_heldout = len(order) // 5
        n_train = len(order) - n_heldout
    if len(order) < n_train + n_heldout:
        raise SystemExit(f"{path}: {len(order)} distinct inputs, fewer than {n_train} + {n_heldout}")
    pick = lambda keys: [r for key in keys for r in groups[key]]  # noqa: E731
    return pick(order[:n_train]), pick(order[n_train : n_train + n_heldout])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=HERE.parents[1].parent / "shared" / "data", help="folder of the shared samples")
    parser.add_argument("--train", type=int, default=150, help="distinct training inputs per task")
    parser.add_argument("--heldout", type=int, default=30, help="distinct held-out inputs per task")
    parser.add_argument(
        "--size", action="append", default=["mem_cnn_dailymail=80:20"], metavar="TASK=TRAIN:HELDOUT",
        help="training and held-out inputs of one task (repeatable)",
    )
    parser.add_argument("--all", action="store_true", help="80%% of each sample's distinct inputs trained on, 20%% held out")
    parser.add_argument("--out", type=Path, default=HERE / "data", help="folder the task files are written to")
    parser.add_argument("--per-input", type=int, default=2, help="records kept per distinct input (SQuAD questions)")
    args = parser.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    sizes = {}
    for entry in args.size:
        task, _, counts = entry.partition("=")
        n_train, _, n_heldout = counts.partition(":")
        if task not in SOURCES or not n_train.isdigit() or not n_heldout.isdigit():
            raise SystemExit(f"--size {entry}: expected TASK=TRAIN:HELDOUT with TASK one of {', '.join(SOURCES)}")
        sizes[task] = (int(n_train), int(n_heldout))
    for task, (name, field, reshape) in SOURCES.items():
        n_train, n_heldout = (None, None) if args.all else sizes.get(task, (args.train, args.heldout))
        train, heldout = split_records(
            args.shared / name, field, reshape, n_train, n_heldout, args.per_input, 25 if "wmt" in task else 60
        )
        for kind, records in (("train", train), ("heldout", heldout)):
            target = out / f"{task}_{kind}.jsonl"
            target.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
        print(f"{task}: {len(train)} training and {len(heldout)} held-out records from {name}")


if __name__ == "__main__":
    main()
