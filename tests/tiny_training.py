"""Test helpers for the tiny models of :mod:`memtasks.tiny`: load one back, and train one until it
reproduces given texts in a few seconds.

No package code needs either (the demo fine-tunes its tiny models with ``memtasks.finetune``, and
lm-eval loads them by path), so they live with the tests: lm-eval end to end, the tiny models' own
checks, attention.
"""

from __future__ import annotations

import logging
import math
import random
import re
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from memtasks.tiny import torch_threads

log = logging.getLogger(__name__)

# Seq2seq memorize() trains continuations of prefixes of these many words: the prefix
# lengths of the memtasks probes (10, 15, 30, 50, 100 words) and 20.
DEFAULT_PREFIX_WORDS = (10, 15, 20, 30, 50, 100)

_WORD = re.compile(r"\S+")


def load_tiny_model(model_dir: str | Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a model saved by :func:`memtasks.tiny.build_tiny_model` with the matching Auto class.

    Args:
        model_dir: Directory written by :func:`memtasks.tiny.build_tiny_model` or :func:`memorize`.

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
        model_dir: Directory written by :func:`memtasks.tiny.build_tiny_model`; overwritten in place.
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
