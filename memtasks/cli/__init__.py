"""The ``memtasks`` command: one module per command, each a thin layer over library calls.

A command module has ``add_parser(commands)``, which adds its subparser and sets
``run`` (a function of the parsed arguments returning the exit status), and
imports nothing heavy at module level: the help of every command comes up
without numba, torch, transformers or lm-eval.

Flags are spelled in one style per family: the commands that speak lm-eval's
language (``eval``, which passes everything to lm-eval, and ``attention``,
which loads models as lm-eval does) use lm-eval's snake_case
(``--model_args``, ``--output_path``); memtasks' own commands use kebab-case
(``--batch-size``, ``--include-path``).
"""

from __future__ import annotations

import argparse
import atexit
import gc
import sys
from collections.abc import Sequence

from memtasks.cli import attention, demo, evaluate, finetune, models, pan_eval, report, rescore, score, study, task_path, tiny_models
from memtasks.cli.options import Parser
from memtasks.outputs import write_failure

COMMANDS = (score, evaluate, finetune, study, demo, attention, report, rescore, models, tiny_models, task_path, pan_eval)
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def build_parser() -> Parser:
    """The parser of every command; each subparser's defaults hold ``run`` and ``command_parser`` (itself)."""
    parser = Parser(prog="memtasks", description="Measure memorization of fine-tuning data.")
    parser.add_argument("--version", action="version", version=f"memtasks {_version()}")
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", help="what to do (memtasks COMMAND --help for its options)"
    )
    for module in COMMANDS:
        module.add_parser(commands)
    for subparser in commands.choices.values():
        if subparser.get_default("command_parser") is None:
            subparser.set_defaults(command_parser=subparser)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("memtasks")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "(not installed)"


def error_line(error: BaseException) -> str:
    """An error as one line: a missing or unreadable file as ``PATH: reason``, never ``[Errno 2]``."""
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        return f"{error.filename}: {error.strerror.lower()}"
    return " ".join(str(error).split()) or type(error).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command ``argv`` names (default: ``sys.argv[1:]``); returns the exit status.

    0 on success; 2 for a usage mistake or a refused run (one line on stderr);
    130 when interrupted.
    """
    parser = build_parser()
    try:
        args, unknown = parser.parse_known_args(argv)
        if getattr(args, "passthrough", False):
            args.arguments = unknown
        elif unknown:
            args.command_parser.reject_unknown(unknown)
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else EXIT_USAGE
    try:
        return args.run(args)
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else EXIT_USAGE
    except (ValueError, OSError, MemoryError) as error:
        print(f"memtasks {args.command}: error: {error_line(error)}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as error:
        # A library's writer that reports a full disk in an error of its own (safetensors', torch's).
        cause = write_failure(error)
        if cause is None:
            raise
        print(f"memtasks {args.command}: error: {cause} while writing: {error_line(error)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"memtasks {args.command}: interrupted", file=sys.stderr)
        # The interpreter's last garbage collections walk every object torch and transformers made
        # (a second or more after a Ctrl-C); a process that is ending frees its memory without them.
        atexit.register(gc.freeze)
        return EXIT_INTERRUPTED
