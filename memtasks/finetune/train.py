"""Fine-tune a model on memorization tasks: full or LoRA, encoder-decoder or decoder-only.

The training loop is transformers' ``Trainer`` (AdamW, linear decay), so device
placement, mixed precision, gradient accumulation, checkpoints and resuming
behave as researchers know them. The output directory loads in lm-eval as it
is: ``--model_args pretrained=DIR`` after full fine-tuning,
``pretrained=BASE,peft=DIR`` after LoRA. ``memtasks_finetune.json`` beside the
weights records what was trained, how, and how well.

torch, transformers and peft are imported by the functions that use them, after
the checks of :mod:`memtasks.finetune.config`: a run that cannot start is
refused without loading them.
"""

from __future__ import annotations

import contextlib
import difflib
import math
import shutil
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

from memtasks.finetune.config import (
    CHECKPOINTS,
    DEFAULT_LEARNING_RATE,
    DEVICES,
    METHODS,
    PRECISIONS,
    SUMMARY_FILE,
    FinetuneConfig,
    FinetuneError,
    Runtime,
    claim,
    model_reference,
    read_summary,
    validate,
    write_summary,
)
from memtasks.finetune.data import Example, mix, task_examples
from memtasks.finetune.memory import MemoryEstimate, check_memory, estimate_training_memory, out_of_memory_advice
from memtasks.finetune.quality import quality_scores
from memtasks.outputs import DiskWriteError, flush_folder, write_failure
from memtasks.tasks import FineTuningFormat, known_tasks, task_spec

__all__ = [
    "CHECKPOINTS",
    "DEFAULT_LEARNING_RATE",
    "DEVICES",
    "METHODS",
    "PRECISIONS",
    "SUMMARY_FILE",
    "FinetuneConfig",
    "FinetuneError",
    "MemoryEstimate",
    "Runtime",
    "estimate_training_memory",
    "finetune",
    "generate",
    "prompt_text",
    "read_summary",
]

# The stages a run can be stopped in, as its summary's "stopped" entry names them.
TRAINING, SAVING, GENERATING = "training", "saving", "held-out generation"
# Where the trained model is written before it is moved into the output folder.
PARTIAL_SAVE = "final.partial"


def finetune(config: FinetuneConfig, output_dir: str | Path, runtime: Runtime = Runtime(), overwrite: bool = False) -> dict:
    """Fine-tune ``config.model`` on ``config.tasks`` into ``output_dir``; returns the training summary.

    An output directory that holds an unfinished run of the same config is
    resumed from its last checkpoint; one that holds a finished run of the same
    config is left as it is and its summary returned. Anything else already in
    ``output_dir`` is an error unless ``overwrite``.

    The summary's ``epoch_losses`` are the mean loss of each epoch's steps and
    ``train_loss`` that of every step; ``loss_steps`` names the first and last
    step they cover, which for a resumed run (``resumed_from_step``) includes
    the steps trained before the interruption. A run stopped by an interrupt or
    by running out of memory leaves its summary with ``complete: false`` and a
    ``stopped`` entry saying why, in which stage, and from which step the same
    command resumes it.
    """
    out = Path(output_dir)
    validate(config, runtime, out)
    previous = claim(out, config, overwrite)
    specs = _task_specs(config, runtime)
    if previous is not None and previous.get("complete"):
        return previous
    precision = _precision(runtime)

    with _library_bars_off():
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
        model, tokenizer, encoder_decoder = _load(config)
        features = [_features(e, tokenizer, encoder_decoder, config) for e in train]
        check_memory(model, features, encoder_decoder, config, runtime, mixed_precision=any(precision.values()))
        if overwrite and out.exists():
            shutil.rmtree(out)

        summary = {
            "memtasks": "finetune",
            "config": config.identity(),
            "base_model": model_reference(config.model),
            "method": config.method,
            "tasks": list(config.tasks),
            "mixing": config.mixing,
            "loss": config.loss,
            "architecture": "encoder-decoder" if encoder_decoder else "decoder-only",
            "examples": {task: sum(e.task == task for e in train) for task in config.tasks},
            "complete": False,
        }
        write_summary(out, summary)
        stage = TRAINING
        started = time.time()
        try:
            state = _train(model, tokenizer, encoder_decoder, features, config, runtime, precision, out, summary)
            model = state.pop("model")
            summary.update(state)
            stage = SAVING
            _save(model, tokenizer, out, config)
            summary["seconds"] = round(time.time() - started, 1)
            stage = GENERATING
            summary["quality"] = {spec.name: _quality(spec, held_out[spec.name], model, tokenizer, encoder_decoder, config, runtime) for spec in specs}
        except KeyboardInterrupt:
            write_summary(out, {**summary, "stopped": _stopped("interrupted", stage, out)})
            raise
        except Exception as error:
            cause = write_failure(error)
            if cause is not None:
                raise DiskWriteError(_disk_full(error, cause, stage, out, summary)) from None
            if not _out_of_memory(error):
                raise
            write_summary(out, {**summary, "stopped": _stopped("out of memory", stage, out)})
            raise MemoryError(_out_of_memory_message(config, runtime, stage, out)) from None

    summary.update(_model_args(out, config))
    summary["epochs"] = config.epochs
    summary["complete"] = True
    write_summary(out, summary)
    # Only now: a run stopped before this point resumes from the last checkpoint, the final one included.
    shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)
    return summary


