"""Fine-tuning recipes on tiny local models: training, LoRA, mixtures, resuming, refusals."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest
import torch
import transformers

from memtasks.finetune import FinetuneConfig, FinetuneError, Runtime, finetune, mix, read_summary, task_examples
from memtasks.finetune.data import Example
from memtasks.finetune.quality import quality_scores
from memtasks.tasks import task_spec
from memtasks.tiny import build_tiny_model, torch_threads, train_tokenizer

DEMO_DATA = Path(str(resources.files("memtasks") / "demo_data"))
RUNTIME = Runtime(device="cpu", progress=False, save_steps=2, eval_batch_size=8)


@pytest.fixture(autouse=True)
def one_thread():
    with torch_threads(1):
        yield


def _records(name: str, n: int) -> list[dict]:
    lines = (DEMO_DATA / name).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines[:n]]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("data")
    files = {}
    for name, n in (("xsum_train.jsonl", 16), ("xsum_heldout.jsonl", 4), ("imdb_train.jsonl", 8), ("imdb_heldout.jsonl", 4)):
        files[name] = root / name
        files[name].write_text("".join(json.dumps(r) + "\n" for r in _records(name, n)), encoding="utf-8")
    return files


@pytest.fixture(scope="module")
def models(tmp_path_factory, data) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    texts = [value for path in data.values() for r in _records(path.name, 16) for value in r.values() if isinstance(value, str)]
    tokenizer = train_tokenizer(texts, vocab_size=800)
    return {kind: build_tiny_model(kind, tokenizer, root / kind) for kind in ("seq2seq", "decoder")}


def _config(models, data, kind="seq2seq", **overrides) -> FinetuneConfig:
    options = dict(
        tasks=("mem_xsum",),
        model=str(models[kind]),
        epochs=2,
        learning_rate=1e-2,
        batch_size=4,
        max_source_tokens=64,
        max_target_tokens=24,
        data_files={"mem_xsum": str(data["xsum_train.jsonl"])},
        eval_data_files={"mem_xsum": str(data["xsum_heldout.jsonl"])},
    )
    options.update(overrides)
    return FinetuneConfig(**options)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    model = transformers.AutoModel.from_pretrained(path) if (path / "config.json").exists() else None
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("kind", ["seq2seq", "decoder"])
@pytest.mark.parametrize("whole_sequence", [False, True])
def test_the_input_carries_loss_only_with_the_whole_sequence_option(models, kind, whole_sequence):
    from memtasks.finetune.train import _features

    tokenizer = transformers.AutoTokenizer.from_pretrained(models[kind])
    config = FinetuneConfig(tasks=("mem_xsum",), model=str(models[kind]), train_on_input=whole_sequence)
    example = Example(task="mem_xsum", source="The council approved the new bridge over the river", target="Bridge approved")
    features = _features(example, tokenizer, kind == "seq2seq", config)
    source = tokenizer(example.source, add_special_tokens=False)["input_ids"]
    output = tokenizer(example.target, add_special_tokens=False)["input_ids"]
    trained = [label for label in features["labels"] if label != -100]
    # The output is always trained on; the input's tokens only with the option.
    assert trained[-len(output) - 1 : -1] == output
    holds_source = any(trained[i : i + len(source)] == source for i in range(len(trained)))
    assert holds_source is whole_sequence
    assert config.loss == ("whole-sequence" if whole_sequence else "output-only")


def test_the_study_recipe_is_the_default_and_the_summary_says_which_loss_was_used(tmp_path, models, data):
    import warnings

    assert FinetuneConfig(tasks=("t",), model="m").train_on_input is False
    # device auto, as a study config without a device: on a machine without a GPU, no warning about pinned memory.
    runtime = Runtime(device="auto", progress=False, save_steps=2, eval_batch_size=8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = finetune(_config(models, data, kind="decoder", epochs=1), tmp_path / "model", runtime)
    assert summary["loss"] == "output-only" and read_summary(tmp_path / "model")["loss"] == "output-only"
    if not torch.cuda.is_available():
        assert not [w for w in caught if "pin_memory" in str(w.message)]


@pytest.mark.parametrize("kind", ["seq2seq", "decoder"])
def test_full_finetuning_changes_the_weights_and_lowers_the_loss(tmp_path, models, data, kind):
    out = tmp_path / "model"
    summary = finetune(_config(models, data, kind, epochs=4), out, RUNTIME)

    losses = [entry["loss"] for entry in summary["epoch_losses"]]
    assert [entry["epoch"] for entry in summary["epoch_losses"]] == [1, 2, 3, 4]
    assert losses[-1] < losses[0]
    before, after = _weights(models[kind]), _weights(out)
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert summary["complete"] and summary["examples"] == {"mem_xsum": 16}
    assert summary["examples_seen"] == 64
    assert set(summary["quality"]["mem_xsum"]) == {"rouge1", "rouge2", "rougeL", "examples"}
    assert summary["lm_eval_model_args"] == f"pretrained={out.resolve()}"
    assert read_summary(out) == summary
    assert not (out / "checkpoints").exists()


def test_lora_adapter_loads_in_lm_eval(tmp_path, models, data):
    from lm_eval.models.huggingface import HFLM

    out = tmp_path / "lora"
    summary = finetune(_config(models, data, method="lora", learning_rate=1e-2, merge=True), out, RUNTIME)
    assert (out / "adapter_config.json").exists() and not (out / "model.safetensors").exists()
    assert summary["lm_eval_model_args"] == f"pretrained={models['seq2seq'].resolve()},peft={out.resolve()}"

    model_args = dict(pair.split("=", 1) for pair in summary["lm_eval_model_args"].split(","))
    lm = HFLM(**model_args, device="cpu", batch_size=1)
    assert type(lm.model).__name__ == "PeftModelForSeq2SeqLM"
    adapted = [name for name, _ in lm.model.named_parameters() if "lora_" in name]
    assert adapted and all(".q." in name or ".v." in name for name in adapted)
    # The merged copy is a plain model with the adapter folded in.
    assert (out / "merged" / "config.json").exists()
    merged = HFLM(pretrained=str(out / "merged"), device="cpu", batch_size=1)
    assert type(merged.model).__name__ == "T5ForConditionalGeneration"


def test_mixtures_have_the_proportions_asked_for():
    per_task = {
        "a": [Example("a", f"a{i}", "x") for i in range(30)],
        "b": [Example("b", f"b{i}", "y") for i in range(10)],
    }
    proportional = mix(per_task, "proportional")
    assert [e.task for e in proportional].count("a") == 30 and len(proportional) == 40
    equal = mix(per_task, "equal", seed=7)
    assert [e.task for e in equal].count("a") == 10 and [e.task for e in equal].count("b") == 10
    assert len({e.source for e in equal}) == 20
    assert mix(per_task, "equal", seed=7) == equal
    with pytest.raises(ValueError, match="mixing"):
        mix(per_task, "temperature")


def test_multi_task_run_records_each_tasks_share(tmp_path, models, data):
    config = _config(
        models,
        data,
        tasks=("mem_xsum", "mem_imdb"),
        epochs=1,
        mixing="equal",
        data_files={"mem_xsum": str(data["xsum_train.jsonl"]), "mem_imdb": str(data["imdb_train.jsonl"])},
        eval_data_files={"mem_imdb": str(data["imdb_heldout.jsonl"])},
    )
    summary = finetune(config, tmp_path / "multi", RUNTIME)
    assert summary["examples"] == {"mem_xsum": 8, "mem_imdb": 8}
    assert set(summary["quality"]["mem_imdb"]) == {"accuracy", "examples"}
    assert "not_measured" in summary["quality"]["mem_xsum"]


def test_an_interrupted_run_resumes_where_it_stopped(tmp_path, models, data, monkeypatch):
    config = _config(models, data, epochs=2)
    uninterrupted = finetune(config, tmp_path / "straight", RUNTIME)

    original = transformers.Trainer.training_step
    calls = {"n": 0}

    def crash_at_step_five(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(transformers.Trainer, "training_step", crash_at_step_five)
    with pytest.raises(KeyboardInterrupt):
        finetune(config, tmp_path / "resumed", RUNTIME)
    stopped = read_summary(tmp_path / "resumed")
    assert not stopped["complete"]
    assert stopped["stopped"] == {"reason": "interrupted", "stage": "training", "resume_from_step": 4}
    monkeypatch.setattr(transformers.Trainer, "training_step", original)

    resumed = finetune(config, tmp_path / "resumed", RUNTIME)
    assert resumed["resumed_from_step"] == 4 and "stopped" not in resumed
    assert resumed["steps"] == uninterrupted["steps"] == 8
    # The losses cover the whole run, the steps before the interruption included, and say so.
    assert resumed["loss_steps"] == uninterrupted["loss_steps"] == [1, 8]
    assert [e["steps"] for e in resumed["epoch_losses"]] == [[1, 4], [5, 8]]
    assert [e["loss"] for e in resumed["epoch_losses"]] == pytest.approx([e["loss"] for e in uninterrupted["epoch_losses"]], abs=1e-5)
    assert resumed["train_loss"] == pytest.approx(uninterrupted["train_loss"], abs=1e-5)
    straight, again = _weights(tmp_path / "straight"), _weights(tmp_path / "resumed")
    assert all(torch.allclose(straight[k], again[k], atol=1e-5) for k in straight)
    # Finished: running it again trains nothing and returns the same summary.
    assert finetune(config, tmp_path / "resumed", RUNTIME) == resumed


def test_epoch_checkpoints_load_like_the_final_model(tmp_path, models, data):
    out = tmp_path / "epochs"
    finetune(_config(models, data, epochs=2, save_epochs=True), out, RUNTIME)
    for epoch in (1, 2):
        summary = read_summary(out / f"epoch-{epoch}")
        assert summary["epochs"] == epoch
        assert summary["lm_eval_model_args"] == f"pretrained={(out / f'epoch-{epoch}').resolve()}"
    assert torch.equal(_weights(out / "epoch-2")["shared.weight"], _weights(out)["shared.weight"])


def test_refusals_come_before_any_training(tmp_path, models, data):
    with pytest.raises(ValueError, match="unknown task 'mem_nope'"):
        finetune(_config(models, data, tasks=("mem_nope",), data_files={}, eval_data_files={}), tmp_path / "a", RUNTIME)
    with pytest.raises(FinetuneError, match="does not exist"):
        finetune(_config(models, data, model=str(tmp_path / "no-such-model")), tmp_path / "b", RUNTIME)

    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "mem_plain.yaml").write_text(
        "include: " + str(Path(task_spec("mem_xsum").yaml_path).parent / "_mem_default.yaml") + "\n"
        "task: mem_plain\nmetadata:\n  version: 1.0\n  input_field: document\n",
        encoding="utf-8",
    )
    plain = _config(models, data, tasks=("mem_plain",), data_files={}, eval_data_files={})
    with pytest.raises(ValueError, match=r"mem_plain .* has no fine-tuning fields: add instruction, output_field"):
        finetune(plain, tmp_path / "c", Runtime(device="cpu", include_path=(str(tasks),)))

    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "notes.txt").write_text("mine")
    with pytest.raises(FinetuneError, match="holds no memtasks run"):
        finetune(_config(models, data), occupied, RUNTIME)
    assert (occupied / "notes.txt").read_text() == "mine"

    out = tmp_path / "trained"
    finetune(_config(models, data, epochs=1), out, RUNTIME)
    trained = _weights(out)
    with pytest.raises(FinetuneError, match="holds another run .*epochs"):
        finetune(_config(models, data, epochs=3), out, RUNTIME)
    assert all(torch.equal(trained[k], v) for k, v in _weights(out).items())
    assert finetune(_config(models, data, epochs=3), out, RUNTIME, overwrite=True)["epochs"] == 3


def test_label_ids_train_on_label_names():
    spec = task_spec("mem_imdb")
    from memtasks.tasks import FineTuningFormat

    fmt = FineTuningFormat.from_spec(spec)
    assert fmt.target({"text": "great", "label": 1}) == "positive"
    assert fmt.source({"text": "great", "label": 1}).endswith("\n\ngreat")
    with pytest.raises(ValueError, match="record 3: field 'label' = 7 has no name"):
        fmt.target({"text": "x", "label": 7}, "reviews.jsonl: record 3")


def test_task_examples_name_the_bad_record(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"document": "a b c", "summary": "s"}) + "\n" + json.dumps({"document": "d e f"}) + "\n")
    # Named by its line, and by the fields it has: datasets gives it the column "summary", null.
    with pytest.raises(ValueError, match=r"bad.jsonl:2: field 'summary' is missing \(the record has document\)$"):
        task_examples(task_spec("mem_xsum"), data_files=str(bad))


def test_the_held_out_slice_the_probes_use_as_non_members_is_never_trained_on(tmp_path):
    from memtasks.harness.hooks import load_probes
    from memtasks.tasks import holdout_fraction

    path = tmp_path / "train.jsonl"
    records = [{"document": f"Article {i}: " + " ".join(f"w{i}x{j}" for j in range(80)), "summary": f"s{i}"} for i in range(40)]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    spec = task_spec("mem_xsum")
    trained = {example.target for example in task_examples(spec, data_files=str(path))}
    probes = load_probes(data_files=str(path), input_field="document", n_probes=None)["test"]
    nonmembers = {int(row["id"].removeprefix("nonmember/")) for row in probes if not row["member"]}
    members = {int(row["id"]) for row in probes if row["member"]}
    assert nonmembers and members and not nonmembers & members
    assert trained == {f"s{i}" for i in members}
    # Non-members of their own: the whole split is trained on.
    assert holdout_fraction({**spec.metadata, "nonmember_split": "validation"}) == 0.0


def test_quality_scores():
    assert quality_scores("accuracy", ["Positive.", "negative"], [["positive"], ["positive"]]) == {"accuracy": 0.5}
    assert quality_scores("exact_match", ["the Eiffel Tower"], [["Louvre", "Eiffel Tower"]]) == {"exact_match": 1.0}
    rouge = quality_scores("rouge", ["a cat sat on the mat"], [["a cat sat on the mat"]])
    assert rouge["rouge1"] == pytest.approx(1.0) and rouge["rougeL"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="unknown quality metric"):
        quality_scores("perplexity", ["a"], [["a"]])


def test_a_model_too_large_for_the_memory_left_is_refused_with_hints(tmp_path, models, data, monkeypatch):
    from memtasks.finetune import memory

    monkeypatch.setattr(memory, "available_memory", lambda device: (1024, "free GPU memory"))
    with pytest.raises(FinetuneError, match=r"GiB of free GPU memory is left: try --method lora"):
        finetune(_config(models, data), tmp_path / "big", RUNTIME)
    assert read_summary(tmp_path / "big") is None


def test_a_model_that_looks_local_never_reaches_the_hub(tmp_path, data, monkeypatch):
    asked = []
    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", lambda name, **kwargs: asked.append(name) or 1 / 0)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    local = ["models/no-such-dir", "./no-such-dir", "~/no-such-dir", "a/b/c", str(tmp_path / "none")]
    for model in local:
        with pytest.raises(FinetuneError, match=f"model {model} does not exist"):
            finetune(_config({"seq2seq": model}, data), tmp_path / "out", RUNTIME)
    assert asked == [] and sorted(p.name for p in tmp_path.iterdir()) == ["models"]
    # "owner/name" with no folder "owner" here is a Hugging Face id: the hub is asked (offline in tests), once.
    with pytest.raises(ZeroDivisionError):
        finetune(_config({"seq2seq": "no-such-owner/model"}, data), tmp_path / "out", RUNTIME)
    assert asked == ["no-such-owner/model"] and not (tmp_path / "out").exists()


def test_cli_refusal_is_one_line(tmp_path, models, capsys):
    from memtasks.cli import main

    code = main(["finetune", "--task", "mem_xsum", "--model", str(tmp_path / "missing"), "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err == [f"memtasks finetune: error: model {tmp_path / 'missing'} does not exist (a local model is a directory saved by save_pretrained)"]


def _llama_135m():
    """SmolLM2-135M's architecture, built on the meta device (no memory, no download)."""
    config = transformers.LlamaConfig(
        hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
        num_key_value_heads=3, vocab_size=49152, tie_word_embeddings=True,
    )
    with torch.device("meta"):
        return transformers.LlamaForCausalLM(config)


