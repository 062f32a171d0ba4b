"""memtasks report: hand-made results files with known numbers in, exact tables out."""

import csv
import json
import os
import re
from pathlib import Path

import pytest
from matplotlib.image import imread, imsave
from scipy.stats import spearmanr

from memtasks.stats import permutation_p_value

from memtasks.cli import main
from memtasks.outcomes import HIGH, LOW
from memtasks.report import ReportInputError, build_report, views
from memtasks.report.collect import config_hash
from memtasks.stats import paired_difference

CATEGORIES = ("verbatim", "idea", "paraphrase")


def task_config(task: str, prefix: int | None = None, generation: dict | None = None, version: float = 1.0, **metadata) -> dict:
    """A task config shaped like the one lm-eval dumps for a memtasks task (function bodies as source)."""
    config = {
        "task": task,
        "custom_dataset": "def load_probes(\n    dataset_path=None):\n    ...",
        "test_split": "test",
        "doc_to_text": "{{prefix}}",
        "process_results": "def _report(items):\n    ...",
        "generation_kwargs": generation or {"until": [], "max_gen_toks": 64, "do_sample": False},
        "metadata": {"version": version, "dataset_path": "x/y", "input_field": "text", **metadata},
    }
    if prefix is not None:
        config["dataset_kwargs"] = {"prefix_tokens": prefix}
    return config


def metrics(mem: tuple, categories: dict | None = None, probes: int = 100) -> dict:
    """lm-eval's per-task results of a memtasks task: ``mem`` and each category as (value, low, high)."""
    values = {"memorization": mem, **(categories or {c: (0.0, 0.0, 0.0) for c in CATEGORIES})}
    names = {"memorization": "mem_rate", "verbatim": "verbatim_rate", "idea": "idea_rate", "paraphrase": "paraphrase_rate"}
    out = {"alias": "", "sample_len": probes, "probes,none": probes, "probes_stderr,none": "N/A", "skipped_too_short,none": 0}
    for category, (value, low, high) in values.items():
        for bound, number in (("", value), ("_low", low), ("_high", high)):
            out[f"{names[category]}{bound},none"] = number
            out[f"{names[category]}{bound}_stderr,none"] = "N/A"
    for name in ("paraphrase_high_rate", "paraphrase_low_rate"):
        for bound in ("", "_low", "_high"):
            out[f"{name}{bound},none"] = float("nan")
    return out


def write_results(
    folder: Path,
    model_args: dict,
    tasks: dict,
    *,
    stamp: str = "2026-01-01T00-00-00.000001",
    date: float = 1.0e9,
    versions: dict | None = None,
    configs: dict | None = None,
    samples: dict | None = None,
    extra: dict | None = None,
) -> Path:
    """An lm-eval results file (and per-sample logs: ``samples[task]`` = [(probe id, category), ...], each
    optionally with a dict of further outcome fields (``probability``, ``grader``, ``member``); without
    them a line is what memtasks wrote before it recorded the grader's probability)."""
    folder.mkdir(parents=True, exist_ok=True)
    data = {
        "results": {task: {**m, "alias": task} for task, m in tasks.items()},
        "group_subtasks": {},
        "configs": {task: (configs or {}).get(task, task_config(task)) for task in tasks},
        "versions": {task: (versions or {}).get(task, 1.0) for task in tasks},
        "n-shot": {task: 0 for task in tasks},
        "config": {"model": "hf", "model_args": model_args, "model_num_parameters": 1000},
        "date": date,
        "task_hashes": {},
        "model_name": model_args.get("pretrained", ""),
        **(extra or {}),
    }
    path = folder / f"results_{stamp}.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    for task, outcomes in (samples or {}).items():
        lines = []
        for i, (probe, category, *fields) in enumerate(outcomes):
            outcome = json.dumps(
                {"id": probe, "category": category, "matched_id": probe if category != "none" else None, "rank": 1, **(fields[0] if fields else {})}
            )
            lines.append(json.dumps({"doc_id": i, "doc": {"id": probe}, "mem_rate": outcome, "verbatim_rate": outcome}))
        (folder / f"samples_{task}_{stamp}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def outcomes(counts: dict, start: int = 0) -> list[tuple[str, str]]:
    """Probe outcomes with the given number of probes per category, ids p<start>, p<start+1>, ..."""
    out = []
    for category, n in counts.items():
        out += [(f"p{start + len(out) + i}", category) for i in range(n)]
    return out


def read_csv(path: Path) -> list[dict]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def md_rows(text: str, title: str) -> list[list[str]]:
    """The rows of the Markdown table under heading ``title``."""
    section = text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines[1:]]


def test_leaderboard_cells_hold_exactly_the_numbers_of_the_results(tmp_path):
    results = tmp_path / "results"
    write_results(
        results / "a" / "deep" / "er",
        {"pretrained": "org/model-a"},
        {"mem_xsum": metrics((0.123, 0.101, 0.145), {"verbatim": (0.1, 0.08, 0.12), "idea": (0.003, 0.0, 0.01), "paraphrase": (0.02, 0.01, 0.031)}, probes=1000)},
    )
    write_results(results / "b", {"pretrained": "org/model-b"}, {"mem_xsum": metrics((0.5, 0.45, 0.55))})
    report = build_report(results, tmp_path / "out", "md,csv")
    rows = md_rows((tmp_path / "out" / "report.md").read_text(), "Leaderboard")
    assert [r[0] for r in rows] == ["org/model-b", "org/model-a"]
    assert rows[1][2:8] == ["mem_xsum", "1000", "12.3% [10.1, 14.5]", "10.0% [8.0, 12.0]", "0.3% [0.0, 1.0]", "2.0% [1.0, 3.1]"]
    records = read_csv(tmp_path / "out" / "csv" / "leaderboard.csv")
    a = {r["category"]: r for r in records if r["model"] == "org/model-a"}
    assert (float(a["memorization"]["rate"]), float(a["memorization"]["low"]), float(a["memorization"]["high"])) == (0.123, 0.101, 0.145)
    assert float(a["paraphrase"]["high"]) == 0.031
    assert len(records) == 8 and not report.warnings