def _task_specs(config: FinetuneConfig, runtime: Runtime) -> list:
    """The tasks' definitions, each checked to have a fine-tuning format; a misspelled name gets the nearest one."""
    known = known_tasks(runtime.include_path)
    for name in config.tasks:
        if name not in known:
            # The index also names groups and tags, which cannot be fine-tuned on.
            close = [c for c in difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.8) if _is_task(c, runtime)]
            if close:
                raise FinetuneError(f"unknown task {name!r}; did you mean {close[0]}?")
    specs = [task_spec(task, runtime.include_path) for task in config.tasks]
    for spec in specs:
        FineTuningFormat.from_spec(spec)
    return specs


def _is_task(name: str, runtime: Runtime) -> bool:
    try:
        task_spec(name, runtime.include_path)
    except ValueError:
        return False
    return True


def _stopped(reason: str, stage: str, out: Path) -> dict:
    """The ``stopped`` entry of an unfinished run's summary."""
    return {"reason": reason, "stage": stage, "resume_from_step": _checkpoint_step(out)}


def _checkpoints(out: Path) -> dict[int, Path]:
    """The complete checkpoints in ``out`` by step.

    The Trainer writes a checkpoint's ``trainer_state.json`` last: a folder without it
    was interrupted while being written, and cannot be resumed from.
    """
    return {int(path.name.removeprefix("checkpoint-")): path for path in _checkpoint_folders(out) if (path / "trainer_state.json").is_file()}


def _checkpoint_folders(out: Path) -> list[Path]:
    """Every checkpoint folder of ``out``, complete or not."""
    return [path for path in (out / CHECKPOINTS).glob("checkpoint-*") if path.name.removeprefix("checkpoint-").isdigit()]


def _checkpoint_step(out: Path) -> int | None:
    """The step of the last complete checkpoint in ``out``: where running the same command again starts from."""
    return max(_checkpoints(out), default=None)


def _disk_full(error: Exception, cause: str, stage: str, out: Path, summary: dict) -> str:
    """After a write the disk refused: the half-written checkpoint or model removed (it would look like one,
    and it holds the space the summary needs), the summary's ``stopped`` entry, and one line saying what."""
    written = next((p for p in _checkpoint_folders(out) if not (p / "trainer_state.json").is_file()), None)
    where = error.filename if isinstance(error, OSError) and error.filename else written or out
    if written is not None:
        shutil.rmtree(written, ignore_errors=True)
    shutil.rmtree(out / PARTIAL_SAVE, ignore_errors=True)
    stopped = _stopped(cause, stage, out)
    try:
        write_summary(out, {**summary, "stopped": stopped})
    except OSError:
        pass  # The summary written when training began stays: complete: false, without the reason.
    step = stopped["resume_from_step"]
    what = "a checkpoint" if stage == TRAINING else "the fine-tuned model"
    return (
        f"{where}: {cause} while writing {what}; {out} holds an unfinished run (complete: false): "
        f"free some space and run the same command again, it resumes {f'from step {step}' if step else 'from the start'}"
    )


