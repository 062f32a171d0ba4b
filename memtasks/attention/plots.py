"""Heatmaps of output-to-input attention, after the study's Figure 4 (Appendix K).

Each map is (output token) x (input token) on a canvas as wide as the input
budget (512 tokens by default): an input shorter than that leaves the rest of
its rows blank (grey), a longer one was cut. Values are the renormalized
attention averaged over the selected layers and their heads (and, for the
average map, over the samples that reach that cell). The colour scale of each
panel runs from 0 to the 99th percentile of its values, so that both a few
bright columns (concentrated attention) and an even wash (dispersed attention)
stay visible; the colour bar gives the values.

Files written by :func:`write_plots`:

* ``attention_average.png``: one panel per task (four to a row), the average over its samples;
* ``attention_samples.png``: one row per task, single samples;
* ``attention_layers_<task>.png``: one panel per selected layer of a task.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import numpy as np  # noqa: E402

from memtasks.attention.measure import AttentionResult  # noqa: E402
from memtasks.outputs import atomic_path  # noqa: E402

PANELS_PER_ROW = 4
_CMAP = matplotlib.colormaps["viridis"].with_extremes(bad="#d9d9d9")


def _rows_used(result: AttentionResult) -> int:
    return max(1, max(s.output_tokens for s in result.samples))


def _draw(ax, values: np.ndarray, width: int, height: int, title: str, fig) -> None:
    canvas = np.full((height, width), np.nan)
    rows, cols = min(values.shape[0], height), min(values.shape[1], width)
    canvas[:rows, :cols] = values[:rows, :cols]
    finite = canvas[np.isfinite(canvas)]
    vmax = float(np.percentile(finite, 99)) if finite.size else 1.0
    image = ax.imshow(
        np.ma.masked_invalid(canvas),
        aspect="auto",
        interpolation="nearest",
        cmap=_CMAP,
        vmin=0.0,
        vmax=vmax if vmax > 0 else 1.0,
        # Cell centres on whole numbers, so that tick t labels output token t.
        extent=(-0.5, width - 0.5, height - 0.5, -0.5),
    )
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("input token", fontsize=8)
    ax.set_ylabel("output token", fontsize=8)
    ax.tick_params(labelsize=7)
    if height <= 10:
        # MaxNLocator falls back to fractional ticks on a range this short.
        ax.set_yticks(range(height))
    else:
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.02)
    bar.ax.tick_params(labelsize=7)


def _layer_label(result: AttentionResult) -> str:
    if len(result.layers) == result.num_layers:
        return f"all {result.num_layers} layers"
    return "layer " + ", ".join(str(layer) for layer in result.layers)


def plot_average(results: Mapping[str, AttentionResult], path: str | Path) -> Path:
    """One panel per task: attention averaged over its samples, heads and selected layers."""
    n = len(results)
    columns = min(n, PANELS_PER_ROW)
    rows = math.ceil(n / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.6 * columns, 3.8 * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    for ax, (task, result) in zip(axes.flat, results.items()):
        summary = result.summary()
        title = (
            f"{task}: mean of {len(result.samples)} samples, {_layer_label(result)}\n"
            f"CAD {summary['cad'][0]:.3f}  coverage {summary['coverage'][0]:.3f}"
        )
        _draw(ax, result.average_map, result.max_input_tokens, _rows_used(result), title, fig)
    fig.suptitle(f"{results[next(iter(results))].attention}-attention of output tokens over input tokens", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def plot_samples(results: Mapping[str, AttentionResult], path: str | Path) -> Path:
    """One row per task, one panel per single sample (up to four)."""
    columns = max(len(r.sample_maps) for r in results.values())
    fig, axes = plt.subplots(len(results), columns, figsize=(4.2 * columns, 3.4 * len(results)), squeeze=False)
    for row, (task, result) in enumerate(results.items()):
        cad = result.sample_values("cad")
        for column in range(columns):
            ax = axes[row][column]
            if column >= len(result.sample_maps):
                ax.axis("off")
                continue
            info = result.samples[column]
            title = f"{task}: {info.where.rsplit(': ', 1)[-1]}\n{info.input_tokens} input, {info.output_tokens} output tokens, CAD {cad[column]:.3f}"
            _draw(ax, result.sample_maps[column], result.max_input_tokens, max(1, info.output_tokens), title, fig)
    fig.tight_layout()
    return _save(fig, path)


def plot_layers(task: str, result: AttentionResult, path: str | Path) -> Path:
    """One panel per selected layer: attention averaged over heads and samples."""
    n = len(result.layers)
    columns = math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    per_layer = result.per_layer()["cad"]
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.4 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.axis("off")
            continue
        title = f"{task}: layer {result.layers[i]}, CAD {per_layer[i]:.3f}"
        _draw(ax, result.layer_maps[i], result.max_input_tokens, _rows_used(result), title, fig)
    fig.tight_layout()
    return _save(fig, path)


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(path) as temporary:
            fig.savefig(temporary, format=path.suffix.lstrip("."), dpi=110)
    finally:
        plt.close(fig)
    return path


def write_plots(results: Mapping[str, AttentionResult], plot_dir: str | Path) -> list[Path]:
    """Every heatmap of a run (see the module docstring), in ``plot_dir``."""
    if not results:
        raise ValueError("no results to plot")
    plot_dir = Path(plot_dir)
    paths = [plot_average(results, plot_dir / "attention_average.png"), plot_samples(results, plot_dir / "attention_samples.png")]
    for task, result in results.items():
        paths.append(plot_layers(task, result, plot_dir / f"attention_layers_{task}.png"))
    return paths
