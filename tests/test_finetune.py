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
    assert not read_summary(tmp_path / "resumed")["complete"]
    monkeypatch.setattr(transformers.Trainer, "training_step", original)

    resumed = finetune(config, tmp_path / "resumed", RUNTIME)
    assert resumed["resumed_from_step"] == 4
    assert resumed["steps"] == uninterrupted["steps"] == 8
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
    with pytest.raises(ValueError, match=r"bad.jsonl: record 1: field 'summary' is missing"):
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