def _out_of_memory(error: Exception) -> bool:
    """Whether ``error`` is an allocation that failed: on a GPU, in Python, or in torch's CPU allocator."""
    import torch

    # torch reports a failed CPU allocation as a RuntimeError; only its message tells it apart.
    return isinstance(error, (torch.OutOfMemoryError, MemoryError)) or (
        isinstance(error, RuntimeError) and "can't allocate memory" in str(error)
    )


def _out_of_memory_message(config: FinetuneConfig, runtime: Runtime, stage: str, out: Path) -> str:
    """One line: where memory ran out, and what to change."""
    if stage == SAVING:
        return f"out of memory while saving the fine-tuned model into {out}: free some memory and run the same command again (the trained model is kept)"
    if stage == GENERATING:
        what = f"out of memory while generating held-out outputs of the fine-tuned {config.model} in batches of {runtime.eval_batch_size}"
        return f"{what}: {out_of_memory_advice(config, runtime, 'generation')}"
    what = f"out of memory while training {config.model} with batches of {config.batch_size}"
    return f"{what}: {out_of_memory_advice(config, runtime, 'training')}"


@contextlib.contextmanager
def _library_bars_off() -> Iterator[None]:
    """No bars from datasets and transformers for their own steps (reading data, loading and writing weights).

    So that a run shows its training bar alone. Downloads from the Hugging Face
    hub keep theirs: transformers' switch also turns off the hub's bars, which
    are set back as they were.
    """
    import datasets
    import huggingface_hub.utils as hub
    from transformers.utils import logging as transformers_logging

    datasets_on = not datasets.are_progress_bars_disabled()
    transformers_on = transformers_logging.is_progress_bar_enabled()
    hub_on = not hub.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    transformers_logging.disable_progress_bar()
    if hub_on:
        hub.enable_progress_bars()
    try:
        yield
    finally:
        if datasets_on:
            datasets.enable_progress_bars()
        if transformers_on:
            transformers_logging.enable_progress_bar()
        if hub_on:
            hub.enable_progress_bars()


def _held_out(spec, config: FinetuneConfig) -> list[Example]:
    files = config.eval_data_files.get(spec.name)
    split = spec.metadata.get("eval_split")
    if files is None and (split is None or config.data_files.get(spec.name)):
        # Local training files with no local held-out files: the held-out split is unknown.
        return []
    return task_examples(spec, split=split, data_files=files, limit=config.eval_examples, training=False)


def _load(config: FinetuneConfig):
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

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
    model = auto.from_pretrained(config.model)
    if tokenizer.pad_token_id is None:
        # Batches need a pad token; the model's configs learn it too, as generation and the Trainer read it there.
        tokenizer.pad_token = tokenizer.eos_token
        model.config.pad_token_id = tokenizer.pad_token_id
        if model.generation_config is not None:
            model.generation_config.pad_token_id = tokenizer.pad_token_id
    if not encoder_decoder and getattr(model, "loss_type", None) is None:
        # transformers picks a model's loss from its class name, which for some causal LMs
        # (GPT2LMHeadModel) names none, and then warns that it falls back to the causal LM loss.
        model.loss_type = "ForCausalLM"
    if config.method == "lora":
        model = _with_lora(model, config, encoder_decoder)
    return model, tokenizer, encoder_decoder


def _with_lora(model, config: FinetuneConfig, encoder_decoder: bool):
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers.pytorch_utils import Conv1D

    lora = LoraConfig(
        task_type=TaskType.SEQ_2_SEQ_LM if encoder_decoder else TaskType.CAUSAL_LM,
        r=config.lora_rank,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.target_modules) if config.target_modules else None,
        # GPT-2's layers are Conv1D, whose weight is stored transposed (fan in x fan out).
        fan_in_fan_out=any(isinstance(module, Conv1D) for module in model.modules()),
    )
    try:
        with warnings.catch_warnings():
            # peft (up to 0.21 at least) reads the model's is_gradient_checkpointing, which
            # transformers 5 has deprecated for is_activation_checkpointing: nothing the user can change.
            warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
            return get_peft_model(model, lora)
    except ValueError as error:
        raise FinetuneError(
            f"LoRA for {model.config.model_type}: {error}; name the layers to adapt with --target-modules"
        ) from None


