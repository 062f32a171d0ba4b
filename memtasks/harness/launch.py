"""``memtasks eval``: lm-eval's own command line, with memtasks' tasks and model class.

The arguments are parsed by lm-eval's parser, so every form lm-eval accepts
(``-o DIR``, ``--output_path=run.json``, ``--tasks a b``, ``--config``) means
here what it means there. Nothing of lm-eval is patched; what memtasks adds:

- its task folder, unless lm-eval already discovered it through the
  ``lm_eval.tasks`` entry point; several ``--include_path`` folders may be given,
  separated by ``os.pathsep``;
- ``--model memtasks-hf`` when no ``--model`` is given (the same generation
  budget for every architecture, :mod:`memtasks.harness.model`);
- lm-eval's own task index (about 15,000 names, 10-20 s of CPU) is built only
  when a run names a task that is not memtasks' or in ``--include_path``;
- every refusal before the model loads: local data files read in full, the
  tasks built (probes drawn, metadata checked) before ``simple_evaluate``
  loads the model, and a flag lm-eval's parser refuses named in one line with
  the nearest one;
- ``redact``: training text and generations never reach a file or a stream in
  clear. Per-sample logs are hashed in memory before lm-eval writes them, and
  every channel that would carry them otherwise (the request and response
  caches, ``--write_out``, uploads to W&B, Trackio or the Hub) is refused.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from memtasks.datafiles import unreadable
from memtasks.harness import MODEL_NAME
from memtasks.tasks import known_tasks, task_configs_dir

# Channels that would carry training text or generations past a redacted run,
# as lm-eval's configuration names them, and why each leaks.
LEAKING_CHANNELS = {
    "use_cache": "--use_cache stores every generation in clear in its SQLite file",
    "cache_requests": "--cache_requests stores the prompts (training prefixes) in clear in lm-eval's cache folder",
    "write_out": "--write_out prints training prefixes to the terminal",
    "wandb_args": "--wandb_args uploads per-sample logs before they could be redacted",
    "wandb_config_args": "--wandb_config_args uploads to W&B, which --redact cannot check",
    "trackio_args": "--trackio_args uploads per-sample logs before they could be redacted",
    "hf_hub_log_args": "--hf_hub_log_args uploads results and samples to the Hub before they could be redacted",
}
UPLOADS = ("wandb_args", "wandb_config_args", "trackio_args", "hf_hub_log_args")
# lm-eval's commands that run no model: they pass through, with memtasks' folder to index.
LISTING_COMMANDS = ("ls", "validate")


class LaunchError(ValueError):
    """A ``memtasks eval`` command line that cannot run as given; the message says why and what to change."""


def split_paths(include_path: str | Path | Sequence[str | Path] | None) -> list[str]:
    """``--include_path`` as a list of folders (``os.pathsep`` separates several)."""
    if include_path is None:
        return []
    if isinstance(include_path, (str, Path)):
        return [p for p in str(include_path).split(os.pathsep) if p]
    return [str(p) for p in include_path]


# memtasks eval's own flags, which reach lm-eval's parser only misspelled.
OWN_FLAGS = ("--redact", "--verbose")


class _RunParser(argparse.ArgumentParser):
    """lm-eval's ``run`` parser (its flags, as lm-eval declares them) whose mistakes raise :class:`LaunchError`,
    one line naming the nearest flag, instead of printing lm-eval's usage and an error signed ``lm-eval``."""

    def error(self, message: str) -> NoReturn:
        flags = [value.split("=", 1)[0] for value in message.partition("unrecognized arguments: ")[2].split()]
        hint = next((h for h in map(self._nearest, flags) if h), "")
        raise LaunchError(f"{message}{hint}")

    def _nearest(self, flag: str) -> str:
        if not flag.startswith("-"):
            return ""
        options = [o for action in self._actions for o in action.option_strings if o.startswith("--")] + list(OWN_FLAGS)
        # lm-eval spells its flags in snake_case, memtasks' other commands in kebab-case: a mix is the likeliest slip.
        snake = "--" + flag.lstrip("-").replace("-", "_")
        close = [snake] if snake in options else difflib.get_close_matches(flag, options, n=1, cutoff=0.6)
        return f"; did you mean {close[0]}?" if close else ""


