"""Teacher-forced forward passes that hand over attention one layer at a time.

For an encoder-decoder model the attention read is the decoder's cross-attention
(decoder -> encoder); for a decoder-only model it is the block of the
self-attention from the positions that predict output tokens to the positions
of input tokens. Rows are output tokens, labelled by the token they predict:
row t is the query position whose next token (teacher-forced) is output token
y_t. Columns are real input tokens.

Masked out, with each row renormalized over what is left
(:func:`memtasks.attention.dispersion.restrict_rows`):

* padding, and every special token of the tokenizer (BOS, EOS such as T5's
  ``</s>``, ``<pad>``) on the input side;
* the rows that predict special tokens (the end-of-sequence row) on the output side;
* unless ``include_instruction``, the task's instruction and the whitespace
  after it: the instruction is the same for every record, so it says nothing
  about how the output draws on the record's input (template labels such as
  "Context:" and "Question:" stay, as part of the input);
* for a decoder-only model, the separator between input and output and the
  earlier output tokens (self-attention looks at them too, but they are not input).

Attention weights come from forward hooks on the model's attention modules,
found through transformers' own output-recording declarations
(``_can_record_outputs``), so each layer's weights are reduced as soon as the
layer has run and never all held at once. Models without such declarations
fall back to ``output_attentions=True`` (all layers of one batch at once).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

DECODER_SEPARATOR = "\n"
_WHITESPACE_RUN = re.compile(r"\s*")


class AttentionModelError(ValueError):
    """A model whose attention to the input cannot be read."""


class AttentionInputError(ValueError):
    """An (input, output) pair that cannot be measured; the message names the record."""


@dataclass(frozen=True)
class EncodedPair:
    """One (input, output) pair as token ids, with the rows and columns to read.

    ``rows`` and ``columns`` index the query and key positions of the attention
    matrix the model produces for this pair (decoder x encoder for a seq2seq
    model, sequence x sequence for a decoder-only one).
    """

    input_ids: list[int]
    decoder_input_ids: list[int] | None
    rows: list[int]
    columns: list[int]
    input_truncated: bool
    output_truncated: bool
    where: str


def _instruction_span(source: str, instruction: str | None) -> tuple[int, int] | None:
    if not instruction:
        return None
    start = source.find(instruction)
    if start < 0:
        return None
    end = start + len(instruction)
    return start, end + _WHITESPACE_RUN.match(source, end).end() - end


def _input_columns(encoding, special_ids: set[int], span: tuple[int, int] | None) -> list[int]:
    ids = encoding["input_ids"]
    special_mask = encoding.get("special_tokens_mask") or [0] * len(ids)
    offsets = encoding.get("offset_mapping") if span else None
    columns = []
    for i, token in enumerate(ids):
        if special_mask[i] or token in special_ids:
            continue
        if offsets is not None:
            start, end = offsets[i]
            if start < span[1] and end > span[0]:
                continue
        columns.append(i)
    return columns


def _encode_source(tokenizer, source: str, max_tokens: int, span, add_special_tokens: bool):
    if span is not None and not getattr(tokenizer, "is_fast", False):
        raise AttentionModelError(
            "masking the instruction needs a fast tokenizer (character offsets); this one has none: "
            "measure with the instruction included"
        )
    # One token over the budget tells whether the input was cut, without
    # tokenizing (and warning about) the whole of a long input.
    probe = tokenizer(source, add_special_tokens=add_special_tokens, truncation=True, max_length=max_tokens + 1)
    encoding = tokenizer(
        source,
        add_special_tokens=add_special_tokens,
        truncation=True,
        max_length=max_tokens,
        return_special_tokens_mask=True,
        return_offsets_mapping=span is not None,
    )
    return encoding, len(probe["input_ids"]) > len(encoding["input_ids"])


def encode_pair(
    tokenizer,
    source: str,
    target: str,
    *,
    encoder_decoder: bool,
    decoder_start_token_id: int | None = None,
    instruction: str | None = None,
    max_input_tokens: int = 512,
    max_output_tokens: int = 128,
    separator: str = DECODER_SEPARATOR,
    where: str = "record",
) -> EncodedPair:
    """Tokenize one pair in the fine-tuning format and find its output rows and input columns.

    The input is cut to its first ``max_input_tokens`` tokens and the output to
    its first ``max_output_tokens`` (the result says whether either was cut).
    ``instruction`` (when given and found in ``source``) is masked out of the
    columns. A decoder-only model reads ``source + separator + target``.
    """
    special_ids = set(tokenizer.all_special_ids)
    span = _instruction_span(source, instruction)
    if not target.strip():
        raise AttentionInputError(f"{where}: the output is empty: there is no output token whose attention to measure")
    encoding, input_cut = _encode_source(tokenizer, source, max_input_tokens, span, add_special_tokens=True)
    columns = _input_columns(encoding, special_ids, span)
    if len(columns) < 2:
        raise AttentionInputError(
            f"{where}: the input has {len(columns)} token(s) once special tokens"
            f"{'' if span is None else ' and the instruction'} are masked: dispersion needs at least 2"
        )
    input_ids = list(encoding["input_ids"])
    # Without special tokens: the row that would predict end-of-sequence is not measured anyway.
    target_ids = tokenizer(target, add_special_tokens=False, truncation=True, max_length=max_output_tokens + 1)["input_ids"]
    output_cut = len(target_ids) > max_output_tokens
    target_ids = list(target_ids[:max_output_tokens])
    predicted = [t for t, token in enumerate(target_ids) if token not in special_ids]
    if not predicted:
        raise AttentionInputError(f"{where}: the output has only special tokens: there is no output token to measure")
    if encoder_decoder:
        if decoder_start_token_id is None:
            raise AttentionModelError("the encoder-decoder model's config has no decoder_start_token_id")
        # Teacher forcing: the decoder reads the output shifted right by one, so
        # position t holds y_{t-1} and predicts y_t.
        decoder_ids = [decoder_start_token_id, *target_ids[:-1]]
        return EncodedPair(input_ids, decoder_ids, predicted, columns, input_cut, output_cut, where)
    separator_ids = list(tokenizer(separator, add_special_tokens=False)["input_ids"]) if separator else []
    first = len(input_ids) + len(separator_ids)
    if first == 0:
        raise AttentionInputError(f"{where}: a decoder-only model needs an input or a separator before the output")
    # Position p predicts token p + 1, so output token t is predicted at first + t - 1.
    rows = [first + t - 1 for t in predicted]
    return EncodedPair(input_ids + separator_ids + target_ids, None, rows, columns, input_cut, output_cut, where)


def _specs(declared) -> list[tuple[type | None, str | None, str | None, int]]:
    """(target class, class-name suffix, layer name, output index) of each recording declaration."""
    out = []
    for spec in declared if isinstance(declared, list) else [declared]:
        if isinstance(spec, type):
            out.append((spec, None, None, 1))
        elif isinstance(spec, str):
            out.append((None, spec, None, 1))
        else:
            out.append((spec.target_class, spec.class_name, spec.layer_name, spec.index))
    return out


def attention_modules(model: torch.nn.Module) -> list[tuple[str, torch.nn.Module, int]]:
    """The modules whose output holds the attention to read, in layer order, with the output index.

    Cross-attention modules for an encoder-decoder model, self-attention
    modules for a decoder-only one, as the model declares them for
    transformers' ``output_attentions`` recording (``_can_record_outputs``).
    As transformers does, each sub-model (the decoder stack of BART, say)
    answers for its own modules with its own declarations. Empty when nothing
    is declared.
    """
    from transformers import PreTrainedModel

    key = "cross_attentions" if getattr(model.config, "is_encoder_decoder", False) else "attentions"
    found: list[tuple[str, torch.nn.Module, int]] = []

    def visit(module: torch.nn.Module, name: str, specs: list) -> None:
        if isinstance(module, PreTrainedModel):
            declared = (getattr(module, "_can_record_outputs", None) or {}).get(key)
            specs = _specs(declared) if declared is not None else []
        else:
            for target, class_name, layer_name, index in specs:
                if not ((target is not None and isinstance(module, target)) or (class_name and name.endswith(class_name))):
                    continue
                if layer_name is not None and f".{layer_name.strip('.')}." not in f"{name}.":
                    continue
                found.append((name.lstrip("."), module, index))
                break
        for child_name, child in module.named_children():
            visit(child, f"{name}.{child_name}", specs)

    visit(model, "", [])
    return found


def ensure_eager(model: torch.nn.Module) -> None:
    """Switch ``model`` to eager attention, which returns weights; fail clearly when it cannot."""
    current = getattr(model.config, "_attn_implementation", None)
    if current in (None, "eager"):
        return
    try:
        model.set_attn_implementation("eager")
    except (AttributeError, ValueError, NotImplementedError) as error:
        raise AttentionModelError(
            f"{type(model).__name__} uses attn_implementation={current!r}, which returns no attention weights, "
            f"and cannot switch to 'eager': {error}"
        ) from error


LayerCallback = Callable[[int, torch.Tensor], None]


@contextmanager
def _hooks(modules: Sequence[tuple[str, torch.nn.Module, int]], layers: Sequence[int], callback: LayerCallback) -> Iterator[None]:
    handles = []
    for layer in layers:
        name, module, index = modules[layer]

        def hook(_module, _args, output, layer=layer, name=name, index=index):
            weights = output[index] if isinstance(output, tuple) else None
            if not isinstance(weights, torch.Tensor) or weights.dim() != 4:
                raise AttentionModelError(
                    f"{name} returned no attention weights: the model must run with attn_implementation='eager'"
                )
            callback(layer, weights.detach())

        handles.append(module.register_forward_hook(hook))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _pad(sequences: Sequence[Sequence[int]], value: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), value, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, sequence in enumerate(sequences):
        ids[i, : len(sequence)] = torch.tensor(sequence, dtype=torch.long)
        mask[i, : len(sequence)] = 1
    return ids, mask


def num_layers(model: torch.nn.Module) -> int:
    """How many layers have attention to read: hooked modules, else the config's decoder depth."""
    modules = attention_modules(model)
    if modules:
        return len(modules)
    config = model.config
    for attribute in ("num_decoder_layers", "decoder_layers", "num_hidden_layers", "n_layer"):
        value = getattr(config, attribute, None)
        if isinstance(value, int) and value > 0:
            return value
    raise AttentionModelError(f"cannot tell how many layers {type(model).__name__} has")