def test_pretrained_vs_finetuned_difference_interval_is_the_paired_bootstrap_of_the_probe_outcomes(tmp_path):
    results = tmp_path / "results"
    before = outcomes({"verbatim": 5, "idea": 2, "none": 93})
    after = [(probe, c) for probe, c in outcomes({"verbatim": 30, "paraphrase": 10, "idea": 4, "none": 56})]
    base = tmp_path / "models" / "base"
    tuned = tmp_path / "models" / "tuned"
    tuned.mkdir(parents=True)
    (tuned / "memtasks_finetune.json").write_text(
        json.dumps({"base_model": str(base), "method": "full", "loss": "output-only", "tasks": ["mem_xsum"], "epochs": 2, "complete": True})
    )
    write_results(results / "base", {"pretrained": str(base)}, {"mem_xsum": metrics((0.07, 0.04, 0.1))}, samples={"mem_xsum": before})
    write_results(results / "tuned", {"pretrained": str(tuned)}, {"mem_xsum": metrics((0.44, 0.36, 0.52))}, samples={"mem_xsum": after})
    build_report(results, tmp_path / "out", "md,csv")

    expected = paired_difference([c for _, c in before], [c for _, c in after])
    records = {r["category"]: r for r in read_csv(tmp_path / "out" / "csv" / "pretrained_vs_finetuned.csv")}
    for category in ("memorization", *CATEGORIES):
        rate = expected[category]
        got = records[category]
        assert (float(got["difference_rate"]), float(got["difference_low"]), float(got["difference_high"])) == pytest.approx(
            (rate.value, rate.low, rate.high), abs=1e-12
        )
        assert got["paired_probes"] == "100"
    assert expected["memorization"].value == pytest.approx(0.37)
    rows = md_rows((tmp_path / "out" / "report.md").read_text(), "Pre-trained vs fine-tuned (Table 2)")
    assert rows[0][:3] == ["mem_xsum", f"pre-trained: {base}", "7.0% [4.0, 10.0]"]
    # The fine-tuned model is named with how it was trained, the loss included.
    assert rows[1][2] == "44.0% [36.0, 52.0]" and "full fine-tuning on mem_xsum, 2 epochs, output-only loss" in rows[1][1]
    m = expected["memorization"]
    assert rows[2][2] == f"+37.0% [{100 * m.low:+.1f}, {100 * m.high:+.1f}]"


def test_difference_without_matching_probes_has_no_interval_and_says_why(tmp_path):
    results = tmp_path / "results"
    manifest = {
        "study": "s",
        "runs": [
            {"id": "1", "kind": "eval", "task": "mem_imdb", "model": {"name": "t5", "path": "/gone/t5", "method": "pretrained"}, "results": "pre/results_2026-01-01T00-00-00.000001.json"},
            {"id": "2", "kind": "eval", "task": "mem_imdb", "model": {"name": "t5-ft", "path": "/gone/ft", "base": "t5", "method": "lora", "trained_tasks": ["mem_imdb"], "epochs": 1}, "results": "ft/results_2026-01-01T00-00-00.000001.json"},
        ],
    }
    write_results(results / "pre", {"pretrained": "/gone/t5"}, {"mem_imdb": metrics((0.1, 0.05, 0.15))}, samples={"mem_imdb": outcomes({"verbatim": 1, "none": 9})})
    write_results(results / "ft", {"pretrained": "/gone/t5", "peft": "/gone/ft"}, {"mem_imdb": metrics((0.3, 0.2, 0.4))}, samples={"mem_imdb": outcomes({"verbatim": 3, "none": 7}, start=5)})
    (results / "manifest.json").write_text(json.dumps(manifest))
    build_report(results, tmp_path / "out", "md,csv")
    rows = md_rows((tmp_path / "out" / "report.md").read_text(), "Pre-trained vs fine-tuned (Table 2)")
    assert rows[0][1] == "pre-trained: t5" and rows[1][1].startswith("fine-tuned: t5-ft (LoRA on mem_imdb, 1 epoch)")
    assert rows[2][1] == "difference (no interval: different probes (10 and 10 probes, 5 shared))"
    assert rows[2][2] == "+20.0%"
    record = next(r for r in read_csv(tmp_path / "out" / "csv" / "pretrained_vs_finetuned.csv") if r["category"] == "memorization")
    assert float(record["difference_rate"]) == pytest.approx(0.2) and record["difference_low"] == ""


def test_runs_with_different_versions_or_configs_are_flagged_not_merged(tmp_path):
    results = tmp_path / "results"
    model = {"pretrained": "org/m"}
    write_results(results / "old", model, {"mem_xsum": metrics((0.2, 0.1, 0.3)), "mem_imdb": metrics((0.6, 0.5, 0.7))}, date=1.0e9, versions={"mem_xsum": 1.0})
    write_results(results / "new", model, {"mem_xsum": metrics((0.4, 0.3, 0.5))}, date=2.0e9, versions={"mem_xsum": 2.0}, stamp="2026-02-01T00-00-00.000001")
    sampled = task_config("mem_imdb", generation={"until": [], "max_gen_toks": 64, "do_sample": True, "top_k": 40})
    write_results(results / "new", model, {"mem_imdb": metrics((0.9, 0.8, 1.0))}, date=2.0e9, configs={"mem_imdb": sampled}, stamp="2026-02-02T00-00-00.000001")
    report = build_report(results, tmp_path / "out", "md,csv")

    board = {r[2]: r for r in md_rows((tmp_path / "out" / "report.md").read_text(), "Leaderboard")}
    assert len(board) == 2
    assert board["mem_xsum"][0] == "org/m ⚠" and board["mem_xsum"][4] == "40.0% [30.0, 50.0]"
    assert board["mem_imdb"][0] == "org/m ⚠" and board["mem_imdb"][4] == "90.0% [80.0, 100.0]"
    listed = read_csv(tmp_path / "out" / "csv" / "conflicts.csv")
    xsum = [r for r in listed if r["task"] == "mem_xsum"]
    assert [(r["kept"], r["version"], r["memorization_rate"]) for r in xsum] == [("True", "2.0", "0.4"), ("False", "1.0", "0.2")]
    assert "task version 1.0 vs 2.0" in xsum[1]["differs_in"]
    imdb = [r for r in listed if r["task"] == "mem_imdb"]
    assert "task config" in imdb[1]["differs_in"]
    assert report.table("conflicts") is not None


