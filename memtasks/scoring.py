"""From probes and generations to memorization rates (spec section 8).

For each probe i, the top-k training suffixes for the generation f(p_i) are
retrieved with BM25 and the detector runs on each (suspicious = suffix,
source = generation). A probe is memorized when any candidate yields a
detection and counts once, in the category of its best-ranked such candidate.
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from memtasks.confidence import EVIDENCE
from memtasks.detection.evidence import default_evidence, introduced_names
from memtasks.datafiles import DataFileError, decoded_lines, parse_json_line
from memtasks.detection import NO_ALIGNMENT, Alignment, Detector
from memtasks.grader import Grader, default_grader
from memtasks.interrupts import kept_interrupts
from memtasks.paraphrase import Grade
from memtasks.retrieval import RetrievalSettings
from memtasks.stats import BOOTSTRAP_SEED, INTERVAL_PERCENTILES, N_RESAMPLES, Rate, excess_rates, rates_of
from memtasks.summaries import SENTENCE_ENCODER, SummaryFinder, summary_finder

# A generation is a model's continuation of a prefix; one this long is not, and
# pairing it with a long training suffix would cost time and memory quadratic
# in their sentence counts.
MAX_GENERATION_CHARS = 100_000


class ProbeFileError(DataFileError):
    """A probe file line that cannot be scored; the message names file, line and field."""


@dataclass(frozen=True)
class Probe:
    """One memorization probe: the true training suffix and the model's continuation.

    ``member`` is False for a probe of text the model was not fine-tuned on:
    such probes measure the false-positive floor (:func:`score_with_floor`).
    """

    id: str
    suffix: str
    generation: str
    member: bool = True


@dataclass(frozen=True)
class ProbeOutcome:
    """How one probe was classified, and by which retrieved suffix.

    ``probability`` is what a graded case was graded from (a paraphrase's, a
    condensation's, a summary's) and ``grader`` what gave it (:class:`~memtasks.paraphrase.Grade`);
    None for a case no grader looked at (verbatim, expansion) and before grading.
    ``candidates`` are the ids of the retrieved suffixes ranked up to the matched one
    (all of them when none matched), in rank order.
    """

    probe_id: str
    category: str
    matched_id: str | None = None
    rank: int | None = None
    alignment: Alignment = NO_ALIGNMENT
    probability: float | None = None
    grader: str | None = None
    candidates: tuple[str, ...] = ()


@dataclass
class ScoreReport:
    """Rates over all probes plus what the run cost."""

    n: int
    total: Rate
    categories: dict[str, Rate]
    outcomes: list[ProbeOutcome] = field(repr=False)
    n_pairs: int
    retrieval_seconds: float
    detection_seconds: float
    config: dict
    k: int
    notes: tuple[str, ...] = ()
    retrieval: dict = field(default_factory=dict)

    @property
    def rates(self) -> dict[str, Rate]:
        """"memorization" and every category's rate."""
        return {"memorization": self.total, **self.categories}

    @property
    def pairs_per_second(self) -> float:
        return self.n_pairs / self.detection_seconds if self.detection_seconds > 0 else 0.0

    def to_dict(self) -> dict:
        return {
            "n": self.n,
            "memorization": self.total.to_dict(),
            **{name: rate.to_dict() for name, rate in self.categories.items()},
            "k": self.k,
            "pairs": self.n_pairs,
            "pairs_per_second": self.pairs_per_second,
            "retrieval_seconds": self.retrieval_seconds,
            "detection_seconds": self.detection_seconds,
            "interval": {"resamples": N_RESAMPLES, "percentiles": list(INTERVAL_PERCENTILES), "seed": BOOTSTRAP_SEED},
            "detector": self.config,
            "retrieval": self.retrieval,
            "notes": list(self.notes),
        }