@torch.no_grad()
def forward_layers(
    model: torch.nn.Module,
    batch: Sequence[EncodedPair],
    layers: Sequence[int] | None,
    callback: LayerCallback,
    pad_token_id: int,
) -> None:
    """Run one teacher-forced batch, calling ``callback(layer, weights)`` per selected layer.

    ``weights`` has shape (batch, heads, queries, keys); padding is on the
    right, so sample i's rows and columns index it directly. ``layers=None``
    means every layer.
    """
    encoder_decoder = bool(getattr(model.config, "is_encoder_decoder", False))
    input_ids, attention_mask = _pad([pair.input_ids for pair in batch], pad_token_id)
    device = next(model.parameters()).device
    kwargs = {"input_ids": input_ids.to(device), "attention_mask": attention_mask.to(device), "use_cache": False}
    if encoder_decoder:
        decoder_ids, decoder_mask = _pad([pair.decoder_input_ids for pair in batch], pad_token_id)
        kwargs.update(decoder_input_ids=decoder_ids.to(device), decoder_attention_mask=decoder_mask.to(device))
    modules = attention_modules(model)
    if modules:
        selected = range(len(modules)) if layers is None else layers
        with _hooks(modules, selected, callback):
            model(**kwargs)
        return
    outputs = model(**kwargs, output_attentions=True)
    weights = outputs.cross_attentions if encoder_decoder else outputs.attentions
    if not weights or any(w is None for w in weights):
        kind = "cross-attention" if encoder_decoder else "self-attention"
        raise AttentionModelError(
            f"{type(model).__name__} returns no {kind} weights: it needs attn_implementation='eager'"
            + (" and decoder-to-encoder attention" if encoder_decoder else "")
        )
    for layer in range(len(weights)) if layers is None else layers:
        callback(layer, weights[layer].detach())


def model_limit(model: torch.nn.Module) -> int | None:
    """The longest sequence the model's position embeddings allow, when it has a hard limit."""
    for attribute in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(model.config, attribute, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def batches(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def as_numpy(weights: torch.Tensor) -> np.ndarray:
    return weights.to(torch.float64).cpu().numpy()
