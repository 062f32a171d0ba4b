"""The command line's shape: help for every argument, one flag style per family, named validators."""

from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import fields

import pytest

from memtasks.cli import build_parser, main
from memtasks.cli import finetune as finetune_command
from memtasks.cli.options import fraction, json_object, names, positive_float, positive_int, probability, workers

# Commands that speak lm-eval's language spell their flags as lm-eval does.
LM_EVAL_FAMILY = {"eval", "attention"}


def command_parsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(command path, parser) for the top-level parser and every subparser, at any depth."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, subparser in action.choices.items():
                yield from command_parsers(subparser, (*path, name))


PARSERS = dict(command_parsers(build_parser()))


def test_every_command_is_reachable():
    assert {path[0] for path in PARSERS if path} == {
        "score", "eval", "finetune", "study", "demo", "attention", "report", "rescore", "models", "tiny-models", "task-path", "pan-eval",
    }
    assert ("models", "get") in PARSERS and ("models", "list") in PARSERS


@pytest.mark.parametrize("path", PARSERS, ids=lambda p: " ".join(p) or "memtasks")
def test_every_argument_and_command_has_help(path):
    parser = PARSERS[path]
    visible = {a.dest for a in parser._actions if a.help != argparse.SUPPRESS}
    for action in parser._actions:
        if action.help == argparse.SUPPRESS:
            # An old spelling kept working: it must set an argument the help documents.
            assert action.dest in visible, action.option_strings
            continue
        assert action.help and action.help.strip(), f"{' '.join(path)}: {action.option_strings or action.dest} has no help"
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                assert choice.help and choice.help.strip(), f"{' '.join(path)} {choice.dest} has no help"


@pytest.mark.parametrize("path", [p for p in PARSERS if p], ids=" ".join)
def test_one_flag_style_per_command_family(path):
    options = [o for o in PARSERS[path].visible_options() if o.startswith("--") and o != "--help"]
    wrong = "-" if path[0] in LM_EVAL_FAMILY else "_"
    assert not [o for o in options if wrong in o[2:]], f"{' '.join(path)} mixes flag styles: {options}"


