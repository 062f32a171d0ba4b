"""The lm-eval glue: probe datasets, per-sample results and corpus-level metrics.

A memorization task's YAML names these functions with ``!function``:

- ``custom_dataset: !function memtasks.harness.load_probes`` builds the probes
  from the task's ``metadata`` (dataset id or local files, input field, prefix
  length, number of probes, seed); ``--metadata`` on the command line overrides
  any of them without editing the YAML.
- ``process_results: !function memtasks.harness.process_results`` hands every
  metric the same (probe id, suffix, generation) record.
- each metric's ``aggregation`` is one of the functions at the end of this
  module. Retrieval and detection run once per task run, on the first
  aggregation called; every other metric reads that outcome.

lm-eval only bootstraps its built-in aggregations, so the study's interval
(1,000 resamples, 5th-95th percentile) is reported as metrics of its own:
``mem_rate_low`` and ``mem_rate_high``, and so on for each category.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

from memtasks.detection import Detector, default_workers
from memtasks.probes import (
    DEFAULT_MIN_SUFFIX_TOKENS,
    DEFAULT_N_PROBES,
    DEFAULT_PREFIX_TOKENS,
    DEFAULT_SEED,
    MemorizationProbe,
    ProbeSet,
    make_probes,
    split_prefix,
)
from memtasks.paraphrase import HIGH, LOW, ParaphraseClassifier
from memtasks.retrieval import RetrievalSettings
from memtasks.scoring import Probe, Rate, score_with_floor, sha256_hex
from memtasks.tasks import holdout_fraction, is_member, known_tasks, load_records, task_configs_dir

CANDIDATES = 10


def _digest(text: str) -> str:
    return "sha256:" + sha256_hex(text)


def _redact_value(value):
    if isinstance(value, str):
        return _digest(value)
    if isinstance(value, list):
        return [_redact_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _redact_value(v) for k, v in value.items()}
    return value


def redact_samples(path: Path) -> None:
    """Replace every training and generated text of an lm-eval samples file by its SHA-256.

    What stays: ids, metric values (category, matched suffix id, rank), hashes,
    so cases can still be counted and matched across runs.
    """
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        sample = json.loads(line)
        doc = sample.get("doc", {})
        for field in ("prefix", "suffix"):
            if isinstance(doc.get(field), str):
                doc[field] = _digest(doc[field])
        for field in ("target", "arguments", "resps", "filtered_resps"):
            if field in sample:
                sample[field] = _redact_value(sample[field])
        lines.append(json.dumps(sample, ensure_ascii=False))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@contextmanager
def _memtasks_lm_eval(include_defaults: bool = True):
    """lm-eval as ``memtasks eval`` runs it; everything is restored on exit.

    Without ``include_defaults`` lm-eval's own tasks are not indexed, which
    saves the 20 s of CPU its index of 14,683 tasks, groups and tags takes when a run needs
    none of them.

    - Every TaskManager also indexes memtasks' tasks: lm-eval 0.4.13 has no
      plugin hook, and its command line takes a single ``--include_path``
      folder where the task manager takes a list; a user's ``--include_path``
      may list several folders separated by ``os.pathsep``.
    - HFLM gives an encoder-decoder the same generation budget as a
      decoder-only model: lm-eval passes ``max_length = input length +
      max_gen_toks`` to ``generate()``, which for a seq2seq model bounds the
      decoder output alone, so T5 could write hundreds of tokens where GPT-2
      writes ``max_gen_toks``.
    """
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks.manager import TaskManager

    defaults_needed = include_defaults
    original = TaskManager.__init__
    original_generate = HFLM._model_generate

    def generate(self, context, max_length, stop, **generation_kwargs):
        if self.backend == "seq2seq":
            # The decoder output starts with the decoder-start token.
            max_length = max_length - context.shape[1] + 1
        return original_generate(self, context, max_length, stop, **generation_kwargs)

    def init(self, verbosity=None, include_path=None, include_defaults=True, metadata=None):
        paths = [*_split_paths(include_path), str(task_configs_dir())]
        defaults = include_defaults and defaults_needed
        original(self, verbosity=verbosity, include_path=paths, include_defaults=defaults, metadata=metadata)

    TaskManager.__init__ = init
    HFLM._model_generate = generate
    try:
        yield
    finally:
        TaskManager.__init__ = original
        HFLM._model_generate = original_generate


def _split_paths(include_path) -> list[str]:
    if isinstance(include_path, (str, Path)):
        return [p for p in str(include_path).split(os.pathsep) if p]
    return [str(p) for p in include_path or []]


def _option(arguments: Sequence[str], name: str) -> str | None:
    for i, argument in enumerate(arguments):
        if argument == name and i + 1 < len(arguments):
            return arguments[i + 1]
        if argument.startswith(name + "="):
            return argument.split("=", 1)[1]
    return None


def _needs_lm_eval_tasks(arguments: Sequence[str]) -> bool:
    """Whether a run names a task that is not memtasks' or in its ``--include_path``."""
    tasks = _option(arguments, "--tasks")
    if not tasks:
        return True
    known = known_tasks(tuple(_split_paths(_option(arguments, "--include_path"))))
    return any(task not in known for task in tasks.split(","))


