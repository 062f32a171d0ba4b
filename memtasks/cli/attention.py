"""``memtasks attention``: attention dispersion of a model on tasks, with heatmaps.

Its flags are lm-eval's family (``--model_args``, ``--output_path``): the model
loads as ``lm_eval`` loads it, so every flag is spelled as lm-eval spells its own.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from memtasks.cli.options import HIDDEN, folders, json_object, names, positive_int, task_files


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "attention",
        help="attention dispersion (CAD, coverage, row divergence) of a model on tasks, with heatmaps",
        description="Loads the model as lm_eval does (--model, --model_args) and each task's (input, output) pairs "
        "in its fine-tuning format; writes OUTPUT_PATH/<model>/attention_<task>_<date>.json.",
    )
    add = parser.add_argument
    add("--model", default="hf", help="lm-eval model type")
    add("--model_args", required=True, help="as for lm_eval, e.g. pretrained=t5-small")
    add("--tasks", type=names, required=True, help="comma-separated task names, e.g. mem_xsum,mem_imdb")
    add("--layers", default="last", help="last, all, or comma-separated layer numbers (negative counts from the end)")
    add("--samples", type=positive_int, default=10, help="records per task, drawn with --seed")
    add("--plot", type=Path, metavar="DIR", help="write heatmaps (PNG) to DIR")
    add("--output_path", default="results", help="results folder")
    add("--data_files", action="append", default=[], metavar="[TASK=]PATH", help="local data of a task (repeatable)")
    add("--data-files", dest="data_files", action="append", **HIDDEN)
    add(
        "--metadata", type=json_object, default={},
        help="JSON object overriding every task's metadata, as for lm_eval; a key naming a task holds that task's own",
    )
    add("--include_path", type=folders, default=(), metavar="DIR[:DIR...]", help="more task folders, separated by ':'")
    add("--batch_size", type=positive_int, default=1, help="records per forward pass")
    add("--device", default="cpu", help="torch device, e.g. cpu, cuda, cuda:1, mps")
    add("--max_input_tokens", type=positive_int, default=512, help="inputs are cut to this many tokens")
    add("--max-input-tokens", dest="max_input_tokens", type=positive_int, **HIDDEN)
    add("--max_output_tokens", type=positive_int, default=128, help="outputs are cut to this many tokens")
    add("--max-output-tokens", dest="max_output_tokens", type=positive_int, **HIDDEN)
    add("--include_instruction", action="store_true", help="count the task's instruction as input")
    add("--include-instruction", dest="include_instruction", action="store_true", **HIDDEN)
    add("--seed", type=int, default=1234, help="seed of the record sample")
    add(
        "--memorization", type=Path, metavar="RESULTS_DIR",
        help="lm-eval results with mem_rate for the same tasks: print the Spearman correlation of CAD with them",
    )
    add("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from memtasks.attention import predict_memorization, read_metric, run_attention

    tasks = list(args.tasks)
    runs = run_attention(
        args.model,
        args.model_args,
        tasks,
        layers=args.layers,
        samples=args.samples,
        output_path=args.output_path,
        plot_dir=args.plot,
        data_files=task_files(args.data_files, tasks, "--data_files"),
        metadata=args.metadata,
        include_path=list(args.include_path),
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
        tasks_out = {
            run.task: {"path": str(run.path) if run.path else None, **{m: list(v) for m, v in run.result.summary().items()}}
            for run in runs
        }
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
        print(
            f"Spearman rho(CAD, mem_rate) = {prediction.rho:+.3f} over {len(prediction.tasks)} tasks, "
            f"permutation p = {prediction.p_value:.3f}"
        )
    return 0
