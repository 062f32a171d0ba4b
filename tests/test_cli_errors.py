"""Every refusal of the command line: one line, exit code 2,
a suggestion for a near-miss name, no traceback, and nothing left behind."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from memtasks.cli import error_line, main
from memtasks.cli.evaluate import DEFAULT_BATCH_SIZE, check_task_names, lm_eval_arguments

CONSOLE_SCRIPT = Path(sys.executable).parent / "memtasks"


def run_main(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_error(err: str, command: str) -> str:
    """The one line a usage mistake writes to stderr, signed by ``command`` (no usage before it)."""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"memtasks {command}: error: ".replace("memtasks : ", "memtasks: ")), lines[0]
    return lines[0]


# --------------------------------------------------------------------------- usage mistakes


def test_an_unknown_flag_is_one_line_naming_the_nearest_flag(capsys, tmp_path):
    code, out, err = run_main(capsys, "score", "--kk", "5", "probes.jsonl")
    assert code == 2 and out == ""
    assert one_error(err, "score").endswith("unrecognized arguments: --kk probes.jsonl; did you mean --k?")
    code, _, err = run_main(capsys, "finetune", "--task", "mem_xsum", "--model", "m", "--output", "o", "--batch_size=4")
    assert code == 2
    assert one_error(err, "finetune").endswith("did you mean --batch-size?")
    # Not read as an abbreviation of --overwrite: a typo is refused, whatever it resembles.
    code, _, err = run_main(capsys, "models", "get", "smollm2-135m", tmp_path / "model", "--overwrit")
    assert code == 2 and not (tmp_path / "model").exists()
    assert one_error(err, "models get").endswith("did you mean --overwrite?")


def test_an_unknown_command_or_choice_gets_the_nearest_name(capsys):
    code, _, err = run_main(capsys, "scor", "probes.jsonl")
    assert code == 2
    assert one_error(err, "").endswith("did you mean score?")
    code, _, err = run_main(capsys, "finetune", "--task", "t", "--model", "m", "--output", "o", "--method", "lorra")
    assert code == 2
    assert one_error(err, "finetune").endswith("invalid choice: 'lorra' (choose from full, lora); did you mean lora?")


def test_no_command_is_a_usage_error(capsys):
    code, _, err = run_main(capsys)
    assert code == 2 and one_error(err, "") == "memtasks: error: the following arguments are required: COMMAND"


def test_a_misspelled_flag_of_score_is_exactly_one_line(capsys):
    code, out, err = run_main(capsys, "score", "tests/data/example_probes.jsonl", "--jsn")
    assert code == 2 and out == ""
    assert err == "memtasks score: error: unrecognized arguments: --jsn; did you mean --json?\n"


def test_version_prints_the_installed_version(capsys):
    from importlib.metadata import version

    code, out, err = run_main(capsys, "--version")
    assert code == 0 and out == f"memtasks {version('memtasks')}\n" and err == ""


@pytest.mark.parametrize(
    ("given", "nearest"),
    [("--output-path", "--output_path"), ("--num-fewshot", "--num_fewshot"), ("--limt", "--limit"), ("--redcat", "--redact")],
)
def test_eval_names_the_nearest_lm_eval_flag_in_one_line_signed_memtasks(capsys, monkeypatch, given, nearest):
    import lm_eval.api.registry

    monkeypatch.setattr(lm_eval.api.registry, "get_model", lambda name: pytest.fail("a model was loaded"))
    code, out, err = run_main(capsys, "eval", "--model", "hf", "--tasks", "mem_xsum", given, "x")
    assert code == 2 and out == ""
    assert one_error(err, "eval") == f"memtasks eval: error: unrecognized arguments: {given} x; did you mean {nearest}?"


def test_eval_without_tasks_is_one_line_and_exits_2(capsys):
    code, out, err = run_main(capsys, "eval")
    assert code == 2 and out == ""
    assert "name the tasks with --tasks" in one_error(err, "eval")
    code, _, err = run_main(capsys, "eval", "--model", "hf", "--model_args", "pretrained=x")
    assert code == 2 and "name the tasks with --tasks" in err


def test_console_script_usage_error_has_no_traceback():
    done = subprocess.run([CONSOLE_SCRIPT, "eval"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == "" and "Traceback" not in done.stderr


# --------------------------------------------------------------------------- eval: task names and batch size


def test_a_misspelled_memtasks_task_is_refused_with_the_nearest_name_before_lm_evals_index(capsys, monkeypatch, tmp_path):
    from lm_eval.tasks.manager import TaskManager

    original = TaskManager.__init__

    def no_full_index(self, *args, include_defaults=True, **kwargs):
        # lm-eval's own index of 14,683 tasks takes about 20 s to build; the refusal must not need it.
        assert not include_defaults, "lm-eval's whole task index was built"
        original(self, *args, include_defaults=include_defaults, **kwargs)

    monkeypatch.setattr(TaskManager, "__init__", no_full_index)
    output = tmp_path / "results"
    code, out, err = run_main(capsys, "eval", "--model", "hf", "--tasks", "mem_xsun", "--output_path", output)
    assert code == 2 and out == ""
    assert err.strip().splitlines() == ["memtasks eval: error: unknown task 'mem_xsun'; did you mean mem_xsum?"]
    assert not output.exists()
    code, _, err = run_main(capsys, "eval", "-t", "mem_xsum,mem_paperz")
    assert code == 2 and "did you mean mem_paper?" in err
    code, _, err = run_main(capsys, "eval", "--tasks", "mem_zzzzzzzzzzzz")
    assert code == 2 and "(memtasks' tasks and groups: mem_adversarial_qa," in err and "mem_imdb_prefix10" not in err


def test_task_names_memtasks_does_not_own_are_left_to_lm_eval(tmp_path):
    check_task_names(["hellaswag", "arc_easy", "not_a_task_at_all"])
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "mem_mine.yaml").write_text("task: mem_mine\ndataset_path: json\noutput_type: generate_until\n", encoding="utf-8")
    check_task_names(["mem_mine"], [str(folder)])
    with pytest.raises(ValueError, match="unknown task 'mem_mine'"):
        check_task_names(["mem_mine"])


def lm_eval_args(*argv: str) -> list[str]:
    parser = argparse.ArgumentParser(prog="memtasks eval")
    return lm_eval_arguments(list(argv), parser)[0]


def test_a_local_model_without_a_batch_size_gets_the_default(tmp_path, monkeypatch):
    # Away from the checkout: the README's quick start makes a models/ folder there, beside
    # which models/tiny-decoder is a local model that does not exist, and is refused.
    monkeypatch.chdir(tmp_path)
    base = ["--model", "hf", "--model_args", "pretrained=models/tiny-decoder", "--tasks", "mem_xsum"]
    arguments, notes = lm_eval_arguments(base, argparse.ArgumentParser(prog="memtasks eval"))
    assert arguments == [*base, "--batch_size", str(DEFAULT_BATCH_SIZE)]
    assert notes == [f"memtasks eval: --batch_size {DEFAULT_BATCH_SIZE} (pass --batch_size to choose another)"]
    assert lm_eval_args("--tasks", "mem_xsum") == ["--tasks", "mem_xsum", "--batch_size", str(DEFAULT_BATCH_SIZE)]
    for given in (["--batch_size", "4"], ["--batch_size=auto"], ["-b", "2"]):
        assert lm_eval_args(*base, *given) == [*base, *given]
    ours = ["--model", "memtasks-hf", "--tasks", "mem_xsum"]
    assert lm_eval_args(*ours) == [*ours, "--batch_size", str(DEFAULT_BATCH_SIZE)]
    other = ["--model", "vllm", "--tasks", "mem_xsum"]
    assert lm_eval_args(*other) == other
    # lm-eval's own subcommands and a config file pass through as written.
    assert lm_eval_args("ls", "tasks") == ["ls", "tasks"]
    assert lm_eval_args("--config", "run.yaml") == ["--config", "run.yaml"]


@pytest.mark.parametrize(
    "refused, reason",
    [
        (["--redact", "--use_cache", "cache"], "--redact: --use_cache stores every generation in clear"),
        (["--apply_chat_template"], "--apply_chat_template would wrap each probe's bare training prefix"),
        (["--metadata", '{"data_files": "nowhere.jsonl"}'], "--metadata data_files: nowhere.jsonl does not exist"),
    ],
    ids=["redact", "chat-template", "data-file"],
)
def test_an_eval_refused_without_a_batch_size_is_one_line_and_no_batch_size_note(capsys, tmp_path, monkeypatch, refused, reason):
    # The note on the default batch size is for a run that starts, not for one that is refused.
    monkeypatch.chdir(tmp_path)
    code, out, err = run_main(capsys, "eval", "--tasks", "mem_xsum", *refused)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"memtasks eval: error: {reason}"), lines


def test_the_eval_help_states_the_default_batch_size(capsys):
    assert main(["eval", "--help"]) == 0
    assert f"--batch_size {DEFAULT_BATCH_SIZE}" in " ".join(capsys.readouterr().out.split())


# --------------------------------------------------------------------------- missing and bad files


def test_study_with_a_missing_config_names_the_file(capsys, tmp_path):
    missing = tmp_path / "missing.yaml"
    code, out, err = run_main(capsys, "study", missing)
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [f"memtasks study: error: {missing}: no such file or directory"]


def test_study_with_bad_yaml_is_one_line(capsys, tmp_path):
    config = tmp_path / "study.yaml"
    config.write_text("name: x\nmodels: [\n  - {name: a\n", encoding="utf-8")
    code, _, err = run_main(capsys, "study", config)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and f"{config}: not valid YAML" in err


def test_tiny_models_with_a_missing_text_names_the_file_and_writes_nothing(capsys, tmp_path):
    missing = tmp_path / "nowhere" / "texts.jsonl"
    out_dir = tmp_path / "models"
    code, out, err = run_main(capsys, "tiny-models", out_dir, "--text", missing)
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [f"memtasks tiny-models: error: {missing}: no such file or directory"]
    assert "Errno" not in err and not out_dir.exists()


def test_errors_are_one_line():
    assert error_line(FileNotFoundError(2, "No such file or directory", "x.yaml")) == "x.yaml: no such file or directory"
    assert error_line(PermissionError(13, "Permission denied", "/root/out")) == "/root/out: permission denied"
    assert error_line(ValueError("first\n  second")) == "first second"
    assert error_line(OSError("disk full")) == "disk full"


# --------------------------------------------------------------------------- finetune


def test_finetune_of_a_missing_local_model_is_refused_at_once_and_leaves_nothing(capsys, tmp_path, monkeypatch):
    import datasets
    import transformers

    def no_hub(*args, **kwargs):
        raise AssertionError("the hub or a dataset was asked for a model that is a missing local folder")

    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", no_hub)
    monkeypatch.setattr(datasets, "load_dataset", no_hub)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    code, out, err = run_main(capsys, "finetune", "--task", "mem_xsum", "--model", "models/no-such-dir", "--output", "out")
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [
        "memtasks finetune: error: model models/no-such-dir does not exist (a local model is a directory saved by save_pretrained)"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models"]


def test_a_refused_run_exits_2_through_the_console_script(tmp_path):
    (tmp_path / "models").mkdir()
    done = subprocess.run(
        [CONSOLE_SCRIPT, "finetune", "--task", "mem_xsum", "--model", "./models/none", "--output", "out"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        "memtasks finetune: error: model ./models/none does not exist (a local model is a directory saved by save_pretrained)"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models"]


def test_interrupt_exits_130(capsys, monkeypatch):
    from memtasks.cli import task_path

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(task_path, "run", interrupted)
    code, _, err = run_main(capsys, "task-path")
    assert code == 130 and err.strip() == "memtasks task-path: interrupted"


def test_json_metadata_of_attention_is_checked_on_the_command_line(capsys):
    code, _, err = run_main(capsys, "attention", "--model_args", "pretrained=x", "--tasks", "mem_xsum", "--metadata", json.dumps([1]))
    assert code == 2
    assert one_error(err, "attention").endswith("argument --metadata: expected a JSON object, got '[1]'")


def test_demo_resume_without_an_earlier_run_is_one_line_and_writes_nothing(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_main(capsys, "demo", "--resume", "--tiny")
    assert code == 2 and out == ""
    assert err.strip().splitlines() == ["memtasks demo: error: memtasks-demo: no earlier demo run to resume"]
    assert list(tmp_path.iterdir()) == []