def _features(example: Example, tokenizer, encoder_decoder: bool, config: FinetuneConfig) -> dict[str, list[int]]:
    eos = tokenizer.eos_token_id
    target = tokenizer(example.target, add_special_tokens=False)["input_ids"][: config.max_target_tokens - 1] + [eos]
    if encoder_decoder:
        source = tokenizer(example.source, truncation=True, max_length=config.max_source_tokens)["input_ids"]
        labels = target
        if config.train_on_input:
            # The decoder writes the input, then the output: it is trained to produce its inputs, as a decoder-only model is.
            labels = tokenizer(prompt_text(example.source), add_special_tokens=False)["input_ids"][: config.max_source_tokens] + target
        return {"input_ids": source, "attention_mask": [1] * len(source), "labels": labels}
    prompt = tokenizer(prompt_text(example.source), truncation=True, max_length=config.max_source_tokens)["input_ids"]
    ids = prompt + target
    # -100 is the label torch's cross-entropy ignores: the prompt is read, not predicted.
    labels = ids if config.train_on_input else [-100] * len(prompt) + target
    return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": list(labels)}


def prompt_text(source: str) -> str:
    """A decoder-only model's prompt: the source, then a newline before the output."""
    return source + "\n"


def _precision(runtime: Runtime) -> dict[str, bool]:
    import torch

    cuda = runtime.device in ("auto", "cuda") and torch.cuda.is_available()
    if runtime.device == "cuda" and not cuda:
        raise FinetuneError("--device cuda: no CUDA GPU is visible here")
    precision = runtime.precision
    if precision == "auto":
        precision = "bf16" if cuda and torch.cuda.is_bf16_supported() else "fp32"
    if precision in ("bf16", "fp16") and not cuda:
        raise FinetuneError(f"--precision {precision} needs a CUDA GPU; on this machine use fp32")
    return {"bf16": precision == "bf16", "fp16": precision == "fp16"}


def _train(
    model,
    tokenizer,
    encoder_decoder: bool,
    features: list[dict[str, list[int]]],
    config: FinetuneConfig,
    runtime: Runtime,
    precision: dict[str, bool],
    out: Path,
    summary: dict,
) -> dict:
    import torch
    from transformers import DataCollatorForSeq2Seq, PrinterCallback, Trainer, TrainingArguments

    from memtasks.finetune.callbacks import EpochCheckpoints, TrainingProgress

    checkpoints = out / CHECKPOINTS
    args = TrainingArguments(
        output_dir=str(checkpoints),
        num_train_epochs=config.epochs,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        learning_rate=config.lr,
        lr_scheduler_type="linear",
        warmup_steps=config.warmup_ratio,
        # Every step's loss is logged, so a checkpoint holds the loss of each step before it and a
        # resumed run's summary covers the whole run; TrainingProgress shows it, nothing prints it.
        logging_strategy="steps",
        logging_steps=1,
        save_strategy="steps",
        save_steps=runtime.save_steps,
        save_total_limit=1,
        seed=config.seed,
        data_seed=config.seed,
        report_to=[],
        disable_tqdm=True,
        use_cpu=runtime.device == "cpu",
        dataloader_num_workers=0,
        # Pinned memory only helps copies to a GPU; without one torch warns that it is unused.
        dataloader_pin_memory=runtime.device != "cpu" and torch.cuda.is_available(),
        **precision,
    )
    progress = TrainingProgress(config.epochs, runtime.progress)
    callbacks = [progress]
    if config.save_epochs:
        callbacks.append(EpochCheckpoints(out, tokenizer, lambda folder, epoch: {**summary, **_model_args(folder, config), "epochs": epoch, "complete": True}))
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=features,
        data_collator=DataCollatorForSeq2Seq(tokenizer, model=model if encoder_decoder else None, padding=True),
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    # With disable_tqdm the Trainer prints every log instead of drawing a bar: TrainingProgress does both jobs.
    trainer.remove_callback(PrinterCallback)
    step = _checkpoint_step(out)
    resume = str(checkpoints / f"checkpoint-{step}") if step is not None else None
    try:
        trainer.train(resume_from_checkpoint=resume)
    finally:
        progress.close()
    steps_per_epoch = trainer.state.max_steps // config.epochs
    return {
        "model": trainer.model,
        **step_losses(trainer.state.log_history, steps_per_epoch),
        "steps": trainer.state.global_step,
        "examples_seen": len(features) * config.epochs,
        "resumed_from_step": step,
    }


