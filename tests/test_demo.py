"""The README's main job, shortened to a few epochs: every output it promises is written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from memtasks.demo import TASKS, format_comparisons, run_demo
from memtasks.manifest import StudyManifest
from memtasks.outcomes import RATE_NAMES
from memtasks.report import build_report
from memtasks.report.views import CATEGORY_TITLES
from memtasks.study import compare_before_after

COMMITTED = Path(__file__).parents[1] / "results" / "demo"


def _cells(markdown: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split(" | ")] for line in markdown.splitlines() if line.startswith("| ")]


def test_the_demo_and_the_report_show_the_same_before_after_numbers_for_the_committed_run(tmp_path):
    comparisons = compare_before_after(StudyManifest.read(COMMITTED / "manifest.json"))
    printed = format_comparisons(comparisons)
    assert printed == (COMMITTED / "summary.md").read_text(encoding="utf-8")
    table = build_report(COMMITTED, tmp_path / "report", "md").table("pretrained_vs_finetuned")
    assert [c.task for c in comparisons] == sorted(TASKS) and len(table.rows) == 3 * len(comparisons)
    columns = {title: i for i, title in enumerate(table.header)}
    # The committed run graded its paraphrases, so the report shows every rate the demo prints.
    assert set(CATEGORY_TITLES.values()) <= set(columns)
    demo_rows = {(block, row[0]): row[1:4] for block, c in enumerate(comparisons) for row in _cells(printed.split("### ")[block + 1])[1:]}
    for block, c in enumerate(comparisons):
        before, after, difference = table.rows[3 * block : 3 * block + 3]
        assert before[0].text == c.task and after[1].text.startswith(f"fine-tuned: {c.after.model.name} ")
        assert difference[1].text == f"difference (paired, {c.probes} probes)"
        for name, title in CATEGORY_TITLES.items():
            shown = [row[columns[title]].text for row in (before, after, difference)]
            assert demo_rows[(block, name)] == shown, (c.task, name)


def test_demo_writes_the_table_results_and_heatmaps(tmp_path):
    out = tmp_path / "demo"
    (out / "stale").mkdir(parents=True)
    comparisons = run_demo(out, epochs=1, tiny=True, log=lambda line: None)

    assert not (out / "stale").exists()
    assert sorted(c.task for c in comparisons) == sorted(TASKS)
    for c in comparisons:
        assert c.before.model.name == "tiny-t5" and c.after.model.name == f"tiny-t5-full-{c.task}"
        # Trained on all 100 records of its sample; the held-out records are probed as non-members.
        assert c.probes > 90 and c.before.nonmember_probes > 0 and c.after.excess["memorization"].scored
        for name in RATE_NAMES:
            assert c.difference.rates[name].value == pytest.approx(c.after.rates[name].value - c.before.rates[name].value)
    summary = (out / "summary.md").read_text()
    assert summary.count("| memorization |") == 2 and "### mem_xsum" in summary and "### mem_imdb" in summary
    manifest = json.loads((out / "manifest.json").read_text())
    assert [run["id"] for run in manifest["runs"] if run["kind"] == "finetune"] == [
        "tiny-t5-full-mem_xsum/finetune",
        "tiny-t5-full-mem_imdb/finetune",
    ]
    # The attention results sit in the folder the demo chose, not in one named after the model's path.
    assert len(list((out / "attention").glob("attention_mem_*.json"))) == 2
    assert not any(p.is_dir() and p.name != "heatmaps" for p in (out / "attention").iterdir())
    assert (out / "attention" / "heatmaps" / "attention_average.png").exists()

    again = run_demo(out, epochs=1, resume=True, tiny=True, log=lambda line: None)
    assert again == comparisons