def parse_arguments(arguments: Sequence[str]):
    """lm-eval's namespace for ``lm_eval run ARGUMENTS``, parsed by lm-eval's own ``run`` parser.

    Raises :class:`LaunchError` for arguments it refuses (an unknown flag, a value of the wrong type).
    """
    from lm_eval._cli.run import Run

    arguments = list(arguments)
    if arguments[:1] == ["run"]:
        arguments = arguments[1:]
    commands = argparse.ArgumentParser(prog="memtasks eval").add_subparsers(dest="command", parser_class=_RunParser)
    Run.create(commands)
    return commands.choices["run"].parse_args(arguments, argparse.Namespace(command="run"))


def effective_settings(namespace) -> dict[str, Any]:
    """The run's settings as lm-eval will see them: its ``--config`` YAML under the command line's."""
    from lm_eval.config.evaluate_config import EvaluatorConfig

    settings: dict[str, Any] = {}
    if getattr(namespace, "config", None):
        settings.update(EvaluatorConfig.load_yaml_config(namespace.config))
    settings.update({k: v for k, v in vars(namespace).items() if (v or v == 0) and k not in ("command", "func")})
    return settings


def check_redaction(settings: dict[str, Any]) -> None:
    """Refuse a redacted run that asks for a channel which would carry training text in clear."""
    for name, why in LEAKING_CHANNELS.items():
        value = settings.get(name)
        if isinstance(value, dict) and name == "cache_requests":
            value = value.get("cache_requests") or value.get("rewrite_requests_cache")
        if value:
            raise LaunchError(f"--redact: {why}; drop --{name} or run without --redact")


def task_names(settings: dict[str, Any]) -> list[str]:
    """The ``--tasks`` of a run, one name per entry (lm-eval accepts spaces and commas)."""
    tasks = settings.get("tasks")
    if not tasks:
        raise LaunchError("memtasks eval needs --tasks (for example --tasks mem_xsum)")
    entries = tasks.split(",") if isinstance(tasks, str) else [t for task in tasks for t in str(task).split(",")]
    return [t for t in entries if t]


def discovered_by_lm_eval() -> bool:
    """Whether lm-eval indexes memtasks' tasks by itself (an lm-eval that reads the ``lm_eval.tasks`` entry points)."""
    from lm_eval.tasks import TaskManager

    ours = task_configs_dir().resolve()
    for entry in TaskManager(include_defaults=False).task_index.values():
        path = getattr(entry, "yaml_path", None)
        if path is not None and Path(path).resolve().parent == ours:
            return True
    return False


def include_paths(settings: dict[str, Any]) -> list[str]:
    """The folders to index: the user's, then memtasks' unless lm-eval discovers it itself."""
    paths = split_paths(settings.get("include_path"))
    ours = str(task_configs_dir())
    if ours not in paths and not discovered_by_lm_eval():
        paths.append(ours)
    return paths


def _memtasks_tasks(names: Sequence[str], paths: Sequence[str]) -> tuple[list[str], list[str]]:
    """The named tasks that are memtasks' or the include path's, and the rest (lm-eval's own)."""
    known = known_tasks(tuple(p for p in paths if p != str(task_configs_dir())))
    ours = [n for n in names if n in known or n.endswith(".yaml")]
    return ours, [n for n in names if n not in ours]


