"""Tests for memtasks.pan: the PAN text-alignment measure and corpus reader."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from memtasks.pan import (
    Case,
    PanCorpusError,
    PanPair,
    pan_scores,
    read_corpus,
    read_text,
    scores_by_obfuscation,
)

REAL_CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "pan13-train"

A = ("susp-a.txt", "src-a.txt")
B = ("susp-b.txt", "src-b.txt")
C = ("susp-c.txt", "src-c.txt")
# One case of 100 chars on each side: |s| = 200.
CASE_A = Case(0, 100, 0, 100)


def pair(key: tuple[str, str], *cases: Case, obf: str = "02-no-obfuscation") -> PanPair:
    return PanPair(key[0], key[1], obf, tuple(cases))


def assert_scores(got, precision, recall, granularity, plagdet):
    assert got.to_dict() == pytest.approx(
        dict(precision=precision, recall=recall, granularity=granularity, plagdet=plagdet)
    )


# --------------------------------------------------------------------------- measure


def test_perfect_detection():
    assert_scores(pan_scores([pair(A, CASE_A)], {A: [CASE_A]}), 1, 1, 1, 1)


def test_detection_covering_half_a_case():
    # r = [0,50) x [0,50): |r| = 100, s ⊓ r = 50 + 50 = 100.
    # recall = 100/200 = 0.5, precision = 100/100 = 1, granularity 1,
    # F1 = 2 * 0.5 * 1 / 1.5 = 2/3, plagdet = (2/3) / log2(2) = 2/3.
    got = pan_scores([pair(A, CASE_A)], {A: [Case(0, 50, 0, 50)]})
    assert_scores(got, 1, 0.5, 1, 2 / 3)


def test_detection_partly_outside_the_case():
    # r = [50,150) x [50,150): |r| = 200, s ⊓ r = 50 + 50 = 100.
    # recall = 100/200 = 0.5, precision = 100/200 = 0.5, F1 = 0.5, plagdet = 0.5.
    got = pan_scores([pair(A, CASE_A)], {A: [Case(50, 150, 50, 150)]})
    assert_scores(got, 0.5, 0.5, 1, 0.5)


def test_two_detections_splitting_one_case():
    # r1 = [0,50) x [0,50), r2 = [50,100) x [50,100): together they cover all 200 chars,
    # so recall = 1; each lies inside the case, so precision = 1; both detect s, so
    # granularity = 2 and plagdet = 1 / log2(1 + 2) = 1/log2(3) ≈ 0.6309.
    got = pan_scores([pair(A, CASE_A)], {A: [Case(0, 50, 0, 50), Case(50, 100, 50, 100)]})
    assert_scores(got, 1, 1, 2, 1 / math.log2(3))


def test_overlapping_detections_are_united_not_summed():
    # r1 = [0,60) x [0,60), r2 = [40,100) x [40,100): summing would give 240/200; the union
    # is the whole case, recall = 1. Precision 1 each, granularity 2.
    got = pan_scores([pair(A, CASE_A)], {A: [Case(0, 60, 0, 60), Case(40, 100, 40, 100)]})
    assert_scores(got, 1, 1, 2, 1 / math.log2(3))


def test_one_detection_covering_two_cases():
    # s1 = [0,100) x [0,100), s2 = [200,300) x [200,300), r = [0,300) x [0,300), |r| = 600.
    # r detects both: recall = (200/200 + 200/200) / 2 = 1,
    # precision = |(s1 ⊓ r) ∪ (s2 ⊓ r)| / |r| = 400/600 = 2/3, granularity 1,
    # F1 = 2 * (2/3) / (5/3) = 0.8 = plagdet.
    s2 = Case(200, 300, 200, 300)
    got = pan_scores([pair(A, CASE_A, s2)], {A: [Case(0, 300, 0, 300)]})
    assert_scores(got, 2 / 3, 1, 1, 0.8)


def test_detection_in_pair_without_case_lowers_precision():
    # Pair A detected perfectly (precision term 1), pair B has no case and one detection
    # (precision term 0): precision = (1 + 0) / 2 = 0.5, recall = 1, granularity 1,
    # F1 = 2 * 0.5 / 1.5 = 2/3 = plagdet.
    pairs = [pair(A, CASE_A), pair(B)]
    got = pan_scores(pairs, {A: [CASE_A], B: [Case(0, 10, 0, 10)]})
    assert_scores(got, 0.5, 1, 1, 2 / 3)


def test_overlap_on_susp_side_only_does_not_detect():
    # r covers the case's suspicious range but a disjoint source range: it does not detect
    # s, so s ⊓ r is empty: recall 0, precision 0, granularity 1 (no case detected), plagdet 0.
    miss = Case(0, 100, 500, 600)
    assert_scores(pan_scores([pair(A, CASE_A)], {A: [miss]}), 0, 0, 1, 0)
    # Next to a perfect detection it adds nothing to recall or granularity (still 1, not
    # 2) and halves precision: (1 + 0) / 2; F1 = 2/3 = plagdet.
    assert_scores(pan_scores([pair(A, CASE_A)], {A: [CASE_A, miss]}), 0.5, 1, 1, 2 / 3)


def test_zero_detections():
    # Cases but no detections: recall 0 and, by convention, precision 0; granularity 1.
    assert_scores(pan_scores([pair(A, CASE_A)], {}), 0, 0, 1, 0)
    assert_scores(pan_scores([pair(A, CASE_A)], {A: []}), 0, 0, 1, 0)


def test_no_cases_conventions():
    # No cases and no detections: everything 1. No cases but a detection: 0, 0, 1, 0.
    assert_scores(pan_scores([pair(B)], {}), 1, 1, 1, 1)
    assert_scores(pan_scores([pair(B)], {B: [Case(0, 1, 0, 1)]}), 0, 0, 1, 0)


def test_macro_average_over_cases_not_characters_or_pairs():
    # Case in A (200 chars) fully detected, case in C (20 chars) missed:
    # recall = (1 + 0) / 2 = 0.5, not 200/220; precision 1; F1 = 2/3 = plagdet.
    pairs = [pair(A, CASE_A), pair(C, Case(0, 10, 0, 10))]
    assert_scores(pan_scores(pairs, {A: [CASE_A]}), 1, 0.5, 1, 2 / 3)


def test_detections_for_unknown_pairs_are_ignored():
    got = pan_scores([pair(A, CASE_A)], {A: [CASE_A], ("x.txt", "y.txt"): [Case(0, 5, 0, 5)]})
    assert_scores(got, 1, 1, 1, 1)


def test_empty_detection_and_duplicate_pair_are_rejected():
    with pytest.raises(ValueError, match="empty detection"):
        pan_scores([pair(A, CASE_A)], {A: [Case(3, 3, 7, 7)]})
    with pytest.raises(ValueError, match="twice"):
        pan_scores([pair(A, CASE_A), pair(A, CASE_A)], {})
    with pytest.raises(ValueError):
        Case(10, 5, 0, 1)


def test_scores_by_obfuscation():
    pairs = [pair(A, CASE_A), pair(B, obf="01-no-plagiarism"), pair(C, CASE_A)]
    by = scores_by_obfuscation(pairs, {A: [CASE_A]})
    assert list(by) == ["01-no-plagiarism", "02-no-obfuscation"]
    assert_scores(by["01-no-plagiarism"], 1, 1, 1, 1)  # no cases, no detections
    assert_scores(by["02-no-obfuscation"], 1, 0.5, 1, 2 / 3)
    by = scores_by_obfuscation(pairs, {B: [Case(0, 1, 0, 1)]})
    assert_scores(by["01-no-plagiarism"], 0, 0, 1, 0)  # no cases, one detection


def _brute_force(pairs, detections):
    """The definitions, literally, with sets of (side, position)."""
    chars = lambda c: {("t", i) for i in range(c.susp_start, c.susp_end)} | {
        ("s", i) for i in range(c.src_start, c.src_end)
    }
    detects = lambda r, s: (
        max(r.susp_start, s.susp_start) < min(r.susp_end, s.susp_end)
        and max(r.src_start, s.src_start) < min(r.src_end, s.src_end)
    )
    rec, prec, per_case = [], [], []
    for p in pairs:
        dets = detections.get((p.susp, p.src), [])
        for s in p.cases:
            hit = [r for r in dets if detects(r, s)]
            rec.append(len(set().union(*(chars(s) & chars(r) for r in hit))) / len(chars(s)))
            per_case.append(len(hit))
        for r in dets:
            hit = [s for s in p.cases if detects(r, s)]
            prec.append(len(set().union(*(chars(s) & chars(r) for s in hit))) / len(chars(r)))
    detected = [n for n in per_case if n]
    return (
        sum(prec) / len(prec),
        sum(rec) / len(rec),
        sum(detected) / len(detected) if detected else 1.0,
    )


def test_intervals_agree_with_position_sets():
    rng = random.Random(0)

    def rand_case(n=60):
        a, b = sorted(rng.sample(range(n), 2))
        c, d = sorted(rng.sample(range(n), 2))
        return Case(a, b, c, d)

    for _ in range(200):
        keys = [(f"s{i}.txt", f"r{i}.txt") for i in range(3)]
        pairs = [pair(k, *(rand_case() for _ in range(rng.randint(0, 3)))) for k in keys]
        dets = {k: [rand_case() for _ in range(rng.randint(0, 4))] for k in keys}
        if not any(p.cases for p in pairs) or not any(dets.values()):
            continue
        got = pan_scores(pairs, dets)
        assert (got.precision, got.recall, got.granularity) == pytest.approx(
            _brute_force(pairs, dets)
        )


# --------------------------------------------------------------------------- corpus


def _truth_xml(susp: str, cases: list[tuple[int, int, int, int]], src: str) -> str:
    feats = "".join(
        f'<feature name="plagiarism" obfuscation="none" source_length="{sl}" '
        f'source_offset="{so}" source_reference="{src}" this_length="{tl}" '
        f'this_offset="{to}" type="artificial" />\n'
        for to, tl, so, sl in cases
    )
    return (
        f'<document reference="{susp}">\n'
        f'<feature name="about" authors="x" language="en" title="t" />\n{feats}</document>\n'
    )


def make_corpus(root: Path) -> Path:
    """Three pairs in two folders; the top-level order differs from the folder order."""
    texts = {
        ("susp", "suspicious-document00001.txt"): "abc\r\nThe copied bit.\nend",
        ("susp", "suspicious-document00002.txt"): "nothing here",
        ("src", "source-document00001.txt"): "xx The copied bit. yy",
        ("src", "source-document00002.txt"): "unrelated",
    }
    for (kind, name), text in texts.items():
        (root / kind).mkdir(parents=True, exist_ok=True)
        (root / kind / name).write_bytes(text.encode("utf-8"))
    folders = {
        "01-no-plagiarism": [("suspicious-document00002.txt", "source-document00002.txt", [])],
        "02-no-obfuscation": [
            # "The copied bit." is at 5..20 in susp (after "abc\r\n") and 3..18 in src.
            ("suspicious-document00001.txt", "source-document00001.txt", [(5, 15, 3, 15)]),
            ("suspicious-document00002.txt", "source-document00001.txt", []),
        ],
    }
    top = []
    for folder, entries in folders.items():
        (root / folder).mkdir()
        lines = []
        for susp, src, cases in entries:
            lines.append(f"{susp} {src}\n")
            top.append(f"{susp} {src}\n")
            xml = root / folder / f"{susp[:-4]}-{src[:-4]}.xml"
            xml.write_text(_truth_xml(susp, cases, src), encoding="utf-8")
        (root / folder / "pairs").write_text("".join(lines), encoding="utf-8")
    (root / "pairs").write_text("".join(reversed(top)), encoding="utf-8")
    return root


def test_read_corpus(tmp_path):
    root = make_corpus(tmp_path)
    pairs = read_corpus(root)
    assert [(p.susp, p.src, p.obfuscation) for p in pairs] == [
        ("suspicious-document00002.txt", "source-document00001.txt", "02-no-obfuscation"),
        ("suspicious-document00001.txt", "source-document00001.txt", "02-no-obfuscation"),
        ("suspicious-document00002.txt", "source-document00002.txt", "01-no-plagiarism"),
    ]
    assert [p.cases for p in pairs] == [(), (Case(5, 20, 3, 18),), ()]
    # "\r\n" is kept, so the truth offsets slice out the same passage on both sides.
    case = pairs[1].cases[0]
    susp = read_text(root, pairs[1].susp, "susp")
    src = read_text(root, pairs[1].src, "src")
    assert susp[case.susp_start : case.susp_end] == "The copied bit."
    assert src[case.src_start : case.src_end] == "The copied bit."


def _break_top_pairs(root: Path) -> Path:
    (root / "pairs").unlink()
    return root / "pairs"


def _break_xml(root: Path) -> Path:
    xml = root / "02-no-obfuscation" / "suspicious-document00001-source-document00001.xml"
    xml.write_text("<document><feature name=", encoding="utf-8")
    return xml


def _break_folder_pairs(root: Path) -> Path:
    (root / "01-no-plagiarism" / "pairs").unlink()
    return root / "01-no-plagiarism" / "pairs"


@pytest.mark.parametrize("breaker", [_break_top_pairs, _break_xml, _break_folder_pairs])
def test_bad_corpus_names_the_file(tmp_path, breaker):
    bad_file = breaker(make_corpus(tmp_path))
    with pytest.raises(PanCorpusError) as err:
        read_corpus(tmp_path)
    assert str(bad_file) in str(err.value)
    assert "\n" not in str(err.value)


def test_real_pan13_training_corpus():
    if not (REAL_CORPUS / "pairs").is_file():
        pytest.skip(f"PAN13 training corpus not found at {REAL_CORPUS}")
    pairs = read_corpus(REAL_CORPUS)
    assert len(pairs) == 5185
    cases = {}
    for p in pairs:
        cases[p.obfuscation] = cases.get(p.obfuscation, 0) + len(p.cases)
    assert cases == {
        "01-no-plagiarism": 0,
        "02-no-obfuscation": 1252,
        "03-random-obfuscation": 1267,
        "04-translation-obfuscation": 1250,
        "05-summary-obfuscation": 238,
    }
    truth = {(p.susp, p.src): p.cases for p in pairs}
    assert_scores(pan_scores(pairs, truth), 1, 1, 1, 1)
    # Truth offsets stay inside the texts (checked on a sample to keep the test fast).
    for p in pairs[::50]:
        susp, src = read_text(REAL_CORPUS, p.susp, "susp"), read_text(REAL_CORPUS, p.src, "src")
        assert all(c.susp_end <= len(susp) and c.src_end <= len(src) for c in p.cases)
