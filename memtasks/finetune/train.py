"""Fine-tune a model on memorization tasks: full or LoRA, encoder-decoder or decoder-only.

The training loop is transformers' ``Trainer`` (AdamW, linear decay), so device
placement, mixed precision, gradient accumulation, checkpoints and resuming
behave as researchers know them. The output directory loads in lm-eval as it
is: ``--model_args pretrained=DIR`` after full fine-tuning,
``pretrained=BASE,peft=DIR`` after LoRA. ``memtasks_finetune.json`` beside the
weights records what was trained, how, and how well.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    DataCollatorForSeq2Seq,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)
from transformers.trainer_utils import get_last_checkpoint

from memtasks.finetune.data import MIXINGS, Example, mix, task_examples
from memtasks.finetune.quality import quality_scores
from memtasks.tasks import FineTuningFormat, task_spec

SUMMARY_FILE = "memtasks_finetune.json"
CHECKPOINTS = "checkpoints"
METHODS = ("full", "lora")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEFAULT_LEARNING_RATE = {"full": 1e-4, "lora": 1e-3}
# Bytes per parameter held while training with AdamW in fp32: weights, gradients, two moments.
TRAINING_BYTES_PER_PARAMETER = 16
# Tensors of the logits' size (batch x tokens x vocabulary, fp32) alive at the start of the
# backward pass: the log-softmax the loss keeps, its gradient and the logits' gradient.
LOGIT_COPIES = 3


@dataclass(frozen=True)
class FinetuneConfig:
    """Everything that defines a fine-tuning run; two runs with equal configs train the same model.

    ``learning_rate`` defaults to 1e-4 for full fine-tuning and 1e-3 for LoRA.
    ``target_modules`` defaults to peft's choice for the architecture (T5: q, v;
    GPT-2: c_attn; Llama and GPT-NeoX families: q_proj, v_proj).
    ``train_on_input`` (decoder-only models) puts the loss on the instruction
    and input too, not only on the output: a decoder can only be probed for
    memorized inputs if it was trained to produce them.
    """

    tasks: tuple[str, ...]
    model: str
    method: str = "full"
    epochs: int = 3
    learning_rate: float | None = None
    warmup_ratio: float = 0.0
    batch_size: int = 8
    grad_accum: int = 1
    max_source_tokens: int = 512
    max_target_tokens: int = 128
    mixing: str = "proportional"
    max_examples: int | None = None
    data_files: Mapping[str, str] = field(default_factory=dict)
    eval_data_files: Mapping[str, str] = field(default_factory=dict)
    eval_examples: int = 100
    lora_rank: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] | None = None
    train_on_input: bool = True
    save_epochs: bool = False
    merge: bool = False
    seed: int = 1234

    def identity(self) -> dict[str, Any]:
        """The config as JSON values: what must match for an output directory to be resumed."""
        values = asdict(self)
        for key in ("tasks", "target_modules"):
            if values[key] is not None:
                values[key] = list(values[key])
        values["data_files"] = dict(self.data_files)
        values["eval_data_files"] = dict(self.eval_data_files)
        return values

    @property
    def lr(self) -> float:
        return self.learning_rate if self.learning_rate is not None else DEFAULT_LEARNING_RATE[self.method]


@dataclass(frozen=True)
class Runtime:
    """How to run a fine-tuning, which may change when a run is resumed."""

    device: str = "auto"
    precision: str = "auto"
    save_steps: int = 200
    eval_batch_size: int = 16
    include_path: tuple[str, ...] = ()
    progress: bool = True


class FinetuneError(ValueError):
    """A fine-tuning run that cannot start; raised before any training."""


def finetune(config: FinetuneConfig, output_dir: str | Path, runtime: Runtime = Runtime(), overwrite: bool = False) -> dict:
    """Fine-tune ``config.model`` on ``config.tasks`` into ``output_dir``; returns the training summary.

    An output directory that holds an unfinished run of the same config is
    resumed from its last checkpoint; one that holds a finished run of the same
    config is left as it is and its summary returned. Anything else already in
    ``output_dir`` is an error unless ``overwrite``.
    """
    out = Path(output_dir)
    _validate(config, runtime)
    specs = [task_spec(task, runtime.include_path) for task in config.tasks]
    formats = {spec.name: FineTuningFormat.from_spec(spec) for spec in specs}
    previous = _claim(out, config, overwrite)
    if previous is not None and previous.get("complete"):
        return previous

    per_task = {
        # A task with held-out files of its own trains on all of its data: those files are its non-members.
        spec.name: task_examples(
            spec,
            data_files=config.data_files.get(spec.name),
            limit=config.max_examples,
            holdout=0.0 if spec.name in config.eval_data_files else None,
        )
        for spec in specs
    }
    train = mix(per_task, config.mixing, config.seed)
    held_out = {spec.name: _held_out(spec, config) for spec in specs}
    model, tokenizer, encoder_decoder = _load(config, runtime)
    features = [_features(e, tokenizer, encoder_decoder, config) for e in train]
    _check_memory(model, features, encoder_decoder, config, runtime)
    if overwrite and out.exists():
        shutil.rmtree(out)

    summary = {
        "memtasks": "finetune",
        "config": config.identity(),
        "base_model": _model_reference(config.model),
        "method": config.method,
        "tasks": list(config.tasks),
        "mixing": config.mixing,
        "architecture": "encoder-decoder" if encoder_decoder else "decoder-only",
        "examples": {task: sum(e.task == task for e in train) for task in config.tasks},
        "complete": False,
    }
    _write_summary(out, summary)
    started = time.time()
    state = _train(model, tokenizer, encoder_decoder, features, config, runtime, out, summary)
    model = state.pop("model")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    if config.merge and config.method == "lora":
        merged = model.merge_and_unload()
        merged.save_pretrained(out / "merged")
        tokenizer.save_pretrained(out / "merged")
    shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)

    summary.update(state)
    summary["seconds"] = round(time.time() - started, 1)
    summary["quality"] = {}
    for spec in specs:
        examples = held_out[spec.name]
        metric = spec.metadata.get("quality_metric")
        if not examples or metric is None:
            reason = "no held-out split (set eval_split in the task or pass eval data files)" if not examples else "the task names no quality_metric"
            summary["quality"][spec.name] = {"not_measured": reason}
            continue
        predictions = generate(model, tokenizer, encoder_decoder, [e.source for e in examples], config, runtime)
        scores = quality_scores(metric, predictions, [e.references or (e.target,) for e in examples])
        summary["quality"][spec.name] = {**scores, "examples": len(examples)}
    summary.update(_model_args(out, config))
    summary["epochs"] = config.epochs
    summary["complete"] = True
    _write_summary(out, summary)
    return summary


def read_summary(model_dir: str | Path) -> dict | None:
    """The training summary of a fine-tuned model directory, or None when it has none."""
    path = Path(model_dir) / SUMMARY_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise FinetuneError(f"{path}: not a readable training summary ({error.msg})") from None


def _validate(config: FinetuneConfig, runtime: Runtime) -> None:
    checks = [
        (config.method in METHODS, f"method must be one of {', '.join(METHODS)}, not {config.method!r}"),
        (config.mixing in MIXINGS, f"mixing must be one of {', '.join(MIXINGS)}, not {config.mixing!r}"),
        (bool(config.tasks), "name at least one task"),
        (config.epochs >= 1, "epochs must be at least 1"),
        (config.batch_size >= 1 and config.grad_accum >= 1, "batch size and gradient accumulation must be at least 1"),
        (runtime.device in DEVICES, f"device must be one of {', '.join(DEVICES)}, not {runtime.device!r}"),
        (runtime.precision in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)}, not {runtime.precision!r}"),
    ]
    for ok, message in checks:
        if not ok:
            raise FinetuneError(message)
    unknown = sorted((set(config.data_files) | set(config.eval_data_files)) - set(config.tasks))
    if unknown:
        raise FinetuneError(f"data files given for {', '.join(unknown)}, which is not among the tasks {', '.join(config.tasks)}")
    if _looks_like_path(config.model) and not Path(config.model).is_dir():
        raise FinetuneError(f"model {config.model} does not exist (a local model is a directory saved by save_pretrained)")


def _looks_like_path(model: str) -> bool:
    """Whether ``model`` names a local directory rather than a Hugging Face id ("name" or "owner/name").

    So a missing local model is refused at once instead of after the hub's retries:
    anything else than "name" or "owner/name", and an "owner/name" whose owner is a
    local folder (``models/no-such-dir`` beside ``models/``).
    """
    owner, _, _ = model.partition("/")
    return (
        model.startswith((".", "/", "~"))
        or model.count("/") > 1
        or "\\" in model
        or Path(model).exists()
        or ("/" in model and Path(owner).is_dir())
    )


def _model_reference(model: str) -> str:
    return str(Path(model).resolve()) if Path(model).is_dir() else model


def _claim(out: Path, config: FinetuneConfig, overwrite: bool) -> dict | None:
    """Check that ``out`` can be this run's directory; returns the summary of the same run found there, if any.

    Nothing is created or removed here (``finetune`` clears an overwritten directory once the
    run has passed its checks), so a run refused before training leaves ``out`` as it was.
    """
    if overwrite or not out.exists() or not any(out.iterdir()):
        return None
    summary = read_summary(out)
    if summary is None:
        raise FinetuneError(f"{out} is not empty and holds no memtasks run: choose a new output directory or pass --overwrite")
    if summary.get("config") != config.identity():
        differing = sorted(k for k, v in config.identity().items() if summary.get("config", {}).get(k) != v)
        raise FinetuneError(
            f"{out} holds another run (it differs in {', '.join(differing)}): choose a new output directory or pass --overwrite"
        )
    return summary


def _held_out(spec, config: FinetuneConfig) -> list[Example]:
    files = config.eval_data_files.get(spec.name)
    split = spec.metadata.get("eval_split")
    if files is None and (split is None or config.data_files.get(spec.name)):
        # Local training files with no local held-out files: the held-out split is unknown.
        return []
    return task_examples(spec, split=split, data_files=files, limit=config.eval_examples, training=False)


def _load(config: FinetuneConfig, runtime: Runtime):
    try:
        model_config = AutoConfig.from_pretrained(config.model)
    except OSError as error:
        raise FinetuneError(
            f"cannot load model {config.model!r}: not a local model directory, and not a Hugging Face model "
            f"reachable from here ({str(error).splitlines()[0]})"
        ) from None
    encoder_decoder = bool(getattr(model_config, "is_encoder_decoder", False))
    auto = AutoModelForSeq2SeqLM if encoder_decoder else AutoModelForCausalLM
    tokenizer = AutoTokenizer.from_pretrained(config.model)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = auto.from_pretrained(config.model)
    if config.method == "lora":
        model = _with_lora(model, config, encoder_decoder)
    return model, tokenizer, encoder_decoder


def _with_lora(model, config: FinetuneConfig, encoder_decoder: bool):
    from peft import LoraConfig, TaskType, get_peft_model

    lora = LoraConfig(
        task_type=TaskType.SEQ_2_SEQ_LM if encoder_decoder else TaskType.CAUSAL_LM,
        r=config.lora_rank,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.target_modules) if config.target_modules else None,
    )
    try:
        return get_peft_model(model, lora)
    except ValueError as error:
        raise FinetuneError(
            f"LoRA for {model.config.model_type}: {error}; name the layers to adapt with --target-modules"
        ) from None


def _available_memory(device: str) -> tuple[int, str] | None:
    if device in ("auto", "cuda") and torch.cuda.is_available():
        free, _ = torch.cuda.mem_get_info()
        return free, "free GPU memory"
    if device in ("auto", "cpu"):
        try:
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024, "available RAM"
        except OSError:
            return None
    return None


@dataclass(frozen=True)
class MemoryEstimate:
    """Peak memory of a fine-tuning run, in bytes, by part."""

    state: int
    activations: int
    logits: int

    @property
    def total(self) -> int:
        return self.state + self.activations + self.logits

    def describe(self) -> str:
        gib = 2**30
        return (
            f"{self.total / gib:.1f} GiB (weights and optimizer state {self.state / gib:.1f}, "
            f"activations {self.activations / gib:.1f}, logits {self.logits / gib:.1f})"
        )


def estimate_training_memory(
    model_config,
    parameters: int,
    trainable: int,
    batch_size: int,
    decoder_tokens: int,
    encoder_tokens: int = 0,
    mixed_precision: bool = False,
) -> MemoryEstimate:
    """Peak memory of training a transformer with AdamW on batches of ``batch_size`` padded examples.

    ``decoder_tokens`` is the length of the decoder's sequence: the whole prompt and target for
    a decoder-only model, the target for an encoder-decoder, whose encoder reads
    ``encoder_tokens``. With s bytes per activation (4, or 2 under bf16/fp16 autocast),
    h the hidden size, i the MLP's intermediate size, a the attention heads, V the vocabulary:

    * state = 4 x parameters + 12 x trainable (fp32 weights; gradients and two AdamW moments);
    * activations = s x B x T x layers x (14h + 5i): per token and layer, the 10h + 4i that
      autograd keeps for the backward pass (counted on Llama), plus the backward pass's
      temporaries and the allocator's overhead; as much for LoRA, whose frozen layers keep
      fewer inputs but whose adapters keep their dropout's outputs. Eager attention adds 2 a T
      per token and layer (the T x T attention probabilities); an encoder-decoder's decoder
      layers add 4h per target token and 2h per source token for cross-attention;
    * logits = 3 x 4 B T V: the fp32 logits' log-softmax and two gradients of that size, alive
      together at the start of the backward pass.

    Calibrated on SmolLM2-135M (fp32, CPU, SDPA attention, full and LoRA, batches of 1 to 8 of
    337 to 593 tokens): each estimate was 2 to 22% above the measured peak resident memory, less
    what the process held before training (0.55 GiB). The encoder-decoder, eager-attention and
    16-bit terms are not calibrated.
    """
    hidden = model_config.hidden_size
    intermediate = _intermediate_size(model_config)
    heads = model_config.num_attention_heads
    encoder_layers = model_config.num_hidden_layers
    decoder_layers = getattr(model_config, "num_decoder_layers", None) or encoder_layers
    width = 4 if not mixed_precision else 2
    per_token = 14 * hidden + 5 * intermediate
    eager = getattr(model_config, "_attn_implementation", "eager") == "eager"

    def layer_bytes(tokens: int) -> int:
        return width * tokens * (per_token + (2 * heads * tokens if eager else 0))

    activations = decoder_layers * layer_bytes(decoder_tokens)
    if encoder_tokens:
        activations += encoder_layers * layer_bytes(encoder_tokens)
        activations += decoder_layers * width * (4 * hidden * decoder_tokens + 2 * hidden * encoder_tokens)
    return MemoryEstimate(
        state=4 * parameters + (TRAINING_BYTES_PER_PARAMETER - 4) * trainable,
        activations=batch_size * activations,
        logits=LOGIT_COPIES * 4 * batch_size * decoder_tokens * model_config.vocab_size,
    )


def _intermediate_size(model_config) -> int:
    # Llama and most: intermediate_size; T5: d_ff; GPT-2: n_inner, None meaning 4 x hidden.
    for name in ("intermediate_size", "d_ff", "n_inner"):
        value = getattr(model_config, name, None)
        if value:
            return value
    return 4 * model_config.hidden_size


def _check_memory(model, features: list[dict[str, list[int]]], encoder_decoder: bool, config: FinetuneConfig, runtime: Runtime) -> None:
    """Refuse a run whose estimated peak cannot fit in the memory left, saying what to change.

    The estimate is for the longest example padded into a full batch. It counts the weights
    although they are loaded: transformers maps a safetensors file into memory and reads it
    only when the weights are first used, so they are not taken from the available RAM yet.
    """
    available = _available_memory(runtime.device)
    if available is None:
        return
    free, what = available
    parameters = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    longest_input = max((len(f["input_ids"]) for f in features), default=1)
    longest_output = max((len(f["labels"]) for f in features), default=1)
    decoder_tokens, encoder_tokens = (longest_output, longest_input) if encoder_decoder else (longest_input, 0)
    mixed_precision = any(_precision(runtime).values())

    def estimate(batch_size: int, scale: float = 1.0) -> MemoryEstimate:
        return estimate_training_memory(
            model.config,
            parameters,
            trainable,
            batch_size,
            decoder_tokens=max(1, int(scale * decoder_tokens)),
            encoder_tokens=int(scale * encoder_tokens),
            mixed_precision=mixed_precision,
        )

    needed = estimate(config.batch_size)
    if needed.total <= free:
        return
    raise FinetuneError(
        f"fine-tuning {config.model} with batches of {config.batch_size} examples of up to "
        f"{decoder_tokens + encoder_tokens} tokens needs about {needed.describe()}, "
        f"{free / 2**30:.1f} GiB of {what} is left: try {_advice(estimate, free, config)}"
    )


def _advice(estimate: Callable[..., MemoryEstimate], budget: int, config: FinetuneConfig) -> str:
    """The smallest change that fits: a smaller batch with more accumulation, then shorter inputs, then LoRA."""
    effective = config.batch_size * config.grad_accum
    for batch_size in range(config.batch_size - 1, 0, -1):
        if estimate(batch_size).total <= budget:
            accumulation = -(-effective // batch_size)
            return f"--batch-size {batch_size} --grad-accum {accumulation} (an effective batch of {batch_size * accumulation})"
    for scale in (0.5, 0.25, 0.125):
        if estimate(1, scale).total <= budget:
            return (
                f"--batch-size 1 --grad-accum {effective} with --max-source-tokens {max(1, int(scale * config.max_source_tokens))} "
                f"and --max-target-tokens {max(2, int(scale * config.max_target_tokens))}"
            )
    lora = "--method lora (only the adapter is trained) or " if config.method != "lora" else ""
    return f"{lora}a device with more memory"


def _features(example: Example, tokenizer, encoder_decoder: bool, config: FinetuneConfig) -> dict[str, list[int]]:
    eos = tokenizer.eos_token_id
    target = tokenizer(example.target, add_special_tokens=False)["input_ids"][: config.max_target_tokens - 1] + [eos]
    if encoder_decoder:
        source = tokenizer(example.source, truncation=True, max_length=config.max_source_tokens)["input_ids"]
        return {"input_ids": source, "attention_mask": [1] * len(source), "labels": target}
    prompt = tokenizer(prompt_text(example.source), truncation=True, max_length=config.max_source_tokens)["input_ids"]
    ids = prompt + target
    labels = ids if config.train_on_input else [-100] * len(prompt) + target
    return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": list(labels)}


def prompt_text(source: str) -> str:
    """A decoder-only model's prompt: the source, then a newline before the output."""
    return source + "\n"