def test_the_memory_estimate_counts_activations_and_logits():
    from memtasks.finetune.memory import estimate_training_memory

    model = _llama_135m()
    parameters = model.num_parameters()
    full = estimate_training_memory(model.config, parameters, parameters, batch_size=8, decoder_tokens=512)
    # Measured on a 2-core CPU machine, full fine-tuning of SmolLM2-135M at these settings peaks near 11 GB,
    # of which weights and AdamW state are only 2.
    assert 6 * 2**30 < full.total < 16 * 2**30
    assert full.state == 16 * parameters and full.activations > 2 * full.state
    half = estimate_training_memory(model.config, parameters, parameters, batch_size=4, decoder_tokens=512)
    assert (2 * half.activations, 2 * half.logits, half.state) == (full.activations, full.logits, full.state)
    # LoRA saves the optimizer state, not the activations: every layer is still back-propagated through.
    lora = estimate_training_memory(model.config, parameters, 460_800, batch_size=8, decoder_tokens=512)
    assert lora.state < full.state / 3 and lora.activations == full.activations
    assert estimate_training_memory(model.config, parameters, parameters, 8, 512, mixed_precision=True).activations == full.activations // 2


def test_a_refused_run_leaves_nothing_behind(tmp_path, models, data, monkeypatch):
    from memtasks.finetune import memory

    monkeypatch.setattr(memory, "available_memory", lambda device: (1024, "available RAM"))
    with pytest.raises(FinetuneError, match=r"needs about [\d.]+ GiB \(weights and optimizer state [\d.]+, activations [\d.]+, logits [\d.]+\)"):
        finetune(_config(models, data, "decoder"), tmp_path / "new", RUNTIME)
    assert not (tmp_path / "new").exists()
    # --overwrite clears the folder only once the run has passed its checks.
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")
    with pytest.raises(FinetuneError, match="try --method lora"):
        finetune(_config(models, data, "decoder"), kept, RUNTIME, overwrite=True)
    assert [f.name for f in kept.iterdir()] == ["notes.txt"]


