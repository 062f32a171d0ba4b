"""Tiny Hugging Face models built entirely offline, for tests and demos.

Nothing here touches the Hugging Face hub: the tokenizer is trained on the caller's texts, the
models are randomly initialised from a small config, and everything is written to a local
directory that ``AutoTokenizer`` / ``AutoModelForCausalLM`` / ``AutoModelForSeq2SeqLM`` and
lm-eval's ``HFLM`` load like any hub checkpoint.

Typical use::

    tok = train_tokenizer(corpus)
    path = build_tiny_model("decoder", tok, tmp_dir / "gpt2-tiny")
    memorize(path, training_texts)   # now it regurgitates training_texts from short prefixes

Special tokens, fixed ids in every tokenizer built here:

* ``<pad>`` = 0: padding, and the T5 decoder start token (T5's own convention).
* ``</s>`` = 1: end of text; also the BOS token, as in GPT-2 where ``<|endoftext|>`` plays
  every role, so lm-eval's loglikelihood prefix token is a token the model has seen.
* ``<unk>`` = 2: never produced by a byte-level BPE, but some code expects one to exist.

No post-processor adds special tokens on ``encode``: lm-eval feeds contexts through the
tokenizer as-is, and the models are trained on exactly that encoding so that prefixes seen at
evaluation time look like prefixes seen in training.
"""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Literal

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    GenerationConfig,
    GPT2Config,
    GPT2LMHeadModel,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
    T5Config,
    T5ForConditionalGeneration,
)

__all__ = [
    "PAD_TOKEN",
    "EOS_TOKEN",
    "UNK_TOKEN",
    "MAX_POSITIONS",
    "train_tokenizer",
    "build_tiny_model",
    "memorize",
    "load_tiny_model",
    "torch_threads",
]

PAD_TOKEN = "<pad>"
EOS_TOKEN = "</s>"
UNK_TOKEN = "<unk>"
SPECIAL_TOKENS = [PAD_TOKEN, EOS_TOKEN, UNK_TOKEN]

# lm-eval's HFLM reserves max_gen_toks (256 by default) of the context window for generation
# and asserts that something is left for the prompt, so the window must be well above 256.
MAX_POSITIONS = 1024


