"""``memtasks report``: a results folder turned into leaderboard tables and figures.

>>> report = build_report("results/", "results/report", formats=("md", "html", "csv"))  # doctest: +SKIP
>>> report.tables[0].title  # doctest: +SKIP
'Leaderboard'

Reads every lm-eval results file (and attention results, and study manifests)
under the folder, keeps one run per (model, task), flags runs that disagree in
version, config or probes, and writes:

- ``report.md``: every table, figures linked;
- ``report.html``: the same, self-contained (sortable tables, figures embedded);
- ``csv/<table>.csv``: one tidy file per table;
- ``figures/*.png``: the figures.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from memtasks.outputs import check_apart, check_writable
from memtasks.report.collect import AttentionRun, ReportInputError, Run, collect, resolve
from memtasks.report.html import write_html
from memtasks.report.plots import Figure, build_figures
from memtasks.report.analysis import OutcomeReader
from memtasks.report.views import Table, build_tables
from memtasks.report.writers import write_csv, write_markdown

FORMATS = ("md", "html", "csv")
TITLE = "Memorization report"

__all__ = ["FORMATS", "Report", "ReportInputError", "build_report"]


@dataclass
class Report:
    """What was found and what was written."""

    runs: list[Run]
    attention: list[AttentionRun]
    tables: list[Table]
    figures: list[Figure]
    warnings: list[str]
    written: list[Path] = field(default_factory=list)

    def table(self, key: str) -> Table | None:
        return next((t for t in self.tables if t.key == key), None)


def parse_formats(formats: str | Iterable[str]) -> tuple[str, ...]:
    """``"md,html"`` or ``["md", "html"]`` -> checked tuple."""
    items = [f.strip() for f in (formats.split(",") if isinstance(formats, str) else formats) if f.strip()]
    unknown = [f for f in items if f not in FORMATS]
    if unknown or not items:
        raise ValueError(f"unknown report format {', '.join(unknown) or '(none)'}: choose from {', '.join(FORMATS)}")
    return tuple(dict.fromkeys(items))


def build_report(
    results_dir: str | Path,
    out_dir: str | Path,
    formats: str | Iterable[str] = FORMATS,
    progress: bool = False,
) -> Report:
    """Collect the runs under ``results_dir`` and write the report to ``out_dir`` (which is never read as input).

    Raises :class:`ReportInputError` when no memtasks run is found; files and
    tasks that cannot be used are skipped and listed in ``Report.warnings``.
    """
    formats = parse_formats(formats)
    results_dir, out_dir = Path(results_dir), Path(out_dir)
    if not results_dir.is_dir():
        raise ReportInputError(f"{results_dir}: not a folder")
    # A report folder inside the results folder (the default RESULTS/report) is never read back.
    check_apart([("the report folder", out_dir)], [("the results folder", results_dir)], inside=False)
    check_writable(out_dir)
    found = collect(results_dir, exclude=[out_dir], progress=progress)
    if not found.runs and not found.attention:
        detail = f"; skipped: {found.warnings[0]}" + (f" (and {len(found.warnings) - 1} more)" if len(found.warnings) > 1 else "") if found.warnings else ""
        raise ReportInputError(
            f"{results_dir}: no memtasks results found in {found.files} JSON file(s){detail}"
        )
    runs = resolve(found.runs)
    reader = OutcomeReader()
    tables = build_tables(runs, found.attention, reader)
    warnings = found.warnings + reader.warnings
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = build_figures(runs, found.attention, found.heatmaps, out_dir / "figures")
    models = {r.model.name for r in runs}
    tasks = {r.task for r in runs}
    summary = [
        f"{len(runs)} run(s) of {len(models)} model(s) on {len(tasks)} task(s), from {results_dir}"
        + (f"; {len(found.attention)} attention run(s)" if found.attention else "")
        + (f"; {len(warnings)} input(s) skipped (listed at the end)" if warnings else "")
        + ".",
        "Rates are shares of probes, shown as value [5th, 95th percentile] of 1,000 bootstrap resamples of the probes.",
    ]
    report = Report(runs, found.attention, tables, figures, warnings, [f.path for f in figures])
    if "md" in formats:
        write_markdown(out_dir / "report.md", TITLE, summary, tables, figures, warnings)
        report.written.append(out_dir / "report.md")
    if "html" in formats:
        write_html(out_dir / "report.html", TITLE, summary, tables, figures, warnings)
        report.written.append(out_dir / "report.html")
    if "csv" in formats:
        report.written += write_csv(out_dir / "csv", tables)
    return report
