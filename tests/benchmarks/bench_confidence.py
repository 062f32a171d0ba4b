"""Error rates of the paraphrase confidence (memtasks.confidence) on held-out planted data.

Plants and scores the held-out half of tests/tools/planted_pairs.py (records that
the calibration never saw), end to end: BM25 top 10 over the probes' suffixes,
the detector on each pair, the best-ranked detection per generation. Each
paraphrase is graded by the default grader (or ``--grader``, ``--coefficients``). Prints
per kind the share of pairs memorized in any category ("study", the study-faithful
rate, paraphrase ungraded) and the share counted high-confidence (verbatim, idea
or paraphrase_high), the same for unrelated text per dataset, the two targets
(unrelated text counted high-confidence <= 0.05%; verbatim and reordered copies
found >= 99%), and the grade of the three one-sentence
coincidences of issue 11 that prompted the confidence:

    python tests/benchmarks/bench_confidence.py [--datasets xsum,imdb] [--grader evidence] [--coefficients FILE]

For a check across datasets, fit without one and measure on it:

    python tests/tools/calibrate_confidence.py --datasets imdb,chatdoctor,ag_news,squad_v2 --out /tmp/no-xsum.json
    python tests/benchmarks/bench_confidence.py --datasets xsum --coefficients /tmp/no-xsum.json
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from memtasks.confidence import EvidenceConfidence
from memtasks.grader import GRADERS, load_grader

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from planted_pairs import COINCIDENCES, DATA, SEED, SOURCES, graded, one_sentence_case, planted_set, rates_table  # noqa: E402

def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default=",".join(SOURCES), help="comma-separated, from: " + ", ".join(SOURCES))
    parser.add_argument("--grader", default="cross-encoder", help=f"{' or '.join(GRADERS)} (the default) or a Hugging Face classifier")
    parser.add_argument("--coefficients", type=Path, help="the evidence grader with a confidence.json other than the package's")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args(argv)
    grader = EvidenceConfidence(args.coefficients) if args.coefficients else load_grader(args.grader)

    started = time.perf_counter()
    scored = planted_set("heldout", args.datasets.split(","), args.seed, args.data)
    scoring_seconds = time.perf_counter() - started
    started = time.perf_counter()
    categories = graded(scored, grader)
    grading_seconds = time.perf_counter() - started
    n_graded = sum(s.outcome.category == "paraphrase" for s in scored)

    print(f"held-out half of {args.datasets} (seed {args.seed}), confidence from {grader.name}")
    print("\n".join(rates_table(scored, categories)))
    print(f"\nplanting and scoring {len(scored)} pairs: {scoring_seconds:.1f} s; "
          f"grading {n_graded} paraphrases: {grading_seconds:.2f} s")
    print("\nthe one-sentence coincidences of issue 11 (must be low):")
    for suffix, generation in COINCIDENCES:
        case = one_sentence_case(suffix, generation)
        print(f"  p = {grader.scores([case])[0]:.3f} {grader.grade([case])[0]:15} {suffix[:50]!r} / {generation[:50]!r}")


if __name__ == "__main__":
    main()
