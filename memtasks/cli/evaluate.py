"""``memtasks eval``: lm-eval's command line with memtasks' tasks added.

Every argument but ``--redact`` and ``--verbose`` is lm-eval's and passes through
untouched. Before lm-eval starts, two things are settled here because lm-eval would
settle them slowly or not at all: a task name that looks like memtasks' (``mem_...``)
but is neither memtasks' nor lm-eval's is refused with the nearest name (lm-eval
would first spend about 20 s indexing its 14,683 tasks), and a model run in this
process without ``--batch_size`` gets ``DEFAULT_BATCH_SIZE`` instead of lm-eval's 1.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
from collections.abc import Sequence
from pathlib import Path

from memtasks.cli.options import folders, suggestion
from memtasks.harness import MODEL_NAME

# The model types that run a transformers model in this process: memtasks' own (the
# default of memtasks eval) and lm-eval's.
LOCAL_MODEL_TYPES = (MODEL_NAME, "hf", "hf-auto", "huggingface")
# The README's tiny-model example (145 generations, one thread) took 26 s of CPU at
# lm-eval's batch size 1 and 13 s at 16. lm-eval's "auto" is no choice on a CPU,
# where nothing runs out of memory gracefully: it tried 64 x the model's whole
# context (1,024 tokens), kept 64 and peaked at 2.4 GB against 0.8 GB at 16; for a
# model with a long context and a large vocabulary that trial alone cannot fit.
DEFAULT_BATCH_SIZE = 16
# lm-eval's own subcommands; "ls" and "validate" run no model and pass through as they are.
LM_EVAL_COMMANDS = ("run", "ls", "validate")
MEMTASKS_PREFIX = "mem_"

USAGE = "memtasks eval [-h] [--redact] [--verbose] --tasks TASKS [--model MODEL] [--model_args ARGS] [lm_eval run flags ...]"


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "eval",
        help="run lm-eval with memtasks' tasks added (takes every lm_eval flag)",
        usage=USAGE,
        description="Runs `lm_eval` with every argument given and memtasks' tasks available "
        "(`lm_eval run --help` lists its flags). --include_path may list several folders separated by ':'. "
        f"A model run here ({MODEL_NAME}, the default, or hf) without --batch_size runs at --batch_size "
        f"{DEFAULT_BATCH_SIZE} (lm-eval's default is 1; on a GPU, --batch_size auto finds the largest that fits). A task named mem_... that neither memtasks "
        "nor lm-eval knows is refused at once, with the nearest name.",
    )
    parser.add_argument("--redact", action="store_true", help="keep training text and generations out of --log_samples files")
    parser.add_argument(
        "--verbose", action="store_true",
        help="print lm-eval's table of every metric, not only one summary line per memorization task",
    )
    parser.set_defaults(run=run, passthrough=True)


def _lm_eval_view() -> argparse.ArgumentParser:
    """The few lm-eval flags read here, spelled (short forms and abbreviations included) as lm-eval reads them."""
    view = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    view.add_argument("--tasks", "-t", nargs="+", action="extend", default=[])
    view.add_argument("--model", "-M")
    view.add_argument("--batch_size", "-b")
    view.add_argument("--include_path", type=folders, default=())
    view.add_argument("--config", "-C")
    view.add_argument("--output_path", "-o")
    view.add_argument("--model_args", "-a", nargs="+", action="extend", default=[])
    return view


def lm_eval_arguments(arguments: Sequence[str], parser: argparse.ArgumentParser) -> tuple[list[str], list[str]]:
    """The arguments lm-eval gets: ``arguments``, checked, with memtasks' default batch size where none is given;
    and the notes to print once the run is past every refusal (the batch size it was given).

    Exits with ``parser``'s usage when no task is named; raises ``ValueError``
    for a ``mem_`` task name that no task folder defines.
    """
    arguments = list(arguments)
    if arguments and arguments[0] in LM_EVAL_COMMANDS[1:]:
        return arguments, []
    try:
        view, _ = _lm_eval_view().parse_known_args(arguments[1:] if arguments[:1] == ["run"] else arguments)
    except argparse.ArgumentError as error:
        parser.error(str(error))
    if view.config:
        return arguments, []
    tasks = [name for value in view.tasks for name in value.split(",") if name]
    if not tasks:
        parser.error("name the tasks with --tasks, e.g. --model hf --model_args pretrained=MODEL --tasks mem_xsum")
    check_task_names(tasks, view.include_path)
    check_local_paths(view.output_path, view.model_args, view.include_path)
    if view.batch_size is None and (view.model or MODEL_NAME) in LOCAL_MODEL_TYPES:
        arguments += ["--batch_size", str(DEFAULT_BATCH_SIZE)]
        return arguments, [f"memtasks eval: --batch_size {DEFAULT_BATCH_SIZE} (pass --batch_size to choose another)"]
    return arguments, []


def check_task_names(tasks: Sequence[str], include_path: Sequence[str] = ()) -> None:
    """Refuse a ``mem_`` name that neither memtasks' task folders nor lm-eval's define, naming the nearest task.

    Other names (lm-eval's tasks, YAML paths) are left to lm-eval, which knows them.
    """
    suspects = [t for t in tasks if t.startswith(MEMTASKS_PREFIX) and not Path(t).exists()]
    if not suspects:
        return
    from memtasks.tasks import known_tasks

    known = known_tasks(tuple(include_path))
    for name in suspects:
        if name not in known and not _lm_eval_defines(name):
            ours = sorted(n for n in known if n.startswith(MEMTASKS_PREFIX))
            hint = suggestion(name, ours) or f" (memtasks' tasks and groups: {', '.join(_without_variants(ours))}, and their variants)"
            raise ValueError(f"unknown task {name!r}{hint}")


# The model arguments that name a local folder the model is read from.
MODEL_PATH_ARGS = ("pretrained", "peft", "tokenizer", "delta")


def check_local_paths(output_path: str | None, model_args: Sequence[str], include_path: Sequence[str]) -> None:
    """Before lm-eval starts (it loads the model first and writes its results at the end): no local model
    folder is an unfinished fine-tuning, and the output path is not, does not hold and does not lie inside
    the model or a task folder, and can be written."""
    from memtasks.finetune.config import check_finished

    pairs = dict(part.split("=", 1) for value in model_args for part in value.split(",") if "=" in part)
    inputs = [(f"the model's {key}", pairs[key].strip()) for key in MODEL_PATH_ARGS if pairs.get(key, "").strip()]
    for what, path in inputs:
        check_finished(path, what.removeprefix("the "))
    if not output_path:
        return
    from memtasks.outputs import check_apart, check_writable

    inputs += [("the task folder", folder) for folder in include_path]
    # lm-eval adds files named by date and never rewrites one: an output folder may hold the inputs (--output_path .).
    check_apart([("--output_path", output_path)], inputs, holds=False)
    path = Path(output_path)
    check_writable(path.parent if path.suffix == ".json" else path)


def _without_variants(names: Sequence[str]) -> list[str]:
    """The names that do not extend another one (mem_imdb, not mem_imdb_prefix10)."""
    return [n for n in names if not any(n.startswith(other + "_") for other in names)]


def _lm_eval_defines(name: str) -> bool:
    """Whether a YAML file of lm-eval's own task folder names ``name`` (a text search, not lm-eval's 20 s index)."""
    spec = importlib.util.find_spec("lm_eval")
    if spec is None or not spec.submodule_search_locations:
        return False
    needle = name.encode("utf-8")
    word = re.compile(rb"(?<![\w-])" + re.escape(needle) + rb"(?![\w-])")
    for root in spec.submodule_search_locations:
        for folder, _, files in os.walk(os.path.join(root, "tasks")):
            for file in files:
                if file.endswith(".yaml"):
                    with open(os.path.join(folder, file), "rb") as handle:
                        text = handle.read()
                    if needle in text and word.search(text):
                        return True
    return False


def run(args: argparse.Namespace) -> int:
    arguments, notes = lm_eval_arguments(args.arguments, args.command_parser)
    from memtasks.harness import run_lm_eval

    return run_lm_eval(arguments, redact=args.redact, verbose=args.verbose, notes=notes)
