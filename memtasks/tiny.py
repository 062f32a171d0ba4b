"""Tiny Hugging Face models built entirely offline, for the demo and tests.

Nothing here touches the Hugging Face hub: the tokenizer is trained on the caller's texts, the
models are randomly initialised from a small config, and everything is written to a local
directory that ``AutoTokenizer``, ``AutoModelForCausalLM`` / ``AutoModelForSeq2SeqLM`` and
lm-eval's ``HFLM`` load like any hub checkpoint.

Typical use::

    tokenizer = train_tokenizer(corpus)
    path = build_tiny_model("decoder", tokenizer, tmp_dir / "tiny-decoder")

Special tokens, with the same ids in every tokenizer built here:

* ``<pad>`` = 0: padding, and the T5 decoder start token (T5's own convention).
* ``</s>`` = 1: end of text; also the BOS token, as GPT-2's ``<|endoftext|>`` is both, so
  that lm-eval's loglikelihood prefix token is one the model has seen.
* ``<unk>`` = 2: a byte-level BPE never needs it, but some code expects one to exist.

``encode`` adds no special tokens: lm-eval passes contexts through the tokenizer as they are,
so a model trained on that encoding sees a prefix at evaluation time as it saw it in training.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    GenerationConfig,
    GPT2Config,
    GPT2LMHeadModel,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
    T5Config,
    T5ForConditionalGeneration,
)

from memtasks.models import UNTRAINED_MARKER
from memtasks.outputs import DiskWriteError, flush_folder, write_failure

__all__ = [
    "PAD_TOKEN",
    "EOS_TOKEN",
    "UNK_TOKEN",
    "MAX_POSITIONS",
    "train_tokenizer",
    "build_tiny_model",
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
        # Clean-up of tokenization spaces rewrites " ." to "." and would break exact round trips.
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
            # Untied input and output embeddings made memorization training (tests/tiny_training.py)
            # converge reliably at a high learning rate; tied ones got stuck near the unigram
            # loss for some seeds.
            tie_word_embeddings=False,
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
            # The tokenizer names a bos token: without it here, the Trainer warns that the tokenizer's tokens are new.
            bos_token_id=bos_id,
            decoder_start_token_id=pad_id,
        )
        torch.manual_seed(seed)
        model = T5ForConditionalGeneration(config)
        generation = GenerationConfig(
            bos_token_id=bos_id, eos_token_id=eos_id, pad_token_id=pad_id, decoder_start_token_id=pad_id
        )
    else:
        raise ValueError(f"kind must be 'decoder' or 'seq2seq', not {kind!r}")

    model.generation_config = generation
    out = Path(out_dir)
    # Written beside, flushed, then renamed: a full disk never leaves a folder of cut weights at ``out``.
    partial = out.with_name(f"{out.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        model.save_pretrained(partial)
        tokenizer.save_pretrained(partial)
        # Read by the report, which names such a model untrained, and by tiny-models, which replaces only its own folders.
        marker = {"made_by": "memtasks tiny-models", "kind": kind, "weights": f"random (seed {seed})"}
        (partial / UNTRAINED_MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
        flush_folder(partial)
        if out.is_dir():
            shutil.rmtree(out)
        partial.replace(out)
    except Exception as error:
        cause = write_failure(error)
        if cause is None:
            raise
        raise DiskWriteError(f"{out}: {cause} while writing the model") from None
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return out


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