def read_probes(path: str | Path) -> list[Probe]:
    """Read a JSONL file of ``{"id", "suffix", "generation"}`` objects, with an
    optional ``"member": false`` for probes of text the model was not fine-tuned on.

    Raises :class:`ProbeFileError` naming the file, line and field of the first
    line that cannot be scored (invalid or too deeply nested JSON, a missing or
    non-string field, a duplicate id, a generation over ``MAX_GENERATION_CHARS``),
    or the file when it holds no probe. Blank lines carry no record and are
    skipped; a UTF-8 byte order mark at the start is not part of the first line.
    """
    path = Path(path)
    probes: list[Probe] = []
    seen: dict[str, int] = {}
    for number, line in decoded_lines(path, ProbeFileError):
        if not line.strip():
            continue
        record = parse_json_line(line, f"{path}:{number}", ProbeFileError)
        if not isinstance(record, dict):
            raise ProbeFileError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
        for name in ("id", "suffix", "generation"):
            if name not in record:
                raise ProbeFileError(f"{path}:{number}: field '{name}' is missing")
        probe_id = record["id"]
        if isinstance(probe_id, bool) or not isinstance(probe_id, (str, int)):
            raise ProbeFileError(f"{path}:{number}: field 'id' must be a string or an integer")
        probe_id = str(probe_id)
        for name in ("suffix", "generation"):
            if not isinstance(record[name], str):
                raise ProbeFileError(f"{path}:{number}: field '{name}' must be a string, got {type(record[name]).__name__}")
        if len(record["generation"]) > MAX_GENERATION_CHARS:
            raise ProbeFileError(
                f"{path}:{number}: field 'generation' has {len(record['generation']):,} characters, "
                f"more than the {MAX_GENERATION_CHARS:,} a generation may have"
            )
        if probe_id in seen:
            raise ProbeFileError(f"{path}:{number}: field 'id': duplicate id {probe_id!r} (first on line {seen[probe_id]})")
        member = record.get("member", True)
        if not isinstance(member, bool):
            raise ProbeFileError(f"{path}:{number}: field 'member' must be true or false, got {json.dumps(member)}")
        seen[probe_id] = number
        probes.append(Probe(probe_id, record["suffix"], record["generation"], member))
    if not probes:
        raise ProbeFileError(f"{path}: no probes (the file is empty or holds only blank lines)")
    return probes


def _corpus(probes: Sequence[Probe], corpus: Sequence[tuple[str, str]] | None) -> list[tuple[str, str]]:
    if corpus is None:
        return [(p.id, p.suffix) for p in probes]
    corpus = list(corpus)
    if len({doc_id for doc_id, _ in corpus}) != len(corpus):
        raise ValueError("the search corpus has duplicate ids")
    return corpus


# How long loading the compiled kernels may take before the wait is explained: numba compiles
# them on the first run (about 30 s of CPU) and loads them from its cache afterwards.
NOTICE_AFTER_SECONDS = 2.0
COMPILE_NOTICE = "compiling memtasks' retrieval and detection kernels (first run only, about 30 s)..."