@pytest.mark.slow
def test_smollm2_at_the_default_batch_is_refused_when_ram_is_short_with_a_batch_that_fits(tmp_path, smollm2_dir, data, monkeypatch):
    from memtasks.finetune import memory

    config = FinetuneConfig(tasks=("mem_xsum",), model=str(smollm2_dir), data_files={"mem_xsum": str(data["xsum_train.jsonl"])})
    monkeypatch.setattr(memory, "available_memory", lambda device: (6 * 2**30, "available RAM"))
    out = tmp_path / "smollm2-xsum"
    with pytest.raises(FinetuneError) as refusal:
        finetune(config, out, RUNTIME)
    message = str(refusal.value)
    assert message.startswith(f"fine-tuning {smollm2_dir} with batches of 8 examples of up to ")
    assert "weights and optimizer state 2.0," in message
    assert "), 6.0 GiB of available RAM is left: try --batch-size " in message
    suggested = int(message.split("--batch-size ")[1].split()[0])
    accumulation = int(message.split("--grad-accum ")[1].split()[0])
    assert 1 <= suggested < 8 and suggested * accumulation >= 8
    assert not out.exists()
    # Shorter inputs when even one example per batch is too much, then LoRA.
    monkeypatch.setattr(memory, "available_memory", lambda device: (int(2.5 * 2**30), "available RAM"))
    with pytest.raises(FinetuneError, match=r"try --batch-size 1 --grad-accum 8 with --max-source-tokens \d+ and --max-target-tokens \d+$"):
        finetune(config, out, RUNTIME)
    monkeypatch.setattr(memory, "available_memory", lambda device: (2**30, "available RAM"))
    with pytest.raises(FinetuneError, match=r"try --method lora \(only the adapter is trained\) or a device with more memory$"):
        finetune(config, out, RUNTIME)
    assert not out.exists()