def run_lm_eval(arguments: Sequence[str], redact: bool = False, verbose: bool = False, notes: Sequence[str] = ()) -> int:
    """Run lm-eval on ``arguments`` (its command line, without the program name); the exit status.

    With ``redact``, per-sample logs keep hashes instead of training text and
    generations (:mod:`memtasks.harness.redact`), and any channel that could
    not be redacted is refused before anything runs. A memorization task
    prints one summary line (:func:`summary_line`); lm-eval's full table of
    every metric is printed with ``verbose`` or when the run has other tasks,
    and is always in the results file. ``notes`` go to stderr once the run is
    past every refusal, before lm-eval loads the model: a refused run prints
    its error line alone.
    """
    if not arguments:
        raise LaunchError("memtasks eval needs lm-eval arguments: at least --tasks (see memtasks eval --help)")
    if arguments[0] in LISTING_COMMANDS:
        return _list_or_validate(arguments)
    namespace = parse_arguments(arguments)
    settings = effective_settings(namespace)
    names = task_names(settings)
    if redact:
        check_redaction(settings)
    paths = include_paths(settings)
    ours, others = _memtasks_tasks(names, paths)
    if ours and "apply_chat_template" in settings and settings["apply_chat_template"] is not False:
        raise LaunchError(
            "--apply_chat_template would wrap each probe's bare training prefix in a chat turn, "
            f"which is not what {', '.join(ours)} measure{'s' if len(ours) == 1 else ''}: run {'it' if len(ours) == 1 else 'them'} without it"
        )
    if ours:
        check_data_files(settings.get("metadata"), _input_fields(ours, paths, settings.get("metadata")))
        check_finished_model(settings.get("model_args"))
    namespace.include_path = paths
    if getattr(namespace, "model", None) is None and "model" not in settings:
        namespace.model = MODEL_NAME
    if (namespace.model or settings.get("model")) == MODEL_NAME:
        import memtasks.harness.model  # noqa: F401  (registers the class with lm-eval)
    if any(settings.get(name) for name in UPLOADS):
        _print_notes(notes)
        return _run_lm_eval_cli(namespace)
    return _run(namespace, paths, include_defaults=bool(others), redact=redact, verbose=verbose, notes=notes)


def _print_notes(notes: Sequence[str]) -> None:
    for note in notes:
        print(note, file=sys.stderr, flush=True)


def check_data_files(metadata: Any, input_fields: Sequence[str] = ()) -> None:
    """Refuse a run whose local data files (``--metadata``) are missing or unreadable before lm-eval starts:
    every line of a JSON Lines file is parsed, and must hold text in each of ``input_fields``."""
    from memtasks.datafiles import count_records, find_problem, json_lines
    from memtasks.probes import field_value

    if not isinstance(metadata, dict):
        return
    for key in ("data_files", "nonmember_data_files"):
        files = metadata.get(key)
        for file in [files] if isinstance(files, str) else files or []:
            if unreadable(file):
                raise LaunchError(f"--metadata {key}: {file} {unreadable(file)}")
            try:
                count_records(file)
                find_problem(file)
                for number, record in json_lines(file) if input_fields else ():
                    for field in input_fields:
                        try:
                            text = field_value(record, field)
                        except KeyError:
                            text = None
                        if not isinstance(text, str):
                            what = "is missing or null" if text is None else f"must be text, got {type(text).__name__}"
                            raise LaunchError(f"--metadata {key}: {file}:{number}: field '{field}' {what} (the task's input_field)")
            except LaunchError:
                raise
            except ValueError as error:
                raise LaunchError(f"--metadata {key}: {error}") from None


def _input_fields(names: Sequence[str], paths: Sequence[str], metadata: Any) -> list[str]:
    """The ``input_field`` each named task reads from its data, ``--metadata`` over the task's own (groups left out)."""
    from memtasks.tasks import task_spec

    given = metadata if isinstance(metadata, dict) else {}
    user_paths = [p for p in paths if p != str(task_configs_dir())]
    fields = []
    for name in names:
        try:
            spec = task_spec(name, user_paths)
        except ValueError:  # a group or a YAML file: its tasks say when they read the data
            continue
        field = {**spec.options, **given}.get("input_field", "text")
        if isinstance(field, str) and field not in fields:
            fields.append(field)
    return fields


def check_finished_model(model_args: Any) -> None:
    """Refuse a model folder whose fine-tuning stopped before it finished: its rates would be a half-trained model's."""
    from memtasks.finetune.config import read_summary

    pretrained = model_args.get("pretrained") if isinstance(model_args, dict) else None
    if not pretrained or not Path(str(pretrained)).is_dir():
        return
    summary = read_summary(str(pretrained))
    if summary is not None and summary.get("complete") is False:
        raise LaunchError(
            f"model {pretrained} holds an unfinished fine-tuning run (complete: false): "
            "the memtasks finetune command that made it resumes it"
        )


