"""Attention dispersion of a model over a task's (input, output) pairs.

Per sample s, selected layer l and head h, the renormalized output-to-input
rows a_{s,l,h} (see :mod:`memtasks.attention.capture`) give CAD, coverage and
row divergence (:mod:`memtasks.attention.dispersion`). A sample's value is the
mean over the selected layers and their heads; the task's value is the mean
over samples, with a bootstrap interval over samples. Per-layer values are the
mean over heads and samples of each layer; per-head values the mean over samples.

Only these few numbers per (sample, layer, head) and the heatmaps are kept:
each layer's attention is reduced as soon as that layer has run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from memtasks.attention import dispersion
from memtasks.attention.capture import (
    DECODER_SEPARATOR,
    AttentionModelError,
    EncodedPair,
    as_numpy,
    batches,
    encode_pair,
    ensure_eager,
    forward_layers,
    model_limit,
    num_layers,
)

MEASURES = ("cad", "coverage", "row_divergence")
_FUNCTIONS = {"cad": dispersion.cad, "coverage": dispersion.coverage, "row_divergence": dispersion.row_divergence}
# Single-sample heatmaps kept for the plots.
SAMPLE_MAPS = 4


def select_layers(layers: str | Sequence[int], total: int) -> list[int]:
    """Layer indices from ``"last"``, ``"all"``, ``"0,3,-1"`` or a sequence of ints (negative from the end)."""
    if isinstance(layers, str):
        if layers == "last":
            return [total - 1]
        if layers == "all":
            return list(range(total))
        try:
            layers = [int(part) for part in layers.split(",") if part.strip()]
        except ValueError:
            raise ValueError(f"layers must be 'last', 'all' or comma-separated layer numbers, not {layers!r}") from None
    chosen = []
    for layer in layers:
        if not -total <= layer < total:
            raise ValueError(f"layer {layer} does not exist: the model has {total} attention layers (0 to {total - 1})")
        chosen.append(layer % total)
    if not chosen:
        raise ValueError("no layer selected")
    return sorted(set(chosen))


@dataclass(frozen=True)
class SampleInfo:
    """What was measured of one pair: its name, sizes after masking, and whether it was cut."""

    where: str
    input_tokens: int
    output_tokens: int
    input_truncated: bool
    output_truncated: bool


@dataclass
class AttentionResult:
    """Dispersion of one model on one task's pairs.

    ``values[m]`` has shape (samples, selected layers, heads) for each measure
    m in :data:`MEASURES`. Heatmaps are over (output token, input token) on a
    canvas of ``max_output_tokens`` x ``max_input_tokens``; cells no sample
    reaches are NaN.
    """

    attention: str
    layers: list[int]
    num_layers: int
    samples: list[SampleInfo]
    values: dict[str, np.ndarray]
    average_map: np.ndarray
    layer_maps: np.ndarray
    sample_maps: list[np.ndarray] = field(default_factory=list)
    max_input_tokens: int = 512
    max_output_tokens: int = 128
    include_instruction: bool = False

    def sample_values(self, measure: str) -> np.ndarray:
        """Each sample's value of ``measure``: the mean over selected layers and heads, shape (samples,)."""
        return self.values[measure].mean(axis=(1, 2))

    def summary(self) -> dict[str, tuple[float, float, float]]:
        """Each measure's mean over samples with its 5th-95th percentile bootstrap interval."""
        out = {}
        for name in MEASURES:
            mean, low, high = dispersion.bootstrap_mean(self.sample_values(name))
            out[name] = (float(mean), float(low), float(high))
        return out

    def per_layer(self) -> dict[str, list[float]]:
        """Per selected layer: each measure's mean over heads and samples, with bootstrap bounds."""
        out: dict[str, list[float]] = {}
        for name in MEASURES:
            mean, low, high = dispersion.bootstrap_mean(self.values[name].mean(axis=2))
            out[name], out[f"{name}_low"], out[f"{name}_high"] = mean.tolist(), low.tolist(), high.tolist()
        return out

    def per_head(self) -> dict[str, list[list[float]]]:
        """Per selected layer and head: each measure's mean over samples."""
        return {name: self.values[name].mean(axis=0).tolist() for name in MEASURES}


class _Accumulator:
    """Collects each layer's reduced attention as the forward pass produces it."""

    def __init__(self, n_samples: int, layers: list[int], max_output: int, max_input: int):
        self.layers = layers
        self.position = {layer: i for i, layer in enumerate(layers)}
        self.values: dict[str, np.ndarray] | None = None
        self.n_samples = n_samples
        self.map_sum = np.zeros((max_output, max_input))
        self.layer_sum = np.zeros((len(layers), max_output, max_input))
        self.count = np.zeros((max_output, max_input))
        self.sample_maps: dict[int, np.ndarray] = {}
        self.batch: Sequence[EncodedPair] = ()
        self.offset = 0

    def start_batch(self, offset: int, batch: Sequence[EncodedPair]) -> None:
        self.offset, self.batch = offset, batch
        for pair in batch:
            self.count[: len(pair.rows), : len(pair.columns)] += 1

    def __call__(self, layer: int, weights: torch.Tensor) -> None:
        position = self.position[layer]
        for i, pair in enumerate(self.batch):
            # Cut the block out in torch first: only it is copied to float64.
            block = weights[i][:, pair.rows[0] : pair.rows[-1] + 1, pair.columns[0] : pair.columns[-1] + 1]
            rows = dispersion.restrict_rows(
                as_numpy(block),
                [r - pair.rows[0] for r in pair.rows],
                [c - pair.columns[0] for c in pair.columns],
                pair.where,
            )
            heads = rows.shape[0]
            if self.values is None:
                self.values = {m: np.zeros((self.n_samples, len(self.layers), heads)) for m in MEASURES}
            elif self.values["cad"].shape[2] != heads:
                raise AttentionModelError(f"layer {layer} has {heads} heads, an earlier one {self.values['cad'].shape[2]}")
            sample = self.offset + i
            for name in MEASURES:
                self.values[name][sample, position] = _FUNCTIONS[name](rows)
            mean_map = rows.mean(axis=0)
            t, s = mean_map.shape
            self.layer_sum[position, :t, :s] += mean_map
            self.map_sum[:t, :s] += mean_map / len(self.layers)
            if sample < SAMPLE_MAPS:
                self.sample_maps.setdefault(sample, np.zeros((t, s)))
                self.sample_maps[sample] += mean_map / len(self.layers)


