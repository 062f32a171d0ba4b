"""The README's main job, shortened to a few epochs: every output it promises is written."""

from __future__ import annotations

from pathlib import Path
from unittest.mock import patch

import pytest

from memtasks.attention.runner import results_path
from memtasks.demo import DEMO_MODEL, TASKS, demo_folder, run_demo
from memtasks.manifest import AttentionStep, FinetuneStep, StudyManifest
from memtasks.outcomes import RATE_NAMES
from memtasks.report import build_report
from memtasks.report.collect import collect
from memtasks.report.views import CATEGORY_TITLES
from memtasks.report.summary import compare_before_after, study_summary

COMMITTED = Path(__file__).parents[1] / "results" / "demo"


def _cells(markdown: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split(" | ")] for line in markdown.splitlines() if line.startswith("| ")]


def test_the_demo_and_the_report_show_the_same_before_after_numbers_for_the_committed_run(tmp_path):
    manifest = StudyManifest.read(COMMITTED / "manifest.json")
    comparisons = compare_before_after(manifest)
    printed = study_summary(manifest)
    assert printed == (COMMITTED / "summary.md").read_text(encoding="utf-8")
    table = build_report(COMMITTED, tmp_path / "report", "md").table("pretrained_vs_finetuned")
    assert [c.task for c in comparisons] == sorted(TASKS) and len(table.rows) == 3 * len(comparisons)
    columns = {title: i for i, title in enumerate(table.header)}
    # The committed run graded its paraphrases, so the report shows every rate the demo prints.
    assert set(CATEGORY_TITLES.values()) <= set(columns)
    demo_rows = {(block, row[0]): row[1:4] for block, c in enumerate(comparisons) for row in _cells(printed.split("\n### ")[block + 1])[1:]}
    for block, c in enumerate(comparisons):
        before, after, difference = table.rows[3 * block : 3 * block + 3]
        assert before[0].text == c.task and after[1].text.startswith(f"fine-tuned: {c.after.model.name} ")
        assert difference[1].text == f"difference (paired, {c.probes} probes)"
        for name, title in CATEGORY_TITLES.items():
            shown = [row[columns[title]].text for row in (before, after, difference)]
            assert demo_rows[(block, name)] == shown, (c.task, name)


def test_the_committed_demo_names_its_model_apart_from_other_studies_of_the_same_model():
    names = {step.model.name for step in StudyManifest.read(COMMITTED / "manifest.json").evals()}
    others = {
        step.model.name
        for path in COMMITTED.parent.glob("*/manifest.json")
        if path.parent != COMMITTED
        for step in StudyManifest.read(path).evals()
    }
    assert DEMO_MODEL in names and not names & others


def test_the_committed_demo_records_its_attention_runs_so_the_report_names_their_model(tmp_path):
    manifest = StudyManifest.read(COMMITTED / "manifest.json")
    attention = [step for step in manifest.runs if isinstance(step, AttentionStep)]
    assert sorted(step.task for step in attention) == sorted(TASKS)
    assert all(step.model.name == DEMO_MODEL and step.model.method == "pretrained" for step in attention)
    collection = collect(COMMITTED)
    assert sorted((run.model.name, run.task) for run in collection.attention) == [(DEMO_MODEL, task) for task in sorted(TASKS)]


def test_a_default_demo_run_gets_a_new_folder_of_its_own_and_resume_takes_the_newest(tmp_path):
    root = tmp_path / "memtasks-demo"
    first = demo_folder(root=root)
    assert first.parent == root and not first.exists()
    with pytest.raises(ValueError, match="no earlier demo run to resume"):
        demo_folder(resume=True, root=root)
    for name in ("2026-01-02T10-00-00", "2026-01-02T09-00-00"):
        (root / name).mkdir(parents=True)
    assert demo_folder(resume=True, root=root) == root / "2026-01-02T10-00-00"
    assert demo_folder(tmp_path / "mine", resume=True, root=root) == tmp_path / "mine"


def test_a_demo_into_a_folder_that_holds_files_is_refused_and_touches_nothing(tmp_path):
    out = tmp_path / "demo"
    (out / "runs").mkdir(parents=True)
    (out / "runs" / "kept.json").write_text("{}")
    with pytest.raises(ValueError, match="already holds files"):
        run_demo(out, tiny=True, log=lambda line: None)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == ["runs", "runs/kept.json"]
    with pytest.raises(ValueError, match="no earlier demo run to resume"):
        run_demo(tmp_path / "none", resume=True, tiny=True, log=lambda line: None)
    assert not (tmp_path / "none").exists()