def _precision(runtime: Runtime) -> dict[str, bool]:
    precision = runtime.precision
    cuda = runtime.device in ("auto", "cuda") and torch.cuda.is_available()
    if precision == "auto":
        precision = "bf16" if cuda and torch.cuda.is_bf16_supported() else "fp32"
    if precision in ("bf16", "fp16") and not cuda:
        raise FinetuneError(f"--precision {precision} needs a CUDA GPU; on this machine use fp32")
    return {"bf16": precision == "bf16", "fp16": precision == "fp16"}


def _train(model, tokenizer, encoder_decoder: bool, features: list[dict[str, list[int]]], config: FinetuneConfig, runtime: Runtime, out: Path, summary: dict) -> dict:
    if runtime.device == "cuda" and not torch.cuda.is_available():
        raise FinetuneError("--device cuda: no CUDA GPU is visible here")
    checkpoints = out / CHECKPOINTS
    args = TrainingArguments(
        output_dir=str(checkpoints),
        num_train_epochs=config.epochs,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        learning_rate=config.lr,
        lr_scheduler_type="linear",
        warmup_steps=config.warmup_ratio,
        logging_strategy="epoch",
        save_strategy="steps",
        save_steps=runtime.save_steps,
        save_total_limit=1,
        seed=config.seed,
        data_seed=config.seed,
        report_to=[],
        disable_tqdm=not runtime.progress,
        use_cpu=runtime.device == "cpu",
        dataloader_num_workers=0,
        **_precision(runtime),
    )
    callbacks = [_EpochCheckpoints(out, tokenizer, config, summary)] if config.save_epochs else []
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=features,
        data_collator=DataCollatorForSeq2Seq(tokenizer, model=model if encoder_decoder else None, padding=True),
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    resume = get_last_checkpoint(str(checkpoints)) if checkpoints.is_dir() else None
    try:
        result = trainer.train(resume_from_checkpoint=resume)
    except torch.OutOfMemoryError:
        raise MemoryError(
            f"out of memory while fine-tuning {config.model} with batch size {config.batch_size}: "
            f"resume with a smaller --batch-size and a larger --grad-accum (same effective batch), "
            f"--precision bf16 or --method lora"
        ) from None
    losses = [
        {"epoch": round(entry["epoch"]), "loss": entry["loss"]}
        for entry in trainer.state.log_history
        if "loss" in entry and "epoch" in entry
    ]
    return {
        "model": trainer.model,
        "epoch_losses": losses,
        "steps": trainer.state.global_step,
        "examples_seen": len(features) * config.epochs,
        "resumed_from_step": int(Path(resume).name.rsplit("-", 1)[1]) if resume else None,
        "train_loss": result.training_loss,
    }


