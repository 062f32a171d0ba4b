"""Fit the summary rule of :mod:`memtasks.summaries` on the development half.

Summaries (label 1): human summaries against their documents, XSum's one sentence
against the whole document and against the document after a 50-word prefix, and
CNN/DailyMail's highlights against the article (``tests/benchmarks/bench_categories.py``'s
``summary/xsum``, ``xsum_summary`` and ``summary/cnn``). Coincidences (label 0):
encyclopedia passages, movie reviews and doctors' answers against each of their top-10
news suffixes (``tests/tools/cross_corpus.py``'s ``unrelated`` and ``unrelated_other``),
and ``same_subject``: 40-60 words or 1-3 sentences of a SQuAD passage against three other
passages of the same Wikipedia article (never its first, which sums the article up).
Only candidate pairs are measured (:meth:`memtasks.summaries.SummaryFinder.candidate`).

A logistic regression on the measures (classes weighted alike) gives the weights; the
intercept is then the loosest at which at most ``--unrelated`` of the probes of each
cross-corpus set (counted per probe: any of its ten pairs) and ``--same-subject`` of the
same-article pairs are idea, and is printed with what each set gets at it.

    python tests/tools/fit_summaries.py [--unrelated 0.0005] [--same-subject 0.03]
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import numpy as np

from memtasks.retrieval.bm25 import BM25Index
from memtasks.summaries import SummaryFinder

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_categories import DATA, SEED, summary_sets, xsum_sets  # noqa: E402
from cross_corpus import _records, _unrelated, cross_corpus_sets, part_of  # noqa: E402

SUMMARY_SETS = ("summary/xsum", "summary/cnn", "xsum_summary")
COINCIDENCE_SETS = ("unrelated", "unrelated_other")
MEASURES = ("semantic", "coverage", "cover", "log_names", "log_found")


def same_subject(part: str, n: int = 3000) -> list[tuple[int, str, str]]:
    """(number, suffix, generation): a cut of a SQuAD passage against three other passages of
    the half from the same article, none of them the article's first."""
    by_title: dict[str, list[str]] = {}
    for record in _records(DATA, "squad_v2.jsonl"):
        passages = by_title.setdefault(record["title"], [])
        if record["context"] not in passages:
            passages.append(record["context"])
    usable = {t: [p for p in ps[1:] if part_of(p) == part] for t, ps in sorted(by_title.items())}
    usable = {t: ps for t, ps in usable.items() if len(ps) >= 4}
    rng = random.Random(f"{SEED}:{part}:same")
    pairs = []
    for i in range(n):
        chosen = rng.sample(usable[rng.choice(sorted(usable))], 4)
        pairs.append((i, " ".join(chosen[:3]), _unrelated(chosen[3:], rng)))
    return pairs


def pair_sets(part: str) -> dict[str, list[tuple[int, str, str]]]:
    """(probe number, suffix, generation) of each set: one pair per summary, ten per passage."""
    corpus, cross = cross_corpus_sets(part)
    sets = {**summary_sets(DATA, part), **xsum_sets(DATA, part, SEED)}
    out = {name: [(i, p.suffix, p.generation) for i, p in enumerate(sets[name])] for name in SUMMARY_SETS}
    index = BM25Index()
    index.add(range(len(corpus)), [text for _, text in corpus])
    for name in COINCIDENCE_SETS:
        passages = cross[name]
        found = index.top_k([p.generation for p in passages], k=10)
        out[name] = [(i, corpus[c][1], p.generation) for i, (p, top) in enumerate(zip(passages, found)) for c in top]
    out["same_subject"] = same_subject(part)
    return out


def share(numbers: list[int], z: np.ndarray, bias: float) -> float:
    """The share of probes with a pair above -bias."""
    hit = {n: False for n in numbers}
    for n, value in zip(numbers, z):
        hit[n] = hit[n] or value + bias > 0
    return sum(hit.values()) / len(hit)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--unrelated", type=float, default=0.0005, help="the largest share of cross-corpus probes made idea")
    parser.add_argument("--same-subject", type=float, default=0.03, help="the largest share of same-article pairs made idea")
    args = parser.parse_args(argv)
    from sklearn.linear_model import LogisticRegression

    finder = SummaryFinder()
    measured = {}
    for name, pairs in pair_sets("dev").items():
        found = finder.measures([(s, g) for _, s, g in pairs], progress=True)
        rows = [[m.features()[k] for k in MEASURES] if m else [np.nan] * len(MEASURES) for m in found]
        measured[name] = ([n for n, _, _ in pairs], np.array(rows))
    x1 = np.vstack([measured[name][1] for name in SUMMARY_SETS])
    x0 = np.vstack([measured[name][1] for name in (*COINCIDENCE_SETS, "same_subject")])
    x1, x0 = x1[~np.isnan(x1[:, 0])], x0[~np.isnan(x0[:, 0])]
    model = LogisticRegression(class_weight="balanced", max_iter=5000).fit(np.vstack([x1, x0]), np.r_[np.ones(len(x1)), np.zeros(len(x0))])
    weights = model.coef_[0]
    z = {name: np.where(np.isnan(x[:, 0]), -np.inf, np.nan_to_num(x) @ weights) for name, (_, x) in measured.items()}
    numbers = {name: n for name, (n, _) in measured.items()}
    finite = np.concatenate([z[name][np.isfinite(z[name])] for name in COINCIDENCE_SETS])
    bias = -max(finite.max(), 0.0)
    for candidate in np.sort(-finite):
        if any(share(numbers[name], z[name], candidate - 1e-9) > args.unrelated for name in COINCIDENCE_SETS):
            break
        if share(numbers["same_subject"], z["same_subject"], candidate - 1e-9) > args.same_subject:
            break
        bias = candidate - 1e-9
    bias = float(np.floor(bias * 100) / 100)
    print(f"candidate pairs: summaries {len(x1)}, coincidences {len(x0)}")
    print(f"INTERCEPT = {bias:.2f}")
    print("WEIGHTS = {" + ", ".join(f'"{k}": {w:.2f}' for k, w in zip(MEASURES, weights)) + "}")
    for name in measured:
        print(f"{name:14} idea {share(numbers[name], z[name], bias):.2%}")


if __name__ == "__main__":
    main()
