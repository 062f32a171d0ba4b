"""What each threshold of the paraphrase grader trades, on a development fold it was not fitted on.

Issue 27 asks for one-sentence paraphrases graded high >= 60% (in context >= 70%) and
non-paraphrases graded high <= 20%, bare and in context. Whether one threshold can give both
is a question for a fold the grader never saw: fit one without it,

    python tests/tools/train_grader.py --validation-fold 1 --no-refit --out /tmp/fold1/paraphrase_grader.safetensors
    python tests/tools/grader_tradeoff.py /tmp/fold1/paraphrase_grader.safetensors --fold 1

and this scores that fold's MRPC pairs as ``tests/benchmarks/bench_categories.py`` does
(bare and in context, ``memtasks score``'s pipeline, that adapter grading), then prints, for a
grid of thresholds, the share of each set found and graded high. A case the detector's
evidence decides keeps its grade; only the encoder's calls move with the threshold. The
held-out fold is never read.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_categories import mrpc_sets  # noqa: E402
from cross_corpus import DATA, SEED  # noqa: E402
from mrpc import FOLDS, HELDOUT_FOLD, MrpcPair  # noqa: E402

from memtasks.grader import CROSS_ENCODER, CrossEncoderGrader  # noqa: E402
from memtasks.outcomes import HIGH, NONE  # noqa: E402
from memtasks.scoring import score_probes  # noqa: E402

THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.85, 0.88, 0.9, 0.92, 0.95, 0.97)
STRONG = ("verbatim", "idea", HIGH)


def graded(adapter: Path, fold: int, workers: int) -> dict[str, list[tuple[str, str | None, float | None]]]:
    """Each MRPC set of ``fold`` (:func:`bench_categories.mrpc_sets`) scored with the grader of
    ``adapter``: per probe its category, the grader that gave it and its probability."""
    grader = CrossEncoderGrader(adapter=adapter)
    sets = {}
    for name, probes in mrpc_sets(DATA / "mrpc_train.tsv", "dev", SEED, DATA).items():
        chosen = [p for p in probes if MrpcPair(p.id, 0, "", "").fold == fold]
        report = score_probes(chosen, workers=workers, paraphrase_classifier=grader)
        sets[name] = [(o.category, o.grader, o.probability) for o in report.outcomes]
    return sets


def high_at(outcome: tuple[str, str | None, float | None], threshold: float) -> bool:
    """Whether the outcome is high-confidence when the encoder's threshold is ``threshold``."""
    category, grader, p = outcome
    if grader == CROSS_ENCODER:
        return p > threshold
    return category in STRONG


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("adapter", type=Path, help="an adapter fitted without --fold (train_grader.py --no-refit --out)")
    parser.add_argument("--fold", type=int, default=1, help="the development fold (1-4) to measure on")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    if args.fold == HELDOUT_FOLD or not 0 <= args.fold < FOLDS:
        parser.error(f"--fold must be a development fold, 1 to {FOLDS - 1}")
    sets = graded(args.adapter, args.fold, args.workers)
    print(f"MRPC fold {args.fold}: share found (any category) and graded high, by the encoder's threshold")
    print(f"{'threshold':>9} " + " ".join(f"{name:>24}" for name in sets))
    print(f"{'found':>9} " + " ".join(f"{sum(c != NONE for c, _, _ in s) / len(s):24.1%}" for s in sets.values()))
    for threshold in THRESHOLDS:
        cells = [f"{sum(high_at(o, threshold) for o in s) / len(s):24.1%}" for s in sets.values()]
        print(f"{threshold:9.2f} " + " ".join(cells))


if __name__ == "__main__":
    main()