def _list_or_validate(arguments: Sequence[str]) -> int:
    """lm-eval's ``ls`` or ``validate`` command, with memtasks' task folder beside the user's."""
    from lm_eval._cli.harness import HarnessCLI

    saved, sys.argv = sys.argv, ["lm_eval", *arguments]
    try:
        cli = HarnessCLI()
        namespace = cli.parse_args()
    finally:
        sys.argv = saved
    namespace.include_path = include_paths({"include_path": namespace.include_path})
    cli.execute(namespace)
    return 0


def _run_lm_eval_cli(namespace) -> int:
    """lm-eval's own run command, for the uploads memtasks does not drive itself; lm-eval writes the files
    here, and what it wrote is checked after (its writer reports a failed write only as a warning)."""
    import time

    from lm_eval._cli.harness import HarnessCLI
    from lm_eval.utils import setup_logging

    from memtasks.harness.save import check_written

    setup_logging()
    started = time.time()
    HarnessCLI().execute(namespace)
    if getattr(namespace, "output_path", None):
        check_written(namespace.output_path, started)
    return 0


def _run(namespace, paths: Sequence[str], include_defaults: bool, redact: bool, verbose: bool, notes: Sequence[str]) -> int:
    """What ``lm_eval run`` does, with a task manager that indexes only what the run needs."""
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    from lm_eval.config.evaluate_config import EvaluatorConfig
    from lm_eval.loggers import EvaluationTracker
    from lm_eval.tasks import TaskManager
    from lm_eval.utils import handle_non_serializable, make_table, setup_logging

    from memtasks.harness.redact import redact_sample
    from memtasks.harness.save import save_run
    from memtasks.outcomes import METRICS

    setup_logging()
    config = EvaluatorConfig.from_cli(namespace)
    manager = TaskManager(include_path=list(paths), include_defaults=include_defaults, metadata=config.metadata)
    tasks = _resolve_tasks(manager, task_names({"tasks": config.tasks}))
    tracker = EvaluationTracker(output_path=config.output_path) if config.output_path else EvaluationTracker()
    # lm-eval would build the tasks (and read their data) after loading the model: built first, a refused
    # data file or metadata key costs no model load.
    tasks = _built(manager, tasks)
    _print_notes(notes)
    results = _evaluate(config, tasks, tracker, manager)
    if results is None or int(os.environ.get("RANK", "0")) > 0:
        # Under accelerate launch the main process writes; a model class that did not split the
        # documents (lm-eval's hf on CPUs) gives every process the whole results.
        return 0
    samples = results.pop("samples", None) if config.log_samples else None
    if samples is not None and redact:
        outcome_fields = frozenset(METRICS)
        samples = {task: [redact_sample(s, outcome_fields) for s in rows] for task, rows in samples.items()}
    if config.show_config:
        import json

        print(json.dumps(results, indent=2, default=handle_non_serializable, ensure_ascii=False))
    if config.output_path:
        # Not lm-eval's writer: it logs a failed write as a warning and the run would end with exit 0.
        save_run(tracker, results, samples)
    lines = [summary_line(task, metrics) for task, metrics in results["results"].items() if "mem_rate,none" in metrics]
    if verbose or len(lines) < len(results["results"]):
        batch_sizes = ",".join(map(str, results["config"]["batch_sizes"]))
        print(
            f"{config.model} ({config.model_args}), gen_kwargs: ({config.gen_kwargs}), limit: {config.limit}, "
            f"num_fewshot: {config.num_fewshot}, batch_size: {config.batch_size}{f' ({batch_sizes})' if batch_sizes else ''}"
        )
        print(make_table(results))
        if "groups" in results:
            print(make_table(results, "groups"))
    for line in lines:
        print(line)
    return 0