def run_lm_eval(arguments: Sequence[str], redact: bool = False) -> int:
    """Run lm-eval's command line with ``arguments``, memtasks' tasks included.

    With ``redact``, the per-sample logs this run writes (``--log_samples``)
    keep hashes instead of training text and generations.
    """
    import sys
    import time

    from lm_eval.__main__ import cli_evaluate

    arguments = list(arguments)
    started = time.time()
    saved, sys.argv = sys.argv, ["lm_eval", *arguments]
    try:
        with _memtasks_lm_eval(include_defaults=_needs_lm_eval_tasks(arguments)):
            cli_evaluate()
    except SystemExit as stop:
        return int(stop.code or 0) if isinstance(stop.code, int) or stop.code is None else 1
    finally:
        sys.argv = saved
        if redact and "--output_path" in arguments:
            output = Path(arguments[arguments.index("--output_path") + 1])
            for samples in output.rglob("samples_*.jsonl"):
                if samples.stat().st_mtime >= started:
                    redact_samples(samples)
    return 0


def load_probes(
    dataset_path: str | None = None,
    dataset_name: str | None = None,
    split: str = "train",
    data_files: str | list[str] | None = None,
    input_field: str = "text",
    id_field: str | None = None,
    prefix_tokens: int = DEFAULT_PREFIX_TOKENS,
    min_suffix_tokens: int = DEFAULT_MIN_SUFFIX_TOKENS,
    n_probes: int | None = DEFAULT_N_PROBES,
    seed: int = DEFAULT_SEED,
    holdout: float | None = None,
    nonmember_split: str | None = None,
    nonmember_data_files: str | list[str] | None = None,
    nonmember_probes: int | None = None,
    paraphrase_model: str | None = None,
    config_source: str | None = None,
    retrieval: str | None = None,
    search_corpus: str = "probes",
    query_stopwords: bool = False,
    es_index: str | None = None,
    **_other_metadata,
):
    """The probes of a task as a ``DatasetDict`` with one split, ``test``.

    ``dataset_path`` (with ``dataset_name`` and ``split``) is a Hugging Face
    dataset id; ``data_files`` (JSON, JSONL, CSV or parquet, by extension)
    replaces it with local files, so a task can be pointed at a local copy of
    its data with ``--metadata '{"data_files": "my.jsonl"}'``. Other metadata keys (the task's
    version, the model's arguments, which lm-eval merges into the metadata)
    are not for this function and are ignored. ``paraphrase_model`` (a
    sequence-pair classifier) travels with every probe to the metrics, which
    then grade paraphrases with it instead of the detector's own evidence.
    ``config_source``, the task's YAML path that lm-eval adds, names the task
    in error messages.

    Members and non-members: each distinct input is probed once. The members
    are the split's inputs outside its held-out slice (``holdout``, see
    :func:`memtasks.tasks.holdout_fraction`; ``memtasks finetune`` leaves that
    slice out); the non-members, which give the false-positive floor, are
    ``nonmember_probes`` inputs (default: as many as there are member probes)
    of ``nonmember_data_files``, else of the split ``nonmember_split`` of
    ``dataset_path``, else of the held-out slice, cut and drawn the same way.
    A non-member input that is also a member input is dropped.

    Retrieval: ``retrieval`` (``embedded`` or ``elasticsearch``; default
    ``$MEMTASKS_RETRIEVAL``, else embedded), ``query_stopwords`` and
    ``es_index`` as in :class:`~memtasks.retrieval.RetrievalSettings`;
    ``search_corpus: split`` indexes the suffix of every member of the split
    long enough to probe, not only the drawn probes' (``probes``, the default).
    An Elasticsearch server is contacted here, before any generation, so that
    a wrong address or credentials fail the run at once.
    """
    import datasets

    where = f"task {Path(config_source).stem}" if config_source and config_source.endswith(".yaml") else "task"
    records, source = load_records(dataset_path, dataset_name, split, data_files, where=where)
    if where != "task":
        source = f"{where}, {source}"
    settings = _retrieval_settings(source, retrieval, search_corpus, query_stopwords, es_index)
    options = {"holdout": holdout, "seed": seed, "nonmember_split": nonmember_split, "nonmember_data_files": nonmember_data_files}
    try:
        fraction = holdout_fraction(options)
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from None
    cut = {"prefix_tokens": prefix_tokens, "min_suffix_tokens": min_suffix_tokens, "seed": seed, "id_field": id_field}
    members = make_probes(
        records, input_field, n=n_probes, source=source, keep=lambda text: is_member(text, options), **cut
    )
    if not members.probes:
        raise ValueError(
            f"{source}: no record of {members.n_records} has {prefix_tokens} + {min_suffix_tokens} words in '{input_field}'"
        )
    nonmembers, nonmember_source = _nonmembers(
        records, source, where, dataset_path, dataset_name, nonmember_split, nonmember_data_files, fraction,
        members, input_field, cut, len(members.probes) if nonmember_probes is None else nonmember_probes,
    )
    probes = members.probes + nonmembers.probes
    count = len(probes)
    rows = {
        "id": [p.id for p in probes],
        "prefix": [p.prefix for p in probes],
        "suffix": [p.suffix for p in probes],
        "member": [True] * len(members.probes) + [False] * len(nonmembers.probes),
        "records": [members.n_records] * count,
        "too_short": [members.n_too_short] * count,
        "duplicates": [members.n_duplicates + nonmembers.n_duplicates] * count,
        "nonmember_source": [nonmember_source] * count,
        "paraphrase_model": [paraphrase_model or ""] * count,
        "retrieval": [_register_retrieval(settings, search_corpus, members, nonmembers)] * count,
    }
    return datasets.DatasetDict({"test": datasets.Dataset.from_dict(rows)})