def test_repeated_identical_runs_are_not_flagged(tmp_path):
    results = tmp_path / "results"
    for i, stamp in enumerate(("2026-01-01T00-00-00.000001", "2026-01-02T00-00-00.000001")):
        write_results(results, {"pretrained": "org/m"}, {"mem_xsum": metrics((0.1 * (i + 1), 0.0, 0.5))}, stamp=stamp, date=1e9 + i)
    report = build_report(results, tmp_path / "out", "md")
    assert report.table("conflicts") is None
    assert [r.rates["memorization"].value for r in report.runs] == [0.2]


def test_runs_with_other_model_arguments_are_flagged_unless_they_only_place_the_model(tmp_path):
    results = tmp_path / "results"
    write_results(results / "a", {"pretrained": "org/m", "dtype": "float32", "device": "cpu"}, {"mem_xsum": metrics((0.1, 0.0, 0.2))}, date=1e9)
    write_results(results / "b", {"pretrained": "org/m", "dtype": "float32", "device": "cuda:0", "batch_size": "8"}, {"mem_xsum": metrics((0.1, 0.0, 0.2))}, date=2e9)
    assert build_report(results, tmp_path / "out", "md").table("conflicts") is None
    write_results(results / "c", {"pretrained": "org/m", "dtype": "float16"}, {"mem_xsum": metrics((0.3, 0.2, 0.4))}, date=3e9)
    build_report(results, tmp_path / "out", "csv")
    listed = read_csv(tmp_path / "out" / "csv" / "conflicts.csv")
    assert [(r["kept"], r["memorization_rate"]) for r in listed] == [("True", "0.3"), ("False", "0.1"), ("False", "0.1")]
    assert [r["differs_in"] for r in listed[1:]] == ["model arguments dtype=float32 vs float16"] * 2


def test_runs_of_another_lm_eval_model_class_are_flagged_not_merged(tmp_path):
    # hf and memtasks-hf give an encoder-decoder different generation budgets.
    results = tmp_path / "results"
    write_results(results / "a", {"pretrained": "t5-small"}, {"mem_xsum": metrics((0.1, 0.0, 0.2))}, date=1e9)
    write_results(
        results / "b", {"pretrained": "t5-small"}, {"mem_xsum": metrics((0.3, 0.2, 0.4))}, date=2e9,
        extra={"config": {"model": "memtasks-hf", "model_args": {"pretrained": "t5-small"}}},
    )
    build_report(results, tmp_path / "out", "csv")
    listed = read_csv(tmp_path / "out" / "csv" / "conflicts.csv")
    assert [r["differs_in"] for r in listed[1:]] == ["model arguments model class=hf vs memtasks-hf"]


def test_config_hash_ignores_model_arguments_copied_into_metadata_and_function_bodies():
    one = task_config("mem_xsum", pretrained="a", dtype="float32", config_source="/work/a/task_configs/mem_xsum.yaml")
    other = task_config("mem_xsum", pretrained="b", dtype="float16", config_source="/home/b/memtasks/task_configs/mem_xsum.yaml")
    other["process_results"] = "def _report(items, changed):\n    pass"
    args = {"pretrained": "x", "dtype": "y"}
    assert config_hash(one, args) == config_hash(other, args)
    assert config_hash(one, args) != config_hash(task_config("mem_xsum", n_probes=100, pretrained="a"), args)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m["runs"][0]["model"].update(trained_task=["mem_xsum"]), r"runs\[0\]\.model: unknown field 'trained_task'"),
        (lambda m: m["runs"][0].update(sample="x.jsonl"), r"runs\[0\]: unknown field 'sample'"),
        (lambda m: m["runs"][0]["model"].pop("method"), r"runs\[0\]\.model: field 'method' is missing"),
        (lambda m: m["runs"][0]["model"].update(epochs="3"), r"runs\[0\]\.model: field 'epochs' has the wrong type"),
        (lambda m: m["runs"][0].update(kind="evaluation"), r"runs\[0\]: field 'kind' must be 'eval', 'finetune' or 'attention'"),
        (lambda m: m.update(run=m.pop("runs")), r"unknown field 'run'"),
    ],
)
def test_a_misspelled_or_unknown_study_manifest_field_is_an_error_naming_file_and_field(tmp_path, change, message):
    results = tmp_path / "results"
    write_results(results / "ft", {"pretrained": "/gone/ft"}, {"mem_xsum": metrics((0.3, 0.2, 0.4))})
    model = {"name": "ft", "path": "./models/ft", "base": "pre", "method": "full", "trained_tasks": ["mem_xsum"], "epochs": 3}
    manifest = {"study": "s", "runs": [{"id": "ft/mem_xsum", "kind": "eval", "task": "mem_xsum", "model": model, "results": "ft/results_2026-01-01T00-00-00.000001.json"}]}
    (results / "manifest.json").write_text(json.dumps(manifest))
    assert build_report(results, tmp_path / "out", "md").runs[0].model.epochs == 3
    change(manifest)
    (results / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ReportInputError, match=rf"^{re.escape(str(results / 'manifest.json'))}: .*{message}"):
        build_report(results, tmp_path / "out", "md")