def _evaluate(config, tasks: list, tracker, manager) -> dict | None:
    """lm-eval's ``simple_evaluate`` with every setting of the run's configuration."""
    from lm_eval import simple_evaluate

    from memtasks.harness.quiet import dropped_lines

    seeds = config.seed or [None] * 4
    # lm-eval runs `git describe` on the process's stderr: outside a repository, git's
    # "fatal: not a git repository" would end every run (memtasks.harness.quiet).
    with dropped_lines():
        return simple_evaluate(
            model=config.model,
            model_args=config.model_args,
            tasks=tasks,
            num_fewshot=config.num_fewshot,
            batch_size=config.batch_size,
            max_batch_size=config.max_batch_size,
            device=config.device,
            use_cache=config.use_cache,
            cache_requests=config.cache_requests.get("cache_requests", False),
            rewrite_requests_cache=config.cache_requests.get("rewrite_requests_cache", False),
            delete_requests_cache=config.cache_requests.get("delete_requests_cache", False),
            limit=config.limit,
            samples=config.samples,
            check_integrity=config.check_integrity,
            write_out=config.write_out,
            log_samples=config.log_samples,
            evaluation_tracker=tracker,
            system_instruction=config.system_instruction,
            apply_chat_template=config.apply_chat_template,
            fewshot_as_multiturn=config.fewshot_as_multiturn,
            gen_kwargs=config.gen_kwargs,
            task_manager=manager,
            verbosity=config.verbosity,
            predict_only=config.predict_only,
            random_seed=seeds[0],
            numpy_random_seed=seeds[1],
            torch_random_seed=seeds[2],
            fewshot_random_seed=seeds[3],
            confirm_run_unsafe_code=config.confirm_run_unsafe_code,
            metadata=config.metadata,
        )


def _built(manager, specs: Sequence) -> list:
    """The tasks and groups ``specs`` name, built (each task's dataset read) as lm-eval's ``simple_evaluate``
    would build them, which takes them built as they are: the outermost ones, in the order lm-eval lists them."""
    loaded = manager.load(list(specs))
    children = {name for names in loaded["group_map"].values() for name in names}
    built = [*loaded["groups"].items(), *loaded["tasks"].items()]
    return [item for name, item in built if name not in children]


def _percent(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _points(value) -> str:
    return "n/a" if value is None else f"{100 * value:+.1f}"


def summary_line(task: str, metrics: dict[str, Any]) -> str:
    """One line for a memorization task's results: the rate with its interval, categories, floor and excess."""

    def get(name: str):
        return metrics.get(f"{name},none")

    line = (
        f"{task}: {_percent(get('mem_rate'))} [{_percent(get('mem_rate_low'))}, {_percent(get('mem_rate_high'))}] "
        f"of {get('probes')} member probes memorized (verbatim {_percent(get('verbatim_rate'))}, "
        f"idea {_percent(get('idea_rate'))}, paraphrase {_percent(get('paraphrase_rate'))})"
    )
    if get("nonmember_probes"):
        line += (
            f"; non-member floor {_percent(get('nonmember_mem_rate'))} of {get('nonmember_probes')}; "
            f"excess {_points(get('excess_mem_rate'))} points [{_points(get('excess_mem_rate_low'))}, {_points(get('excess_mem_rate_high'))}]"
        )
    return line


def _resolve_tasks(manager, names: Sequence[str]) -> list:
    """Task names (globs allowed) and YAML files as lm-eval's run command resolves them."""
    import glob

    from lm_eval.tasks._yaml_loader import load_yaml

    resolved: list = []
    missing = []
    for name in names:
        if name.endswith(".yaml"):
            matches = [load_yaml(path, resolve_func=True) for path in sorted(glob.glob(str(Path(name).absolute())))]
        else:
            matches = manager.match_tasks([name])
        if not matches:
            missing.append(name)
        resolved += [m for m in matches if m not in resolved]
    if missing:
        raise LaunchError(f"tasks not found: {', '.join(missing)}{_suggestion(manager, missing)}")
    return resolved


def _suggestion(manager, missing: Sequence[str]) -> str:
    import difflib

    close = [m for name in missing for m in difflib.get_close_matches(name, manager.all_tasks, n=1, cutoff=0.8)]
    return f" (did you mean {', '.join(close)}?)" if close else ""
