"""What every command shares: the parser class, the help layout, and named validators.

A validator is the ``type=`` of an argument. Each one says in its error which
kind of value it expected (``invalid positive integer value: 'abc'``), so a
mistake on the command line reads the same for every flag. Nothing here imports
more than the standard library: ``memtasks --help`` must stay fast.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
from collections.abc import Iterable, Sequence
from typing import Any, NoReturn

HIDDEN = {"help": argparse.SUPPRESS, "default": argparse.SUPPRESS}
"""Keyword arguments of an old spelling kept working (the README once showed it) but not shown in the help."""


def count(n: int, noun: str) -> str:
    """``n`` and ``noun``, plural unless ``n`` is 1: "1 task", "2 tasks"."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def suggestion(value: str, candidates: Iterable[str]) -> str:
    """``"; did you mean X?"`` for the closest candidate, or ``""`` when none is close."""
    close = difflib.get_close_matches(value, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


class HelpFormatter(argparse.HelpFormatter):
    """argparse's layout, with each option's default appended when it has one worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        # A flag's default is "not given"; store_false's True would read as if the flag were on.
        is_flag = isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction))
        shown = not is_flag and default not in (None, False, argparse.SUPPRESS) and default != []
        if shown and action.option_strings and "%(default)" not in text:
            text += " (default: %(default)s)"
        return text


class Parser(argparse.ArgumentParser):
    """An argument parser whose mistakes are one line, with a suggestion for a near-miss name."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        # A typo ("--overwrit") is an error with a suggestion, never read as the flag it abbreviates.
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        # argparse lists the choices; a near miss ("scor", "--method lorra") also gets the closest one.
        if action.choices is not None and value not in action.choices:
            names = [str(choice) for choice in action.choices]
            raise argparse.ArgumentError(
                action, f"invalid choice: {value!r} (choose from {', '.join(names)}){suggestion(str(value), names)}"
            )

    def error(self, message: str) -> NoReturn:
        """Exit 2 with one line on stderr, ``PROG: error: MESSAGE``; ``--help`` shows the usage argparse would print first."""
        self.exit(2, f"{self.prog}: error: {message}\n")

    def visible_options(self) -> list[str]:
        """The option strings the help shows (old spellings kept working are left out)."""
        return [
            option for action in self._actions if action.help != argparse.SUPPRESS for option in action.option_strings
        ]

    def reject_unknown(self, unknown: Sequence[str]) -> NoReturn:
        """Exit 2 naming what was not understood and the nearest option."""
        flags = [value.split("=", 1)[0] for value in unknown if value.startswith("-")]
        hint = next((s for s in (suggestion(flag, self.visible_options()) for flag in flags) if s), "")
        self.error(f"unrecognized arguments: {' '.join(unknown)}{hint}")


def _integer(value: str, kind: str, minimum: int) -> int:
    try:
        number = int(value)
    except ValueError:
        number = minimum - 1
    if number < minimum:
        raise argparse.ArgumentTypeError(f"invalid {kind} value: {value!r}")
    return number


def positive_int(value: str) -> int:
    """An integer of at least 1 (counts, lengths, sizes)."""
    return _integer(value, "positive integer", 1)


def workers(value: str) -> int:
    """A number of worker processes, at least 1."""
    return _integer(value, "worker count (at least 1)", 1)


def _float(value: str, kind: str, accept) -> float:
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not accept(number):
        raise argparse.ArgumentTypeError(f"invalid {kind} value: {value!r}")
    return number


def positive_float(value: str) -> float:
    """A number above 0 (a learning rate)."""
    return _float(value, "positive number", lambda x: x > 0 and x != float("inf"))


def fraction(value: str) -> float:
    """A share from 0 to 1 inclusive (a warm-up ratio)."""
    return _float(value, "fraction (0 to 1)", lambda x: 0 <= x <= 1)


def probability(value: str) -> float:
    """A probability from 0 up to but not including 1 (a dropout rate)."""
    return _float(value, "probability (at least 0, below 1)", lambda x: 0 <= x < 1)


def names(value: str) -> tuple[str, ...]:
    """Comma-separated names, at least one (tasks, module names)."""
    items = tuple(item.strip() for item in value.split(","))
    if not all(items):
        raise argparse.ArgumentTypeError(f"invalid comma-separated names: {value!r}")
    return items


def folders(value: str) -> tuple[str, ...]:
    """Folders separated by the system's path separator (':' on Linux and macOS), as lm-eval's ``--include_path``."""
    return tuple(part for part in value.split(os.pathsep) if part)


def json_object(value: str) -> dict[str, Any]:
    """A JSON object (lm-eval's ``--metadata``)."""
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as error:
        from memtasks.datafiles import json_problem

        raise argparse.ArgumentTypeError(f"invalid JSON ({json_problem(error, 'character', error.pos)}): {value!r}") from None
    if not isinstance(parsed, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {value!r}")
    return parsed


def preset(value: str) -> str:
    """A detector preset's name (:data:`memtasks.detection.PRESETS`), checked when a scoring command runs."""
    from memtasks.detection import PRESETS

    if value not in PRESETS:
        raise argparse.ArgumentTypeError(f"invalid preset {value!r} (choose from {', '.join(PRESETS)}){suggestion(value, PRESETS)}")
    return value


def task_files(values: Sequence[str], tasks: Sequence[str], flag: str) -> dict[str, str]:
    """``TASK=PATH`` pairs as a mapping; a bare ``PATH`` belongs to the only task of a run."""
    files = {}
    for value in values:
        task, sep, path = value.rpartition("=")
        if not sep:
            if len(tasks) != 1:
                raise ValueError(f"{flag} {value}: with several tasks, write TASK=PATH")
            task = tasks[0]
        files[task] = path
    return files