def test_bad_json_non_memtasks_tasks_and_partial_results_are_skipped_with_warnings_naming_the_file(tmp_path):
    results = tmp_path / "results"
    good = write_results(
        results / "ok",
        {"pretrained": "org/m"},
        {"mem_xsum": metrics((0.25, 0.2, 0.3)), "hellaswag": {"acc,none": 0.3, "acc_stderr,none": 0.01}},
    )
    partial = metrics((0.5, 0.4, 0.6))
    del partial["mem_rate_high,none"]
    write_results(results / "partial", {"pretrained": "org/p"}, {"mem_imdb": partial})
    (results / "broken").mkdir()
    (results / "broken" / "results_2026-01-01T00-00-00.json").write_text('{"results": {"mem_xsum": {"mem_rate,none": 0.')
    report = build_report(results, tmp_path / "out", "md")
    assert [(r.model.name, r.task) for r in report.runs] == [("org/m", "mem_xsum")]
    text = "\n".join(report.warnings)
    assert f"{results / 'broken' / 'results_2026-01-01T00-00-00.json'}: skipped, not readable JSON" in text
    assert f"{good}: task 'hellaswag' skipped, not a memtasks task" in text
    assert "task 'mem_imdb' skipped, partial results: missing mem_rate_high,none" in text
    assert len(report.warnings) == 3
    assert "Skipped input" in (tmp_path / "out" / "report.md").read_text()


def test_empty_folder_and_folder_of_unusable_files_are_clear_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReportInputError, match="no memtasks results found in 0 JSON file"):
        build_report(tmp_path / "empty", tmp_path / "out")
    write_results(tmp_path / "other", {"pretrained": "m"}, {"arc_easy": {"acc,none": 0.5}})
    with pytest.raises(ReportInputError, match=r"other.*task 'arc_easy' skipped, not a memtasks task"):
        build_report(tmp_path / "other", tmp_path / "out")


def test_unreadable_samples_log_is_a_warning_naming_file_and_line_and_the_table_keeps_the_difference(tmp_path):
    results = tmp_path / "results"
    manifest_runs = []
    for name, rate, base in (("pre", 0.1, None), ("ft", 0.3, "pre")):
        write_results(results / name, {"pretrained": f"/gone/{name}"}, {"mem_xsum": metrics((rate, rate, rate))}, samples={"mem_xsum": outcomes({"none": 4})})
        model = {"name": name, "method": "full" if base else "pretrained", "base": base, "trained_tasks": ["mem_xsum"] if base else []}
        manifest_runs.append({"id": name, "kind": "eval", "task": "mem_xsum", "model": model, "results": f"{name}/results_2026-01-01T00-00-00.000001.json"})
    (results / "manifest.json").write_text(json.dumps({"study": "s", "runs": manifest_runs}))
    log = results / "ft" / "samples_mem_xsum_2026-01-01T00-00-00.000001.jsonl"
    log.write_text(log.read_text().replace('"mem_rate"', '"other"', 1))
    report = build_report(results, tmp_path / "out", "csv")
    assert report.warnings == [f"{log}:1: field 'mem_rate' does not hold a probe outcome (KeyError: 'mem_rate'); neither this run's cases nor a paired interval can be shown"]
    record = next(r for r in read_csv(tmp_path / "out" / "csv" / "pretrained_vs_finetuned.csv") if r["category"] == "memorization")
    assert float(record["difference_rate"]) == pytest.approx(0.2)
    assert "per-sample logs" in record["note"]


def test_the_cases_view_shows_each_cases_probability_and_grader_least_confident_first(tmp_path):
    results = tmp_path / "results"
    samples = [
        ("p0", HIGH, {"probability": 0.93417, "grader": "cross-encoder"}),
        ("p1", LOW, {"probability": 2.7e-07, "grader": "evidence"}),
        ("p2", "verbatim", {"probability": None, "grader": None}),
        ("p3", "none", {"probability": None, "grader": None}),
        ("nonmember/p4", LOW, {"probability": 0.4, "grader": "cross-encoder", "member": False}),
    ]
    write_results(results, {"pretrained": "org/m"}, {"mem_xsum": metrics((0.5, 0.4, 0.6))}, samples={"mem_xsum": samples})
    report = build_report(results, tmp_path / "out")
    assert not report.warnings
    assert md_rows((tmp_path / "out" / "report.md").read_text(), "Cases") == [
        ["org/m", "mem_xsum", "p1", "yes", "Paraphrase, low confidence", "p1", "1", "p = 2.7e-07, evidence"],
        ["org/m", "mem_xsum", "nonmember/p4", "no", "Paraphrase, low confidence", "nonmember/p4", "1", "p = 0.400, cross-encoder"],
        ["org/m", "mem_xsum", "p0", "yes", "Paraphrase, high confidence", "p0", "1", "p = 0.934, cross-encoder"],
        ["org/m", "mem_xsum", "p2", "yes", "Verbatim", "p2", "1", "—"],
    ]
    page = (tmp_path / "out" / "report.html").read_text()
    cases_table = page.split('<h2 id="cases">', 1)[1].split("</table>", 1)[0]
    # The page sorts the column by the probability itself, not by its rounded text.
    assert '<table class="sortable">' in cases_table and 'data-sort="0.93417">p = 0.934, cross-encoder<' in cases_table
    records = {r["probe_id"]: r for r in read_csv(tmp_path / "out" / "csv" / "cases.csv")}
    assert (records["p0"]["probability"], records["p0"]["grader"], records["p0"]["member"]) == ("0.93417", "cross-encoder", "True")
    assert (records["nonmember/p4"]["member"], records["p2"]["probability"], records["p2"]["grader"]) == ("False", "", "")
    assert "p3" not in records


