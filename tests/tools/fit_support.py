"""Fit the two evidence bounds of issue 27 on the development part of real data.

- ``smoothed_support`` (:class:`memtasks.detection.DetectorConfig`): an idea or
  paraphrase pair that only the smoothed weighting aligns is a case when the
  detector's evidence p_e is at least this;
- ``EVIDENCE_HIGH`` (:mod:`memtasks.grader`): a case with p_e above this is
  high-confidence whatever the cross-encoder says (decisive evidence of copying);
  the cases between the two bounds are the cross-encoder's.

Scores, with the support check off, the development part only: MRPC folds 1-4
(one-sentence paraphrases and non-paraphrases, bare and in context, as
``tests/benchmarks/bench_categories.py`` builds them) and the ``dev`` half of
``tests/tools/cross_corpus.py`` (encyclopedia text against news suffixes,
near-copies). For every detected case it records the category, whether the
section-2 (PAN) weighting aligns the pair too and p_e, then prints for each set
and a grid of the two bounds the share found, the share high-confidence by the
evidence alone and the share left to the encoder.

The bounds chosen: the smallest support that keeps unrelated text in any category
at most half the 0.5% target on the dev half (0.001: 0.12%, from 0.34% with the
check off), and the highest bound at which near-copies with 30% of their words
edited are high-confidence by the evidence alone at least 99% of the time (0.5,
the evidence grader's own threshold: 99.0%; 0.7 gives 97.4%). Its cost is on
MRPC's non-paraphrases: 10.4% of the dev ones have 0.5 < p_e < 0.999, and the
encoder called 66 of those 71 low, so they turn high.

    python tests/tools/fit_support.py [--cache FILE.jsonl]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_categories import mrpc_sets  # noqa: E402
from cross_corpus import DATA, SEED, cross_corpus_sets  # noqa: E402

from memtasks.confidence import EvidenceConfidence, default_evidence  # noqa: E402
from memtasks.detection import Detector  # noqa: E402
from memtasks.scoring import score_probes  # noqa: E402

SUPPORTS = (0.0, 0.001, 0.003, 0.01, 0.03, 0.1, 0.2, 0.3, 0.5)
HIGHS = (0.5, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999)


def case_rows(name: str, probes, corpus=None) -> list[dict]:
    """One row per probe: its category with the check off, and for an idea or paraphrase
    case whether PAN's weighting aligns it, p_e and the default grader's score."""
    report = score_probes(probes, detector=Detector("memorization", smoothed_support=0.0), corpus=corpus,
                          paraphrase_classifier=EvidenceConfidence())
    suffix_of = dict(corpus) if corpus is not None else {p.id: p.suffix for p in probes}
    pan = Detector("memorization", weighting="pan")
    rows = []
    for probe, outcome in zip(probes, report.outcomes):
        row = {"set": name, "category": outcome.category}
        if outcome.category in ("idea", "paraphrase_high", "paraphrase_low"):
            case = (suffix_of[outcome.matched_id], probe.generation, outcome.alignment)
            row["raw"] = outcome.alignment.category
            row["pan"] = pan.align(case[0], case[1]).detected
            row["evidence"] = default_evidence().score(*case)
        rows.append(row)
    return rows


def grade(row: dict, support: float, high: float) -> str:
    """The row's category under the two bounds; ``open`` for a paraphrase the encoder would grade."""
    category = row["category"]
    if "raw" not in row:
        return category
    if not row["pan"] and row["evidence"] < support:
        return "none"
    if row["raw"] != "paraphrase":
        return category
    return "paraphrase_high" if row["evidence"] >= high else "open"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, help="read the rows from this file when it exists, else write them there")
    args = parser.parse_args()
    if args.cache and args.cache.exists():
        rows = [json.loads(line) for line in args.cache.read_text().splitlines()]
    else:
        rows = []
        for name, probes in mrpc_sets(DATA / "mrpc_train.tsv", "dev", SEED, DATA).items():
            rows += case_rows(name, probes)
        corpus, sets = cross_corpus_sets("dev")
        for name, probes in sets.items():
            rows += case_rows(name, probes, corpus)
        if args.cache:
            args.cache.write_text("".join(json.dumps(r) + "\n" for r in rows))
    by_set: dict[str, list[dict]] = {}
    for row in rows:
        by_set.setdefault(row["set"], []).append(row)
    print("per set: found (any category), high-confidence by the evidence alone, left to the encoder")
    print(f"{'support':>8} {'high':>6} " + " ".join(f"{name:>22}" for name in by_set))
    for support in SUPPORTS:
        for high in HIGHS:
            cells = []
            for group in by_set.values():
                graded = Counter(grade(r, support, high) for r in group)
                n = len(group)
                found = 1 - graded["none"] / n
                strong = (graded["verbatim"] + graded["idea"] + graded["paraphrase_high"]) / n
                cells.append(f"{found:7.2%} {strong:7.2%} {graded['open'] / n:6.2%}")
            print(f"{support:8.3f} {high:6.3f} " + " ".join(f"{c:>22}" for c in cells))


if __name__ == "__main__":
    main()