@contextmanager
def _notice_if_slow(message: str, after: float = NOTICE_AFTER_SECONDS) -> Iterator[None]:
    """Print ``message`` on stderr if the block is still running after ``after`` seconds."""
    done = threading.Event()

    def notice() -> None:
        if not done.wait(after):
            print(message, file=sys.stderr, flush=True)

    thread = threading.Thread(target=notice, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def _warm_up_retrieval(retrieval: RetrievalSettings) -> None:
    """Compile, or load from numba's cache, the embedded index's kernels on a two-text example."""
    if retrieval.backend == "embedded":
        from memtasks.retrieval import BM25Index

        with kept_interrupts():
            index = BM25Index()
            index.add([0, 1], ["a first text", "another text"])
            index.top_k(["a text"], k=1)


def classify_probes(
    probes: Sequence[Probe],
    detector: Detector,
    k: int = 10,
    workers: int = 1,
    progress: bool = False,
    retrieval: RetrievalSettings | None = None,
    corpus: Sequence[tuple[str, str]] | None = None,
) -> tuple[list[ProbeOutcome], dict[str, float]]:
    """Retrieve candidates and run the detector; one outcome per probe, in order.

    The index holds ``corpus`` ((id, text) pairs, e.g. every suffix of the
    training split) or, by default, the probes' own suffixes; ``retrieval``
    picks the backend (embedded by default). A backend failure raises before
    any outcome exists, so no rate is ever computed on a partial index.
    """
    corpus = _corpus(probes, corpus)
    settings = retrieval or RetrievalSettings()
    generations = [p.generation for p in probes]
    with ExitStack() as stack:
        # The kernels are compiled (first run) or loaded before any progress bar
        # starts, so that bars time the work alone; said on stderr when slow.
        with _notice_if_slow(COMPILE_NOTICE):
            preprocessor = stack.enter_context(detector.preprocessor(workers, expected_texts=2 * len(probes)))
            # The detector's workers preprocess the generations while the index
            # is built and searched, on whatever core retrieval leaves idle
            # (without workers, that is done here and now).
            started = time.perf_counter()
            pending_generations = preprocessor.submit(generations)
            detection_seconds = time.perf_counter() - started
            _warm_up_retrieval(settings)
        started = time.perf_counter()
        with settings.open() as index:
            index.add(range(len(corpus)), [text for _, text in corpus], progress=progress)
            candidates = index.top_k(generations, k=k, workers=workers, progress=progress)
        retrieval_seconds = time.perf_counter() - started
        if len(candidates) != len(probes):
            # No rate from a partial answer: every probe must have its candidates.
            raise RuntimeError(
                f"the {settings.backend} index answered {len(candidates)} candidate lists for {len(probes)} queries"
            )
        started = time.perf_counter()
        # Only retrieved training texts go to the detector, each once.
        used = sorted({c for found in candidates for c in found})
        suffixes = [corpus[c][1] for c in used]
        batches = preprocessor.collect([preprocessor.submit(suffixes), pending_generations], progress)
    slot = {c: i for i, c in enumerate(used)}
    pairs = [(slot[c], len(used) + i) for i, found in enumerate(candidates) for c in found]
    alignments = iter(detector.align_batches(suffixes + generations, batches, pairs, workers=workers, progress=progress))
    detection_seconds += time.perf_counter() - started

    outcomes = []
    for probe, found in zip(probes, candidates, strict=True):
        results = [next(alignments) for _ in found]
        ids = tuple(corpus[c][0] for c in found)
        outcome = ProbeOutcome(probe.id, "none", candidates=ids)
        for rank, (candidate, alignment) in enumerate(zip(found, results), start=1):
            if alignment.detected:
                outcome = ProbeOutcome(probe.id, alignment.category, corpus[candidate][0], rank, alignment, candidates=ids[:rank])
                break
        outcomes.append(outcome)
    timings = {"retrieval_seconds": retrieval_seconds, "detection_seconds": detection_seconds, "pairs": len(pairs)}
    return outcomes, timings


# A condensation (spec 11.5) stays idea when the detector's evidence that the generation
# restates its suffix is above this; fitted on the calibration half of the planted pairs
# and XSum's development part (tests/benchmarks/bench_categories.py --part dev).
CONDENSATION_EVIDENCE = 0.01


def condenses(alignment: Alignment) -> bool:
    """Whether an idea alignment condenses its suffix (its suffix side is the longer) rather
    than expanding it."""
    suffix = sum(d.susp_end - d.susp_start for d in alignment.detections)
    generation = sum(d.src_end - d.src_start for d in alignment.detections)
    return alignment.category == "idea" and suffix > generation


def grade_cases(cases: Sequence[tuple[str, str, Alignment]], grader: Grader, progress: bool = False) -> list[Grade]:
    """The :class:`~memtasks.paraphrase.Grade` of each (suffix, generation, alignment) case,
    paraphrases graded high or low by ``grader`` (spec sections 7 and 11.3) and condensations
    confirmed; ``progress`` shows the grader's bar.

    A condensation is idea when the detector's evidence p_e
    (:mod:`memtasks.detection.evidence`) exceeds ``CONDENSATION_EVIDENCE``
    and the generation names no one the suffix's span lacks, else a paraphrase case graded
    like any other: a sentence of a few words shares some of them with a long stretch of a
    suffix by chance far more often than it sums that stretch up (unrelated text was idea
    0.2% of the time without this check), and a copy with words replaced by names from
    elsewhere is no summary but is still a copy, which the grader must not call low when
    the evidence of copying is decisive (spec 11.9). Expansion, the study's rule, is idea
    unchecked.
    """
    grades = [Grade(alignment.category) for _, _, alignment in cases]
    condensed = [i for i, (_, _, alignment) in enumerate(cases) if condenses(alignment)]
    for i in condensed:
        suffix, generation, alignment = cases[i]
        evidence = default_evidence().score(suffix, generation, alignment)
        confirmed = evidence > CONDENSATION_EVIDENCE and not introduced_names(suffix, generation, alignment.detections)
        grades[i] = Grade("idea", evidence, EVIDENCE) if confirmed else Grade("paraphrase")
    paraphrased = [i for i, g in enumerate(grades) if g.category == "paraphrase"]
    for i, graded in zip(paraphrased, grader.grades([cases[i] for i in paraphrased], progress)):
        grades[i] = graded
    return grades


def grade_paraphrases(
    probes: Sequence[Probe],
    outcomes: list[ProbeOutcome],
    grader: Grader,
    corpus: Sequence[tuple[str, str]] | None = None,
    progress: bool = False,
) -> list[ProbeOutcome]:
    """Outcomes with their categories graded by :func:`grade_cases`."""
    suffix_of = dict(_corpus(probes, corpus))
    detected = [i for i, o in enumerate(outcomes) if o.category != "none"]
    cases = [(suffix_of[outcomes[i].matched_id], probes[i].generation, outcomes[i].alignment) for i in detected]
    graded = list(outcomes)
    for i, (category, probability, name) in zip(detected, grade_cases(cases, grader, progress)):
        graded[i] = replace(outcomes[i], category=category, probability=probability, grader=name)
    return graded


def find_summaries(
    probes: Sequence[Probe],
    outcomes: list[ProbeOutcome],
    finder: SummaryFinder,
    corpus: Sequence[tuple[str, str]] | None = None,
    progress: bool = False,
) -> list[ProbeOutcome]:
    """Outcomes where a generation summarizes a retrieved suffix (:mod:`memtasks.summaries`)
    made idea with that suffix.

    The pairs looked at are those the detector found nothing in, ranked above the matched
    suffix (the best-ranked detection still counts, spec 8), and a matched pair whose
    condensation the detector's evidence did not confirm (:func:`grade_cases`). A pair the
    detector aligned as a paraphrase keeps its category: its passages restate each other.
    """
    suffix_of = dict(_corpus(probes, corpus))
    looked = [
        (i, rank, candidate)
        for i, outcome in enumerate(outcomes) if outcome.category != "idea"
        for rank, candidate in enumerate(outcome.candidates, start=1)
        if outcome.rank is None or rank < outcome.rank or (rank == outcome.rank and outcome.alignment.category == "idea")
    ]
    pairs = [(suffix_of[candidate], probes[i].generation) for i, _, candidate in looked]
    found = finder.measures(pairs, progress)
    summarized = list(outcomes)
    done: set[int] = set()
    for (i, rank, candidate), (suffix, generation), measures in zip(looked, pairs, found):
        if i in done or measures is None or not measures.summary:
            continue
        done.add(i)
        summarized[i] = replace(
            outcomes[i], category="idea", matched_id=candidate, rank=rank, alignment=finder.alignment(suffix, generation, measures),
            probability=measures.probability(), grader=SENTENCE_ENCODER, candidates=outcomes[i].candidates[:rank],
        )
    return summarized


def score_probes(
    probes: Sequence[Probe],
    detector: Detector | None = None,
    k: int = 10,
    workers: int = 1,
    progress: bool = False,
    paraphrase_classifier: Grader | None = None,
    retrieval: RetrievalSettings | None = None,
    corpus: Sequence[tuple[str, str]] | None = None,
    summaries: bool = False,
) -> ScoreReport:
    """Memorization rates of a model's generations against its training suffixes.

    Paraphrases are split into ``paraphrase_high`` and ``paraphrase_low`` (they
    add up to ``paraphrase``) by ``paraphrase_classifier`` when one is given
    (see :func:`memtasks.grader.load_grader`), else by the cross-encoder
    fitted on human paraphrase judgements (:mod:`memtasks.grader`). With
    ``summaries``, summaries the detector cannot seed are also idea
    (:func:`find_summaries`; off by default: a continuation on its prefix's subject
    reads like a summary of what follows, see :mod:`memtasks.summaries`).
    ``retrieval`` and ``corpus`` are those of :func:`classify_probes`.
    """
    if not probes:
        raise ValueError("no probes to score")
    detector = detector or Detector("memorization")
    retrieval = retrieval or RetrievalSettings()
    outcomes, timings = classify_probes(
        probes, detector, k=k, workers=workers, progress=progress, retrieval=retrieval, corpus=corpus
    )
    grader = paraphrase_classifier or default_grader()
    outcomes = grade_paraphrases(probes, outcomes, grader, corpus, progress)
    notes = (f"paraphrase confidence from {grader.name}",)
    if summaries:
        finder = summary_finder(grader)
        outcomes = find_summaries(probes, outcomes, finder, corpus, progress)
        notes += (f"summaries the detector cannot seed found with the {finder.name}",)
    rates = rates_of([o.category for o in outcomes])
    total = rates.pop("memorization")
    return ScoreReport(
        n=len(probes),
        total=total,
        categories=rates,
        outcomes=outcomes,
        n_pairs=int(timings["pairs"]),
        retrieval_seconds=timings["retrieval_seconds"],
        detection_seconds=timings["detection_seconds"],
        config=detector.config.to_dict(),
        k=k,
        notes=notes,
        retrieval={**retrieval.to_dict(), "corpus_size": len(corpus) if corpus is not None else len(probes)},
    )


@dataclass
class FloorReport:
    """Members scored as the study does, non-members the same way, and the excess.

    ``nonmembers`` and ``excess`` are None when no non-member was probed.
    """

    members: ScoreReport
    nonmembers: ScoreReport | None = None
    excess: dict[str, Rate] | None = None


def score_with_floor(
    members: Sequence[Probe],
    nonmembers: Sequence[Probe] = (),
    corpus: Sequence[tuple[str, str]] | None = None,
    nonmember_corpus: Sequence[tuple[str, str]] | None = None,
    **options,
) -> FloorReport:
    """Rates of the member probes, of the non-member probes, and their difference.

    Members are scored by :func:`score_probes` against ``corpus`` (default:
    their suffixes); non-members through the same pipeline against
    ``nonmember_corpus`` (default: their own suffixes), an index built the
    same way. Under a model that saw neither group, drawn alike and as many
    of each, both have the same distribution of outcomes: the non-member rate
    is the floor of coincidences and predictable continuations, and

        excess_c = r_c(members) - r_c(non-members)

    (:func:`memtasks.stats.excess_rates`) is what the model reproduces beyond it. A
    non-member prompt that makes the model write out a member's text is not
    counted against the members: that text is not in the non-members' index.
    ``options`` are those of :func:`score_probes`.
    """
    member_report = score_probes(members, corpus=corpus, **options)
    if not nonmembers:
        return FloorReport(member_report)
    floor = score_probes(nonmembers, corpus=nonmember_corpus, **options)
    excess = excess_rates([o.category for o in member_report.outcomes], [o.category for o in floor.outcomes])
    return FloorReport(member_report, floor, excess)


def sha256_hex(text: str) -> str:
    """SHA-256 of a text's UTF-8 bytes: what redacted outputs keep instead of the text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def case_records(
    probes: Sequence[Probe],
    outcomes: Sequence[ProbeOutcome],
    redact: bool = False,
    corpus: Sequence[tuple[str, str]] | None = None,
) -> list[dict]:
    """One record per memorized probe: matched suffix, category, the probability it was
    graded from and the grader that gave it (null when none graded it), and character spans.

    Spans are offsets into the matched suffix (``suffix_*``) and into the
    probe's generation (``generation_*``). Without ``redact`` the matched text
    is included; with it, a SHA-256 of each span replaces the text. The
    matched suffix comes from ``corpus`` when the run searched one.
    """
    suffix_of = dict(_corpus(probes, corpus))
    records = []
    for probe, outcome in zip(probes, outcomes):
        if not outcome.alignment.detected:
            continue
        suffix = suffix_of[outcome.matched_id]
        spans = []
        for d in outcome.alignment.detections:
            span = {
                "suffix_start": d.susp_start,
                "suffix_end": d.susp_end,
                "generation_start": d.src_start,
                "generation_end": d.src_end,
            }
            suffix_part, generation_part = suffix[d.susp_start : d.susp_end], probe.generation[d.src_start : d.src_end]
            if redact:
                span.update(suffix_sha256=sha256_hex(suffix_part), generation_sha256=sha256_hex(generation_part))
            else:
                span.update(suffix_text=suffix_part, generation_text=generation_part)
            spans.append(span)
        records.append(
            {
                "id": outcome.probe_id, "matched_id": outcome.matched_id, "rank": outcome.rank, "category": outcome.category,
                "probability": outcome.probability, "grader": outcome.grader, "spans": spans,
            }
        )
    return records
