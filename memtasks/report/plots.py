"""The report's figures as PNG files (matplotlib, no display needed).

Error bars are the 90% bootstrap intervals of the runs (5th-95th percentile).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from memtasks.outputs import atomic_path
from memtasks.report.collect import AttentionRun, Run
from memtasks.report.analysis import (
    cad_points,
    correlations,
    decoding_groups,
    epoch_groups,
    final_models,
    prefix_groups,
    size_groups,
    size_order,
)
from memtasks.report.views import CATEGORY_TITLES, short_name

DPI = 110
MAX_BARS = 60
CATEGORY_COLORS = {"verbatim": "#c0392b", "idea": "#2980b9", "paraphrase": "#27ae60"}


@dataclass(frozen=True)
class Figure:
    """A written PNG and what it shows."""

    key: str
    title: str
    caption: str
    path: Path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _errors(values: Sequence[float], lows: Sequence[float], highs: Sequence[float]) -> list[list[float]]:
    return [[100 * (v - lo) for v, lo in zip(values, lows)], [100 * (hi - v) for v, hi in zip(values, highs)]]


def _save(fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    try:
        with atomic_path(path) as temporary:
            # Fixed metadata keeps the PNG bytes the same from one render to the next.
            fig.savefig(temporary, format=path.suffix.lstrip("."), dpi=DPI, metadata={"Software": None}, bbox_inches="tight")
    finally:
        _pyplot().close(fig)


def _legend_below(ax) -> None:
    """Under the plot, so that the plot keeps its width in a half-page column."""
    entries = len(ax.get_legend_handles_labels()[1])
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2 if entries > 3 else 1, frameon=False)


def _rate_axis(ax, runs: Sequence[Run]) -> None:
    """Rates from 0, and at least up to 5% so that zero rates read as zero, not as an empty plot."""
    highs = [100 * r.rates["memorization"].high for r in runs if r.rates["memorization"].scored]
    ax.set_ylim(0, max(5.0, 1.08 * max(highs, default=0.0)))


def rates_by_task(runs: Sequence[Run], out: Path) -> Figure | None:
    """Grouped bars: memorization rate per task, one bar per model, interval as error bar."""
    plain = [r for r in runs if not r.is_variant]
    if not plain:
        return None
    plt = _pyplot()
    tasks = sorted({r.task for r in plain})
    models = sorted({r.model.name for r in plain})
    width = 0.8 / len(models)
    # Each task's bars are centred on its label, however many of the models ran it.
    ran = {task: [m for m in models if any(r.task == task and r.model.name == m for r in plain)] for task in tasks}
    fig, ax = plt.subplots(figsize=(min(14.0, max(7.0, 0.9 * len(tasks) * max(1.0, len(models) / 2))), 4.2))
    for model in models:
        chosen = {r.task: r for r in plain if r.model.name == model}
        xs = [i + (ran[t].index(model) - (len(ran[t]) - 1) / 2) * width for i, t in enumerate(tasks) if t in chosen]
        rates = [chosen[t].rates["memorization"] for t in tasks if t in chosen]
        values = [r.value for r in rates]
        ax.bar(xs, [100 * v for v in values], width, label=short_name(model),
               yerr=_errors(values, [r.low for r in rates], [r.high for r in rates]), capsize=3)
    # Anchored at its end, a slanted label ends under its bars rather than beside them.
    ax.set_xticks(range(len(tasks)), tasks, rotation=20, ha="right", rotation_mode="anchor")
    _rate_axis(ax, plain)
    ax.set_ylabel("memorization rate (%)")
    ax.set_title("Memorization rate by task (90% interval)")
    # Beside the plot: below it, the slanted task names ran into the legend.
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    path = out / "rates_by_task.png"
    _save(fig, path)
    return Figure("rates_by_task", "Memorization by task", "Share of probes memorized per task and model; bars are 90% bootstrap intervals.", path)


def stacked_categories(runs: Sequence[Run], out: Path) -> Figure | None:
    """Horizontal stacked bars: verbatim, idea and paraphrase shares of each (model, task)."""
    plain = [r for r in runs if not r.is_variant]
    if not plain:
        return None
    caption = "Verbatim, idea and paraphrase shares stacked per (task, model)."
    if len(plain) > MAX_BARS:
        # A bar per pair stops being readable; the leaderboard has them all.
        caption += f" The {MAX_BARS} pairs with the most memorization of {len(plain)}; the leaderboard lists all."
        plain = sorted(plain, key=lambda r: (-r.rates["memorization"].value, r.task, r.model.name))[:MAX_BARS]
    plain.sort(key=lambda r: (r.task, r.model.name), reverse=True)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8.0, 1.0 + 0.35 * len(plain)))
    labels = [f"{r.task} | {short_name(r.model.name)}" for r in plain]
    left = [0.0] * len(plain)
    for category, color in CATEGORY_COLORS.items():
        values = [100 * r.rates[category].value if r.rates[category].scored else 0.0 for r in plain]
        ax.barh(labels, values, left=left, color=color, label=CATEGORY_TITLES[category])
        left = [a + b for a, b in zip(left, values)]
    ax.set_xlim(0, max(5.0, 1.05 * max(left)))
    ax.set_xlabel("share of probes (%)")
    ax.set_title("Memorization by category")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.tick_params(axis="y", labelsize=8)
    path = out / "categories_stacked.png"
    _save(fig, path)
    return Figure("categories_stacked", "Categories", caption, path)


def _curves(
    groups: dict[tuple[str, str], dict],
    order: Callable[[object], object],
    title: str,
    xlabel: str,
    path: Path,
    categorical: bool,
) -> bool:
    groups = {k: v for k, v in groups.items() if len(v) >= 2}
    if not groups:
        return False
    plt = _pyplot()
    settings = sorted({s for v in groups.values() for s in v}, key=order)
    position = {s: i for i, s in enumerate(settings)}
    fig, ax = plt.subplots(figsize=(7.0, 4.2))
    for (model, task), by_setting in sorted(groups.items()):
        keys = sorted(by_setting, key=order)
        rates = [by_setting[k].rates["memorization"] for k in keys]
        xs = [position[k] for k in keys] if categorical else keys
        values = [r.value for r in rates]
        ax.errorbar(xs, [100 * v for v in values], yerr=_errors(values, [r.low for r in rates], [r.high for r in rates]),
                    marker="o", capsize=3, label=f"{task} | {short_name(model)}")
    # Only the settings that ran get a tick: no "1.5 epochs".
    ax.set_xticks(range(len(settings)) if categorical else settings, [str(s) for s in settings])
    _rate_axis(ax, [run for by_setting in groups.values() for run in by_setting.values()])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("memorization rate (%)")
    ax.set_title(title)
    _legend_below(ax)
    _save(fig, path)
    return True


def cad_scatter(runs: Sequence[Run], attention: Sequence[AttentionRun], out: Path) -> Figure | None:
    """CAD against memorization, one point per task, with Spearman's rank correlation in the title."""
    points, pairing = cad_points(runs, attention)
    points = [p for p in points if p.cad.scored and p.memorization.scored]
    if not points:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.0, 4.5))
    results = correlations(points)
    for setup, result in results.items():
        group = [p for p in points if p.setup == setup]
        rho = result if isinstance(result, str) else f"rho = {result[0]:.2f}, p = {result[1]:.2g}"
        ax.scatter([p.cad.value for p in group], [100 * p.memorization.value for p in group], label=f"{setup} ({rho})")
        for p in group:
            ax.annotate(p.task, (p.cad.value, 100 * p.memorization.value), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_title("CAD vs memorization (Spearman rank correlation)")
    _legend_below(ax)
    ax.set_ylim(0, max(5.0, 110 * max(p.memorization.value for p in points)))
    ax.ticklabel_format(axis="x", useOffset=False)
    ax.set_xlabel("cross-attention dispersion (CAD)")
    ax.set_ylabel("memorization rate (%)")
    path = out / "cad_vs_memorization.png"
    _save(fig, path)
    return Figure("cad_vs_memorization", "CAD vs memorization", f"One point per (task, model pair): {pairing}.", path)


def heatmaps(sources: Sequence[Path], out: Path) -> list[Figure]:
    """The attention runs' own heatmap PNGs, copied next to the report's figures."""
    figures = []
    for i, source in enumerate(sources):
        target = out / "attention" / f"{i:02d}_{source.name}"
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as temporary:
            shutil.copyfile(source, temporary)
        title = source.stem.removeprefix("attention_").replace("_", " ")
        figures.append(Figure(f"heatmap_{i}", f"Attention heatmap: {title}", f"From {source}.", target))
    return figures


def build_figures(runs: Sequence[Run], attention: Sequence[AttentionRun], heatmap_files: Sequence[Path], out: Path) -> list[Figure]:
    """Every figure the runs support, written under ``out``."""
    # Earlier epochs of a fine-tuned model appear in the epoch curves only.
    finals = final_models(runs)
    shown = [r for r in runs if not r.model.fine_tuned or r.model.name in finals]
    figures = [rates_by_task(shown, out), stacked_categories(shown, out)]
    curves = [
        ("prefix_length", "Prefix length", prefix_groups(shown), lambda k: k, "prefix length (words)", False),
        ("decoding", "Decoding method", decoding_groups(shown), lambda d: (d != "greedy", str(d)), "decoding", True),
        ("epochs", "Fine-tuning epochs", epoch_groups(runs), lambda e: e, "epochs", False),
        ("model_size", "Model size", size_groups(runs), size_order(runs), "model size", True),
    ]
    for key, title, groups, order, xlabel, categorical in curves:
        path = out / f"{key}.png"
        if _curves(groups, order, f"Memorization by {title.lower()}", xlabel, path, categorical):
            figures.append(Figure(key, title, f"Memorization rate (90% interval) by {title.lower()}, per (task, model).", path))
    figures.append(cad_scatter(runs, attention, out))
    figures.extend(heatmaps(heatmap_files, out))
    return [f for f in figures if f is not None]
