"""Tests for memtasks.scoring: probe files, probe classification, scored reports and case records."""

from __future__ import annotations

import hashlib
import json
import os
import signal
from pathlib import Path

import pytest

from memtasks.confidence import EvidenceConfidence
from memtasks.detection import CATEGORIES, Alignment, Detection, Detector
from memtasks.grader import default_grader
from memtasks.retrieval import BM25Index, analyze
from memtasks.scoring import (
    CONDENSATION_EVIDENCE,
    Probe,
    ProbeFileError,
    ProbeOutcome,
    case_records,
    grade_cases,
    read_probes,
    score_probes,
)
from test_detection import IDEA_GENERATION, IDEA_SUFFIX

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
XSUM = DATA / "xsum.jsonl"


# --------------------------------------------------------------------------- read_probes


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def record(probe_id="a", suffix="the suffix", generation="the generation") -> str:
    return json.dumps({"id": probe_id, "suffix": suffix, "generation": generation})


def test_read_probes_valid_file(tmp_path):
    path = write_lines(tmp_path / "p.jsonl", [
        record("a", "first suffix", "first generation"),
        json.dumps({"id": 7, "suffix": "second suffix", "generation": "", "extra": "ignored"}),
    ])
    assert read_probes(path) == [Probe("a", "first suffix", "first generation"), Probe("7", "second suffix", "")]


