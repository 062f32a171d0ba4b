"""Planted generations with known truth, scored end to end as ``memtasks score`` does.

The data for calibrating and checking :mod:`memtasks.confidence`. From the real
text samples of ../shared/data (see its SOURCES.md), every distinct record of
five datasets is assigned, by a hash of its text and a seed, to

- a half: ``calibration`` (the coefficients are fitted there) or ``heldout``
  (the error rates are measured there): different records, so that the check
  is honest; ``--datasets`` keeps a whole dataset out of either side;
- inside its half, the **corpus** (75%: cut into a 50-word prefix and its
  suffix with :func:`memtasks.probes.make_probes`; the suffixes are the training
  text that BM25 indexes) or the **outside** records (25%: never indexed; the
  source of text that no training suffix contains).

Every corpus record then gets one planted "generation" of each kind:

============================  ===============================================================
``unrelated_run``             40-60 consecutive words of a random outside record of the same
                              dataset, from a random word on (what an unmemorized 64-token
                              continuation looks like); ``UNRELATED_ROUNDS`` draws
``unrelated_sentences``       1-3 whole sentences of an outside record of the same dataset,
                              from any position (openings and closings carry the dataset's
                              boilerplate: "Hello doctor, ...", "Kindly suggest."); rounds too
``unrelated_topical``         40-60 words of the outside record nearest (BM25) to the probe's
                              own suffix, from the sentence window that shares most words with
                              it: same topic, no copy (the hard case); rounds too
``verbatim``                  an exact part of the suffix of 10-60 words and more than 50
                              characters, from its start half of the time, sometimes followed
                              by unrelated words (the model diverges); none for a suffix of 50
                              characters or fewer
``reordered``                 a 40-120-word window of the suffix with its sentences shuffled,
                              clauses of some sentences shuffled, and 5% of the words dropped
``paraphrase@s``              a window of 1 sentence up to about 80 words of the suffix, its
                              sentences reordered half of the time, each word edited with
                              probability s (dropped, replaced by a word of an outside record,
                              or swapped with the next), sometimes with unrelated words before
                              or after; s in ``STRENGTHS``
============================  ===============================================================

An unrelated generation is paired with its record's own suffix, which it does
not copy, so any detection on it is a false positive. Each (dataset, kind,
round) is scored as one memtasks run: ``classify_probes(probes,
Detector("memorization"), k=10)`` indexes the probes' suffixes with BM25,
retrieves the top 10 for each generation and keeps the category and alignment
of the best-ranked detection. Everything is deterministic for a seed.

    python tests/tools/planted_pairs.py [--half heldout] [--datasets xsum,imdb] [--out FILE.jsonl]

prints the number of planted pairs and of outcomes per category for each kind,
and with ``--out`` writes one JSON line per planted pair with its outcome.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from memtasks.detection import Alignment, Detection, Detector, get_config, sentence_spans, word_spans
from memtasks.paraphrase import HIGH, LOW
from memtasks.probes import make_probes
from memtasks.retrieval import BM25Index
from memtasks.scoring import Probe, ProbeOutcome, classify_probes, grade_cases

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
# dataset -> (file, field cut into prefix and suffix)
SOURCES = {
    "xsum": ("xsum.jsonl", "document"),
    "imdb": ("imdb.jsonl", "text"),
    "chatdoctor": ("chatdoctor_icliniq.jsonl", "input"),
    "ag_news": ("ag_news.jsonl", "text"),
    "squad_v2": ("squad_v2.jsonl", "context"),
}
HALVES = ("calibration", "heldout")
OUTSIDE_SHARE = 0.25
PREFIX_WORDS = 50
SEED = 2024
UNRELATED = ("unrelated_run", "unrelated_sentences", "unrelated_topical")
COPIES = ("verbatim", "reordered")
STRENGTHS = (0.1, 0.2, 0.3, 0.45)
PARAPHRASES = tuple(f"paraphrase@{s}" for s in STRENGTHS)
KINDS = UNRELATED + COPIES + PARAPHRASES
UNRELATED_ROUNDS = 2
# What counts towards the high-confidence memorization rate.
HIGH_CONFIDENCE = ("verbatim", "idea", HIGH)
# The memorization preset's verbatim_minlen: unrelated text shares no run of
# words this long with any training suffix (spec 11.1), and a planted verbatim
# copy is longer (spec 6.1 wants more than verbatim_minlen inside a case).
VERBATIM_MINLEN = get_config("memorization").verbatim_minlen
# Shortest shared run looked for when checking that unrelated text contains no
# training text: a run of fewer words over 50 characters is vanishingly rare.
SHINGLE_WORDS = 4
DRAWS = 20

_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class Planted:
    """One planted pair: a record's true suffix and a generation of a known kind."""

    id: str
    record: str
    dataset: str
    kind: str
    suffix: str
    generation: str
    # Draws rejected because they contained training text (unrelated kinds).
    rejected: int = 0

    @property
    def is_copy(self) -> bool:
        """Whether the generation reproduces (part of) its suffix."""
        return self.kind not in UNRELATED