def test_attention_results_follow_lm_evals_output_path_rule():
    date = "2026-01-02T10-00-00"
    assert results_path("out/attention.json", "pretrained=/abs/m", "hf", "mem_xsum", date) == Path(f"out/attention_mem_xsum_{date}.json")
    # A folder: lm-eval's folder named after the model, here its sanitized path.
    assert results_path("out", "pretrained=/abs/m", "hf", "mem_xsum", date).parent.parent == Path("out")


def test_demo_writes_the_table_results_and_heatmaps_with_paths_relative_to_its_folder(tmp_path):
    out = tmp_path / "demo"
    comparisons = run_demo(out, epochs=1, tiny=True, log=lambda line: None)

    assert sorted(c.task for c in comparisons) == sorted(TASKS)
    for c in comparisons:
        assert c.before.model.name == "tiny-t5" and c.after.model.name == f"tiny-t5-full-{c.task}"
        # Trained on every training record of its sample; the held-out records are probed as non-members.
        assert c.probes >= 80 and c.before.nonmember_probes > 0 and c.after.excess["memorization"].scored
        for name in RATE_NAMES:
            assert c.difference.rates[name].value == pytest.approx(c.after.rates[name].value - c.before.rates[name].value)
    summary = (out / "summary.md").read_text()
    assert summary == study_summary(StudyManifest.read(out / "manifest.json"))
    assert summary.count("| memorization |") == 2 and "### mem_cnn_dailymail" in summary and "### mem_imdb" in summary
    # The gains table, then the study's contrast: summarization against sentiment, with its interval.
    assert [row[0] for row in _cells(summary.split("\n\n")[0])[1:]] == ["mem_cnn_dailymail", "mem_imdb"]
    assert "**The study's direction, summarization (mem_cnn_dailymail) against sentiment (mem_imdb):**" in summary
    manifest = StudyManifest.read(out / "manifest.json")
    assert [run.id for run in manifest.runs if isinstance(run, FinetuneStep)] == [
        "tiny-t5-full-mem_cnn_dailymail/finetune",
        "tiny-t5-full-mem_imdb/finetune",
    ]
    attention = [run for run in manifest.runs if isinstance(run, AttentionStep)]
    assert [(run.id, run.model.path) for run in attention] == [(f"tiny-t5/attention/{t}", "./models/tiny-t5") for t in TASKS]
    # The attention results sit in the folder the demo chose, not in one named after the model's path.
    assert sorted(run.results for run in attention) == sorted(p.relative_to(out).as_posix() for p in (out / "attention").glob("*.json"))
    assert not any(p.is_dir() and p.name != "heatmaps" for p in (out / "attention").iterdir())
    assert (out / "attention" / "heatmaps" / "attention_average.png").exists()
    # Nothing half-written is left, and no output names a folder of this machine.
    assert not list(out.rglob("*.partial")) and not list(out.rglob("*.tmp"))
    for path in [*out.glob("*.*"), *(out / "runs").rglob("*.*"), *(out / "attention").glob("*.json")]:
        assert str(out.resolve()) not in path.read_text(encoding="utf-8"), path
    assert sorted(p.name for p in (out / "runs").iterdir()) == sorted(
        f"{model}__{task}" for task in TASKS for model in ("tiny-t5__pretrained", f"tiny-t5-full-{task}")
    )

    def no_lm_eval(arguments):
        raise AssertionError(f"lm-eval ran again: {arguments}")

    written = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and "models" not in p.parts}
    with patch("memtasks.harness.run_lm_eval", no_lm_eval), patch("memtasks.attention.run_attention", no_lm_eval):
        again = run_demo(out, epochs=1, resume=True, tiny=True, log=lambda line: None)
    assert again == comparisons
    # Resuming a finished run rewrites nothing but its table, with the same text.
    assert {p: p.stat().st_mtime_ns for p in written if p.name not in ("summary.md", "study.yaml")} == {
        p: t for p, t in written.items() if p.name not in ("summary.md", "study.yaml")
    }
    assert (out / "summary.md").read_text() == summary