def test_read_probes_skips_blank_lines_and_accepts_crlf(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_bytes(("\n" + record("a") + "\r\n   \r\n\t\n" + record("b")).encode())  # no final newline
    assert [p.id for p in read_probes(path)] == ["a", "b"]


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85"])
def test_line_separator_inside_a_json_string_is_not_a_line_break(tmp_path, separator):
    # str.splitlines() would cut these records in two; a JSONL reader must not.
    suffix = f"before{separator}after"
    path = tmp_path / "p.jsonl"
    path.write_text(
        json.dumps({"id": "a", "suffix": suffix, "generation": "g"}, ensure_ascii=False) + "\n" + record("b") + "\n",
        encoding="utf-8",
    )
    assert separator in path.read_text(encoding="utf-8")  # written raw, not escaped
    assert read_probes(path) == [Probe("a", suffix, "g"), Probe("b", "the suffix", "the generation")]


BAD_LINES = {
    "invalid JSON": ('{"id": "b", "suffix": "s", "generation": ', None),
    "array, not object": ('["b", "s", "g"]', None),
    "missing suffix": ('{"id": "b", "generation": "g"}', "suffix"),
    "missing id": ('{"suffix": "s", "generation": "g"}', "id"),
    "generation not a string": ('{"id": "b", "suffix": "s", "generation": 3}', "generation"),
    "generation null": ('{"id": "b", "suffix": "s", "generation": null}', "generation"),
    "id a bool": ('{"id": true, "suffix": "s", "generation": "g"}', "id"),
    "id a float": ('{"id": 1.5, "suffix": "s", "generation": "g"}', "id"),
}


@pytest.mark.parametrize("line, field", BAD_LINES.values(), ids=BAD_LINES.keys())
def test_bad_line_names_file_line_and_field(tmp_path, line, field):
    # The bad record is on line 3, after a blank line: line numbers count every line.
    path = write_lines(tmp_path / "probes.jsonl", [record("a"), "", line, record("c")])
    with pytest.raises(ProbeFileError) as caught:
        read_probes(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:3: ")
    assert "\n" not in message
    if field is not None:
        assert f"'{field}'" in message


def test_duplicate_id_names_both_lines(tmp_path):
    path = write_lines(tmp_path / "probes.jsonl", [record("a"), record("b"), "", record("a")])
    with pytest.raises(ProbeFileError) as caught:
        read_probes(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:4: ")
    assert "'id'" in message and "duplicate" in message and "line 1" in message


def test_integer_id_and_its_string_are_the_same_id(tmp_path):
    # Ids are strings in the output, so 1 and "1" would be indistinguishable there.
    path = write_lines(tmp_path / "probes.jsonl", [record(1), record("1")])
    with pytest.raises(ProbeFileError, match="duplicate"):
        read_probes(path)


def test_invalid_utf8_names_the_line(tmp_path):
    path = tmp_path / "probes.jsonl"
    path.write_bytes(record("a").encode() + b'\n{"id": "b", "suffix": "caf\xe9", "generation": "g"}\n')
    with pytest.raises(ProbeFileError) as caught:
        read_probes(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:2: ")
    assert "UTF-8" in message


def test_missing_file_names_the_file(tmp_path):
    path = tmp_path / "nope.jsonl"
    with pytest.raises(ProbeFileError, match=str(path)):
        read_probes(path)


def test_probe_file_error_is_a_value_error():
    # The CLI turns ValueError into exit code 2; ProbeFileError must be one.
    assert issubclass(ProbeFileError, ValueError)


# --------------------------------------------------------------------------- score_probes on real text

N_VERBATIM = 12
CROSS = 12  # probe 12 copies the suffix of probe 0
EMPTY = 28
BLANK = 29


def _xsum_suffixes() -> list[str]:
    """Words 50-100 of each XSum document of at least 100 words (words 0-50 would be the prompt)."""
    if not XSUM.is_file():
        pytest.skip(f"{XSUM} not available")
    with XSUM.open(encoding="utf-8") as handle:
        documents = [json.loads(line)["document"] for line in handle]
    return [" ".join(d.split()[50:100]) for d in documents if len(d.split()) >= 100]


def _real_probes() -> list[Probe]:
    """30 probes from XSum: each document's words 50-100 are the training suffix
    (words 0-50 would be the prompt). Generations: probes 0-11 copy their own
    suffix verbatim, probe 12 copies probe 0's suffix, probes 13-27 continue
    with text of other documents, probe 28 is empty and 29 whitespace only."""
    suffixes = _xsum_suffixes()
    probes = []
    for i in range(30):
        if i < N_VERBATIM:
            generation = suffixes[i]
        elif i == CROSS:
            generation = suffixes[0]
        elif i == EMPTY:
            generation = ""
        elif i == BLANK:
            generation = "  \n\t  "
        else:
            generation = suffixes[500 + i]  # a document that is not among the probes
        probes.append(Probe(f"xsum-{i}", suffixes[i], generation))
    return probes


@pytest.fixture(scope="module")
def real_probes():
    return _real_probes()


@pytest.fixture(scope="module")
def report(real_probes):
    return score_probes(real_probes, workers=1)


@pytest.fixture(scope="module")
def report_two_workers(real_probes):
    return score_probes(real_probes, workers=2)


def test_every_probe_has_one_outcome(report, real_probes):
    assert report.n == len(real_probes) == 30
    assert [o.probe_id for o in report.outcomes] == [p.id for p in real_probes]


def test_verbatim_copies_are_verbatim_and_matched_to_their_suffix(report, real_probes):
    for i in range(N_VERBATIM):
        outcome = report.outcomes[i]
        assert (outcome.category, outcome.matched_id, outcome.rank) == ("verbatim", real_probes[i].id, 1)
    # A generation that copies another probe's suffix is matched to that suffix.
    cross = report.outcomes[CROSS]
    assert (cross.category, cross.matched_id, cross.rank) == ("verbatim", real_probes[0].id, 1)


def test_empty_and_unrelated_generations_are_not_memorized(report):
    assert report.outcomes[EMPTY].category == "none"
    assert report.outcomes[BLANK].category == "none"
    for outcome in report.outcomes:
        if outcome.category == "none":
            assert (outcome.matched_id, outcome.rank, outcome.alignment.detected) == (None, None, False)
    unrelated = report.outcomes[CROSS + 1 : EMPTY]
    assert all(o.category != "verbatim" for o in unrelated)


def test_rates_are_counts_over_n(report):
    counts = {c: sum(o.category == c for o in report.outcomes) for c in CATEGORIES}
    assert counts["verbatim"] >= N_VERBATIM + 1
    for category in CATEGORIES:
        assert report.categories[category].value == pytest.approx(counts[category] / report.n)
    memorized = sum(o.category != "none" for o in report.outcomes)
    assert report.total.value == pytest.approx(memorized / report.n)
    assert report.total.value == pytest.approx(sum(r.value for r in report.categories.values()))


def test_intervals_contain_the_rate_and_are_deterministic(report, real_probes):
    rates = [report.total, *report.categories.values()]
    for rate in rates:
        assert 0.0 <= rate.low <= rate.value <= rate.high <= 1.0
    assert report.total.low < report.total.value < report.total.high  # 13 of 30: a real spread
    again = score_probes(real_probes, workers=1)
    assert again.total == report.total
    assert again.categories == report.categories


def test_workers_do_not_change_outcomes(report, report_two_workers):
    assert report_two_workers.outcomes == report.outcomes
    assert report_two_workers.total == report.total
    assert report_two_workers.categories == report.categories


def test_report_counts_the_pairs_it_aligned(report, real_probes):
    # One pair per retrieved candidate; empty and whitespace-only generations
    # have no query terms, so no candidates.
    index = BM25Index()
    index.add(range(len(real_probes)), [p.suffix for p in real_probes])
    found = index.top_k([p.generation for p in real_probes], k=report.k)
    assert found[EMPTY] == found[BLANK] == []
    assert report.n_pairs == sum(len(f) for f in found)
    d = report.to_dict()
    assert d["pairs"] == report.n_pairs and d["n"] == 30
    assert set(CATEGORIES) <= d.keys()


def test_k_bounds_the_candidates(real_probes):
    report = score_probes(real_probes[:N_VERBATIM], k=1)
    assert report.n_pairs == N_VERBATIM
    assert all(o.category == "verbatim" and o.rank == 1 for o in report.outcomes)


def test_a_detection_below_rank_one_still_counts():
    # The generation copies suffix A, then repeats rare words of suffix B so
    # that BM25 ranks B above A; B has no alignment with it, A does.
    suffixes = _xsum_suffixes()
    rare_b = [w for w in dict.fromkeys(analyze(suffixes[1])) if len(w) > 6][:6]
    generation = suffixes[0] + " " + " ".join(rare_b * 8)
    probes = [Probe("A", suffixes[0], "x"), Probe("B", suffixes[1], "y"), Probe("G", suffixes[2], generation)]
    probes += [Probe(f"other-{i}", suffixes[i], "z") for i in range(3, 20)]
    index = BM25Index()
    index.add(range(len(probes)), [p.suffix for p in probes])
    ranking = index.top_k([generation], k=10)[0]
    assert ranking.index(1) < ranking.index(0)  # B above A, as intended
    outcome = score_probes(probes).outcomes[2]
    assert (outcome.category, outcome.matched_id, outcome.rank) == ("verbatim", "A", ranking.index(0) + 1)


def test_the_best_ranked_detection_wins():
    # The same training suffix under two ids (duplicated training data): both
    # candidates are verbatim matches; the tie is ranked by the smaller index,
    # and the probe counts once, for the rank-1 candidate.
    suffixes = _xsum_suffixes()
    probes = [Probe("dup-a", suffixes[5], "unrelated words here"), Probe("dup-b", suffixes[5], suffixes[5])]
    probes += [Probe(f"other-{i}", suffixes[i], "z") for i in range(6, 20)]
    report = score_probes(probes)
    outcome = report.outcomes[1]
    assert (outcome.category, outcome.matched_id, outcome.rank) == ("verbatim", "dup-a", 1)
    assert report.total.value == pytest.approx(1 / len(probes))


# --------------------------------------------------------------------------- case_records


def _hand_made_case():
    """Probe "b" generates a lead-in then a copy of part of probe "a"'s suffix."""
    suffix_a = "Alpha beta gamma. The quick brown fox jumps over the lazy dog. Delta epsilon."
    copied = "The quick brown fox jumps over the lazy dog."
    generation_b = "Some lead-in words. " + copied + " More words."
    probes = [
        Probe("a", suffix_a, "unrelated generation"),
        Probe("b", "a suffix of b that is not copied", generation_b),
        Probe("c", "another suffix", "another generation"),
    ]
    s0, g0 = suffix_a.index(copied), generation_b.index(copied)
    detection = Detection(s0, s0 + len(copied), g0, g0 + len(copied))
    outcomes = [
        ProbeOutcome("a", "none"),
        ProbeOutcome("b", "verbatim", "a", 2, Alignment("verbatim", (detection,))),
        ProbeOutcome("c", "none"),
    ]
    return probes, outcomes, copied


def test_case_records_slice_the_matched_suffix():
    probes, outcomes, copied = _hand_made_case()
    records = case_records(probes, outcomes)
    assert len(records) == 1
    (rec,) = records
    assert (rec["id"], rec["matched_id"], rec["rank"], rec["category"]) == ("b", "a", 2, "verbatim")
    (span,) = rec["spans"]
    # The suffix text comes from the matched probe "a", not from probe "b" itself.
    assert span["suffix_text"] == probes[0].suffix[span["suffix_start"] : span["suffix_end"]] == copied
    assert span["generation_text"] == probes[1].generation[span["generation_start"] : span["generation_end"]] == copied


def test_redacted_case_records_hold_only_hashes():
    probes, outcomes, copied = _hand_made_case()
    (rec,) = case_records(probes, outcomes, redact=True)
    (span,) = rec["spans"]
    assert "suffix_text" not in span and "generation_text" not in span
    expected = hashlib.sha256(probes[0].suffix[span["suffix_start"] : span["suffix_end"]].encode("utf-8")).hexdigest()
    assert span["suffix_sha256"] == expected == hashlib.sha256(copied.encode()).hexdigest()
    expected = hashlib.sha256(probes[1].generation[span["generation_start"] : span["generation_end"]].encode("utf-8"))
    assert span["generation_sha256"] == expected.hexdigest()
    assert "quick brown" not in json.dumps(rec)


def test_case_records_of_real_run(report, real_probes):
    records = case_records(real_probes, report.outcomes)
    memorized = [o for o in report.outcomes if o.category != "none"]
    assert [r["id"] for r in records] == [o.probe_id for o in memorized]
    suffix_of = {p.id: p.suffix for p in real_probes}
    generation_of = {p.id: p.generation for p in real_probes}
    for rec in records:
        assert rec["spans"]
        for span in rec["spans"]:
            assert span["suffix_text"] == suffix_of[rec["matched_id"]][span["suffix_start"] : span["suffix_end"]]
            assert span["generation_text"] == generation_of[rec["id"]][span["generation_start"] : span["generation_end"]]
    redacted = case_records(real_probes, report.outcomes, redact=True)
    for plain, hashed in zip(records, redacted):
        for p, h in zip(plain["spans"], hashed["spans"]):
            assert h["suffix_sha256"] == hashlib.sha256(p["suffix_text"].encode("utf-8")).hexdigest()
            assert h["generation_sha256"] == hashlib.sha256(p["generation_text"].encode("utf-8")).hexdigest()


def test_a_slow_first_compilation_is_explained_and_a_fast_load_is_silent(capsys):
    import time as clock

    from memtasks.scoring import _notice_if_slow

    with _notice_if_slow("compiling (first run only)", after=0.05):
        clock.sleep(0.3)
    assert capsys.readouterr().err == "compiling (first run only)\n"
    with _notice_if_slow("compiling (first run only)", after=5.0):
        pass
    assert capsys.readouterr().err == ""


def _killed(*args):
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_killed_detection_worker_is_one_line_with_what_to_do(capsys, monkeypatch):
    from memtasks.cli import main

    import memtasks.detection.detector as detector_module

    monkeypatch.setattr(detector_module, "_preprocess_texts", _killed)
    # Workers even for the 600 texts of the example probes.
    monkeypatch.setattr(detector_module, "_MIN_CHUNKS_FOR_WORKERS", 1)
    code = main(["score", str(Path(__file__).parent / "data" / "example_probes.jsonl"), "--json", "--workers", "2"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("memtasks score: error: a detection worker process was killed")
    assert "--workers" in err and "smaller input" in err


# A patient question (ChatDoctor) against another patient's: the detector sees the short
# generation span condense the long suffix stretch, but they only share "blood",
# "pressure", "years", "reference" and "guide".
COINCIDENTAL_SUFFIX = (
    "do not have the habit of smoking or drinking alcohol. Six months back I got my blood and urine test. "
    "Results of the same have been attached for your reference. Since two years, I have high blood pressure "
    "and I am taking Amlodac 5 one tablet a day. Do I have any problem with liver or kidney? Do I need any "
    "more tests? Please guide."
)
COINCIDENTAL_GENERATION = (
    "Two years ago, I lost 90 pounds with diet and exercise. I had high blood pressure and anemia when I was "
    "pregnant with twins three years ago. Now, I have taken a complete blood count. I am attaching the reports "
    "for your reference. Please guide."
)


def test_a_condensation_is_idea_only_with_evidence_that_it_restates_its_suffix():
    detector = Detector("memorization")
    coincidence = detector.align(COINCIDENTAL_SUFFIX, COINCIDENTAL_GENERATION)
    assert coincidence.category == "idea"
    assert sum(d.susp_end - d.susp_start for d in coincidence.detections) > sum(
        d.src_end - d.src_start for d in coincidence.detections
    )
    # the training text is the long one: the generation condenses it
    probes = [Probe("summed-up", IDEA_GENERATION, IDEA_SUFFIX), Probe("chance", COINCIDENTAL_SUFFIX, COINCIDENTAL_GENERATION)]
    report = score_probes(probes, paraphrase_classifier=EvidenceConfidence())
    assert [o.category for o in report.outcomes] == ["idea", "paraphrase_low"]
    # still memorized in the study's sense: the low-confidence paraphrase counts
    assert report.total.value == 1.0


def test_a_condensation_that_names_someone_else_is_not_idea():
    # the same words, the same template, another match: an idea alignment the detector's
    # evidence would keep, were it not for the names the training text never mentions
    suffix = (
        "Lars Berg (Norway) wins a free kick in the attacking half. Foul by Jan Peeters (Belgium). "
        "Attempt missed. Lars Berg (Norway) right footed shot from outside the box is too high. "
        "Corner, Belgium. Conceded by Jon Hale. Match ends, Norway 0, Belgium 1."
    )
    cases = [
        (suffix, generation, Alignment("idea", (Detection(0, len(suffix), 0, len(generation)),)))
        for generation in (
            "Lars Berg (Norway) wins a free kick and shot from outside the box is too high; match ends Norway 0, Belgium 1.",
            "Kevin Foley (Wales) wins a free kick and shot from outside the box is too high; match ends Wales 0, Chile 1.",
        )
    ]
    evidence = EvidenceConfidence().scores(cases)
    assert min(evidence) > CONDENSATION_EVIDENCE
    grades = grade_cases(cases, EvidenceConfidence())
    assert [g.category for g in grades] == ["idea", "paraphrase_low"]
    assert [g.probability for g in grades] == evidence and {g.grader for g in grades} == {"evidence"}


def test_a_copy_the_condensation_check_turns_down_is_still_graded_as_a_copy():
    # One name replaced by another: no summary of the suffix (it names someone the suffix does
    # not), but a copy all the same, which the grader calls high on decisive evidence.
    suffix = (
        "Lars Berg (Norway) wins a free kick in the attacking half. Foul by Jan Peeters (Belgium). "
        "Attempt missed. Lars Berg (Norway) right footed shot from outside the box is too high. "
        "Corner, Belgium. Conceded by Jon Hale. Match ends, Norway 0, Belgium 1."
    )
    generation = (
        "Lars Berg (Norway) won a free kick in the attacking half after a foul by Tom Rossi (Belgium). Lars Berg "
        "(Norway) right footed shot from outside the box was too high. Corner, Belgium, conceded by Jon Hale. "
        "Match ends, Norway 0, Belgium 1."
    )
    case = (suffix, generation, Alignment("idea", (Detection(0, len(suffix), 0, len(generation)),)))
    for grader in (EvidenceConfidence(), default_grader()):
        (grade,) = grade_cases([case], grader)
        assert grade.category == "paraphrase_high" and grade.grader == "evidence"
