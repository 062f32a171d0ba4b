"""The ``memtasks`` command: a thin layer over the library."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from memtasks.detection import PRESETS, Detector, default_workers


def _pan_eval(args: argparse.Namespace) -> int:
    from memtasks.pan import evaluate_corpus

    evaluation = evaluate_corpus(args.corpus_dir, Detector(args.preset), workers=args.workers, progress=not args.json)
    if args.json:
        print(json.dumps(evaluation.to_dict(), indent=2))
        return 0
    rows = [("entire corpus", evaluation.overall)] + list(evaluation.by_obfuscation.items())
    print(f"{'':28} {'plagdet':>8} {'precision':>10} {'recall':>8} {'granularity':>12}")
    for name, s in rows:
        print(f"{name:28} {s.plagdet:8.4f} {s.precision:10.4f} {s.recall:8.4f} {s.granularity:12.4f}")
    print(f"{evaluation.pairs} pairs, {evaluation.pairs_per_second:.0f} pairs/s with {args.workers} worker(s), preset {args.preset}")
    return 0


def _score(args: argparse.Namespace) -> int:
    from memtasks.scoring import case_records, read_probes, score_probes

    probes = read_probes(args.input)
    classifier = None
    if args.paraphrase_model:
        from memtasks.paraphrase import ParaphraseClassifier

        classifier = ParaphraseClassifier(args.paraphrase_model)
    report = score_probes(
        probes, Detector(args.preset), k=args.k, workers=args.workers, progress=not args.json, paraphrase_classifier=classifier
    )
    if args.cases:
        with open(args.cases, "w", encoding="utf-8") as handle:
            for record in case_records(probes, report.outcomes, redact=args.redact):
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    if args.json:
        print(json.dumps({"input": str(args.input), **report.to_dict()}, indent=2))
        return 0
    print(f"{args.input}: {report.n} probes, top-{report.k} BM25 candidates, preset {args.preset}")
    print(f"{'':16} {'rate':>7}  {'90% interval':>16}")
    for name, rate in [("memorization", report.total), *report.categories.items()]:
        print(f"{name:16} {rate.value:7.2%}  [{rate.low:6.2%}, {rate.high:6.2%}]")
    print(
        f"retrieval {report.retrieval_seconds:.2f} s, detection {report.detection_seconds:.2f} s "
        f"({report.n_pairs} pairs, {report.pairs_per_second:.0f} pairs/s)"
    )
    for note in report.notes:
        print(f"note: {note}")
    if args.cases:
        print(f"memorized cases written to {args.cases}{' (redacted)' if args.redact else ''}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from memtasks.harness import run_lm_eval

    return run_lm_eval(args.lm_eval_args, redact=args.redact)


def _tiny_models(args: argparse.Namespace) -> int:
    from memtasks.probes import read_texts
    from memtasks.tiny import build_tiny_model, train_tokenizer

    texts = read_texts(args.text, args.field)
    tokenizer = train_tokenizer(texts, vocab_size=args.vocab_size)
    for kind in ("decoder", "seq2seq"):
        path = build_tiny_model(kind, tokenizer, args.out_dir / f"tiny-{kind}")
        print(f"{kind}: {path}")
    return 0


def _task_path(args: argparse.Namespace) -> int:
    from memtasks.harness import task_configs_dir

    print(task_configs_dir())
    return 0


def _report(args: argparse.Namespace) -> int:
    from memtasks.report import build_report

    out = args.out if args.out is not None else args.results_dir / "report"
    report = build_report(args.results_dir, out, args.format, progress=True)
    for warning in report.warnings:
        print(f"memtasks report: warning: {warning}", file=sys.stderr)
    print(f"{len(report.runs)} runs, {len(report.tables)} tables, {len(report.figures)} figures")
    for path in report.written:
        print(path)
    return 0


def _workers(value: str) -> int:
    workers = int(value)
    if workers < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return workers


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="memtasks", description="Measure memorization of fine-tuning data.")
    commands = parser.add_subparsers(dest="command", required=True)

    pan = commands.add_parser("pan-eval", help="score the detector on a PAN text-alignment corpus")
    pan.add_argument("corpus_dir", type=Path)
    pan.add_argument("--preset", choices=sorted(PRESETS), default="pan14")
    pan.add_argument("--workers", type=_workers, default=default_workers())
    pan.add_argument("--json", action="store_true", help="print one JSON object")
    pan.set_defaults(run=_pan_eval)

    score = commands.add_parser("score", help="memorization rates of generations against their training suffixes")
    score.add_argument("input", type=Path, help='JSONL with "id", "suffix" and "generation" per line')
    score.add_argument("--preset", choices=sorted(PRESETS), default="memorization")
    score.add_argument("--k", type=_workers, default=10, help="BM25 candidates per generation (default 10)")
    score.add_argument("--workers", type=_workers, default=default_workers())
    score.add_argument("--json", action="store_true", help="print one JSON object")
    score.add_argument("--cases", type=Path, help="write every memorized case to this JSONL file")
    score.add_argument("--redact", action="store_true", help="in --cases, write offsets and SHA-256 hashes, not text")
    score.add_argument(
        "--paraphrase-model",
        help="sequence-pair classifier (Hugging Face id or path) that splits paraphrases into high and low confidence",
    )
    score.set_defaults(run=_score)

    evaluate = commands.add_parser(
        "eval",
        help="run lm-eval with memtasks' tasks added (takes every lm_eval flag)",
        description="Runs `lm_eval` with every argument given and memtasks' tasks available; "
        "--include_path may list several folders separated by ':'.",
    )
    evaluate.add_argument("--redact", action="store_true", help="keep training text and generations out of --log_samples files")
    evaluate.add_argument("lm_eval_args", nargs=argparse.REMAINDER, help="lm_eval arguments, e.g. --model hf --tasks mem_xsum")
    evaluate.set_defaults(run=_eval)

    tiny = commands.add_parser(
        "tiny-models",
        help="build a tiny decoder-only and a tiny encoder-decoder model with a tokenizer trained on local text",
    )
    tiny.add_argument("out_dir", type=Path)
    tiny.add_argument("--text", type=Path, required=True, help="JSONL (with --field) or plain text to train the tokenizer on")
    tiny.add_argument("--field", default="text", help="JSONL field holding the text (default: text)")
    tiny.add_argument("--vocab-size", type=int, default=2000)
    tiny.set_defaults(run=_tiny_models)

    task_path = commands.add_parser("task-path", help="print the folder of memtasks' task YAMLs (for lm_eval --include_path)")
    task_path.set_defaults(run=_task_path)

    report = commands.add_parser(
        "report",
        help="leaderboard tables and figures (Markdown, HTML, CSV) from a folder of results",
        description="Reads every lm-eval results file (and attention results, study manifests) under RESULTS_DIR.",
    )
    report.add_argument("results_dir", type=Path)
    report.add_argument("--out", type=Path, help="output folder (default: RESULTS_DIR/report); never read as input")
    report.add_argument("--format", default="md,html,csv", help="comma-separated: md, html, csv (default: all)")
    report.set_defaults(run=_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if args.command == "eval":
        # Every lm_eval flag passes through untouched, options included.
        args.lm_eval_args = unknown + args.lm_eval_args
    elif unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        return args.run(args)
    except (ValueError, OSError) as error:
        print(f"memtasks {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("memtasks: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
