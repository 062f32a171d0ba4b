"""``memtasks score``: memorization rates of generations against their training suffixes."""

from __future__ import annotations

import argparse
import gc
import json
from pathlib import Path

from memtasks.cli.options import positive_int, preset, workers


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "score",
        help="memorization rates of generations against their training suffixes",
        description="Scores each generation against the training suffixes BM25 ranks first, with the study's "
        "detector; probes marked \"member\": false give the non-member floor.",
    )
    parser.add_argument("input", type=Path, help='JSONL with "id", "suffix" and "generation" per line')
    parser.add_argument(
        "--preset", type=preset, metavar="NAME", default="memorization", help="detector settings: memorization (the study's) or pan14"
    )
    parser.add_argument("--k", type=positive_int, metavar="N", default=10, help="BM25 candidates per generation")
    parser.add_argument("--workers", type=workers, metavar="N", help="worker processes (default: every core this process may use)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--cases", type=Path, metavar="FILE", help="write every memorized case to this JSONL file")
    parser.add_argument("--redact", action="store_true", help="in --cases, write offsets and SHA-256 hashes, not text")
    parser.add_argument(
        "--paraphrase-model", metavar="MODEL",
        help="what splits paraphrases into high and low confidence: cross-encoder (the default, fitted on human "
        "paraphrase judgements), evidence (the detector's own evidence), or a Hugging Face sequence-pair classifier (id or path)",
    )
    parser.add_argument(
        "--summaries", action="store_true",
        help="also count as idea the summaries the detector cannot seed, found with a sentence encoder "
        "(off by default: continuations on their prefix's subject read like summaries; see docs/detector.md)",
    )
    parser.add_argument(
        "--retrieval", choices=("embedded", "elasticsearch"),
        help="BM25 backend (default: $MEMTASKS_RETRIEVAL, else embedded); elasticsearch reads MEMTASKS_ES_URL "
        "and its credentials from the environment",
    )
    parser.add_argument("--query-stopwords", action="store_true", help="remove English stop words from the BM25 queries")
    parser.add_argument("--es-index", metavar="NAME", help="Elasticsearch index to keep and reuse instead of a temporary one")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        return _score(args)
    finally:
        # The process ends after this command: its final garbage collection would
        # walk every object the compiled kernels left (about 0.2 s); frozen, they are skipped.
        gc.freeze()


def _score(args: argparse.Namespace) -> int:
    from memtasks.detection import Detector, default_workers
    from memtasks.outputs import check_apart, check_writable, write_atomic
    from memtasks.retrieval import RetrievalSettings
    from memtasks.scoring import case_records, read_probes, score_with_floor

    if args.redact and not args.cases:
        raise ValueError("--redact applies to the cases file: give --cases FILE, or leave --redact out")
    retrieval = RetrievalSettings.resolve(args.retrieval, args.query_stopwords, args.es_index)
    if args.cases:
        check_apart([("--cases", args.cases)], [("the input", args.input), ("--paraphrase-model", args.paraphrase_model)])
        if args.cases.is_dir():
            raise ValueError(f"--cases {args.cases} is a folder: give the path of the file to write")
        check_writable(args.cases.parent)
    probes = read_probes(args.input)
    members = [p for p in probes if p.member]
    nonmembers = [p for p in probes if not p.member]
    if nonmembers and not members:
        raise ValueError(f"{args.input}: every probe is marked \"member\": false; nothing to measure against the floor")
    from memtasks.grader import load_grader

    classifier = load_grader(args.paraphrase_model)
    result = score_with_floor(
        members, nonmembers, detector=Detector(args.preset), k=args.k, workers=args.workers or default_workers(),
        progress=not args.json, paraphrase_classifier=classifier, retrieval=retrieval, summaries=args.summaries,
    )
    report, floor = result.members, result.nonmembers
    if args.cases:
        lines = [
            json.dumps({**record, "member": group is members}, ensure_ascii=False) + "\n"
            for group, scored in ((members, report), (nonmembers, floor))
            for record in (case_records(group, scored.outcomes, redact=args.redact) if scored else ())
        ]
        # Whole or not at all: an interrupted run leaves no cases file that looks complete.
        args.cases.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(args.cases, "".join(lines))
    if args.json:
        extra = (
            {
                "nonmember": {"n": floor.n, **{k: r.to_dict() for k, r in floor.rates.items()}},
                "excess": {k: r.to_dict() for k, r in result.excess.items()},
            }
            if floor
            else {}
        )
        print(json.dumps({"input": str(args.input), **report.to_dict(), **extra}, indent=2))
        return 0
    print(f"{args.input}: {report.n} probes, top-{report.k} BM25 candidates, preset {args.preset}")
    header = f"{'':16} {'rate':>7}  {'90% interval':>16}"
    if floor:
        header += f"   {'non-member':>10}  {'excess [90% interval]':>26}"
    print(header)
    for name, rate in report.rates.items():
        line = f"{name:16} {rate.value:7.2%}  [{rate.low:6.2%}, {rate.high:6.2%}]"
        if floor:
            excess = result.excess[name]
            line += f"   {floor.rates[name].value:10.2%}  {excess.value:+7.2%} [{excess.low:+7.2%}, {excess.high:+7.2%}]"
        print(line)
    if floor:
        print(f"non-member floor: {floor.n} probes marked \"member\": false, each searched among their own suffixes")
    scored = [r for r in (report, floor) if r]
    pairs = sum(r.n_pairs for r in scored)
    detection = sum(r.detection_seconds for r in scored)
    print(
        f"retrieval {sum(r.retrieval_seconds for r in scored):.2f} s, detection {detection:.2f} s "
        f"({pairs} pairs, {pairs / detection if detection > 0 else 0:.0f} pairs/s)"
    )
    for note in report.notes:
        print(f"note: {note}")
    if args.cases:
        print(f"memorized cases written to {args.cases}{' (redacted)' if args.redact else ''}")
    return 0