def train_tokenizer(
    texts: Iterable[str],
    vocab_size: int = 2000,
    model_max_length: int = MAX_POSITIONS,
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on ``texts`` and wrap it for transformers.

    Args:
        texts: Training corpus. Consumed once; order does not change the result.
        vocab_size: Upper bound on the vocabulary, special tokens and the 256 byte symbols
            included. A small corpus may yield fewer tokens; use ``len(tokenizer)``.
        model_max_length: Recorded on the tokenizer; lm-eval reads it as the context length
            of models whose config has none (T5).

    Returns:
        A ``PreTrainedTokenizerFast`` with ``<pad>`` (id 0), ``</s>`` (id 1, eos and bos) and
        ``<unk>`` (id 2). ``decode(encode(s)) == s`` for any string ``s``.
    """
    # Byte-level pre-tokenization without a prefix space and without a normalizer keeps the
    # encoding lossless, and makes the encoding of "w1 ... wk" a prefix of the encoding of
    # "w1 ... wk wk+1 ...": GPT-2's split pattern attaches a word's leading space to it.
    tokenizer = Tokenizer(models.BPE(unk_token=None))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # Sorting makes the result independent of the iteration order of a caller's set or dict.
    tokenizer.train_from_iterator(sorted(texts), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token=PAD_TOKEN,
        eos_token=EOS_TOKEN,
        bos_token=EOS_TOKEN,
        unk_token=UNK_TOKEN,
        model_max_length=model_max_length,
        # The default clean-up rewrites " ." to "." and would break exact round trips.
        clean_up_tokenization_spaces=False,
        padding_side="right",
    )


def build_tiny_model(
    kind: Literal["decoder", "seq2seq"],
    tokenizer: PreTrainedTokenizerBase,
    out_dir: str | Path,
    seed: int = 0,
    d_model: int = 64,
    layers: int = 2,
    heads: int = 2,
) -> Path:
    """Create a randomly initialised GPT-2 or T5 model and save it with its tokenizer.

    Args:
        kind: ``"decoder"`` for a GPT-2 causal LM, ``"seq2seq"`` for a T5 encoder-decoder.
        tokenizer: Tokenizer from :func:`train_tokenizer` (any tokenizer with pad and eos
            tokens works); the model's vocabulary is ``len(tokenizer)``.
        out_dir: Directory to write to (created if missing).
        seed: Seed for the weight initialisation; the same arguments give the same weights.
        d_model: Hidden size.
        layers: Number of layers (for T5: in each of the encoder and the decoder).
        heads: Attention heads; must divide ``d_model``.

    Returns:
        ``out_dir`` as a ``Path``, loadable with ``AutoTokenizer`` and
        ``AutoModelForCausalLM`` (decoder) or ``AutoModelForSeq2SeqLM`` (seq2seq).
    """
    if d_model % heads:
        raise ValueError(f"heads ({heads}) must divide d_model ({d_model})")
    pad_id, eos_id = tokenizer.pad_token_id, tokenizer.eos_token_id
    if pad_id is None or eos_id is None:
        raise ValueError("the tokenizer needs a pad token and an eos token")
    bos_id = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else eos_id
    vocab_size = len(tokenizer)

    model: PreTrainedModel
    # Dropout is off: these models exist to memorize a handful of texts quickly.
    if kind == "decoder":
        config = GPT2Config(
            vocab_size=vocab_size,
            n_positions=MAX_POSITIONS,
            n_embd=d_model,
            n_layer=layers,
            n_head=heads,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            bos_token_id=bos_id,
            eos_token_id=eos_id,
            pad_token_id=pad_id,
        )
        torch.manual_seed(seed)
        model = GPT2LMHeadModel(config)
        generation = GenerationConfig(bos_token_id=bos_id, eos_token_id=eos_id, pad_token_id=pad_id)
    elif kind == "seq2seq":
        config = T5Config(
            vocab_size=vocab_size,
            d_model=d_model,
            d_kv=d_model // heads,
            d_ff=4 * d_model,
            num_layers=layers,
            num_decoder_layers=layers,
            num_heads=heads,
            dropout_rate=0.0,
            pad_token_id=pad_id,
            eos_token_id=eos_id,
            decoder_start_token_id=pad_id,
        )
        torch.manual_seed(seed)
        model = T5ForConditionalGeneration(config)
        generation = GenerationConfig(
            eos_token_id=eos_id, pad_token_id=pad_id, decoder_start_token_id=pad_id
        )
    else:
        raise ValueError(f"kind must be 'decoder' or 'seq2seq', not {kind!r}")

    model.generation_config = generation
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def load_tiny_model(model_dir: str | Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a model saved by :func:`build_tiny_model` with the matching Auto class.

    Args:
        model_dir: Directory written by :func:`build_tiny_model` or :func:`memorize`.

    Returns:
        ``(model, tokenizer)``, the model in eval mode.
    """
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir) if not _is_seq2seq(model_dir) else (
        AutoModelForSeq2SeqLM.from_pretrained(model_dir)
    )
    model.eval()
    return model, tokenizer


def _is_seq2seq(model_dir: str | Path) -> bool:
    from transformers import AutoConfig

    return bool(getattr(AutoConfig.from_pretrained(model_dir), "is_encoder_decoder", False))


def _split_points(text: str) -> list[int]:
    """Character offsets of the whitespace runs in ``text`` that start a new word.

    Cutting at one of these gives a prefix of whole words and a suffix starting with the
    space before the next word, which is how a word-level prefix is fed to the model.
    """
    points = []
    for i in range(1, len(text)):
        if text[i].isspace() and not text[i - 1].isspace():
            points.append(i)
    return points