def test_a_log_written_before_cases_recorded_their_probability_still_shows_its_cases(tmp_path):
    results = tmp_path / "results"
    old = outcomes({"verbatim": 1, "paraphrase": 1, "none": 2})
    write_results(results, {"pretrained": "org/m"}, {"mem_xsum": metrics((0.5, 0.4, 0.6))}, samples={"mem_xsum": old})
    report = build_report(results, tmp_path / "out", "md,csv")
    assert not report.warnings
    rows = md_rows((tmp_path / "out" / "report.md").read_text(), "Cases")
    assert [(r[2], r[4], r[7]) for r in rows] == [("p0", "Verbatim", "—"), ("p1", "Paraphrase", "—")]
    assert [(r["probability"], r["grader"]) for r in read_csv(tmp_path / "out" / "csv" / "cases.csv")] == [("", ""), ("", "")]


def test_beyond_the_rows_shown_the_page_keeps_the_least_confident_cases_and_the_csv_every_one(tmp_path, monkeypatch):
    monkeypatch.setattr(views, "CASES_SHOWN", 2)
    results = tmp_path / "results"
    graded = [(f"p{i}", LOW, {"probability": p, "grader": "cross-encoder"}) for i, p in enumerate([0.3, 0.1, 0.2, 0.05])]
    write_results(results, {"pretrained": "org/m"}, {"mem_xsum": metrics((0.5, 0.4, 0.6))}, samples={"mem_xsum": graded})
    report = build_report(results, tmp_path / "out", "md,csv")
    assert [r[2] for r in md_rows((tmp_path / "out" / "report.md").read_text(), "Cases")] == ["p3", "p1"]
    assert report.table("cases").notes == ["The 2 least confident of 4 cases are shown; csv/cases.csv (--format csv) holds every one."]
    assert len(read_csv(tmp_path / "out" / "csv" / "cases.csv")) == 4


def test_ablation_tables_prefix_length_decoding_epochs_and_single_vs_multi_task(tmp_path):
    results = tmp_path / "results"
    tasks = {"mem_imdb": metrics((0.3, 0.2, 0.4)), "mem_imdb_prefix10": metrics((0.1, 0.05, 0.15)), "mem_imdb_prefix100": metrics((0.5, 0.4, 0.6)), "mem_imdb_topk40": metrics((0.2, 0.1, 0.3))}
    configs = {
        "mem_imdb": task_config("mem_imdb"),
        "mem_imdb_prefix10": task_config("mem_imdb_prefix10", prefix=10),
        "mem_imdb_prefix100": task_config("mem_imdb_prefix100", prefix=100),
        "mem_imdb_topk40": task_config("mem_imdb_topk40", generation={"until": [], "do_sample": True, "top_k": 40}),
    }
    write_results(results / "ablations", {"pretrained": "org/m"}, tasks, configs=configs)
    runs = []
    for i, (name, trained, epochs, rate) in enumerate(
        [("ft-e1", ["mem_imdb"], 1, 0.2), ("ft-e3", ["mem_imdb"], 3, 0.4), ("multi", ["mem_imdb", "mem_xsum"], 3, 0.25)]
    ):
        path = f"{name}/results_2026-01-01T00-00-00.000001.json"
        write_results(results / name, {"pretrained": f"/gone/{name}"}, {"mem_imdb": metrics((rate, rate - 0.05, rate + 0.05))})
        where = "/gone/ft" if name.startswith("ft") else "/gone/multi"
        path_of = f"{where}/epoch-{epochs}" if name == "ft-e1" else where
        model = {"name": name, "path": path_of, "base": "org/m", "method": "full", "trained_tasks": trained, "epochs": epochs, "mixing": "equal"}
        runs.append({"id": str(i), "kind": "eval", "task": "mem_imdb", "model": model, "results": path})
    (results / "manifest.json").write_text(json.dumps({"study": "ablations", "runs": runs}))
    report = build_report(results, tmp_path / "out", "md")
    text = (tmp_path / "out" / "report.md").read_text()
    assert md_rows(text, "Prefix length (Table 7)") == [["org/m", "mem_imdb", "10.0% [5.0, 15.0]", "30.0% [20.0, 40.0]", "50.0% [40.0, 60.0]"]]
    assert "| Model | Task | k = 10 | k = 50 | k = 100 |" in text
    assert md_rows(text, "Decoding method (Table 6)") == [["org/m", "mem_imdb", "30.0% [20.0, 40.0]", "20.0% [10.0, 30.0]"]]
    assert "| Model | Task | greedy | top-k 40 |" in text
    epochs = md_rows(text, "Fine-tuning epochs (Table 5)")
    assert len(epochs) == 1 and epochs[0][2:] == ["20.0% [15.0, 25.0]", "40.0% [35.0, 45.0]"]
    multi = md_rows(text, "Single-task vs multi-task fine-tuning (Table 11)")
    assert [row[1] for row in multi] == ["ft-e3"] and multi[0][4] == "25.0% [20.0, 30.0]"
    # The study manifest's mixing reaches the label of a multi-task model.
    assert multi[0][3] == "multi (full fine-tuning on mem_imdb + mem_xsum (equal mixing), 3 epochs)"
    # No per-sample logs: the difference without an interval, and a note saying why.
    assert multi[0][5] == "-15.0%"
    assert "per-sample logs" in text.split("Table 11)", 1)[1]
    figures = {f.key for f in report.figures}
    assert {"rates_by_task", "categories_stacked", "prefix_length", "decoding", "epochs"} <= figures
    assert all(f.path.read_bytes().startswith(b"\x89PNG") for f in report.figures)


