"""``memtasks finetune``: fine-tune a model on tasks in their instruction + input -> output format."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path

from memtasks.cli.options import folders, fraction, names, positive_float, positive_int, probability, task_files
from memtasks.finetune.config import DEVICES, METHODS, MIXINGS, PRECISIONS, FinetuneConfig, Runtime, read_summary


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Each argument's ``dest`` is the name of the ``FinetuneConfig`` or ``Runtime`` field it sets."""
    parser = commands.add_parser(
        "finetune",
        help="fine-tune a model on tasks in their instruction + input -> output format (full or LoRA)",
        description="Fine-tunes with transformers' Trainer. Re-running the same command resumes an unfinished run "
        "and leaves a finished one untouched.",
    )
    add = parser.add_argument
    add("--task", dest="tasks", type=names, required=True, help="task name, or several separated by commas (a multi-task mixture)")
    add("--model", required=True, help="Hugging Face id (owner/name) or local directory")
    add("--output", type=Path, required=True, help="directory for the fine-tuned model and its summary")
    add("--overwrite", action="store_true", help="replace whatever --output holds")
    add("--method", choices=METHODS, default="full", help="train every weight, or a LoRA adapter")
    add("--epochs", type=positive_int, default=3, help="passes over the training data")
    add("--mixing", choices=MIXINGS, default="proportional", help="how several tasks are mixed")
    add("--learning-rate", type=positive_float, help="peak learning rate (default: 1e-4 full, 1e-3 lora)")
    add("--warmup-ratio", type=fraction, default=0.0, help="share of steps with a linearly rising learning rate")
    add("--batch-size", type=positive_int, default=8, help="examples per device step")
    add("--grad-accum", type=positive_int, default=1, help="gradient accumulation steps")
    add("--max-source-tokens", type=positive_int, default=512, help="instruction + input are cut to this many tokens")
    add("--max-target-tokens", type=positive_int, default=128, help="outputs are cut to this many tokens")
    add("--max-examples", type=positive_int, help="train on the first N records of each task")
    add("--data-files", action="append", default=[], metavar="[TASK=]PATH", help="local training data of a task (repeatable)")
    add("--eval-data-files", action="append", default=[], metavar="[TASK=]PATH", help="local held-out data of a task (repeatable)")
    add("--eval-examples", type=positive_int, default=100, help="held-out examples scored per task")
    add("--lora-rank", type=positive_int, default=8, help="LoRA: rank of the adapter matrices")
    add("--lora-alpha", type=positive_int, default=16, help="LoRA: scaling numerator (the update is scaled by alpha / rank)")
    add("--lora-dropout", type=probability, default=0.05, help="LoRA: dropout on the adapter's input")
    add("--target-modules", type=names, help="LoRA: comma-separated module names (default: peft's choice for the model)")
    loss = parser.add_mutually_exclusive_group()
    loss.add_argument(
        "--output-only-loss", dest="train_on_input", action="store_false", default=False,
        help="the loss covers the output only, as in the study (default)",
    )
    loss.add_argument(
        "--whole-sequence-loss", dest="train_on_input", action="store_true", default=False,
        help="the loss covers the instruction and input too: the model is trained to write its inputs (not the study's recipe)",
    )
    add("--save-epochs", action="store_true", help="also save the model after each epoch in DIR/epoch-N")
    add("--merge", action="store_true", help="LoRA: also save the merged model in DIR/merged")
    add("--seed", type=int, default=1234, help="seed of the data order, dropout and initialization")
    add("--device", choices=DEVICES, default="auto", help="where to train")
    add("--precision", choices=PRECISIONS, default="auto", help="auto: bf16 on a GPU that has it, else fp32")
    add("--save-steps", type=positive_int, default=200, help="checkpoint every N steps, to resume an interrupted run")
    add("--eval-batch-size", type=positive_int, default=16, help="batch size of the held-out generations")
    add("--include-path", type=folders, default=(), metavar="DIR[:DIR...]", help="more task folders, separated by ':'")
    add("--json", action="store_true", help="print the training summary as JSON")
    parser.set_defaults(run=run)


def configs(args: argparse.Namespace):
    """The ``FinetuneConfig`` and ``Runtime`` the parsed arguments ask for."""
    values = {
        **vars(args),
        "data_files": task_files(args.data_files, args.tasks, "--data-files"),
        "eval_data_files": task_files(args.eval_data_files, args.tasks, "--eval-data-files"),
        "progress": not args.json,
    }
    config = FinetuneConfig(**{f.name: values[f.name] for f in fields(FinetuneConfig)})
    runtime = Runtime(**{f.name: values[f.name] for f in fields(Runtime)})
    return config, runtime


def run(args: argparse.Namespace) -> int:
    from memtasks.finetune.train import finetune

    config, runtime = configs(args)
    try:
        summary = finetune(config, args.output, runtime, overwrite=args.overwrite)
    except KeyboardInterrupt:
        print(f"memtasks finetune: interrupted: {interrupted(args.output, args.overwrite)}", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(summary_line(args.output, summary))
    print(f"load it in lm-eval with --model hf --model_args {summary['lm_eval_model_args']}")
    return 0


def summary_line(output: Path, summary: dict) -> str:
    """A finished run in one line: what was trained, how long, its loss by epoch and its held-out quality."""
    steps = summary.get("steps", 0)
    resumed = summary.get("resumed_from_step")
    parts = [
        f"{output}: {summary['method']} fine-tuning of {summary['base_model']} on {', '.join(summary['tasks'])}"
        + (f", {summary['loss']} loss" if summary.get("loss") else ""),
        f"{_count(summary.get('epochs', 0), 'epoch')} ({_count(steps, 'step')}{f', resumed at step {resumed}' if resumed else ''}, "
        f"{summary.get('examples_seen', 0)} examples) in {summary.get('seconds', 0):.0f} s",
    ]
    losses = summary.get("epoch_losses") or []
    if losses:
        parts.append("loss by epoch " + " ".join(f"{entry['loss']:.4f}" for entry in losses))
    for task, scores in summary.get("quality", {}).items():
        shown = ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in scores.items())
        parts.append(f"held-out {task}: {shown}")
    return "; ".join(parts)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def interrupted(output: Path, overwrite: bool) -> str:
    """What an interrupted run left in ``output``, and how to go on (not with ``--overwrite``, which starts over)."""
    summary = read_summary(output) if output.is_dir() else None
    if summary is None:
        return f"nothing was written to {output}"
    step = (summary.get("stopped") or {}).get("resume_from_step")
    start = f"from step {step}" if step else "from the start"
    again = "the same command without --overwrite" if overwrite else "the same command"
    return f"{output} holds an unfinished run (complete: false); {again} resumes it {start}"