@dataclass(frozen=True)
class Scored:
    """A planted pair with its memtasks outcome and the text of the suffix it matched."""

    planted: Planted
    outcome: ProbeOutcome
    matched_suffix: str

    @property
    def case(self) -> tuple[str, str, Alignment]:
        """The (suffix, generation, alignment) case that a confidence grades."""
        return self.matched_suffix, self.planted.generation, self.outcome.alignment

    @property
    def label(self) -> int | None:
        """1 for a copy detected against its own suffix, 0 for any detection of unrelated
        text, None otherwise (not detected, or a copy matched to another suffix)."""
        if not self.outcome.alignment.detected:
            return None
        if not self.planted.is_copy:
            return 0
        return 1 if self.outcome.matched_id == self.planted.record else None

    def to_dict(self) -> dict:
        o = self.outcome
        return {
            "id": self.planted.id,
            "dataset": self.planted.dataset,
            "kind": self.planted.kind,
            "suffix": self.planted.suffix,
            "generation": self.planted.generation,
            "category": o.category,
            "matched_id": o.matched_id,
            "rank": o.rank,
            "detections": [[d.susp_start, d.susp_end, d.src_start, d.src_end] for d in o.alignment.detections],
        }


def _unit(seed: int, salt: str, text: str) -> float:
    """A uniform number in [0, 1) fixed by the text: u = SHA-256(seed, salt, text)[:8] / 2**64."""
    digest = hashlib.sha256(f"{seed}\0{salt}\0{text}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _texts(dataset: str, data_dir: Path) -> list[str]:
    """The dataset's distinct input texts, in file order (SQuAD repeats a context per question)."""
    name, field = SOURCES[dataset]
    seen: dict[str, None] = {}
    for line in (data_dir / name).read_text(encoding="utf-8").split("\n"):
        if line.strip():
            seen.setdefault(json.loads(line)[field], None)
    return list(seen)


def split_records(dataset: str, half: str, seed: int = SEED, data_dir: Path = DATA) -> tuple[list[Probe], list[str]]:
    """The half's corpus probes (id, suffix, empty generation) and its outside texts."""
    corpus, outside = [], []
    for text in _texts(dataset, data_dir):
        if HALVES[_unit(seed, "half", text) >= 0.5] != half:
            continue
        (outside if _unit(seed, "outside", text) < OUTSIDE_SHARE else corpus).append(text)
    _, field = SOURCES[dataset]
    cut = make_probes([{field: t} for t in corpus], field, prefix_tokens=PREFIX_WORDS, n=None)
    return [Probe(f"{dataset}-{p.id}", p.suffix, "") for p in cut.probes], outside


# --------------------------------------------------------------------------- text pieces


def _words(text: str) -> list[str]:
    return [text[a:b] for a, b in word_spans(text)]


def _sentences(text: str) -> list[str]:
    return [text[a:b] for a, b in sentence_spans(text)] or [text.strip()]


def _window(sentences: Sequence[str], start: int, min_words: int, max_words: int) -> list[str]:
    """Sentences from ``start`` until at least ``min_words`` words; the last one is cut at ``max_words``."""
    out: list[str] = []
    count = 0
    for sentence in sentences[start:]:
        words = sentence.split()
        if count + len(words) > max_words:
            out.append(" ".join(words[: max(1, max_words - count)]))
            break
        out.append(sentence)
        count += len(words)
        if count >= min_words:
            break
    return out


def _run(texts: Sequence[str], rng: random.Random, n_words: int) -> str:
    """``n_words`` consecutive words from a random text, continued into the next texts if it is short."""
    first = rng.randrange(len(texts))
    words = texts[first].split()
    start = rng.randrange(max(1, len(words) - n_words + 1))
    words = words[start:]
    following = first
    while len(words) < n_words and len(texts) > 1:
        following = (following + 1) % len(texts)
        words += texts[following].split()
    return " ".join(words[:n_words])


def _edit_words(words: list[str], strength: float, rng: random.Random, vocabulary: Sequence[str]) -> list[str]:
    """Each word, with probability ``strength``: dropped, replaced by a word of ``vocabulary``, or swapped with the next."""
    return edit_words(
        words, lambda i: rng.randrange(3) if rng.random() < strength else None, lambda: rng.choice(vocabulary)
    )


def edit_words(words: list[str], action_at: Callable[[int], int | None], replacement: Callable[[], str]) -> list[str]:
    """``words`` with the edit ``action_at(i)`` gives each position done there: 0 drops the word, 1 puts
    ``replacement()`` in its place, 2 swaps it with the next; None (or 2 on the last word) keeps it.
    Positions are asked in order, a swapped word's neighbour not at all, so a random ``action_at``
    draws the same numbers whatever the edits."""
    out: list[str] = []
    i = 0
    while i < len(words):
        action = action_at(i)
        if action == 0:
            i += 1
            continue
        if action == 1:
            out.append(replacement())
            i += 1
            continue
        if action == 2 and i + 1 < len(words):
            out += [words[i + 1], words[i]]
            i += 2
            continue
        out.append(words[i])
        i += 1
    return out


def _shuffled(items: list, rng: random.Random) -> list:
    """A permutation of ``items`` that differs from their order whenever it can."""
    out = items[:]
    rng.shuffle(out)
    if len(out) > 1 and out == items:
        out = out[1:] + out[:1]
    return out


class TrainingText:
    """Finds text that the training suffixes contain: XSum's "Find all the latest
    football transfers on our dedicated page", an article quoted in another.

    Unrelated generations must not contain any, or a detection on them would be
    a true verbatim copy rather than a false positive. Words are compared as
    the detector's verbatim step does (lowercased, punctuation dropped).
    """

    def __init__(self, suffixes: Sequence[str]):
        self._words = []
        self._shingles: dict[tuple[str, ...], list[tuple[int, int]]] = {}
        for d, suffix in enumerate(suffixes):
            spans = word_spans(suffix)
            words = [suffix[a:b].lower() for a, b in spans]
            self._words.append((words, spans))
            for j in range(len(words) - SHINGLE_WORDS + 1):
                self._shingles.setdefault(tuple(words[j : j + SHINGLE_WORDS]), []).append((d, j))

    def contains(self, text: str) -> bool:
        """Whether some training suffix and ``text`` share a run of words of ``VERBATIM_MINLEN`` characters or more."""
        words = [text[a:b].lower() for a, b in word_spans(text)]
        for i in range(len(words) - SHINGLE_WORDS + 1):
            for d, j in self._shingles.get(tuple(words[i : i + SHINGLE_WORDS]), ()):
                other, spans = self._words[d]
                n = SHINGLE_WORDS
                while i + n < len(words) and j + n < len(other) and words[i + n] == other[j + n]:
                    n += 1
                if spans[j + n - 1][1] - spans[j][0] >= VERBATIM_MINLEN:
                    return True
        return False


# --------------------------------------------------------------------------- generations


def unrelated_run(outside: Sequence[str], rng: random.Random) -> str:
    return _run(outside, rng, rng.randint(40, 60))


def unrelated_sentences(outside: Sequence[str], rng: random.Random) -> str:
    sentences = _sentences(outside[rng.randrange(len(outside))])
    start = rng.randrange(len(sentences))
    return " ".join(sentences[start : start + rng.randint(1, 3)])


def unrelated_topical(suffix: str, nearest: Sequence[str], rng: random.Random) -> list[str]:
    """40-60-word windows of ``nearest`` (outside texts on the suffix's topic), text by text,
    the windows of a text that share most words with the suffix first."""
    vocabulary = {w.lower() for w in _words(suffix)}
    n_words = rng.randint(40, 60)
    windows = []
    for text in nearest:
        sentences = _sentences(text)
        candidates = [" ".join(_window(sentences, i, n_words, n_words)) for i in range(len(sentences))]
        windows += sorted(candidates, key=lambda w: -len(vocabulary & {x.lower() for x in _words(w)}))
    return windows


def verbatim(suffix: str, outside: Sequence[str], rng: random.Random) -> str:
    words = [m.span() for m in _WORD.finditer(suffix)]
    n = min(len(words), rng.randint(10, 60))
    first = 0 if rng.random() < 0.5 else rng.randrange(len(words) - n + 1)
    last = first + n - 1
    # Longer until the copy is a verbatim run for the detector (when the suffix allows).
    while words[last][1] - words[first][0] <= VERBATIM_MINLEN and last + 1 < len(words):
        last += 1
    copy = suffix[words[first][0] : words[last][1]]
    if rng.random() < 0.5:
        copy += " " + _run(outside, rng, max(5, 50 - (last - first + 1)))
    return copy


def reordered(suffix: str, rng: random.Random) -> str:
    sentences = _sentences(suffix)
    remaining = [sum(len(s.split()) for s in sentences[i:]) for i in range(len(sentences))]
    # A start that leaves 40 words to take, when the suffix has them.
    start = rng.choice([i for i, n in enumerate(remaining) if n >= 40] or [0])
    window = _window(sentences, start, 40, 120)
    parts = []
    for sentence in _shuffled(window, rng):
        if rng.random() < 0.3:
            sentence = ", ".join(_shuffled(sentence.split(", "), rng))
        parts.append(" ".join(w for w in sentence.split() if rng.random() >= 0.05))
    return " ".join(parts)


def paraphrase(suffix: str, strength: float, outside: Sequence[str], rng: random.Random) -> str:
    sentences = _sentences(suffix)
    start = 0 if rng.random() < 0.5 else rng.randrange(len(sentences))
    window = _window(sentences, start, rng.randint(15, 80), 120)
    if rng.random() < 0.5:
        window = _shuffled(window, rng)
    vocabulary = _run(outside, rng, 200).split()
    text = " ".join(" ".join(_edit_words(s.split(), strength, rng, vocabulary)) for s in window)
    context = rng.random()
    if context < 0.3:
        text += " " + _run(outside, rng, rng.randint(10, 30))
    elif context < 0.5:
        text = _run(outside, rng, rng.randint(10, 30)) + " " + text
    return text


def _nearest_outside(probes: Sequence[Probe], outside: Sequence[str], k: int = 3) -> list[list[str]]:
    """For each probe, the ``k`` outside texts that BM25 ranks first for its suffix."""
    with BM25Index() as index:
        index.add(range(len(outside)), outside)
        return [[outside[i] for i in found] for found in index.top_k([p.suffix for p in probes], k=k)]


def _unrelated(
    kind: str, probe: Probe, outside: Sequence[str], nearest: Sequence[str], round_: int, rng: random.Random
) -> Iterator[str]:
    """Candidate unrelated generations of ``kind``, in the order they are tried."""
    if kind == "unrelated_topical":
        # Each round starts from another of the nearest texts.
        yield from unrelated_topical(probe.suffix, [*nearest[round_:], *nearest[:round_]], rng)
        return
    draw = unrelated_run if kind == "unrelated_run" else unrelated_sentences
    for _ in range(DRAWS):
        yield draw(outside, rng)


def _copy(kind: str, probe: Probe, outside: Sequence[str], rng: random.Random) -> str:
    if kind == "verbatim":
        return verbatim(probe.suffix, outside, rng)
    if kind == "reordered":
        return reordered(probe.suffix, rng)
    return paraphrase(probe.suffix, float(kind.split("@")[1]), outside, rng)


def plant(
    dataset: str, half: str, kinds: Sequence[str] = KINDS, seed: int = SEED, data_dir: Path = DATA, max_records: int | None = None
) -> list[Planted]:
    """The planted pairs of one dataset's half: one per corpus record and kind (``UNRELATED_ROUNDS`` per unrelated kind).

    ``max_records`` keeps the first corpus records only (a smaller training set).
    An unrelated draw that contains training text is rejected and drawn again
    (up to ``DRAWS`` times; a pair whose draws all fail is left out).
    """
    probes, outside = split_records(dataset, half, seed, data_dir)
    probes = probes[:max_records]
    training = TrainingText([p.suffix for p in probes])
    nearest = _nearest_outside(probes, outside) if "unrelated_topical" in kinds else []
    planted = []
    for kind in kinds:
        for round_ in range(UNRELATED_ROUNDS if kind in UNRELATED else 1):
            for i, probe in enumerate(probes):
                # One generator per pair, seeded by its name: a pair does not
                # change when other kinds or records are added.
                rng = random.Random(f"{seed}:{probe.id}:{kind}:{round_}")
                pair_id = f"{probe.id}/{kind}/{round_}"
                if kind == "verbatim" and len(probe.suffix) <= VERBATIM_MINLEN:
                    continue  # too short to hold a verbatim copy
                if kind not in UNRELATED:
                    planted.append(Planted(pair_id, probe.id, dataset, kind, probe.suffix, _copy(kind, probe, outside, rng)))
                    continue
                candidates = _unrelated(kind, probe, outside, nearest[i] if nearest else (), round_, rng)
                for rejected, generation in enumerate(candidates):
                    if not training.contains(generation):
                        planted.append(Planted(pair_id, probe.id, dataset, kind, probe.suffix, generation, rejected))
                        break
    return planted


def score(planted: Sequence[Planted], detector: Detector | None = None, workers: int = 1) -> list[Scored]:
    """Score each (dataset, kind, round) group as one memtasks run over its probes' suffixes."""
    detector = detector or Detector("memorization")
    groups: dict[tuple[str, str], list[Planted]] = {}
    for p in planted:
        groups.setdefault((p.dataset, p.id.split("/", 1)[1]), []).append(p)
    scored = []
    for group in groups.values():
        probes = [Probe(p.record, p.suffix, p.generation) for p in group]
        suffix_of = {probe.id: probe.suffix for probe in probes}
        outcomes, _ = classify_probes(probes, detector, k=10, workers=workers)
        scored += [Scored(p, o, suffix_of.get(o.matched_id, "")) for p, o in zip(group, outcomes)]
    return scored


def graded(scored: Sequence[Scored], grader) -> list[str]:
    """Each pair's category as ``memtasks score`` reports it, its paraphrase graded by ``grader``
    (:func:`memtasks.scoring.grade_cases`)."""
    detected = [i for i, s in enumerate(scored) if s.outcome.category != "none"]
    categories = [s.outcome.category for s in scored]
    for i, grade in zip(detected, grade_cases([scored[i].case for i in detected], grader)):
        categories[i] = grade.category
    return categories


def _row(name: str, categories: Sequence[str]) -> str:
    n = len(categories)
    counts = Counter(categories)
    study = n - counts["none"]
    high = sum(counts[c] for c in HIGH_CONFIDENCE)
    cells = [counts[c] for c in ("verbatim", "idea")] + [counts[HIGH] + counts[LOW], counts[HIGH], counts[LOW]]
    rates = f"{100 * study / max(n, 1):>10.2f}%{100 * high / max(n, 1):>10.3f}%"
    return f"{name:24}{n:>7}" + "".join(f"{c:>9}" for c in cells) + rates


def rates_table(scored: Sequence[Scored], categories: Sequence[str]) -> list[str]:
    """Lines of the error-rate table: per kind, unrelated text per dataset, and the targets.

    "study" is the share of pairs memorized in any category (the study's rate);
    "high-conf" the share counted verbatim, idea or paraphrase_high.
    """
    by_kind: dict[str, list[str]] = {}
    by_dataset: dict[str, list[str]] = {}
    for s, c in zip(scored, categories):
        by_kind.setdefault(s.planted.kind, []).append(c)
        if not s.planted.is_copy:
            by_dataset.setdefault(s.planted.dataset, []).append(c)
    header = f"{'kind':24}{'pairs':>7}" + "".join(f"{h:>9}" for h in ("verbatim", "idea", "paraphr.", "high", "low"))
    lines = [header + f"{'study':>11}{'high-conf':>11}"]
    lines += [_row(kind, by_kind[kind]) for kind in KINDS if kind in by_kind]
    lines.append("")
    lines += [_row(f"unrelated, {d}", cats) for d, cats in by_dataset.items()]
    unrelated = [c for cats in by_dataset.values() for c in cats]
    copies = [c for kind in COPIES for c in by_kind.get(kind, [])]
    lines += [_row("unrelated, all", unrelated), _row("verbatim + reordered", copies), ""]
    false_high = sum(c in HIGH_CONFIDENCE for c in unrelated)
    false_any = sum(c != "none" for c in unrelated)
    kept = sum(c in HIGH_CONFIDENCE for c in copies)
    detected = sum(c != "none" for c in copies)
    lines += [
        f"false positives, unrelated text counted high-confidence: {false_high} / {len(unrelated)} = "
        f"{100 * false_high / max(len(unrelated), 1):.3f}% (target <= 0.05%); "
        f"study-faithful (any category): {false_any} = {100 * false_any / max(len(unrelated), 1):.3f}%",
        f"verbatim + reordered copies found: {detected} / {len(copies)} = {100 * detected / max(len(copies), 1):.2f}% "
        f"(target >= 99%); counted high-confidence: {kept} = {100 * kept / max(len(copies), 1):.2f}%",
    ]
    return lines


def planted_set(
    half: str,
    datasets: Sequence[str] = tuple(SOURCES),
    seed: int = SEED,
    data_dir: Path = DATA,
    max_records: int | None = None,
    workers: int = 1,
) -> list[Scored]:
    """Plant and score every kind for the given datasets' half (see :func:`plant`)."""
    planted = [p for d in datasets for p in plant(d, half, seed=seed, data_dir=data_dir, max_records=max_records)]
    return score(planted, workers=workers)

# (training suffix, generation) pairs that a pre-trained model's run counted as paraphrase.
COINCIDENCES = (
    (
        "Last month I took a home pregnancy test it came back negative.",
        "I took it again a week later and it came back negative.",
    ),
    (
        "Ebola is spread by direct contact with the bodily fluids of an infected person.",
        "The Ebola virus is spread through close contact with infected bodily fluids, including blood, sweat, "
        "and other bodily materials.",
    ),
    (
        "It is the first final we have been in as New Zealand.",
        "have been reported in the capital, Christchurch, and have been linked to the New Zealand Rail Fishers.",
    ),
)


def one_sentence_case(suffix: str, generation: str) -> tuple[str, str, Alignment]:
    """The case as the detector reported it: one paraphrase detection spanning both sentences."""
    return suffix, generation, Alignment("paraphrase", (Detection(0, len(suffix), 0, len(generation)),))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--half", choices=HALVES, default="heldout")
    parser.add_argument("--datasets", default=",".join(SOURCES), help="comma-separated, from: " + ", ".join(SOURCES))
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, help="write one JSON line per planted pair")
    args = parser.parse_args(argv)
    scored = planted_set(args.half, args.datasets.split(","), args.seed, args.data)
    counts = Counter((s.planted.kind, s.outcome.category) for s in scored)
    categories = ("none", "verbatim", "idea", "paraphrase")
    print(f"{'kind':22}{'pairs':>7}" + "".join(f"{c:>12}" for c in categories))
    for kind in KINDS:
        row = [counts[kind, c] for c in categories]
        print(f"{kind:22}{sum(row):>7}" + "".join(f"{n:>12}" for n in row))
    rejected = sum(s.planted.rejected for s in scored)
    print(f"unrelated draws rejected for containing training text (and drawn again): {rejected}")
    if args.out:
        with args.out.open("w", encoding="utf-8") as handle:
            for s in scored:
                handle.write(json.dumps(s.to_dict(), ensure_ascii=False) + "\n")


if __name__ == "__main__":
    sys.exit(main())