def test_cad_is_joined_with_memorization_and_the_rank_correlation_is_spearmans(tmp_path):
    results = tmp_path / "results"
    cads = {"mem_a": 0.9, "mem_b": 0.5, "mem_c": 0.7, "mem_d": 0.1}
    mems = {"mem_a": 0.3, "mem_b": 0.4, "mem_c": 0.1, "mem_d": 0.05}
    write_results(results / "pre", {"pretrained": "org/t5"}, {t: metrics((0.01, 0.0, 0.02)) for t in cads})
    write_results(results / "ft", {"pretrained": "org/t5", "peft": "/gone/ad"}, {t: metrics((m, m, m)) for t, m in mems.items()})
    attention = {
        "results": {t: {"cad,none": c, "cad_low,none": c - 0.01, "cad_high,none": c + 0.01, "coverage,none": 1.0} for t, c in cads.items()},
        "config": {"model": "hf", "model_args": {"pretrained": "org/t5"}},
        "memtasks": {"kind": "attention"},
    }
    (results / "attention.json").write_text(json.dumps(attention))
    report = build_report(results, tmp_path / "out", "md")
    table = report.table("cad_vs_memorization")
    rho = spearmanr(list(cads.values()), [mems[t] for t in cads]).statistic
    # p is the exact permutation p-value over the 4! orderings, as memtasks attention prints it.
    p = permutation_p_value(list(cads.values()), [mems[t] for t in cads], rho)
    assert table.notes == [f"LoRA: Spearman rho = {rho:.3f} (p = {p:.3g}) over 4 tasks"]
    assert [(row[0].text, row[2].text, row[4].text) for row in table.rows][0] == ("mem_a", "0.900 [0.890, 0.910]", "30.0% [30.0, 30.0]")
    assert "pre-trained model's CAD vs the single-task fine-tuned model's memorization" in table.description
    assert "cad_vs_memorization" in {f.key for f in report.figures}


def test_attention_files_join_a_study_model_named_differently_and_their_heatmaps_are_shown(tmp_path):
    results = tmp_path / "results"
    runs = []
    for name, model in (("t5", {"name": "t5", "path": "google-t5/t5-small", "method": "pretrained"}), ("t5-full-a", {"name": "t5-full-a", "path": "models/t5-full-a", "base": "t5", "method": "full", "trained_tasks": ["mem_a"], "epochs": 1})):
        write_results(results / "runs" / name, {"pretrained": model["path"]}, {"mem_a": metrics((0.1, 0.05, 0.15))})
        runs.append({"id": name, "kind": "eval", "task": "mem_a", "model": model, "results": f"runs/{name}/results_2026-01-01T00-00-00.000001.json"})
    (results / "manifest.json").write_text(json.dumps({"study": "s", "runs": runs}))
    # As `memtasks attention` writes it: model_args as lm-eval's string, one file per task.
    attention = {
        "results": {"mem_a": {"alias": "mem_a", "cad,none": 0.42, "cad_low,none": 0.4, "cad_high,none": 0.44, "samples,none": 10}},
        "config": {"model": "hf", "model_args": "pretrained=google-t5/t5-small,dtype=float32"},
        "memtasks": {"kind": "attention", "layers": [5]},
    }
    (results / "google-t5__t5-small").mkdir()
    (results / "google-t5__t5-small" / "attention_mem_a_2026-01-01T00-00-00.json").write_text(json.dumps(attention))
    (results / "plots").mkdir()
    heatmap = tmp_path / "pixel.png"
    imsave(heatmap, [[0.0, 1.0], [1.0, 0.0]])
    (results / "plots" / "attention_average.png").write_bytes(heatmap.read_bytes())
    report = build_report(results, tmp_path / "out", "md")
    rows = report.table("cad_vs_memorization").rows
    assert [(r[1].text, r[2].text, r[3].text) for r in rows] == [("t5", "0.420 [0.400, 0.440]", "t5-full-a")]
    shown = [f for f in report.figures if f.key.startswith("heatmap")]
    assert [f.title for f in shown] == ["Attention heatmap: average"]
    assert shown[0].path.read_bytes() == heatmap.read_bytes()
    assert not report.warnings


def test_html_is_self_contained_with_sortable_tables_and_embedded_figures(tmp_path):
    results = tmp_path / "results"
    write_results(results, {"pretrained": "org/<script>"}, {"mem_xsum": metrics((0.25, 0.2, 0.3))})
    build_report(results, tmp_path / "out", "html")
    page = (tmp_path / "out" / "report.html").read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert page.count('src="data:image/png;base64,') == 2
    assert 'class="sortable"' in page and 'data-sort="0.25"' in page
    assert "org/&lt;script&gt;" in page and "org/<script>" not in page


def test_report_folder_inside_the_results_folder_is_not_read_back(tmp_path):
    results = tmp_path / "results"
    write_results(results / "runs", {"pretrained": "org/m"}, {"mem_xsum": metrics((0.25, 0.2, 0.3))})
    first = build_report(results, results / "report")
    (results / "report" / "results_stray.json").write_text("{not json")
    second = build_report(results, results / "report")
    assert not first.warnings and not second.warnings
    assert [r.path for r in first.runs] == [r.path for r in second.runs]
    with pytest.raises(ValueError, match="is the results folder"):
        build_report(results, results)


def test_cli_writes_the_report_and_prints_warnings_naming_files(tmp_path, capsys):
    results = tmp_path / "results"
    write_results(results, {"pretrained": "org/m"}, {"mem_xsum": metrics((0.25, 0.2, 0.3))})
    (results / "results_bad.json").write_text("[1, 2")
    assert main(["report", str(results), "--out", str(tmp_path / "out"), "--format", "md,csv"]) == 0
    captured = capsys.readouterr()
    assert f"memtasks report: warning: {results / 'results_bad.json'}: skipped, not readable JSON" in captured.err
    assert (tmp_path / "out" / "report.md").exists() and (tmp_path / "out" / "csv" / "leaderboard.csv").exists()
    assert not (tmp_path / "out" / "report.html").exists()
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "memtasks report: error:" in capsys.readouterr().err
    assert main(["report", str(results), "--format", "pdf"]) == 2