NONMEMBER_PREFIX = "nonmember/"


def _nonmembers(
    records, source, where, dataset_path, dataset_name, split, data_files, fraction, members, input_field, cut, n
) -> tuple[ProbeSet, str]:
    """The non-member probes of a task and a description of where they come from."""
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0):
        raise ValueError(f"{source}: metadata 'nonmember_probes' must be a whole number at least 0, got {n!r}")
    member_cuts = {(p.prefix, p.suffix) for p in members.eligible}
    if data_files or split:
        other, origin = load_records(dataset_path, dataset_name, split or "", data_files, where=where)
        described = f"{origin} ({'nonmember_data_files' if data_files else 'nonmember_split'})"

        def keep(text: str) -> bool:
            # A passage that is also a member (the same text in both sources) is no control.
            return split_prefix(text, cut["prefix_tokens"]) not in member_cuts

    else:
        other, origin = records, source
        described = f"held-out {fraction:.0%} of {source} (seed {cut['seed']})"
        options = {"holdout": fraction, "seed": cut["seed"]}

        def keep(text: str) -> bool:
            return fraction > 0 and not is_member(text, options)

    chosen = make_probes(other, input_field, n=n, source=origin, keep=keep, **cut)
    renamed = [MemorizationProbe(NONMEMBER_PREFIX + p.id, p.prefix, p.suffix) for p in chosen.probes]
    eligible = [MemorizationProbe(NONMEMBER_PREFIX + p.id, p.prefix, p.suffix) for p in chosen.eligible]
    return replace(chosen, probes=renamed, eligible=eligible), described


# Search corpora of the tasks loaded in this process, by digest: a split can
# be far larger than its probes, so the rows carry only the digest.
_corpora: dict[str, list[tuple[str, str]]] = {}


def _retrieval_settings(source, retrieval, search_corpus, query_stopwords, es_index) -> RetrievalSettings:
    if search_corpus not in ("probes", "split"):
        raise ValueError(f"{source}: metadata 'search_corpus' must be 'probes' or 'split', got {search_corpus!r}")
    try:
        settings = RetrievalSettings.resolve(retrieval, bool(query_stopwords), es_index)
    except ValueError as error:
        raise ValueError(f"{source}: metadata: {error}") from None
    if settings.backend == "elasticsearch":
        from memtasks.retrieval.elastic import ElasticsearchIndex

        ElasticsearchIndex(index=settings.es_index).check_server()
    return settings


