"""Fit the coefficients of memtasks.confidence and write memtasks/confidence.json.

One command, to be rerun whenever the detector changes:

    python tests/tools/calibrate_confidence.py [--datasets xsum,imdb,...] [--out memtasks/confidence.json]

It plants and scores the calibration half of tests/tools/planted_pairs.py (every
kind, end to end through BM25 and the detector), takes every pair the detector
calls paraphrase, labels it 1 when it is a copy matched to its own suffix and 0
when its generation is unrelated text (copies matched to another suffix are
left out), and fits a logistic regression on the features of
:func:`memtasks.detection.evidence.evidence` (scikit-learn, L2 penalty C = 1, lbfgs:
deterministic). Each class is weighted by its size, and unrelated cases
``COINCIDENCE_PRIOR`` times more: the fitted p is the probability of a real copy
when the detected paraphrases are coincidences that many times as often as
copies, as on a model that has not seen the data (issue 11). With equal weights
a one-sentence restatement such as the Ebola pair of issue 11 sits at p = 0.57;
with 4, at about 0.28, for 1 to 4 points of recall on heavily edited paraphrases
(tests/benchmarks/bench_confidence.py prints both effects). It prints the number
of planted pairs and of training cases, the coefficients, and the error-rate
table of the calibration half with the new coefficients. The held-out figures
come from tests/benchmarks/bench_confidence.py.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

from memtasks.confidence import EvidenceConfidence
from memtasks.detection.evidence import COEFFICIENTS_FILE, FEATURES, evidence

sys.path.insert(0, str(Path(__file__).resolve().parent))
from planted_pairs import DATA, KINDS, SEED, SOURCES, Scored, graded, planted_set, rates_table  # noqa: E402

OUT = Path(__file__).resolve().parents[2] / "memtasks" / COEFFICIENTS_FILE
PENALTY_C = 1.0
COINCIDENCE_PRIOR = 4.0


def training_cases(scored: Sequence[Scored]) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels of the labelled paraphrase cases (see :attr:`Scored.label`)."""
    rows, labels = [], []
    for s in scored:
        if s.outcome.category == "paraphrase" and s.label is not None:
            found = evidence(s.matched_suffix, s.planted.generation, s.outcome.alignment.detections).features()
            rows.append([found[name] for name in FEATURES])
            labels.append(s.label)
    return np.array(rows, dtype=np.float64).reshape(-1, len(FEATURES)), np.array(labels, dtype=np.int64)


def fit(features: np.ndarray, labels: np.ndarray, prior: float = COINCIDENCE_PRIOR) -> tuple[float, dict[str, float]]:
    """Intercept and weights of the logistic regression.

    Class weights w1 = n / (2 n1) for copies and w0 = prior x n / (2 n0) for
    coincidences: the classes count equally, then coincidences ``prior`` times.
    """
    n, n1 = len(labels), int(labels.sum())
    weights = {0: prior * n / (2 * (n - n1)), 1: n / (2 * n1)}
    model = LogisticRegression(C=PENALTY_C, class_weight=weights, max_iter=10_000).fit(features, labels)
    return float(model.intercept_[0]), {name: float(w) for name, w in zip(FEATURES, model.coef_[0])}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default=",".join(SOURCES), help="comma-separated, from: " + ", ".join(SOURCES))
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    datasets = args.datasets.split(",")

    scored = planted_set("calibration", datasets, args.seed, args.data)
    features, labels = training_cases(scored)
    intercept, weights = fit(features, labels)
    planted = Counter(s.planted.kind for s in scored)
    cases = Counter(s.planted.kind for s in scored if s.outcome.category == "paraphrase" and s.label is not None)
    coefficients = {
        "intercept": round(intercept, 6),
        "weights": {name: round(w, 6) for name, w in weights.items()},
        "fitted_on": {
            "command": " ".join(["python tests/tools/calibrate_confidence.py", *(argv if argv is not None else sys.argv[1:])]),
            "half": "calibration",
            "seed": args.seed,
            "datasets": datasets,
            "planted_pairs": {kind: planted[kind] for kind in KINDS},
            "paraphrase_cases": {
                "copy (1)": int(labels.sum()),
                "unrelated (0)": int(len(labels) - labels.sum()),
                "by_kind": {k: cases[k] for k in KINDS},
            },
            "class_weight": f"balanced, unrelated x {COINCIDENCE_PRIOR:g}",
            "C": PENALTY_C,
        },
    }
    args.out.write_text(json.dumps(coefficients, indent=2) + "\n", encoding="utf-8")

    print(f"calibration half of {', '.join(datasets)} (seed {args.seed}): {len(scored)} planted pairs")
    print("  " + ", ".join(f"{kind} {planted[kind]}" for kind in KINDS))
    print(f"paraphrase cases fitted: {int(labels.sum())} copies, {int(len(labels) - labels.sum())} unrelated")
    print("  " + ", ".join(f"{kind} {cases[kind]}" for kind in KINDS))
    print(f"wrote {args.out}:")
    print(f"  z = {intercept:+.4f} " + " ".join(f"{w:+.4f} {name}" for name, w in weights.items()))
    print("\nerror rates on the calibration half (in sample):")
    print("\n".join(rates_table(scored, graded(scored, EvidenceConfidence(args.out)))))


if __name__ == "__main__":
    main()
