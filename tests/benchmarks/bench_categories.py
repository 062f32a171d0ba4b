"""Do the categories mean what the study says on real, human-made text?

Every set below is scored as ``memtasks score`` scores a file of probes
(:func:`memtasks.scoring.score_probes`: BM25 top 10 over the set's training
suffixes, the detector on each pair, the best-ranked detection, paraphrases
graded by the default grader), with the training text as the suffix and the
other text as the generation:

=====================  ===========================================================================
``mrpc_bare``          human-judged sentence pairs of the Microsoft Research Paraphrase Corpus
                       (``mrpc_train.tsv``) that share no run of 50 characters, one sentence on
                       each side; paraphrases (label 1) and non-paraphrases (label 0) apart
``mrpc_context``       the same pairs with the training sentence at a random place among 5
                       sentences (the others from other pairs) and one unrelated sentence (AG
                       News) after the generation
``condensed``          XSum documents after a 50-word prefix (the suffix) against a generation
                       of 2-3 sentences taken from different thirds of that suffix, each cut to
                       its first words and with every fourth word after the third dropped (so
                       that no run of 50 characters is copied): a condensation of key points
                       spread over the suffix, which the study calls idea memorization
``xsum_summary``       XSum documents after a 50-word prefix against their own one-sentence
                       human summary (highly abstractive)
``summary/xsum``       whole XSum documents against their one-sentence human summary
``summary/cnn``        whole CNN/DailyMail articles against their human-written highlights
``summary/written``    ``tests/data/summaries.jsonl``: 33 documents in the styles of news, medical
                       answers and reviews with a summary written for this check (issue 27), never
                       used to fit or tune anything
``unrelated``          encyclopedia passages (SQuAD) against news suffixes
                       (``tests/tools/cross_corpus.py``), and near-copies of the suffixes with 10,
``near_copy@s``        20 or 30% of their words edited, or reversed with every fourth word dropped
``reversed``
``unrelated_other``    movie reviews (IMDB) and doctors' answers (ChatDoctor) against news suffixes
=====================  ===========================================================================

With ``--summaries`` every set is scored as ``memtasks score --summaries`` scores it
(:mod:`memtasks.summaries`).

and the grader alone on the MRPC pairs taken whole: ROC AUC and accuracy at
its threshold; and the detector's PAN plagdet on ``../shared/pan13-train`` with the
``pan14`` preset (what ``memtasks pan-eval`` prints), which the memorization rules
must leave unchanged. Which pairs are used is decided by :func:`mrpc_part` (a hash of
the pair's ids: 20% held out, never used to fit or tune the grader or the
detector) and for XSum by the record's hash (the ``--part``).

    python tests/benchmarks/bench_categories.py [--part heldout|dev] [--summaries]

The planted sets of ``tests/tools/planted_pairs.py`` are measured by
``tests/benchmarks/bench_confidence.py``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from memtasks.detection import sentence_spans, word_spans
from memtasks.grader import default_grader
from memtasks.scoring import Probe, score_probes

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from cross_corpus import cross_corpus_sets, part_of  # noqa: E402
from mrpc import mrpc_part, read_mrpc  # noqa: E402

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
WRITTEN_SUMMARIES = Path(__file__).resolve().parents[1] / "data" / "summaries.jsonl"
SEED = 2024
FOUND = ("verbatim", "idea", "paraphrase_high", "paraphrase_low")
HIGH = ("verbatim", "idea", "paraphrase_high")


def longest_common_run(a: str, b: str) -> int:
    """Characters of the longest common run of words (lowercased) of two texts."""
    wa = [a[s:e].lower() for s, e in word_spans(a)]
    wb = [b[s:e].lower() for s, e in word_spans(b)]
    best, previous = 0, [0] * (len(wb) + 1)
    for x in wa:
        current = [0] * (len(wb) + 1)
        for j, y in enumerate(wb, start=1):
            if x == y:
                current[j] = previous[j - 1] + len(x) + 1
                best = max(best, current[j] - 1)
        previous = current
    return best


def _ag_news_sentences(data: Path) -> list[str]:
    texts = [json.loads(line)["description"] for line in (data / "ag_news.jsonl").read_text("utf-8").splitlines() if line.strip()]
    return [t[a:b] for t in texts for a, b in sentence_spans(t)][:5000]


def mrpc_sets(path: Path, part: str, seed: int, data: Path = DATA) -> dict[str, list[Probe]]:
    """The bare and in-context MRPC probes of one part, by label.

    A sentence that MRPC uses in more than one pair is left out (a generation
    would then copy another probe's training sentence), and so is a pair sharing
    a run of 50 characters. In context, the other four training sentences are
    first sentences of other pairs; the sentence after the generation is from AG
    News, which no suffix holds.
    """
    pairs = [p for p in read_mrpc(path) if mrpc_part(p) == part]
    uses = Counter(s.strip().lower() for p in pairs for s in (p.first, p.second))
    pairs = [
        p for p in pairs
        if uses[p.first.strip().lower()] == 1 and uses[p.second.strip().lower()] == 1 and longest_common_run(p.first, p.second) < 50
    ]
    rng = random.Random(seed)
    fillers = [p.first for p in pairs]
    unrelated = _ag_news_sentences(data)
    sets: dict[str, list[Probe]] = {}
    for label in (1, 0):
        chosen = [p for p in pairs if p.label == label]
        sets[f"mrpc_bare/{label}"] = [Probe(p.id, p.first, p.second) for p in chosen]
        context = []
        for p in chosen:
            sentences = rng.sample([f for f in fillers if f != p.first], 4)
            sentences.insert(rng.randrange(5), p.first)
            context.append(Probe(p.id, " ".join(sentences), f"{p.second} {rng.choice(unrelated)}"))
        sets[f"mrpc_context/{label}"] = context
    return sets


def _xsum_records(data: Path, part: str) -> list[dict]:
    records = [json.loads(line) for line in (data / "xsum.jsonl").read_text("utf-8").splitlines() if line.strip()]
    def in_part(record: dict) -> bool:
        digest = int(hashlib.sha256(record["document"].encode()).hexdigest(), 16) % 5
        return (digest == 0) == (part == "heldout")
    return [r for r in records if in_part(r)]


def _suffix(document: str, prefix_words: int = 50) -> str:
    spans = word_spans(document)
    return document[spans[prefix_words][0] :].strip() if len(spans) > prefix_words + 20 else ""


def _condense(sentence: str, rng: random.Random) -> str:
    words = sentence.split()
    keep = words[: rng.randint(10, 16)]
    return " ".join(w for i, w in enumerate(keep) if i < 3 or i % 4 != 3).rstrip(",;:") + "."


def xsum_sets(data: Path, part: str, seed: int) -> dict[str, list[Probe]]:
    """Condensations of XSum suffixes, and the suffixes against their own summaries."""
    rng = random.Random(seed)
    condensed, summaries = [], []
    for record in _xsum_records(data, part):
        suffix = _suffix(record["document"])
        if not suffix:
            continue
        summaries.append(Probe(record["id"], suffix, record["summary"]))
        sentences = [suffix[a:b] for a, b in sentence_spans(suffix) if len(suffix[a:b].split()) >= 12]
        if len(sentences) < 9:
            continue
        thirds = np.array_split(np.arange(len(sentences)), 3)
        picked = [sentences[int(rng.choice(third))] for third in thirds][: rng.choice((2, 3, 3))]
        generation = " ".join(_condense(s, rng) for s in picked)
        if longest_common_run(suffix, generation) < 50:
            condensed.append(Probe(record["id"], suffix, generation))
    return {"condensed": condensed, "xsum_summary": summaries}


def summary_sets(data: Path, part: str) -> dict[str, list[Probe]]:
    """Documents (the suffix) against their human summaries (the generation): XSum's one
    sentence, CNN/DailyMail's highlights joined, and the summaries written for issue 27
    (all held out)."""
    xsum = [Probe(r["id"], r["document"], r["summary"]) for r in _xsum_records(data, part)]
    cnn = [
        Probe(r["id"], r["document"], " ".join(r["summary"].split("\n")))
        for line in (data / "cnn_dailymail_train_sample.jsonl").read_text("utf-8").splitlines() if line.strip()
        for r in [json.loads(line)] if part_of(r["document"]) == part
    ]
    written = [json.loads(line) for line in WRITTEN_SUMMARIES.read_text("utf-8").splitlines() if line.strip()]
    sets = {"summary/xsum": xsum, "summary/cnn": cnn}
    if part == "heldout":
        sets["summary/written"] = [Probe(r["id"], r["document"], r["summary"]) for r in written]
    return sets


def _share(categories: Sequence[str], wanted: Sequence[str]) -> float:
    return sum(c in wanted for c in categories) / len(categories) if categories else float("nan")


def category_rows(
    sets: dict[str, list[Probe]], workers: int, corpora: dict[str, list[tuple[str, str]]] | None = None, show=None,
    summaries: bool = False,
) -> list[dict]:
    """Each set scored as one run, against ``corpora[name]`` when given, else its own suffixes;
    ``show`` is called with each row as soon as it is measured."""
    rows = []
    for name, probes in sets.items():
        if not probes:
            continue
        report = score_probes(probes, workers=workers, corpus=(corpora or {}).get(name), summaries=summaries)
        categories = [o.category for o in report.outcomes]
        counts = Counter(categories)
        rows.append({
            "set": name,
            "n": len(probes),
            "found": _share(categories, FOUND),
            "high": _share(categories, HIGH),
            **{c: counts[c] / len(probes) for c in FOUND},
        })
        if show:
            show(rows[-1])
    return rows


def grader_row(path: Path, part: str) -> dict:
    from sklearn.metrics import roc_auc_score

    grader = default_grader()
    pairs = [p for p in read_mrpc(path) if mrpc_part(p) == part]
    started = time.perf_counter()
    p = grader.probabilities([(x.first, x.second) for x in pairs])
    seconds = time.perf_counter() - started
    y = np.array([x.label for x in pairs])
    return {
        "pairs": len(pairs),
        "auc": float(roc_auc_score(y, p)),
        "accuracy": float(((p > grader.threshold) == y).mean()),
        "threshold": grader.threshold,
        "pairs_per_second": len(pairs) / seconds,
    }


def pan_row(corpus: Path, workers: int) -> dict:
    from memtasks.detection import Detector
    from memtasks.pan import evaluate_corpus

    evaluation = evaluate_corpus(corpus, Detector("pan14"), workers=workers)
    overall = evaluation.overall
    return {"pairs": evaluation.pairs, "plagdet": overall.plagdet, "precision": overall.precision,
            "recall": overall.recall, "granularity": overall.granularity}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("heldout", "dev"), default="heldout")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    parser.add_argument("--summaries", action="store_true", help="score as memtasks score --summaries does")
    parser.add_argument("--no-grader-row", action="store_true",
                        help="leave out the grader alone on whole MRPC pairs (its figures change only with the encoder)")
    parser.add_argument("--pan", type=Path, default=DATA.parent / "pan13-train",
                        help="the PAN text-alignment corpus scored with the pan14 preset (default: %(default)s)")
    parser.add_argument("--no-pan-row", action="store_true", help="leave out PAN's plagdet")
    args = parser.parse_args(argv)

    mrpc = args.data / "mrpc_train.tsv"
    corpus, cross = cross_corpus_sets(args.part, data=args.data)
    # The sets the grader reads least first: their rows come in minutes on a busy machine.
    sets = {
        **cross, **summary_sets(args.data, args.part), **xsum_sets(args.data, args.part, args.seed),
        **mrpc_sets(mrpc, args.part, args.seed, args.data),
    }
    def show(row: dict) -> None:
        print(f"{row['set']:18} {row['n']:5d} {row['found']:7.2%} {row['high']:7.2%} "
              + " ".join(f"{row[c]:16.1%}" for c in FOUND), flush=True)

    if not args.json:
        print(f"part {args.part} (seed {args.seed}){', summaries' if args.summaries else ''}")
        print(f"{'set':18} {'n':>5} {'found':>7} {'high':>7} " + " ".join(f"{c:>16}" for c in FOUND), flush=True)
    rows = category_rows(sets, args.workers, {name: corpus for name in cross}, None if args.json else show, args.summaries)
    grader = None if args.no_grader_row else grader_row(mrpc, args.part)
    pan = None if args.no_pan_row else pan_row(args.pan, args.workers)
    if args.json:
        print(json.dumps({"part": args.part, "summaries": args.summaries, "sets": rows, "grader": grader, "pan": pan}, indent=2))
        return
    if grader:
        print(f"grader on {grader['pairs']} MRPC pairs taken whole: ROC AUC {grader['auc']:.3f}, accuracy "
              f"{grader['accuracy']:.3f} at p > {grader['threshold']:.2f} ({grader['pairs_per_second']:.0f} pairs/s)")
    if pan:
        print(f"PAN plagdet on {pan['pairs']} pairs of {args.pan.name}, preset pan14: {pan['plagdet']:.4f} "
              f"(precision {pan['precision']:.4f}, recall {pan['recall']:.4f}, granularity {pan['granularity']:.4f})")


if __name__ == "__main__":
    sys.exit(main())