class _EpochCheckpoints(TrainerCallback):
    """Saves the model at the end of each epoch into ``epoch-N/`` (for the epochs ablation)."""

    def __init__(self, out: Path, tokenizer, config: FinetuneConfig, summary: dict):
        self.out, self.tokenizer, self.config, self.summary = out, tokenizer, config, summary

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        epoch = round(state.epoch)
        target = self.out / f"epoch-{epoch}"
        model.save_pretrained(target)
        self.tokenizer.save_pretrained(target)
        _write_summary(target, {**self.summary, **_model_args(target, self.config), "epochs": epoch, "complete": True})


def _model_args(model_dir: Path, config: FinetuneConfig) -> dict[str, str]:
    path = model_dir.resolve()
    if config.method == "full":
        return {"lm_eval_model_args": f"pretrained={path}"}
    args = {"lm_eval_model_args": f"pretrained={_model_reference(config.model)},peft={path}"}
    if config.merge and (path / "merged").is_dir():
        args["merged_model_args"] = f"pretrained={path / 'merged'}"
    return args


def _write_summary(out: Path, summary: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    temporary = out / (SUMMARY_FILE + ".tmp")
    temporary.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    temporary.replace(out / SUMMARY_FILE)


def generate(model, tokenizer, encoder_decoder: bool, sources: Sequence[str], config: FinetuneConfig, runtime: Runtime) -> list[str]:
    """Greedy outputs of the model for ``sources``, in the fine-tuning format."""

    model.eval()
    device = next(model.parameters()).device
    outputs: list[str] = []
    side = tokenizer.padding_side
    tokenizer.padding_side = "right" if encoder_decoder else "left"
    try:
        batches = range(0, len(sources), runtime.eval_batch_size)
        for start in tqdm(batches, desc="held-out", unit="batch", disable=not runtime.progress):
            batch = list(sources[start : start + runtime.eval_batch_size])
            texts = batch if encoder_decoder else [prompt_text(s) for s in batch]
            inputs = tokenizer(texts, return_tensors="pt", padding=True, truncation=True, max_length=config.max_source_tokens).to(device)
            with torch.no_grad():
                ids = model.generate(
                    **inputs, max_new_tokens=config.max_target_tokens, do_sample=False, num_beams=1, pad_token_id=tokenizer.pad_token_id
                )
            if not encoder_decoder:
                ids = ids[:, inputs["input_ids"].shape[1] :]
            outputs.extend(text.strip() for text in tokenizer.batch_decode(ids, skip_special_tokens=True))
    finally:
        tokenizer.padding_side = side
    return outputs