def test_losses_by_epoch_are_the_means_of_each_steps_logged_loss_and_name_their_steps():
    from memtasks.finetune.train import step_losses

    # Steps 1-6 with loss equal to the step, 3 steps an epoch; the Trainer's closing log has no "loss".
    history = [{"loss": float(step), "step": step, "epoch": step / 3} for step in range(1, 7)]
    history.append({"train_loss": 3.5, "train_runtime": 1.0, "step": 6})
    assert step_losses(history, steps_per_epoch=3) == {
        "epoch_losses": [{"epoch": 1, "loss": 2.0, "steps": [1, 3]}, {"epoch": 2, "loss": 5.0, "steps": [4, 6]}],
        "train_loss": 3.5,
        "loss_steps": [1, 6],
    }


def _cli_argv(models, data, out: Path, *extra: str, model: Path | None = None) -> list[str]:
    return [
        "finetune", "--task", "mem_xsum", "--model", str(model or models["decoder"]), "--output", str(out),
        "--epochs", "2", "--batch-size", "4", "--learning-rate", "0.01", "--max-source-tokens", "64",
        "--max-target-tokens", "24", "--device", "cpu", "--save-steps", "2",
        "--data-files", str(data["xsum_train.jsonl"]), "--eval-data-files", str(data["xsum_heldout.jsonl"]), *extra,
    ]


