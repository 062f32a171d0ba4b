"""memtasks rescore: finished runs re-scored from their per-sample logs, through the harness's own aggregations.

The runs here are real lm-eval runs of the memtasks task (``run_lm_eval``) with a
model that writes chosen generations (whole copies, short copies, unrelated
text), so that their outcomes are known without training anything.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from memtasks.cli import main
from memtasks.harness import run_lm_eval
from memtasks.harness.hooks import load_probes
from memtasks.harness.redact import redact_sample
from memtasks.outcomes import METRICS, RATE_METRICS, Outcome
from memtasks.rescore import RECORD_KEY, RescoreError, find_results, rescore
from memtasks.stats import rates_of

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "xsum.jsonl"
COMMITTED = Path(__file__).resolve().parents[1] / "results" / "smollm2-135m" / "runs" / "smollm2-135m-full-mem_cnn_dailymail__mem_cnn_dailymail"
ECHO_MODEL = "memtasks-test-scripted"
# prefix -> the generation the scripted model writes for it.
_SCRIPT: dict[str, str] = {}


def _register_scripted_model() -> None:
    from lm_eval.api.model import LM
    from lm_eval.api.registry import MODEL_REGISTRY, register_model

    if ECHO_MODEL in MODEL_REGISTRY:
        return

    @register_model(ECHO_MODEL)
    class Scripted(LM):
        """Writes the generation the test chose for each prompt."""

        def __init__(self, **_options):
            super().__init__()

        def generate_until(self, requests, disable_tqdm: bool = False):
            return [_SCRIPT.get(r.args[0], "Nothing to see here at all.") for r in requests]

        def loglikelihood(self, requests, disable_tqdm: bool = False):
            raise NotImplementedError

        def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
            raise NotImplementedError


def _documents() -> list[str]:
    if not DATA.exists():
        pytest.skip(f"{DATA} not found (the shared real-text samples)")
    lines = DATA.read_text(encoding="utf-8").splitlines()[:200]
    return [d for d in (json.loads(line)["document"] for line in lines) if 150 <= len(d.split()) <= 400]


def _make_run(root: Path, **extra) -> tuple[Path, dict[tuple[bool, str], str]]:
    """A finished run (its folder: results file and per-sample log), and the kind of generation each probe got."""
    documents = _documents()
    train, heldout = root / "train.jsonl", root / "heldout.jsonl"
    train.write_text("".join(json.dumps({"document": d, "summary": "-"}) + "\n" for d in documents[:14]), encoding="utf-8")
    heldout.write_text("".join(json.dumps({"document": d, "summary": "-"}) + "\n" for d in documents[14:20]), encoding="utf-8")
    metadata = {"data_files": str(train), "nonmember_data_files": str(heldout), "n_probes": 12, **extra}
    rows = load_probes(dataset_path="EdinburghNLP/xsum", input_field="document", **metadata)["test"]
    unrelated = documents[-1]
    kinds: dict[tuple[bool, str], str] = {}
    for i, row in enumerate(rows):
        kind = ("whole", "short", "unrelated")[i % 3] if row["member"] else ("whole" if i % 4 == 0 else "unrelated")
        # A short copy: about 120 characters, a verbatim run for the memorization preset, too short for pan14's.
        short = row["suffix"][: row["suffix"].index(" ", 120)]
        _SCRIPT[row["prefix"]] = {"whole": row["suffix"], "short": short, "unrelated": unrelated}[kind]
        kinds[row["member"], row["id"]] = kind
    _register_scripted_model()
    out = root / "out"
    arguments = [
        "--model", ECHO_MODEL, "--tasks", "mem_xsum", "--metadata", json.dumps(metadata),
        "--output_path", str(out), "--log_samples",
    ]
    assert run_lm_eval(arguments) == 0
    (results,) = out.rglob("results_*.json")
    return results.parent, kinds


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return _make_run(tmp_path_factory.mktemp("rescore"))


@pytest.fixture
def copy(run, tmp_path):
    folder, kinds = run
    target = tmp_path / "run"
    shutil.copytree(folder, target)
    (results,) = target.glob("results_*.json")
    (samples,) = target.glob("samples_mem_xsum_*.jsonl")
    return results, samples, kinds


def _samples(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _outcomes(path: Path) -> list[Outcome]:
    return [Outcome.from_json(sample["mem_rate"]) for sample in _samples(path)]


def _state(*paths: Path) -> dict[Path, tuple[bytes, int]]:
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in paths}


def test_rescoring_a_fresh_run_with_the_same_detector_reproduces_it_exactly(copy):
    results, samples, kinds = copy
    before_results, before_samples = json.loads(results.read_text(encoding="utf-8")), samples.read_bytes()
    categories = {o.category for o in _outcomes(samples)}
    assert "verbatim" in categories and "none" in categories  # a run with something to reproduce

    assert main(["rescore", str(results.parent)]) == 0

    after = json.loads(results.read_text(encoding="utf-8"))
    assert after["results"] == before_results["results"]
    assert samples.read_bytes() == before_samples
    record = after.pop(RECORD_KEY)
    assert after == before_results
    settings = record["tasks"]["mem_xsum"]
    assert settings["preset"] == "memorization" and settings["k"] == 10 and settings["search_corpus"] == "probes"
    assert settings["detector"]["min_plaglen"] == 50 and settings["grader"] and record["date"]


def test_a_run_that_searched_the_whole_split_is_reproduced_against_the_whole_split(tmp_path):
    # search_corpus: split indexes every member of the split, not only the 12 probed: redrawn from the recorded source.
    folder, _ = _make_run(tmp_path, search_corpus="split")
    (results,) = folder.glob("results_*.json")
    (samples,) = folder.glob("samples_mem_xsum_*.jsonl")
    before_results, before_samples = json.loads(results.read_text(encoding="utf-8")), samples.read_bytes()
    assert main(["rescore", str(results)]) == 0
    after = json.loads(results.read_text(encoding="utf-8"))
    assert after.pop(RECORD_KEY)["tasks"]["mem_xsum"]["search_corpus"] == "split"
    assert after == before_results and samples.read_bytes() == before_samples


def test_rescoring_with_another_preset_changes_what_it_should(copy):
    results, samples, kinds = copy
    before = {(o.member, o.id): o for o in _outcomes(samples)}

    assert main(["rescore", "--preset", "pan14", str(results)]) == 0

    after = {(o.member, o.id): o for o in _outcomes(samples)}
    assert after.keys() == before.keys()
    for key, kind in kinds.items():
        if kind == "whole":
            assert before[key].category == after[key].category == "verbatim", key
        elif kind == "short":
            # 120 characters: verbatim for the memorization preset, under pan14's 150-character cases.
            assert before[key].category == "verbatim" and after[key].category == "none", key
        else:
            assert after[key].category == "none", key
    # Every outcome field of a sample holds the same outcome, and the results hold the rates of those outcomes.
    for sample in _samples(samples):
        assert {sample[name] for name in METRICS} == {sample["mem_rate"]}
    data = json.loads(results.read_text(encoding="utf-8"))
    metrics = data["results"]["mem_xsum"]
    members = [o.category for o in after.values() if o.member]
    nonmembers = [o.category for o in after.values() if not o.member]
    for family, categories in (("", members), ("nonmember_", nonmembers)):
        rates = rates_of(categories)
        for metric, rate_name in RATE_METRICS.items():
            assert metrics[f"{family}{metric},none"] == pytest.approx(rates[rate_name].value)
            assert metrics[f"{family}{metric}_low,none"] == pytest.approx(rates[rate_name].low)
    assert metrics["excess_mem_rate,none"] == pytest.approx(rates_of(members)["memorization"].value - rates_of(nonmembers)["memorization"].value)
    assert metrics["probes,none"] == len(members) and metrics["nonmember_probes,none"] == len(nonmembers)
    assert data[RECORD_KEY]["tasks"]["mem_xsum"]["preset"] == "pan14"
    assert data[RECORD_KEY]["tasks"]["mem_xsum"]["detector"]["min_plaglen"] == 150

    # Back with the run's own preset: the run as it was.
    assert main(["rescore", str(results)]) == 0
    assert {(o.member, o.id): o for o in _outcomes(samples)} == before


def test_a_dry_run_writes_nothing(copy, capsys):
    results, samples, _ = copy
    state = _state(results, samples)
    assert main(["rescore", "--dry-run", "--preset", "pan14", str(results)]) == 0
    assert _state(results, samples) == state
    assert "probe outcomes changed" in capsys.readouterr().out


def test_a_redacted_log_is_refused_and_nothing_changes(copy, capsys):
    results, samples, _ = copy
    outcome_fields = frozenset(METRICS)
    samples.write_text(
        "".join(json.dumps(redact_sample(s, outcome_fields), ensure_ascii=False) + "\n" for s in _samples(samples)), encoding="utf-8"
    )
    state = _state(results, samples)
    assert main(["rescore", str(results.parent)]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and samples.name in error and "redacted" in error
    assert _state(results, samples) == state


def test_a_missing_log_is_refused_and_nothing_changes_even_in_the_other_runs(copy, run, tmp_path, capsys):
    results, samples, _ = copy
    other = tmp_path / "other"
    shutil.copytree(run[0], other)
    samples.unlink()
    state = _state(results, *other.iterdir())
    assert main(["rescore", str(other), str(results)]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and str(results) in error and samples.name in error and "--log_samples" in error
    assert _state(results, *other.iterdir()) == state


def test_what_is_not_a_memtasks_run_is_an_error_naming_the_file(copy, tmp_path, capsys):
    results, samples, _ = copy
    other_task = tmp_path / "results_2026-01-01T00-00-00.json"
    other_task.write_text(json.dumps({"results": {"hellaswag": {"acc,none": 0.5}}}), encoding="utf-8")
    not_results = tmp_path / "notes.json"
    not_results.write_text("[1, 2]", encoding="utf-8")
    not_json = tmp_path / "results_x.json"
    not_json.write_text("{", encoding="utf-8")
    state = _state(results, samples)
    for path, words in ((other_task, "not a memtasks run"), (not_results, "not an lm-eval results file"), (not_json, "not JSON")):
        assert main(["rescore", str(results), str(path)]) == 2
        error = capsys.readouterr().err.strip()
        assert len(error.splitlines()) == 1 and str(path) in error and words in error, error
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["rescore", str(empty)]) == 2
    assert str(empty) in capsys.readouterr().err
    assert _state(results, samples) == state


def test_folders_are_searched_at_any_depth_and_unfinished_runs_left_out(copy, tmp_path):
    results, _, _ = copy
    partial = tmp_path / "run" / "late.partial"
    partial.mkdir()
    (partial / results.name).write_text("{}", encoding="utf-8")
    assert find_results([tmp_path, results]) == [results]


@pytest.mark.skipif(not COMMITTED.is_dir(), reason="the committed SmolLM2 study is not in this checkout")
def test_a_run_logged_before_the_settings_travelled_in_its_rows_is_rescored(tmp_path):
    # A committed SmolLM2 run, its rows written as logs were before the settings travelled in
    # them: 'retrieval' and 'paraphrase_model', no 'scoring'.
    target = tmp_path / "run"
    shutil.copytree(COMMITTED, target)
    (samples,) = target.glob("samples_*.jsonl")
    rows = _samples(samples)
    for row in rows:
        del row["doc"]["scoring"]
        row["doc"].update(retrieval=json.dumps({"backend": None}), paraphrase_model=None)
    samples.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    files = rescore([target], dry_run=True)
    (task,) = files[0].tasks
    assert task.settings["preset"] == "memorization" and task.settings["search_corpus"] == "probes"
    members = [Outcome.from_json(s["mem_rate"]).category for s in task.lines if s["doc"]["member"]]
    assert task.values["mem_rate,none"] == pytest.approx(rates_of(members)["memorization"].value)
    assert task.values["probes,none"] == len(members)


def test_the_library_refuses_with_rescore_errors(copy):
    results, samples, _ = copy
    samples.unlink()
    with pytest.raises(RescoreError, match="cannot be re-scored"):
        rescore([results])


DEMO = Path(__file__).resolve().parents[1] / "results" / "demo"


@pytest.mark.skipif(not (DEMO / "manifest.json").is_file(), reason="the committed demo run is not in this checkout")
def test_a_demo_folders_summary_is_written_again_from_its_rescored_runs(tmp_path, capsys):
    from memtasks.manifest import StudyManifest
    from memtasks.report.summary import study_summary

    demo = tmp_path / "demo"
    shutil.copytree(DEMO, demo)
    summary = demo / "summary.md"
    state = _state(summary)
    assert main(["rescore", "--dry-run", str(demo / "runs")]) == 0
    assert f"{summary}: would be written again" in capsys.readouterr().out and _state(summary) == state

    assert main(["rescore", "--preset", "pan14", str(demo / "runs")]) == 0
    assert f"{summary}: written again" in capsys.readouterr().out
    assert summary.read_text(encoding="utf-8") == study_summary(StudyManifest.read(demo / "manifest.json"))
    assert _state(summary)[summary][1] != state[summary][1]


def test_a_log_that_does_not_hold_the_runs_probes_is_refused(copy, capsys):
    results, samples, _ = copy
    samples.write_text("".join(samples.read_text(encoding="utf-8").splitlines(keepends=True)[1:]), encoding="utf-8")
    state = _state(results, samples)
    assert main(["rescore", str(results)]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and samples.name in error and "does not belong" in error
    assert _state(results, samples) == state


@pytest.mark.skipif(not COMMITTED.is_dir(), reason="the committed SmolLM2 study is not in this checkout")
def test_rescoring_with_summaries_counts_them_and_says_so(tmp_path):
    target = tmp_path / "run"
    shutil.copytree(COMMITTED, target)
    (samples,) = target.glob("samples_*.jsonl")
    before = {(o.member, o.id): o for o in _outcomes(samples)}
    (task,) = rescore([target], summaries=True)[0].tasks
    assert task.settings["summaries"] is True
    after = {(o.member, o.id): o for o in _outcomes(samples)}
    found = [key for key, o in after.items() if o.grader == "sentence-encoder"]
    # Each was no detection, or a paraphrase the detector aligned as a condensation the evidence
    # did not confirm (a paraphrase it aligned sentence by sentence keeps its category).
    assert found and all(after[key].category == "idea" and before[key].category in ("none", "paraphrase_low", "paraphrase_high") for key in found)
    # Every other outcome is what it was; like --preset, the option replaces what the run recorded
    # for this re-scoring only: a plain one scores as the run did.
    assert all(after[key] == before[key] for key in after.keys() - set(found))
    (task,) = rescore([target], dry_run=True)[0].tasks
    assert task.settings["summaries"] is False
    assert [Outcome.from_json(s["mem_rate"]) for s in task.lines] == [before[key] for key in after]