def _check_budget(model, encoder_decoder: bool, separator_tokens: int, max_input: int, max_output: int) -> None:
    if max_input < 2 or max_output < 1:
        raise ValueError("max_input_tokens must be at least 2 and max_output_tokens at least 1")
    limit = model_limit(model)
    if limit is None:
        return
    if encoder_decoder:
        needed, what = max(max_input, max_output), f"max_input_tokens {max_input} and max_output_tokens {max_output}"
    else:
        needed = max_input + separator_tokens + max_output
        what = f"max_input_tokens {max_input} + separator {separator_tokens} + max_output_tokens {max_output} = {needed} positions"
    if needed > limit:
        raise ValueError(f"{type(model).__name__} has {limit} positions: {what} do not fit; lower them")


def measure_attention(
    model: torch.nn.Module,
    tokenizer,
    pairs: Sequence[tuple[str, str]],
    *,
    names: Sequence[str] | None = None,
    layers: str | Sequence[int] = "last",
    instruction: str | None = None,
    include_instruction: bool = False,
    max_input_tokens: int = 512,
    max_output_tokens: int = 128,
    batch_size: int = 1,
    separator: str = DECODER_SEPARATOR,
    progress: bool = True,
) -> AttentionResult:
    """Attention dispersion of ``model`` over (input, output) ``pairs``.

    Each pair is run teacher-forced: an encoder-decoder model reads the input
    and, shifted right, the output; a decoder-only model reads ``input +
    separator + output``. Inputs longer than ``max_input_tokens`` and outputs
    longer than ``max_output_tokens`` are cut to their first tokens (counted in
    the result). ``instruction`` is masked out of the input unless
    ``include_instruction``. ``names`` label pairs in errors (default
    "pair i"). The model is switched to eager attention if it is not.
    """
    if not pairs:
        raise ValueError("no (input, output) pairs to measure")
    names = list(names) if names is not None else [f"pair {i}" for i in range(len(pairs))]
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    encoder_decoder = bool(getattr(model.config, "is_encoder_decoder", False))
    separator_tokens = 0 if encoder_decoder or not separator else len(tokenizer(separator, add_special_tokens=False)["input_ids"])
    _check_budget(model, encoder_decoder, separator_tokens, max_input_tokens, max_output_tokens)
    ensure_eager(model)
    model.eval()
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad_id is None:
        raise AttentionModelError("the tokenizer has neither a pad token nor an eos token to pad batches with")
    encoded = [
        encode_pair(
            tokenizer,
            source,
            target,
            encoder_decoder=encoder_decoder,
            decoder_start_token_id=getattr(model.config, "decoder_start_token_id", None),
            instruction=None if include_instruction else instruction,
            max_input_tokens=max_input_tokens,
            max_output_tokens=max_output_tokens,
            separator=separator,
            where=name,
        )
        for (source, target), name in zip(pairs, names)
    ]
    total = num_layers(model)
    chosen = select_layers(layers, total)
    accumulator = _Accumulator(len(encoded), chosen, max_output_tokens, max_input_tokens)
    offset = 0
    for batch in tqdm(list(batches(encoded, batch_size)), desc="attention", unit="batch", disable=not progress):
        accumulator.start_batch(offset, batch)
        forward_layers(model, batch, chosen, accumulator, pad_id)
        offset += len(batch)
    if accumulator.values is None:
        raise AttentionModelError(f"{type(model).__name__} produced no attention weights for the selected layers")
    with np.errstate(invalid="ignore", divide="ignore"):
        present = np.where(accumulator.count > 0, accumulator.count, np.nan)
        average_map = accumulator.map_sum / present
        layer_maps = accumulator.layer_sum / present
    return AttentionResult(
        attention="cross" if encoder_decoder else "self",
        layers=chosen,
        num_layers=total,
        samples=[
            SampleInfo(p.where, len(p.columns), len(p.rows), p.input_truncated, p.output_truncated) for p in encoded
        ],
        values=accumulator.values,
        average_map=average_map,
        layer_maps=layer_maps,
        sample_maps=[accumulator.sample_maps[i] for i in sorted(accumulator.sample_maps)],
        max_input_tokens=max_input_tokens,
        max_output_tokens=max_output_tokens,
        include_instruction=include_instruction,
    )
