"""How much memory a fine-tuning run needs, and what to change when it does not fit.

A run is refused before training when its estimated peak exceeds the memory
left (:func:`check_memory`); a run that still runs out of memory is stopped
with the same kind of advice (:func:`out_of_memory_advice`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from memtasks.finetune.config import FinetuneConfig, FinetuneError, Runtime

# Bytes per parameter held while training with AdamW in fp32: weights, gradients, two moments.
TRAINING_BYTES_PER_PARAMETER = 16
# Tensors of the logits' size (batch x tokens x vocabulary, fp32) alive at the start of the
# backward pass: the log-softmax the loss keeps, its gradient and the logits' gradient.
LOGIT_COPIES = 3


def available_memory(device: str) -> tuple[int, str] | None:
    """The bytes a run on ``device`` may use and what they are ("free GPU memory", "available RAM"), if known."""
    import torch

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


def check_memory(
    model,
    features: list[dict[str, list[int]]],
    encoder_decoder: bool,
    config: FinetuneConfig,
    runtime: Runtime,
    mixed_precision: bool,
) -> None:
    """Refuse a run whose estimated peak cannot fit in the memory left, saying what to change.

    The estimate is for the longest example padded into a full batch. It counts the weights
    although they are loaded: transformers maps a safetensors file into memory and reads it
    only when the weights are first used, so they are not taken from the available RAM yet.
    """
    available = available_memory(runtime.device)
    if available is None:
        return
    free, what = available
    parameters = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    longest_input = max((len(f["input_ids"]) for f in features), default=1)
    longest_output = max((len(f["labels"]) for f in features), default=1)
    decoder_tokens, encoder_tokens = (longest_output, longest_input) if encoder_decoder else (longest_input, 0)

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


def out_of_memory_advice(config: FinetuneConfig, runtime: Runtime, stage: str) -> str:
    """What to change after running out of memory in ``stage`` ("training" or the held-out generations).

    Training: half the batch with twice the accumulation (the same effective batch), or at
    batch size 1 half the source length; then LoRA. Such a run is another config, so it
    starts again (``--overwrite``). The generations only need a smaller ``--eval-batch-size``,
    which a resumed run may change: the trained model is kept.
    """
    if stage != "training":
        smaller = max(1, runtime.eval_batch_size // 2)
        if runtime.eval_batch_size > 1:
            return f"run the same command with --eval-batch-size {smaller} (the trained model is kept)"
        return f"run the same command with --max-target-tokens {max(2, config.max_target_tokens // 2)} and --overwrite"
    if config.batch_size > 1:
        batch_size = config.batch_size // 2
        accumulation = -(-config.batch_size * config.grad_accum // batch_size)
        change = f"--batch-size {batch_size} --grad-accum {accumulation} (the same effective batch)"
    else:
        change = f"--max-source-tokens {max(1, config.max_source_tokens // 2)}"
    lora = " or --method lora" if config.method != "lora" else ""
    return f"start again with --overwrite and {change}{lora}"