def _browser_tool():
    import importlib.util

    spec = importlib.util.spec_from_file_location("screenshot_report", Path(__file__).parent / "tools" / "screenshot_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


browser = _browser_tool()
# CI (.ci/run) installs Chromium and sets MEMTASKS_REQUIRE_CHROMIUM: there a missing browser fails these tests.
needs_chromium = pytest.mark.skipif(
    browser.find_chromium() is None and not os.environ.get("MEMTASKS_REQUIRE_CHROMIUM"),
    reason="no Chromium on PATH (Debian: apt-get install chromium)",
)


# Paraphrase cases as a run after issue 27 logs them: probabilities of both graders, some far below 0.001.
GRADED = [
    (f"g{i}", HIGH if p > 0.5 else LOW, {"probability": p, "grader": grader})
    for i, (p, grader) in enumerate(
        [(0.93, "cross-encoder"), (2e-06, "evidence"), (0.41, "cross-encoder"), (0.999, "evidence"), (0.0004, "evidence"), (0.62, "cross-encoder")]
    )
]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """A report of three pre-trained models (probe counts 1000, 20, 100) and a fine-tuning of one: several tables and figures."""
    root = tmp_path_factory.mktemp("browser")
    results = root / "results"
    for name, rate, probes in (("org/low", 0.05, 1000), ("org/high", 0.6, 20), ("org/mid", 0.3, 100)):
        write_results(results / name, {"pretrained": name}, {"mem_xsum": metrics((rate, rate - 0.02, rate + 0.02), probes=probes)})
    tuned = root / "models" / "tuned"
    tuned.mkdir(parents=True)
    (tuned / "memtasks_finetune.json").write_text(
        json.dumps({"base_model": "org/mid", "method": "full", "tasks": ["mem_xsum"], "epochs": 2, "complete": True})
    )
    write_results(
        results / "mid-pre", {"pretrained": "org/mid"}, {"mem_imdb": metrics((0.07, 0.04, 0.1))},
        samples={"mem_imdb": outcomes({"verbatim": 5, "idea": 2, "none": 93})},
    )
    write_results(
        results / "mid-tuned", {"pretrained": str(tuned)}, {"mem_imdb": metrics((0.44, 0.36, 0.52))},
        samples={"mem_imdb": outcomes({"verbatim": 30, "idea": 4, "none": 56}) + GRADED},
    )
    report = build_report(results, root / "out", "html")
    assert len(report.tables) >= 2 and len(report.figures) >= 2
    return root / "out" / "report.html", report


@pytest.fixture(scope="module")
def chromium():
    with browser.Browser(size="1366x900") as opened:
        yield opened


@needs_chromium
def test_headless_chromium_shows_the_page_and_its_embedded_figures_offline(rendered, tmp_path):
    page, _ = rendered
    pixels = imread(browser.screenshot(page, tmp_path / "page.png", size="1366x2200"))[..., :3]
    assert pixels.shape[:2] == (2200, 1366)
    # matplotlib's first bar colour (#1f77b4) is only on the page if the embedded PNG was decoded.
    bar = (abs(pixels - [0x1F / 255, 0x77 / 255, 0xB4 / 255]).sum(axis=-1) < 0.02).sum()
    assert bar > 500
    assert pixels.std() > 0.05


@needs_chromium
def test_every_table_and_figure_of_the_report_renders_in_headless_chromium(rendered, chromium):
    page_file, report = rendered
    page = chromium.open(page_file)
    assert page.errors == []
    shown = page.evaluate(
        """[...document.querySelectorAll("h2 + p.desc + div.wrap > table")].map(t => ({
            key: t.parentElement.previousElementSibling.previousElementSibling.id,
            header: [...t.tHead.rows[0].cells].map(c => c.textContent),
            rows: t.tBodies[0].rows.length,
            width: t.getBoundingClientRect().width,
            height: t.getBoundingClientRect().height,
        }))"""
    )
    assert [t["key"] for t in shown] == [t.key for t in report.tables]
    for table, seen in zip(report.tables, shown):
        assert seen["header"] == table.header and seen["rows"] == len(table.rows)
        assert seen["width"] > 300 and seen["height"] > 20 * (1 + len(table.rows))
    images = page.evaluate(
        """[...document.querySelectorAll("figure")].map(f => {
            const img = f.querySelector("img"), box = img.getBoundingClientRect();
            return {key: f.id, complete: img.complete, width: img.naturalWidth, height: img.naturalHeight, shown: box.width * box.height};
        })"""
    )
    assert [i["key"] for i in images] == [f.key for f in report.figures]
    for figure, image in zip(report.figures, images):
        # Decoded at the PNG's own size, and laid out on the page.
        height, width = imread(figure.path).shape[:2]
        assert image["complete"] and (image["width"], image["height"]) == (width, height)
        assert image["shown"] > 10_000


def _leaderboard(page) -> list[tuple[str, str, str]]:
    """The leaderboard's rows as the page shows them: model, probes, memorization."""
    return [
        tuple(row)
        for row in page.evaluate(
            """[...document.querySelectorAll("#leaderboard + p + div tbody tr")]
                .map(r => [r.cells[0].textContent, r.cells[3].textContent, r.cells[4].firstChild.textContent])"""
        )
    ]


def _sorted_by(page) -> list[str]:
    return page.evaluate('[...document.querySelectorAll("#leaderboard + p + div th")].map(th => th.className)')


@needs_chromium
def test_clicking_a_column_header_sorts_the_leaderboard_in_the_browser(rendered, chromium):
    page_file, report = rendered
    header = report.table("leaderboard").header
    page = chromium.open(page_file)
    probes = f"#leaderboard + p + div th:nth-child({header.index('Probes') + 1})"
    memorization = f"#leaderboard + p + div th:nth-child({header.index('Memorization') + 1})"
    model = f"#leaderboard + p + div th:nth-child({header.index('Model') + 1})"
    before = _leaderboard(page)
    # Numbers sort as numbers (20 < 100 < 1000), not as text.
    page.click(probes)
    assert [r[1] for r in _leaderboard(page)] == ["20", "100", "100", "100", "1000"]
    assert _sorted_by(page)[header.index("Probes")] == "asc"
    page.click(probes)
    assert [r[1] for r in _leaderboard(page)] == ["1000", "100", "100", "100", "20"]
    assert _sorted_by(page)[header.index("Probes")] == "desc"
    page.click(memorization)
    rates = [float(r[2].rstrip("%")) for r in _leaderboard(page)]
    assert rates == sorted(rates) and rates[0] == 5.0 and rates[-1] == 60.0
    assert [c for c in _sorted_by(page) if c] == ["asc"]
    page.click(model)
    names = [r[0] for r in _leaderboard(page)]
    assert names == sorted(names, key=str.lower) and sorted(_leaderboard(page)) == sorted(before)
    assert page.errors == []


@needs_chromium
def test_clicking_confidence_sorts_the_cases_by_their_graders_probability(rendered, chromium):
    page_file, report = rendered
    column = report.table("cases").header.index("Confidence") + 1
    page = chromium.open(page_file)

    def shown() -> list[str]:
        return page.evaluate(f'[...document.querySelectorAll("#cases + p + div tbody td:nth-child({column})")].map(c => c.textContent)')

    def probabilities() -> list[float]:
        return [float(text.removeprefix("p = ").split(",")[0]) for text in shown() if text != "—"]

    expected = sorted(fields["probability"] for _, _, fields in GRADED)
    page.click(f"#cases + p + div th:nth-child({column})")
    # Cases no grader looked at (the verbatim and idea ones of these logs) sort below every probability.
    assert probabilities() == pytest.approx(expected, rel=1e-3) and shown()[-1].startswith("p = ")
    page.click(f"#cases + p + div th:nth-child({column})")
    assert probabilities() == pytest.approx(expected[::-1], rel=1e-3) and shown()[0] == "p = 0.999, evidence"
    assert page.errors == []


@needs_chromium
def test_the_page_makes_no_network_request(rendered, chromium, tmp_path):
    page_file, report = rendered
    page = chromium.open(page_file)
    requests = page.requests
    assert requests[0] == page_file.resolve().as_uri()
    assert all(url.startswith("data:image/png;base64,") for url in requests[1:])
    # The recorder sees a page that does reach out: the same page with a remote image and script.
    leaky = tmp_path / "leaky.html"
    remote = ('<img src="https://cdn.example.invalid/logo.png">', '<script src="http://cdn.example.invalid/sort.js"></script>')
    leaky.write_text(page_file.read_text(encoding="utf-8").replace("</body>", "".join(remote) + "</body>"), encoding="utf-8")
    assert {"https://cdn.example.invalid/logo.png", "http://cdn.example.invalid/sort.js"} <= set(chromium.open(leaky).requests)


def test_rank_correlation_is_undefined_not_nan_when_every_rate_is_equal():
    from memtasks.report.analysis import CadPoint, spearman
    from memtasks.stats import Rate

    zero = Rate(0.0, 0.0, 0.0)
    points = [CadPoint(f"mem_{i}", "m", Rate(c, c, c), "ft", zero, "full fine-tuning", Path("a.json")) for i, c in enumerate((0.2, 0.5, 0.9))]
    assert spearman(points) == "undefined: every point has the same memorization"
    assert spearman(points[:2]) == "needs 3 points or more, 2 available"


@pytest.mark.parametrize(
    ("gain", "verdict"),
    [
        ((0.2, 0.05, 0.35), "holds at this size, and the 90% interval of the difference excludes 0"),
        ((0.1, -0.05, 0.25), "this run cannot tell the two tasks apart"),
        ((0.0, -0.1, 0.1), "does not show at this size"),
        ((-0.2, -0.35, -0.05), "is reversed at this size"),
    ],
)
def test_the_study_summary_says_whether_the_studys_direction_holds_and_whether_its_interval_excludes_0(gain, verdict):
    from types import SimpleNamespace

    from memtasks.report.summary import contrast_sentence
    from memtasks.stats import Rate

    def comparison(task: str, excess: Rate, gain: float = 0.2) -> SimpleNamespace:
        difference = SimpleNamespace(rates={"memorization": Rate(gain, gain, gain)})
        return SimpleNamespace(task=task, after=SimpleNamespace(excess={"memorization": excess}), difference=difference)

    summarization = comparison("mem_cnn_dailymail", Rate(0.0, -0.2, 0.2))
    sentiment = comparison("mem_imdb", Rate(0.0, 0.0, 0.0))
    gap = {"memorization": Rate(*gain), "high_confidence": Rate(0.05, 0.0, 0.1)}
    sentence = contrast_sentence(summarization, sentiment, gap)
    assert sentence.startswith("**The study's direction, summarization (mem_cnn_dailymail) against sentiment (mem_imdb):**")
    assert verdict in sentence and f"is {100 * gain[0]:+.1f}% [" in sentence
    # The summarization task's excess over its non-members holds 0: the rise is not memorized records.
    assert "not specific to the records it trained on" in sentence
    assert "not specific" not in contrast_sentence(comparison("mem_cnn_dailymail", Rate(0.3, 0.1, 0.5)), sentiment, gap)
    # Nothing rose: nothing to attribute to style or memory.
    assert "not specific" not in contrast_sentence(comparison("mem_cnn_dailymail", Rate(0.0, -0.2, 0.2), -0.1), sentiment, gap)
    assert "cannot be judged" in contrast_sentence(summarization, sentiment, None)


def test_a_tiny_random_model_is_named_untrained_not_pre_trained(tmp_path):
    from memtasks.models import UNTRAINED_MARKER
    from memtasks.report.analysis import model_label
    from memtasks.report.collect import identify_model

    random, real = tmp_path / "tiny-decoder", tmp_path / "smollm2"
    for folder in (random, real):
        folder.mkdir()
    (random / UNTRAINED_MARKER).write_text("{}", encoding="utf-8")
    labels = [model_label(identify_model({"model": "hf", "model_args": f"pretrained={folder}"})) for folder in (random, real)]
    assert labels == ["untrained (random weights)", "pre-trained"]
