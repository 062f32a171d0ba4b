"""The README's main job, shortened to a few epochs: every output it promises is written."""

from __future__ import annotations

import json

import pytest

from memtasks.demo import CATEGORY_ROWS, TASKS, run_demo


def test_demo_writes_the_table_results_and_heatmaps(tmp_path):
    out = tmp_path / "demo"
    (out / "stale").mkdir(parents=True)
    comparisons = run_demo(out, epochs=1, tiny=True, log=lambda line: None)

    assert not (out / "stale").exists()
    assert sorted(c.task for c in comparisons) == sorted(TASKS)
    for c in comparisons:
        assert c.before == "tiny-t5" and c.after == f"tiny-t5-full-{c.task}"
        # Trained on all 100 records of its sample; the held-out records are probed as non-members.
        assert c.probes > 90 and c.excess_before is not None and c.excess_after is not None
        assert set(CATEGORY_ROWS) <= set(c.difference)
        for name in CATEGORY_ROWS:
            assert c.difference[name].value == pytest.approx(c.rates_after[name].value - c.rates_before[name].value)
    summary = (out / "summary.md").read_text()
    assert summary.count("| memorization |") == 2 and "### mem_xsum" in summary and "### mem_imdb" in summary
    manifest = json.loads((out / "manifest.json").read_text())
    assert [run["id"] for run in manifest["runs"] if run["kind"] == "finetune"] == [
        "tiny-t5-full-mem_xsum/finetune",
        "tiny-t5-full-mem_imdb/finetune",
    ]
    assert len(list((out / "attention").rglob("attention_mem_*.json"))) == 2
    assert (out / "attention" / "heatmaps" / "attention_average.png").exists()

    again = run_demo(out, epochs=1, resume=True, tiny=True, log=lambda line: None)
    assert again == comparisons