def test_a_fine_tune_shows_one_bar_one_summary_line_and_no_warnings(tmp_path, models, data, capfd):
    import re
    import shutil
    import warnings

    from memtasks.cli import main

    # A GPT-2 with LoRA, whose tokenizer has no pad token: each of these used to bring a warning.
    model = tmp_path / "no-pad"
    shutil.copytree(models["decoder"], model)
    tokenizer = transformers.AutoTokenizer.from_pretrained(model)
    tokenizer.pad_token = None
    tokenizer.save_pretrained(model)
    out = tmp_path / "out"
    capfd.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(_cli_argv(models, data, out, "--method", "lora", model=model)) == 0
    stdout, stderr = capfd.readouterr()

    assert [f"{w.category.__name__}: {w.message}" for w in caught] == []
    lines = stdout.splitlines()
    assert len(lines) == 2 and "{'loss'" not in stdout
    assert lines[0].startswith(f"{out}: lora fine-tuning of {model} on mem_xsum, output-only loss; 2 epochs (8 steps, 32 examples) in ")
    assert re.search(r"; loss by epoch \d+\.\d{4} \d+\.\d{4}; held-out mem_xsum: rouge1 ", lines[0])
    assert lines[1] == f"load it in lm-eval with --model hf --model_args pretrained={model},peft={out.resolve()}"
    # stderr holds the frames of the training bar and of the held-out generations' bar, nothing else.
    frames = [frame.strip() for frame in re.split(r"[\r\n]", stderr) if frame.strip()]
    assert frames and all(frame.startswith(("fine-tuning", "held-out")) for frame in frames), frames
    assert re.search(r"fine-tuning, epoch 2/2: 100%.* 8/8 .*loss=\d+\.\d{4}\]", stderr)
    assert read_summary(out)["complete"]


