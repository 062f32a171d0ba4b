"""Tiny Hugging Face models built entirely offline, for tests and demos.

Nothing here touches the Hugging Face hub: the tokenizer is trained on the caller's texts, the
models are randomly initialised from a small config, and everything is written to a local
directory that ``AutoTokenizer``, ``AutoModelForCausalLM`` / ``AutoModelForSeq2SeqLM`` and
lm-eval's ``HFLM`` load like any hub checkpoint.

Typical use::

    tokenizer = train_tokenizer(corpus)
    path = build_tiny_model("decoder", tokenizer, tmp_dir / "tiny-decoder")
    memorize(path, training_texts)  # now it continues each text from its first words

Special tokens, with the same ids in every tokenizer built here:

* ``<pad>`` = 0: padding, and the T5 decoder start token (T5's own convention).
* ``</s>`` = 1: end of text; also the BOS token, as GPT-2's ``<|endoftext|>`` is both, so
  that lm-eval's loglikelihood prefix token is one the model has seen.
* ``<unk>`` = 2: a byte-level BPE never needs it, but some code expects one to exist.

``encode`` adds no special tokens: lm-eval passes contexts through the tokenizer as they are,
and :func:`memorize` trains on exactly that encoding, so that a prefix at evaluation time is
encoded as the same prefix was in training.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Literal

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    AutoConfig,
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
    "DEFAULT_PREFIX_WORDS",
    "train_tokenizer",
    "build_tiny_model",
    "memorize",
    "load_tiny_model",
    "torch_threads",
]

log = logging.getLogger(__name__)

PAD_TOKEN = "<pad>"
EOS_TOKEN = "</s>"
UNK_TOKEN = "<unk>"
SPECIAL_TOKENS = [PAD_TOKEN, EOS_TOKEN, UNK_TOKEN]

# lm-eval's HFLM reserves max_gen_toks (256 by default) of the context window for generation
# and asserts that something is left for the prompt, so the window must be well above 256.
MAX_POSITIONS = 1024

# Seq2seq memorize() trains continuations of prefixes of these many words: the prefix
# lengths of the memtasks probes (10, 15, 30, 50, 100 words) and 20.
DEFAULT_PREFIX_WORDS = (10, 15, 20, 30, 50, 100)

_WORD = re.compile(r"\S+")


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
            # Untied input and output embeddings made memorize() converge reliably at a high
            # learning rate; tied ones got stuck near the unigram loss for some seeds.
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
    config = AutoConfig.from_pretrained(model_dir)
    auto = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM
    model = auto.from_pretrained(model_dir)
    model.eval()
    return model, tokenizer


def _word_ends(text: str) -> list[int]:
    """Character offsets just past each whitespace-delimited word of ``text``.

    ``text[:end]`` is then a prefix of whole words, cut the way ``memtasks.probes`` cuts
    probes, and ``text[end:]`` starts with the whitespace before the next word. The last
    word is left out: a cut there leaves nothing to continue.
    """
    return [m.end() for m in _WORD.finditer(text)][:-1]


def memorize(
    model_dir: str | Path,
    texts: Sequence[str],
    steps: int = 200,
    lr: float = 1e-2,
    batch_size: int = 16,
    seed: int = 0,
    prefix_words: Sequence[int] | None = DEFAULT_PREFIX_WORDS,
    num_threads: int | None = 1,
) -> Path:
    """Train the model saved in ``model_dir`` until it reproduces ``texts``, and save it back.

    Plain torch on the CPU: AdamW, a 10% linear warmup, cosine decay to a tenth of ``lr``,
    gradient clipping at 1, no dropout (the models are built without it).

    * Decoder: causal LM loss on ``text + </s>``, tokenized as lm-eval tokenizes a context
      (no BOS), so greedy generation from any word prefix of a training text continues it.
      ``prefix_words`` is not used: a causal LM learns every position of a text at once.
    * Seq2seq: each example is a text cut after ``k`` words, for each ``k`` in
      ``prefix_words`` shorter than the text (texts shorter than all of them are cut in the
      middle). The encoder gets the prefix; the labels are the rest of the text, which starts
      with the space before the next word, followed by ``</s>``. Labels are the continuation
      only, not the full text, because lm-eval's HFLM returns the whole decoder output as the
      continuation of the context. A seq2seq model learns where to resume only at the cuts it
      is shown, one per example, and does not generalise to other prefix lengths (from 12-word
      prefixes it reproduced nothing after training at 10, 15 and 20). So it is trained at a
      few prefix lengths, by default those the memtasks probes use plus 20, rather than at every
      word: ``prefix_words=None`` trains every word boundary and then needs many more steps.

    Args:
        model_dir: Directory written by :func:`build_tiny_model`; overwritten in place.
        texts: Texts to memorize: tens of texts of up to a few hundred tokens each.
        steps: Optimizer steps.
        lr: Peak learning rate. Tiny models tolerate, and need, a high one: at 3e-3 a 64-wide
            GPT-2 had not memorized 50 texts after 300 steps; at 2e-2 it stalled.
        batch_size: Examples per step (all of them when there are fewer): texts for the
            decoder, (text, cut) pairs for seq2seq.
        seed: Seed for the example order.
        prefix_words: Seq2seq only: the prefix lengths, in words, to train on.
        num_threads: Torch intra-op threads while training (restored afterwards); ``None``
            keeps the current setting. One is the default because these models are too small
            to gain from more, and on a busy 2-core machine two OpenMP threads made training
            over 20 times slower than one.

    Returns:
        ``model_dir`` as a ``Path``.
    """
    if not texts:
        raise ValueError("no texts to memorize")
    if any(not text.strip() for text in texts):
        raise ValueError("texts to memorize must not be blank")
    if steps < 1:
        raise ValueError("steps must be at least 1")
    with torch_threads(num_threads):
        return _memorize(Path(model_dir), list(texts), steps, lr, batch_size, seed, prefix_words)


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


def _memorize(
    model_dir: Path,
    texts: list[str],
    steps: int,
    lr: float,
    batch_size: int,
    seed: int,
    prefix_words: Sequence[int] | None,
) -> Path:
    """Body of :func:`memorize`, with its arguments checked."""
    model, tokenizer = load_tiny_model(model_dir)
    seq2seq = bool(model.config.is_encoder_decoder)
    pad_id, eos_id = tokenizer.pad_token_id, tokenizer.eos_token_id
    limit = tokenizer.model_max_length
    if getattr(model.config, "n_positions", None):
        limit = min(limit, model.config.n_positions)

    # Examples are encoded once: texts for the decoder, (prompt, target) pairs for seq2seq.
    examples: list[tuple[list[int], list[int]]] = []
    for text in texts:
        if not seq2seq:
            # A text too long for the model is cut before its </s>: it does not end there.
            examples.append(((tokenizer.encode(text, add_special_tokens=False) + [eos_id])[:limit], []))
            continue
        ends = _word_ends(text)
        if prefix_words is None:
            cuts = ends
        else:
            cuts = [ends[k - 1] for k in sorted(set(prefix_words)) if 0 < k <= len(ends)]
        if not cuts:
            cuts = [ends[len(ends) // 2]] if ends else [len(text)]
        for cut in cuts:
            # The prompt keeps its last tokens when too long, as lm-eval truncates on the left.
            prompt = tokenizer.encode(text[:cut], add_special_tokens=False)[-limit:]
            target = (tokenizer.encode(text[cut:], add_special_tokens=False) + [eos_id])[:limit]
            examples.append((prompt, target))

    rng = random.Random(seed)
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    # With a 5% warmup, lr 1e-2 sometimes stalled on the unigram plateau.
    warmup = max(1, steps // 10)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    order: list[int] = []
    model.train()
    for step in range(steps):
        batch = []
        while len(batch) < min(batch_size, len(examples)):
            if not order:
                # Reshuffle per epoch so that every example is seen equally often.
                order = list(range(len(examples)))
                rng.shuffle(order)
            batch.append(examples[order.pop()])
        input_ids, attention = _pad([prompt for prompt, _ in batch], pad_id)
        if seq2seq:
            labels, _ = _pad([target for _, target in batch], -100)
            loss = model(input_ids=input_ids, attention_mask=attention, labels=labels).loss
        else:
            # The shifted loss is computed here rather than by passing labels, which makes
            # transformers 5 warn that GPT2LMHeadModel's loss_type is unrecognized.
            logits = model(input_ids=input_ids, attention_mask=attention).logits[:, :-1]
            labels = input_ids.masked_fill(attention == 0, -100)[:, 1:]
            loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels, ignore_index=-100)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if step % 20 == 0 or step == steps - 1:
            log.info("memorize step %d/%d loss %.4f", step + 1, steps, loss.item())
    model.eval()
    model.save_pretrained(model_dir)
    return model_dir


def _pad(sequences: list[list[int]], value: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad ``sequences`` to one length; returns the ids and the attention mask."""
    ids = [torch.tensor(seq, dtype=torch.long) for seq in sequences]
    padded = torch.nn.utils.rnn.pad_sequence(ids, batch_first=True, padding_value=value)
    mask = torch.nn.utils.rnn.pad_sequence([torch.ones_like(seq) for seq in ids], batch_first=True)
    return padded, mask