@pytest.mark.parametrize("path", PARSERS, ids=lambda p: " ".join(p) or "memtasks")
def test_every_help_prints_and_exits_0(path, capsys):
    assert main([*path, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: memtasks {' '.join(path)}".rstrip())


def test_old_spellings_the_readme_showed_still_work_and_stay_out_of_the_help(capsys):
    parser = PARSERS[("attention",)]
    base = ["--model_args", "pretrained=x", "--tasks", "mem_xsum"]
    old = parser.parse_args([*base, "--data-files", "a.jsonl", "--max-input-tokens", "7", "--max-output-tokens", "3", "--include-instruction"])
    new = parser.parse_args([*base, "--data_files", "a.jsonl", "--max_input_tokens", "7", "--max_output_tokens", "3", "--include_instruction"])
    assert vars(old) == vars(new)
    assert vars(parser.parse_args(base))["data_files"] == []
    help_text = parser.format_help()
    assert "--data_files" in help_text and "--data-files" not in help_text


@pytest.mark.parametrize(
    "validator, good, bad, kind",
    [
        (positive_int, {"1": 1, "12": 12}, ["0", "-3", "abc", "1.5", ""], "positive integer"),
        (workers, {"1": 1, "4": 4}, ["0", "many"], "worker count"),
        (positive_float, {"1e-4": 1e-4, "2": 2.0}, ["0", "-1e-3", "inf", "nan", "fast"], "positive number"),
        (fraction, {"0": 0.0, "0.25": 0.25, "1": 1.0}, ["-0.1", "1.5", "nan", "half"], "fraction"),
        (probability, {"0": 0.0, "0.05": 0.05}, ["1", "-0.5", "x"], "probability"),
        (names, {"mem_xsum": ("mem_xsum",), "a,b": ("a", "b")}, ["", "a,,b", "a,"], "comma-separated names"),
    ],
    ids=lambda v: getattr(v, "__name__", None),
)
def test_validators_name_what_they_expected(validator, good, bad, kind):
    for text, value in good.items():
        assert validator(text) == value
    for text in bad:
        with pytest.raises(argparse.ArgumentTypeError, match=kind):
            validator(text)


def test_json_object_validator():
    assert json_object('{"a": {"b": 1}}') == {"a": {"b": 1}}
    with pytest.raises(argparse.ArgumentTypeError, match="invalid JSON"):
        json_object("{'a': 1}")
    with pytest.raises(argparse.ArgumentTypeError, match="expected a JSON object"):
        json_object("[1, 2]")


@pytest.mark.parametrize(
    "argv, flag, expected",
    [
        (["score", "x.jsonl", "--k", "abc"], "--k", "invalid positive integer value: 'abc'"),
        (["score", "x.jsonl", "--workers", "0"], "--workers", "invalid worker count (at least 1) value: '0'"),
        (["finetune", "--task", "t", "--model", "m", "--output", "o", "--epochs", "0"], "--epochs", "invalid positive integer value: '0'"),
        (["finetune", "--task", "t", "--model", "m", "--output", "o", "--warmup-ratio", "2"], "--warmup-ratio", "invalid fraction"),
        (["attention", "--model_args", "a", "--tasks", "t", "--metadata", "{x"], "--metadata", "invalid JSON"),
    ],
)
def test_a_bad_value_names_its_flag_and_the_kind_expected(capsys, argv, flag, expected):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"memtasks {argv[0]}: error: argument {flag}: {expected}" in err
    assert "_workers" not in err and "Traceback" not in err


def test_the_preset_help_names_every_preset_and_a_wrong_one_gets_a_suggestion(capsys):
    from memtasks.detection import PRESETS

    for command in ("score", "pan-eval"):
        preset = next(a for a in PARSERS[(command,)]._actions if a.dest == "preset")
        assert all(name in preset.help for name in PRESETS)
    assert main(["score", "x.jsonl", "--preset", "memorisation"]) == 2
    assert "did you mean memorization?" in capsys.readouterr().err


def test_finetune_choices_are_the_librarys():
    from memtasks.finetune import train
    from memtasks.finetune.data import MIXINGS

    assert finetune_command.METHODS == train.METHODS and finetune_command.DEVICES == train.DEVICES
    assert finetune_command.PRECISIONS == train.PRECISIONS and finetune_command.MIXINGS == MIXINGS


def test_finetune_arguments_set_every_config_and_runtime_field():
    from memtasks.finetune import FinetuneConfig, Runtime

    parser = PARSERS[("finetune",)]
    args = parser.parse_args([
        "--task", "mem_xsum,mem_imdb", "--model", "gpt2", "--output", "out", "--data-files", "mem_xsum=x.jsonl",
        "--target-modules", "q,v", "--output-only-loss", "--include-path", "a:b", "--learning-rate", "3e-4", "--json",
    ])
    config, runtime = finetune_command.configs(args)
    assert config.tasks == ("mem_xsum", "mem_imdb") and config.data_files == {"mem_xsum": "x.jsonl"}
    assert config.target_modules == ("q", "v") and config.train_on_input is False and config.learning_rate == 3e-4
    assert runtime.include_path == ("a", "b") and runtime.progress is False
    # The defaults on the command line are the library's.
    defaults = finetune_command.configs(parser.parse_args(["--task", "t", "--model", "m", "--output", "o"]))
    assert defaults == (FinetuneConfig(tasks=("t",), model="m"), Runtime())
    assert {f.name for f in fields(FinetuneConfig)} | {f.name for f in fields(Runtime)} <= set(vars(args)) | {"progress"}


def test_python_dash_m_runs_the_command():
    done = subprocess.run([sys.executable, "-m", "memtasks.cli", "task-path"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip().endswith("task_configs")


def test_counts_in_messages_are_singular_for_one():
    from memtasks.cli.options import count

    assert [count(1, "task"), count(1, "results file"), count(0, "run"), count(2, "step")] == ["1 task", "1 results file", "0 runs", "2 steps"]
