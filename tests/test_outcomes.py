"""The per-probe outcome schema of the per-sample logs, the categories and the metric table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from memtasks.outcomes import (
    CATEGORY_METRICS,
    COUNTS,
    LOG_FIELD,
    METRICS,
    RATE_METRICS,
    RATE_NAMES,
    Outcome,
    in_category,
    read_outcomes,
    read_probe_outcomes,
)

DEMO_SAMPLES = sorted(Path(__file__).parents[1].glob("results/demo/runs/**/samples_*.jsonl"))


def _log(path: Path, *outcomes: Outcome | str) -> Path:
    lines = [json.dumps({"doc_id": i, LOG_FIELD: o.to_json() if isinstance(o, Outcome) else o}) for i, o in enumerate(outcomes)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_an_outcome_survives_the_log_and_carries_no_text():
    outcome = Outcome("7", "paraphrase_high", member=False, matched_id="12", rank=2, probability=0.93, grader="cross-encoder")
    assert json.loads(outcome.to_json()) == {
        "id": "7", "member": False, "category": "paraphrase_high", "matched_id": "12", "rank": 2,
        "probability": 0.93, "grader": "cross-encoder",
    }
    assert Outcome.from_json(outcome.to_json()) == outcome


def test_a_log_written_before_grades_were_recorded_reads_without_them():
    old = json.dumps({"id": "7", "member": True, "category": "verbatim", "matched_id": "7", "rank": 1})
    assert Outcome.from_json(old) == Outcome("7", "verbatim", matched_id="7", rank=1)


def test_members_and_non_members_are_read_apart(tmp_path):
    path = _log(
        tmp_path / "samples.jsonl",
        Outcome("a", "verbatim", matched_id="a", rank=1),
        Outcome("b", "none"),
        Outcome("nonmember/c", "idea", member=False, matched_id="nonmember/c", rank=1),
    )
    assert read_probe_outcomes(path) == {"a": "verbatim", "b": "none"}
    assert read_probe_outcomes(path, members=False) == {"nonmember/c": "idea"}
    assert [o.id for o in read_outcomes(path)] == ["a", "b", "nonmember/c"]


def test_a_log_written_before_non_members_existed_holds_members_only(tmp_path):
    path = _log(tmp_path / "samples.jsonl", json.dumps({"id": 3, "category": "idea", "matched_id": 3, "rank": 1}))
    assert read_probe_outcomes(path) == {"3": "idea"}
    assert read_probe_outcomes(path, members=False) == {}


@pytest.mark.parametrize(
    ("logged", "expected"),
    [
        ("not json", "JSONDecodeError"),
        (json.dumps({"category": "none"}), "KeyError"),
        (json.dumps([1, 2]), "TypeError"),
        (json.dumps({"id": "a", "category": "none", "member": "yes"}), "'member' must be true or false"),
    ],
)
def test_a_line_without_an_outcome_is_an_error_naming_file_line_and_field(tmp_path, logged, expected):
    path = _log(tmp_path / "samples.jsonl", Outcome("a", "none"), logged)
    with pytest.raises(ValueError, match=rf"samples\.jsonl:2: field '{LOG_FIELD}' .*{expected}"):
        read_outcomes(path)


def test_a_probe_id_twice_is_an_error(tmp_path):
    path = _log(tmp_path / "samples.jsonl", Outcome("a", "none"), Outcome("a", "idea"))
    with pytest.raises(ValueError, match=r"samples\.jsonl:2: probe id 'a' appears twice"):
        read_probe_outcomes(path)


def test_a_graded_paraphrase_counts_as_a_paraphrase_and_as_memorization():
    assert in_category("paraphrase_high", "paraphrase") and in_category("paraphrase_low", "paraphrase")
    assert in_category("paraphrase_low", "memorization") and not in_category("none", "memorization")
    assert not in_category("paraphrase", "paraphrase_high") and not in_category("verbatim", "idea")


def test_every_rate_has_a_metric_in_each_family_with_its_interval():
    assert set(RATE_METRICS.values()) == set(RATE_NAMES) and CATEGORY_METRICS["memorization"] == "mem_rate"
    assert len(METRICS) == 3 * len(RATE_METRICS) * 3 + len(COUNTS) == len(set(METRICS))
    assert {"mem_rate", "mem_rate_low", "nonmember_verbatim_rate_high", "excess_paraphrase_low_rate", "probes"} <= set(METRICS)


@pytest.mark.parametrize("path", DEMO_SAMPLES, ids=lambda p: p.parent.parent.name)
def test_the_committed_demo_logs_are_read(path):
    members, nonmembers = read_probe_outcomes(path), read_probe_outcomes(path, members=False)
    assert members and nonmembers
    assert set(members.values()) | set(nonmembers.values()) <= {"none", *RATE_NAMES[1:]}