def _register_corpus(probes: Sequence[MemorizationProbe]) -> str:
    corpus = [(p.id, p.suffix) for p in probes]
    digest = hashlib.sha256()
    for doc_id, text in corpus:
        digest.update(f"{doc_id}\0{text}\0".encode("utf-8"))
    key = digest.hexdigest()
    _corpora[key] = corpus
    return key


def _register_retrieval(settings: RetrievalSettings, search_corpus: str, members: ProbeSet, nonmembers: ProbeSet) -> str:
    """What the metrics need to retrieve as the task asks, as one JSON string per row."""
    corpora = {"corpus": "", "nonmember_corpus": ""}
    if search_corpus == "split":
        corpora = {"corpus": _register_corpus(members.eligible), "nonmember_corpus": _register_corpus(nonmembers.eligible)}
    return json.dumps({**settings.to_dict(), **corpora}, sort_keys=True)


@dataclass
class ProbeResult:
    """What one probe contributes to every metric of its task.

    Scoring fills in ``category``, ``matched_id`` and ``rank``. lm-eval writes
    these objects into its per-sample logs (``--log_samples``) with ``str``,
    which shows only the outcome and the ids, never the training text.
    """

    id: str
    suffix: str
    generation: str
    records: int
    too_short: int
    member: bool = True
    duplicates: int = 0
    paraphrase_model: str = ""
    retrieval: str = ""
    category: str | None = None
    matched_id: str | None = None
    rank: int | None = None

    def __str__(self) -> str:
        return json.dumps(
            {"id": self.id, "member": self.member, "category": self.category, "matched_id": self.matched_id, "rank": self.rank}
        )


def read_probe_outcomes(path: str | Path, members: bool = True) -> dict[str, str]:
    """Probe id -> category of the member probes (or, with ``members=False``,
    the non-member probes) in an lm-eval per-sample log of a memtasks task.

    Each sample's ``mem_rate`` field holds the JSON string the task logs:
    ``{"id", "member", "category", "matched_id", "rank"}``
    (``ProbeResult.__str__``; logs written before non-members existed have no
    ``member`` and hold members only). Raises ``ValueError`` naming the file,
    line and field when a line does not have it.
    """
    path = Path(path)
    outcomes: dict[str, str] = {}
    text = path.read_text(encoding="utf-8")
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            sample = json.loads(line)
            outcome = json.loads(sample["mem_rate"])
            probe_id, category = str(outcome["id"]), str(outcome["category"])
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(
                f"{path}:{number}: field 'mem_rate' does not hold a probe outcome ({type(error).__name__}: {error})"
            ) from None
        if outcome.get("member", True) is not members:
            continue
        if probe_id in outcomes:
            raise ValueError(f"{path}:{number}: probe id {probe_id!r} appears twice")
        outcomes[probe_id] = category
    return outcomes


# Metric name -> the category it counts ("memorization": any category).
RATE_METRICS = {
    "mem_rate": "memorization",
    "verbatim_rate": "verbatim",
    "idea_rate": "idea",
    "paraphrase_rate": "paraphrase",
    "paraphrase_high_rate": HIGH,
    "paraphrase_low_rate": LOW,
}
# The study's rates over the member probes, the same rates over the non-members
# (the false-positive floor), and their difference.
FAMILIES = ("", "nonmember_", "excess_")
COUNTS = ("probes", "nonmember_probes", "skipped_too_short", "duplicates_folded")
METRICS = tuple(
    f"{family}{name}{bound}" for family in FAMILIES for name in RATE_METRICS for bound in ("", "_low", "_high")
) + COUNTS


def process_results(doc: dict, results: Sequence[str]) -> dict[str, ProbeResult]:
    """The same record for every metric; the metrics are computed over all of them at once."""
    generation = results[0] if results else ""
    record = ProbeResult(
        doc["id"], doc["suffix"], generation or "", doc["records"], doc["too_short"], doc.get("member", True),
        doc.get("duplicates", 0), doc.get("paraphrase_model", ""), doc.get("retrieval", ""),
    )
    return {metric: record for metric in METRICS}