def memorize(
    model_dir: str | Path,
    texts: Sequence[str],
    steps: int = 200,
    lr: float = 3e-3,
    batch_size: int = 16,
    seed: int = 0,
    num_threads: int | None = 1,
) -> Path:
    """Train the model saved in ``model_dir`` until it reproduces ``texts``, and save it back.

    Plain torch on the CPU, AdamW with a short warmup and cosine decay, no dropout.

    * Decoder: causal LM loss on ``text + </s>``, tokenized exactly as lm-eval tokenizes a
      context (no BOS), so that greedy generation from any word prefix of a training text
      continues it.
    * Seq2seq: every time a text is drawn, it is cut at a random word boundary (seeded); the
      encoder gets the prefix and the labels are the rest of the text (which starts with the
      space before the next word) followed by ``</s>``. Labels are the continuation only, not
      the full text, because lm-eval's HFLM returns the decoder output as the continuation of
      the context. Random cuts teach the model to continue prefixes of any length rather than
      only the half-way cut; it needs more steps than the decoder to reach the same
      reproduction rate.

    Args:
        model_dir: Directory written by :func:`build_tiny_model`; overwritten in place.
        texts: Texts to memorize (tens of texts of up to a few hundred tokens each).
        steps: Optimizer steps; each step sees one batch of ``batch_size`` texts.
        lr: Peak learning rate. Tiny models tolerate, and need, a high one.
        batch_size: Texts per step (all texts when there are fewer).
        seed: Seed for batch order and seq2seq cut points.
        num_threads: Torch intra-op threads while training (restored afterwards); ``None``
            keeps the current setting. One thread is the default because these models are too
            small to gain from more, and on a busy machine OpenMP threads waiting for a core
            made training over 20 times slower in measurements.

    Returns:
        ``model_dir`` as a ``Path``.
    """
    if not texts:
        raise ValueError("no texts to memorize")
    with torch_threads(num_threads):
        return _memorize(Path(model_dir), list(texts), steps, lr, batch_size, seed)


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(n)``, restoring the previous count.

    Args:
        n: Thread count for the block; ``None`` changes nothing.
    """
    if n is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _memorize(model_dir: Path, texts: list[str], steps: int, lr: float, batch_size: int, seed: int) -> Path:
    """Body of :func:`memorize`, with arguments already checked."""
    model, tokenizer = load_tiny_model(model_dir)
    seq2seq = bool(model.config.is_encoder_decoder)
    pad_id, eos_id = tokenizer.pad_token_id, tokenizer.eos_token_id
    limit = tokenizer.model_max_length

    rng = random.Random(seed)
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    warmup = max(1, steps // 20)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)

    full_ids = [tokenizer.encode(t, add_special_tokens=False)[: limit - 1] + [eos_id] for t in texts]
    cuts = [_split_points(t) for t in texts]
    order: list[int] = []
    model.train()
    for _ in range(steps):
        batch: list[int] = []
        while len(batch) < min(batch_size, len(texts)):
            if not order:
                # Epoch-wise shuffling so every text is seen equally often.
                order = list(range(len(texts)))
                rng.shuffle(order)
            batch.append(order.pop())
        if seq2seq:
            sources, targets = [], []
            for i in batch:
                text = texts[i]
                cut = rng.choice(cuts[i]) if cuts[i] else len(text)
                sources.append(tokenizer.encode(text[:cut], add_special_tokens=False)[:limit])
                targets.append(tokenizer.encode(text[cut:], add_special_tokens=False)[: limit - 1] + [eos_id])
            input_ids, attention = _pad(sources, pad_id)
            labels, _ = _pad(targets, -100)
            loss = model(input_ids=input_ids, attention_mask=attention, labels=labels).loss
        else:
            input_ids, attention = _pad([full_ids[i] for i in batch], pad_id)
            labels = input_ids.masked_fill(attention == 0, -100)
            loss = model(input_ids=input_ids, attention_mask=attention, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    model.eval()
    model.save_pretrained(model_dir)
    return model_dir


def _pad(sequences: list[list[int]], value: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad ``sequences`` to one length; returns the ids and the attention mask."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), value, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return ids, mask