def test_refusals_come_before_torch_is_imported(tmp_path, models, data):
    import subprocess
    import sys

    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "notes.txt").write_text("mine")
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    missing = tmp_path / "missing.jsonl"
    cases = [
        (["--model", str(tmp_path / "no-model")], f"model {tmp_path / 'no-model'} does not exist (a local model is a directory saved by save_pretrained)"),
        (["--data-files", str(missing)], f"training data file of mem_xsum: {missing} does not exist"),
        (["--eval-data-files", str(missing)], f"held-out data file of mem_xsum: {missing} does not exist"),
        (["--output", str(a_file / "out")], f"{a_file / 'out'}: cannot be made: {a_file} is a file, not a folder"),
        (["--output", str(occupied)], f"{occupied} is not empty and holds no memtasks run: choose a new output directory or pass --overwrite"),
    ]
    # Later options take the place of the earlier ones of the same name.
    argvs = [_cli_argv(models, data, tmp_path / "out", *change) for change, _ in cases]
    code = (
        "import contextlib, io, json, sys\nfrom memtasks.cli import main\nanswers = []\n"
        f"for argv in {argvs!r}:\n"
        "    err = io.StringIO()\n"
        "    with contextlib.redirect_stderr(err):\n"
        "        answers.append([main(argv), err.getvalue()])\n"
        "heavy = [m for m in ('torch', 'transformers', 'datasets', 'lm_eval') if m in sys.modules]\n"
        "print(json.dumps([answers, heavy]))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    answers, heavy = json.loads(done.stdout.splitlines()[-1])
    assert answers == [[2, f"memtasks finetune: error: {message}\n"] for _, message in cases]
    assert heavy == []
    assert not (tmp_path / "out").exists() and [p.name for p in occupied.iterdir()] == ["notes.txt"]


def test_a_misspelled_task_is_refused_with_the_nearest_task(tmp_path, models, data):
    with pytest.raises(FinetuneError, match=r"^unknown task 'mem_xsun'; did you mean mem_xsum\?$"):
        finetune(_config(models, data, tasks=("mem_xsun",), data_files={}, eval_data_files={}), tmp_path / "out", RUNTIME)
    # A group is not suggested: it cannot be fine-tuned on.
    with pytest.raises(ValueError, match=r"^unknown task 'mem_papr' \(memorization tasks: "):
        finetune(_config(models, data, tasks=("mem_papr",), data_files={}, eval_data_files={}), tmp_path / "out", RUNTIME)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "error",
    [
        torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
        MemoryError(),
        RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: you tried to allocate 4096 bytes"),
    ],
    ids=["cuda", "python", "torch-cpu"],
)
def test_running_out_of_memory_while_training_is_one_line_with_what_to_change(tmp_path, models, data, capsys, monkeypatch, error):
    from memtasks.cli import main

    original = transformers.Trainer.training_step
    calls = {"n": 0}

    def out_of_memory_at_step_three(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise error
        return original(self, *args, **kwargs)

    monkeypatch.setattr(transformers.Trainer, "training_step", out_of_memory_at_step_three)
    out = tmp_path / "out"
    assert main(_cli_argv(models, data, out, "--json")) == 2
    stdout, stderr = capsys.readouterr()
    assert stdout == ""
    assert stderr.splitlines() == [
        f"memtasks finetune: error: out of memory while training {models['decoder']} with batches of 4: "
        "start again with --overwrite and --batch-size 2 --grad-accum 2 (the same effective batch) or --method lora"
    ]
    summary = read_summary(out)
    assert not summary["complete"] and summary["stopped"] == {"reason": "out of memory", "stage": "training", "resume_from_step": 2}


def test_running_out_of_memory_in_the_held_out_generations_keeps_the_trained_model(tmp_path, models, data, capsys, monkeypatch):
    from memtasks.cli import main
    from memtasks.finetune import train

    generate = train.generate

    def out_of_memory_at_batches_of_more_than_two(model, tokenizer, encoder_decoder, sources, config, runtime):
        if runtime.eval_batch_size > 2:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return generate(model, tokenizer, encoder_decoder, sources, config, runtime)

    monkeypatch.setattr(train, "generate", out_of_memory_at_batches_of_more_than_two)
    out = tmp_path / "out"
    assert main(_cli_argv(models, data, out, "--json", "--eval-batch-size", "4")) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"memtasks finetune: error: out of memory while generating held-out outputs of the fine-tuned {models['decoder']} "
        "in batches of 4: run the same command with --eval-batch-size 2 (the trained model is kept)"
    ]
    assert read_summary(out)["stopped"] == {"reason": "out of memory", "stage": "held-out generation", "resume_from_step": 8}

    # As the advice says: the run resumes after its last step, trains nothing more and measures its quality.
    assert main(_cli_argv(models, data, out, "--json", "--eval-batch-size", "2")) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["complete"] and summary["resumed_from_step"] == 8 and summary["loss_steps"] == [1, 8]
    assert summary["quality"]["mem_xsum"]["examples"] == 4
    assert not (out / "checkpoints").exists()