# A task's rates by family ("", "nonmember_", "excess_") and rate name.
Rates = dict[str, dict[str, Rate]]
_scores: dict[str, Rates] = {}


def _score(items: Sequence[ProbeResult]) -> Rates:
    """Retrieval and detection over all probes of a task, computed once per distinct input:
    the study's rates over the members, the non-member floor and the excess
    (:func:`memtasks.scoring.score_with_floor`)."""
    digest = hashlib.sha256((items[0].retrieval if items else "").encode("utf-8"))
    for item in items:
        for part in (item.id, item.suffix, item.generation, "m" if item.member else "n"):
            digest.update(part.encode("utf-8"))
            digest.update(b"\0")
    key = digest.hexdigest()
    if key not in _scores:
        _scores[key] = _score_task(items)
    return _scores[key]


def _score_task(items: Sequence[ProbeResult]) -> Rates:
    members = [item for item in items if item.member]
    nonmembers = [item for item in items if not item.member]
    model = items[0].paraphrase_model if items else ""
    retrieval, corpus, nonmember_corpus = _retrieval_of(items)
    report = score_with_floor(
        [Probe(i.id, i.suffix, i.generation) for i in members],
        [Probe(i.id, i.suffix, i.generation, member=False) for i in nonmembers],
        corpus=corpus,
        nonmember_corpus=nonmember_corpus,
        detector=Detector("memorization"),
        k=CANDIDATES,
        workers=default_workers(),
        paraphrase_classifier=_classifier(model) if model else None,
        retrieval=retrieval,
    )
    rates = {"": report.members.rates}
    outcomes = list(report.members.outcomes)
    if report.nonmembers is not None:
        rates.update({"nonmember_": report.nonmembers.rates, "excess_": report.excess})
        outcomes += report.nonmembers.outcomes
    for item, outcome in zip((*members, *nonmembers), outcomes):
        item.category, item.matched_id, item.rank = outcome.category, outcome.matched_id, outcome.rank
    return rates


def _retrieval_of(
    items: Sequence[ProbeResult],
) -> tuple[RetrievalSettings, list[tuple[str, str]] | None, list[tuple[str, str]] | None]:
    if not items or not items[0].retrieval:
        return RetrievalSettings(), None, None
    options = json.loads(items[0].retrieval)
    keys = options.pop("corpus"), options.pop("nonmember_corpus", "")
    for key in keys:
        if key and key not in _corpora:
            raise ValueError(
                "search_corpus: split: the split's suffixes were loaded in another process; "
                "run the task's metrics where its dataset was loaded"
            )
    corpus, nonmember_corpus = (_corpora[key] if key else None for key in keys)
    return RetrievalSettings(**options), corpus, nonmember_corpus


@lru_cache(maxsize=2)
def _classifier(model: str) -> ParaphraseClassifier:
    return ParaphraseClassifier(model)


def _rate(family: str, category: str, statistic: str) -> Callable[[Sequence[ProbeResult]], float]:
    def aggregate(items: Sequence[ProbeResult]) -> float:
        rates = _score(items).get(family, {})
        if category not in rates:
            # Unscored, not guessed: no non-member was probed (nonmember_probes: 0).
            return float("nan")
        return getattr(rates[category], statistic)

    return aggregate


# One aggregation per metric, named as the task YAML's metric_list names them.
for _family in FAMILIES:
    for _name, _category in RATE_METRICS.items():
        for _bound, _statistic in (("", "value"), ("_low", "low"), ("_high", "high")):
            _function = _rate(_family, _category, _statistic)
            _function.__name__ = _function.__qualname__ = f"{_family}{_name}{_bound}"
            globals()[_function.__name__] = _function


def probes(items: Sequence[ProbeResult]) -> int:
    """Number of member probes scored (the study's n)."""
    return sum(item.member for item in items)


def nonmember_probes(items: Sequence[ProbeResult]) -> int:
    """Number of non-member probes scored for the false-positive floor."""
    return sum(not item.member for item in items)


def skipped_too_short(items: Sequence[ProbeResult]) -> int:
    """Records of the split too short for a prefix and a suffix, so not probed."""
    return items[0].too_short if items else 0


def duplicates_folded(items: Sequence[ProbeResult]) -> int:
    """Records whose input repeats an earlier record's, probed once under the first."""
    return items[0].duplicates if items else 0
