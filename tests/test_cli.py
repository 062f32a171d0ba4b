"""Tests for the ``memtasks`` command: ``score`` and ``pan-eval``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from memtasks.cli import main

CONSOLE_SCRIPT = Path(sys.executable).parent / "memtasks"

PARAGRAPHS = [
    # 0-2: lighthouses (the PAN source document)
    "The first lighthouse on the headland was a wooden tower lit by twelve tallow candles. "
    "Keepers climbed its ladder every four hours through the night to trim the wicks. "
    "In the winter of 1791 a storm tore the lantern room away, and the tower was not rebuilt for a decade.",
    "When the granite tower finally opened in 1803, it carried a rotating apparatus of polished copper reflectors "
    "driven by a clockwork weight that the keeper wound by hand. Ships could see its flash from twenty miles out on a "
    "clear night. The keeper and his two assistants kept a logbook of every vessel that passed, noting the wind, the "
    "state of the sea and the hour at which the lamp was lit and extinguished. Those logbooks survive in the county "
    "archive and are still consulted by historians of the coastal trade.",
    "Electric light reached the station in 1921, and the last keeper left in 1987 when the lamp was automated. "
    "The cottages are now a small museum run by volunteers.",
    # 3-5: beekeeping (the PAN suspicious document, around the copy)
    "Most beekeepers inspect their hives once a week from spring until late summer. "
    "An inspection looks for eggs, for the shape of the brood and for queen cells along the lower edge of the frames.",
    "A colony that is short of space will often swarm, leaving with the old queen and half of the workers. "
    "Adding a box of empty frames before the main nectar flow usually prevents it.",
    "Honey is taken off once most of the cells in a frame are capped with wax. "
    "The frames are uncapped with a warm knife, spun in an extractor and the honey is strained into buckets.",
    # 6-8: unrelated text
    "The river rises in the hills above the town and drops through a series of narrow gorges before it reaches the "
    "plain. Its water powered six mills in the nineteenth century, grinding corn, fulling cloth and sawing timber for "
    "the shipyards downstream.",
    "Tomato seedlings need warmth and plenty of light to grow into sturdy plants. Sow the seeds indoors about eight "
    "weeks before the last frost, and move them outside only once the nights stay mild.",
    "The chess club meets on Thursday evenings in the library annex. Beginners are paired with a more experienced "
    "player for their first few games, and a lightning tournament closes every month.",
]
CATEGORY_KEYS = ("verbatim", "idea", "paraphrase")

# --------------------------------------------------------------------------- score

# Probes 0 and 1 generate their own training suffix word for word, probe 2 the
# suffix of probe 1; the others generate unrelated text or nothing.
MEMORIZED = {"p0": "p0", "p1": "p1", "p2": "p1"}


@pytest.fixture
def probe_file(tmp_path) -> Path:
    records = [
        {"id": "p0", "suffix": PARAGRAPHS[0], "generation": PARAGRAPHS[0]},
        {"id": "p1", "suffix": PARAGRAPHS[1], "generation": PARAGRAPHS[1]},
        {"id": "p2", "suffix": PARAGRAPHS[3], "generation": PARAGRAPHS[1]},
        {"id": "p3", "suffix": PARAGRAPHS[4], "generation": PARAGRAPHS[7]},
        {"id": "p4", "suffix": PARAGRAPHS[5], "generation": PARAGRAPHS[8]},
        {"id": "p5", "suffix": PARAGRAPHS[6], "generation": ""},
    ]
    path = tmp_path / "probes.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def run_main(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_score_json(capsys, probe_file):
    code, out, _ = run_main(capsys, "score", probe_file, "--json", "--workers", "1")
    assert code == 0
    result = json.loads(out)  # one JSON object, nothing else on stdout
    assert result["n"] == 6
    for key in ("memorization", *CATEGORY_KEYS):
        assert set(result[key]) >= {"rate", "low", "high"}
        assert result[key]["low"] <= result[key]["rate"] <= result[key]["high"]
    assert result["memorization"]["rate"] == pytest.approx(len(MEMORIZED) / 6)
    assert result["verbatim"]["rate"] == pytest.approx(len(MEMORIZED) / 6)
    for key in ("pairs_per_second", "retrieval_seconds", "detection_seconds"):
        assert isinstance(result[key], float) and result[key] >= 0
    assert any("paraphrase confidence from cross-encoder grader" in note for note in result["notes"])
    assert "nonmember" not in result and "excess" not in result


def test_score_human_output_lists_every_category(capsys, probe_file):
    code, out, _ = run_main(capsys, "score", probe_file, "--workers", "1")
    assert code == 0
    lines = out.splitlines()
    for name in ("memorization", *CATEGORY_KEYS):
        assert any(line.split()[:1] == [name] for line in lines), name
    assert "6 probes" in out
    assert "paraphrase confidence from cross-encoder grader" in out


def _paraphrase_probe(tmp_path: Path) -> Path:
    """A probe file of one generation that rewords its suffix."""
    path = tmp_path / "paraphrase.jsonl"
    path.write_text(json.dumps({
        "id": "q",
        "suffix": "The company said its profit rose 12 percent in the third quarter, helped by strong sales in Asia.",
        "generation": "Helped by strong Asian sales, the company reported a 12 percent rise in third-quarter profit.",
    }) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("grader", ["evidence", "cross-encoder"])
def test_score_shows_a_bar_while_it_grades_paraphrases_and_json_output_none(capsys, tmp_path, grader):
    path = _paraphrase_probe(tmp_path)
    code, out, err = run_main(capsys, "score", path, "--workers", "1", "--paraphrase-model", grader)
    assert code == 0 and "grade paraphrases" in err
    code, out, err = run_main(capsys, "score", path, "--json", "--workers", "1", "--paraphrase-model", grader)
    assert code == 0 and json.loads(out)["paraphrase"]["rate"] == 1.0
    assert err == ""


@pytest.mark.parametrize("grader", ["evidence", "cross-encoder"])
def test_score_cases_hold_the_probability_a_paraphrase_was_graded_from_and_its_grader(capsys, tmp_path, grader):
    path = _paraphrase_probe(tmp_path)
    cases = tmp_path / "cases.jsonl"
    code, _, _ = run_main(capsys, "score", path, "--json", "--workers", "1", "--paraphrase-model", grader, "--cases", cases)
    [record] = [json.loads(line) for line in cases.read_text(encoding="utf-8").splitlines()]
    assert code == 0 and record["category"] in ("paraphrase_high", "paraphrase_low")
    assert 0 <= record["probability"] <= 1 and record["grader"] in ("evidence", "cross-encoder")
    if grader == "evidence":
        assert record["grader"] == "evidence"


def test_score_counts_summaries_only_with_the_flag(capsys, tmp_path):
    from test_summaries import DOCUMENT, SUMMARY

    path = tmp_path / "summary.jsonl"
    path.write_text(json.dumps({"id": "s", "suffix": DOCUMENT, "generation": SUMMARY}) + "\n", encoding="utf-8")
    code, out, _ = run_main(capsys, "score", path, "--json", "--workers", "1")
    assert code == 0 and json.loads(out)["memorization"]["rate"] == 0.0
    cases = tmp_path / "cases.jsonl"
    code, out, _ = run_main(capsys, "score", path, "--json", "--workers", "1", "--summaries", "--cases", cases)
    assert code == 0 and json.loads(out)["idea"]["rate"] == 1.0
    [record] = [json.loads(line) for line in cases.read_text(encoding="utf-8").splitlines()]
    assert record["category"] == "idea" and record["grader"] == "sentence-encoder" and record["probability"] > 0.5


def test_score_with_non_members_prints_the_floor_and_the_excess(capsys, tmp_path, probe_file):
    # Two of three non-members write out their own text: a floor of 2/3 leaves no excess over the members' 1/2.
    records = [json.loads(line) for line in probe_file.read_text().splitlines()]
    records += [
        {"id": "n0", "suffix": PARAGRAPHS[2], "generation": PARAGRAPHS[2], "member": False},
        {"id": "n1", "suffix": PARAGRAPHS[7], "generation": PARAGRAPHS[7], "member": False},
        {"id": "n2", "suffix": PARAGRAPHS[8], "generation": "", "member": False},
    ]
    path = tmp_path / "with_floor.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    code, out, _ = run_main(capsys, "score", path, "--json", "--workers", "1")
    result = json.loads(out)
    assert code == 0 and result["n"] == 6 and result["nonmember"]["n"] == 3
    assert result["nonmember"]["memorization"]["rate"] == pytest.approx(2 / 3)
    assert result["excess"]["memorization"]["rate"] == pytest.approx(len(MEMORIZED) / 6 - 2 / 3)
    assert result["excess"]["memorization"]["low"] < 0 < result["excess"]["memorization"]["high"]
    code, out, _ = run_main(capsys, "score", path, "--workers", "1")
    assert code == 0 and "excess" in out and "non-member floor: 3 probes" in out


def test_score_cases_one_line_per_memorized_probe(capsys, probe_file, tmp_path):
    cases = tmp_path / "cases.jsonl"
    code, out, _ = run_main(capsys, "score", probe_file, "--json", "--workers", "1", "--cases", cases)
    assert code == 0
    json.loads(out)  # --cases does not add to stdout
    records = [json.loads(line) for line in cases.read_text(encoding="utf-8").splitlines()]
    assert {r["id"]: r["matched_id"] for r in records} == MEMORIZED
    suffixes = {"p0": PARAGRAPHS[0], "p1": PARAGRAPHS[1]}
    for r in records:
        assert r["category"] == "verbatim" and r["rank"] == 1
        # no grader looks at a verbatim copy
        assert r["probability"] is None and r["grader"] is None
        for span in r["spans"]:
            assert span["suffix_text"] == suffixes[r["matched_id"]][span["suffix_start"] : span["suffix_end"]]


def test_score_redacted_cases_hold_no_text(capsys, probe_file, tmp_path):
    cases = tmp_path / "cases.jsonl"
    code, _, _ = run_main(capsys, "score", probe_file, "--json", "--workers", "1", "--cases", cases, "--redact")
    assert code == 0
    written = cases.read_text(encoding="utf-8")
    records = [json.loads(line) for line in written.splitlines()]
    assert len(records) == len(MEMORIZED)
    for r in records:
        for span in r["spans"]:
            assert "suffix_text" not in span and "generation_text" not in span
            assert len(span["suffix_sha256"]) == len(span["generation_sha256"]) == 64
    # No run of the memorized texts survives, not even a few words.
    for paragraph in (PARAGRAPHS[0], PARAGRAPHS[1]):
        words = paragraph.split()
        assert not any(" ".join(words[i : i + 3]) in written for i in range(len(words) - 2))


BAD_INPUTS = {
    "missing field": ('{"id": "x", "suffix": "s"}', ":2:", "generation"),
    "member not a boolean": ('{"id": "x", "suffix": "s", "generation": "g", "member": "no"}', ":2:", "'member' must be true or false"),
    "invalid JSON": ('{"id": "x", "suffix": ', ":2:", "JSON"),
}


@pytest.mark.parametrize("line, where, what", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_score_bad_input_exits_2_with_one_line(capsys, tmp_path, line, where, what):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"id": "ok", "suffix": "s", "generation": "g"}) + "\n" + line + "\n", encoding="utf-8")
    code, out, err = run_main(capsys, "score", path, "--workers", "1")
    assert code == 2
    assert out == ""
    assert len(err.splitlines()) == 1
    assert f"{path}{where}" in err and what in err


def test_score_missing_file_exits_2(capsys, tmp_path):
    path = tmp_path / "missing.jsonl"
    code, out, err = run_main(capsys, "score", path)
    assert code == 2
    assert len(err.splitlines()) == 1 and str(path) in err


def test_console_script_exit_codes(tmp_path, probe_file):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "suffix": "s", "generation": "g"}\n{"id": "b", "suffix": "s"}\n', encoding="utf-8")
    failed = subprocess.run(
        [CONSOLE_SCRIPT, "score", bad, "--json"], capture_output=True, text=True, timeout=120
    )
    assert failed.returncode == 2
    assert failed.stdout == ""
    assert "Traceback" not in failed.stderr
    assert len(failed.stderr.splitlines()) == 1
    assert f"{bad}:2:" in failed.stderr and "generation" in failed.stderr

    ok = subprocess.run(
        [CONSOLE_SCRIPT, "score", probe_file, "--json", "--workers", "2"], capture_output=True, text=True, timeout=120
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["n"] == 6


# --------------------------------------------------------------------------- pan-eval


def write_pan_corpus(root: Path) -> tuple[str, str]:
    """Two pairs: one with a verbatim copy of a 512-character paragraph in
    02-no-obfuscation, one with unrelated documents in 01-no-plagiarism."""
    source = "\n\n".join(PARAGRAPHS[0:3])
    suspicious = "\n\n".join([PARAGRAPHS[3], PARAGRAPHS[4], PARAGRAPHS[1], PARAGRAPHS[5]])
    copied = PARAGRAPHS[1]
    assert len(copied) >= 400
    susp_offset, src_offset = suspicious.index(copied), source.index(copied)

    (root / "src").mkdir(parents=True)
    (root / "susp").mkdir()
    texts = {
        "src/source-document00001.txt": source,
        "susp/suspicious-document00001.txt": suspicious,
        "src/source-document00002.txt": PARAGRAPHS[6],
        "susp/suspicious-document00002.txt": "\n\n".join(PARAGRAPHS[7:9]),
    }
    for name, text in texts.items():
        (root / name).write_text(text, encoding="utf-8")

    copy_pair = "suspicious-document00001.txt source-document00001.txt"
    clean_pair = "suspicious-document00002.txt source-document00002.txt"
    (root / "pairs").write_text(f"{copy_pair}\n{clean_pair}\n", encoding="utf-8")

    folder = root / "02-no-obfuscation"
    folder.mkdir()
    (folder / "pairs").write_text(copy_pair + "\n", encoding="utf-8")
    (folder / "suspicious-document00001-source-document00001.xml").write_text(
        '<document reference="suspicious-document00001.txt">\n'
        f'<feature name="plagiarism" this_offset="{susp_offset}" this_length="{len(copied)}" '
        f'source_reference="source-document00001.txt" source_offset="{src_offset}" '
        f'source_length="{len(copied)}" obfuscation="none"/>\n'
        "</document>\n",
        encoding="utf-8",
    )

    folder = root / "01-no-plagiarism"
    folder.mkdir()
    (folder / "pairs").write_text(clean_pair + "\n", encoding="utf-8")
    (folder / "suspicious-document00002-source-document00002.xml").write_text(
        '<document reference="suspicious-document00002.txt">\n</document>\n', encoding="utf-8"
    )
    return "02-no-obfuscation", "01-no-plagiarism"


def test_pan_eval_json(capsys, tmp_path):
    copy_folder, clean_folder = write_pan_corpus(tmp_path / "corpus")
    code, out, _ = run_main(capsys, "pan-eval", tmp_path / "corpus", "--json", "--workers", "1")
    assert code == 0
    result = json.loads(out)
    assert {"plagdet", "precision", "recall", "granularity", "pairs_per_second", "by_obfuscation"} <= result.keys()
    assert result["pairs"] == 2
    assert set(result["by_obfuscation"]) == {copy_folder, clean_folder}
    copied = result["by_obfuscation"][copy_folder]
    assert copied["plagdet"] > 0.8
    assert copied["granularity"] == 1.0
    assert result["plagdet"] > 0.8
    # Nothing is claimed in the unrelated pair: PAN's convention scores that 1.
    assert result["by_obfuscation"][clean_folder]["plagdet"] == 1.0


def test_pan_eval_human_output(capsys, tmp_path):
    copy_folder, clean_folder = write_pan_corpus(tmp_path / "corpus")
    code, out, _ = run_main(capsys, "pan-eval", tmp_path / "corpus", "--workers", "1")
    assert code == 0
    assert "entire corpus" in out and copy_folder in out and clean_folder in out


def test_pan_eval_missing_corpus_exits_2(capsys, tmp_path):
    code, out, err = run_main(capsys, "pan-eval", tmp_path / "nowhere", "--json")
    assert code == 2
    assert len(err.splitlines()) == 1 and str(tmp_path / "nowhere") in err


def test_score_cases_file_is_checked_before_scoring_and_written_whole(tmp_path, capsys):
    example = Path(__file__).parent / "data" / "example_probes.jsonl"
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["score", str(example), "--cases", str(blocker / "cases.jsonl"), "--json"]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    cases = tmp_path / "new" / "cases.jsonl"
    assert main(["score", str(example), "--cases", str(cases), "--json"]) == 0
    assert sorted(p.name for p in cases.parent.iterdir()) == ["cases.jsonl"]
    assert all(json.loads(line)["id"] for line in cases.read_text().splitlines())