def test_ctrl_c_stops_fine_tuning_and_leaves_its_folder_marked_unfinished(tmp_path, models, data):
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "out"
    argv = _cli_argv(models, data, out, "--epochs", "1000")
    script = Path(sys.executable).parent / "memtasks"
    process = subprocess.Popen([str(script), *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 120
        while not list((out / "checkpoints").glob("checkpoint-*/trainer_state.json")):
            assert process.poll() is None and time.monotonic() < deadline, process.stderr.read() if process.poll() is not None else "no checkpoint in 120 s"
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        # 1000 epochs take minutes: an interrupt that is not honoured at once ends in a timeout here.
        stdout, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 130 and stdout == "" and "Traceback" not in stderr
    summary = read_summary(out)
    assert summary["complete"] is False and summary["stopped"]["reason"] == "interrupted"
    assert summary["stopped"]["stage"] == "training" and summary["stopped"]["resume_from_step"] >= 2
    assert stderr.splitlines()[-1] == (
        f"memtasks finetune: interrupted: {out} holds an unfinished run (complete: false); "
        f"the same command resumes it from step {summary['stopped']['resume_from_step']}"
    )


def test_full_fine_tuning_of_a_135m_model_at_batch_8_by_512_is_refused_with_less_memory_than_it_needs(monkeypatch):
    """The defaults that were killed by the kernel near 11 GB: refused before training, with a change that fits."""
    from memtasks.finetune import memory

    model = _llama_135m()
    features = [{"input_ids": [1] * 512, "labels": [1] * 512}] * 8
    config = FinetuneConfig(tasks=("mem_xsum",), model="HuggingFaceTB/SmolLM2-135M-Instruct")
    monkeypatch.setattr(memory, "available_memory", lambda device: (6 * 2**30, "free RAM"))
    with pytest.raises(FinetuneError, match=r"needs about .* 6\.0 GiB of free RAM is left: try --batch-size \d --grad-accum \d+"):
        memory.check_memory(model, features, False, config, RUNTIME, mixed_precision=False)
    monkeypatch.setattr(memory, "available_memory", lambda device: (64 * 2**30, "free RAM"))
    memory.check_memory(model, features, False, config, RUNTIME, mixed_precision=False)