def step_losses(log_history: Sequence[dict], steps_per_epoch: int) -> dict:
    """The losses of a run from its per-step logs, and the steps they cover.

    ``epoch_losses``: for each epoch e (its steps s with ceil(s / steps_per_epoch) = e),
    the mean of their losses and its first and last step; ``train_loss``: the mean of
    every logged step's loss; ``loss_steps``: the first and last step logged.
    """
    losses = {entry["step"]: entry["loss"] for entry in log_history if "loss" in entry and "step" in entry}
    steps = sorted(losses)
    by_epoch: dict[int, list[int]] = {}
    for step in steps:
        by_epoch.setdefault(math.ceil(step / steps_per_epoch), []).append(step)
    return {
        "epoch_losses": [
            {"epoch": epoch, "loss": sum(losses[s] for s in members) / len(members), "steps": [members[0], members[-1]]}
            for epoch, members in sorted(by_epoch.items())
        ],
        "train_loss": sum(losses.values()) / len(losses) if losses else None,
        "loss_steps": [steps[0], steps[-1]] if steps else None,
    }


def _save(model, tokenizer, out: Path, config: FinetuneConfig) -> None:
    """The trained model saved into ``out``: written into a folder of its own, flushed, and only then moved
    into ``out`` file by file, so that no weights file in ``out`` is ever a part of one."""
    partial = out / PARTIAL_SAVE
    shutil.rmtree(partial, ignore_errors=True)
    try:
        model.save_pretrained(partial)
        tokenizer.save_pretrained(partial)
        if config.merge and config.method == "lora":
            merged = model.merge_and_unload()
            merged.save_pretrained(partial / "merged")
            tokenizer.save_pretrained(partial / "merged")
        flush_folder(partial)
        for item in sorted(partial.iterdir()):
            if (out / item.name).is_dir():
                shutil.rmtree(out / item.name)
            item.replace(out / item.name)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def _quality(spec, examples: list[Example], model, tokenizer, encoder_decoder: bool, config: FinetuneConfig, runtime: Runtime) -> dict:
    """The task's quality metric on its held-out examples, or why it was not measured."""
    metric = spec.metadata.get("quality_metric")
    if not examples:
        return {"not_measured": "no held-out split (set eval_split in the task or pass eval data files)"}
    if metric is None:
        return {"not_measured": "the task names no quality_metric"}
    predictions = generate(model, tokenizer, encoder_decoder, [e.source for e in examples], config, runtime)
    scores = quality_scores(metric, predictions, [e.references or (e.target,) for e in examples])
    return {**scores, "examples": len(examples)}


def _model_args(model_dir: Path, config: FinetuneConfig) -> dict[str, str]:
    path = model_dir.resolve()
    if config.method == "full":
        return {"lm_eval_model_args": f"pretrained={path}"}
    args = {"lm_eval_model_args": f"pretrained={model_reference(config.model)},peft={path}"}
    if config.merge and (path / "merged").is_dir():
        args["merged_model_args"] = f"pretrained={path / 'merged'}"
    return args


def generate(model, tokenizer, encoder_decoder: bool, sources: Sequence[str], config: FinetuneConfig, runtime: Runtime) -> list[str]:
    """Greedy outputs of the model for ``sources``, in the fine-tuning format."""
    import torch
    from tqdm.auto import tqdm

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
