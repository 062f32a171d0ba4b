"""The functions a memorization task's YAML names with ``!function``.

- ``custom_dataset: !function memtasks.harness.hooks.load_probes`` builds the
  probes from the task's ``metadata`` (dataset id or local files, input field,
  prefix length, number of probes, seed, retrieval and detector settings);
  ``--metadata`` on the command line overrides any of them. A key that is
  neither memtasks' nor a model argument lm-eval merged in is an error.
- ``process_results: !function memtasks.harness.hooks.process_results`` hands
  every metric the same per-probe record.
- each metric's ``aggregation`` is the function of this module named after it,
  generated from the metric table (:data:`memtasks.outcomes.METRICS`).
  Retrieval and detection run once per task run, on the first aggregation
  called; the records keep the result.

Under ``accelerate launch`` each process writes the records of its share of
the documents; lm-eval gathers them in the main process, one process's share
after another, and aggregates there. Each row carries its ``position`` among
the task's documents, so the records are scored in the order a single process
has them: the same rates whatever the number of processes. lm-eval gathers the
per-sample logs separately from the metrics, as copies of the records made
before scoring, so the outcomes of the latest scoring of each task
configuration are also kept by probe id and generation (:data:`_OUTCOMES`),
where those copies find theirs when lm-eval writes them.

lm-eval only bootstraps its built-in aggregations, so the study's interval
(1,000 resamples, 5th-95th percentile) is reported as metrics of its own:
``mem_rate_low`` and ``mem_rate_high``, and so on for each rate. A rate that
was not scored (no non-member probed) is ``null``, never ``NaN``: results
files stay strict JSON.
"""

from __future__ import annotations

import difflib
import inspect
import json
import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from memtasks.outcomes import BOUNDS, COUNTS, FAMILIES, METRICS, NONMEMBER_PREFIX, RATE_METRICS, Outcome
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
from memtasks.stats import Rate
from memtasks.tasks import holdout_fraction, is_member, load_records

CANDIDATES = 10
DEFAULT_PRESET = "memorization"


class _MetadataHint(logging.Filter):
    """Drops the warning lm-eval logs for every task with a custom dataset, that custom kwargs go to ``--metadata``.

    It tells a memtasks user nothing (the docs give each task's metadata) and comes with every
    run, under ``memtasks eval``, plain ``lm_eval`` and ``simple_evaluate`` alike; a filter on
    lm-eval's task logger, added when a task YAML first names these hooks, leaves its other lines as they are.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "Custom kwargs can be passed to `--metadata`" not in record.getMessage()


logging.getLogger("lm_eval.api.task").addFilter(_MetadataHint())

# Metadata that memtasks' other commands read from the same task (fine-tuning
# format, quality checks) and lm-eval's own task version.
OTHER_TASK_KEYS = frozenset(
    {"version", "instruction", "output_field", "output_labels", "empty_output", "finetune_input", "eval_split", "quality_metric"}
)
# Model arguments lm-eval merges into every task's metadata, beyond those of its
# `hf` class (read from its signature): from_pretrained's and vLLM's common ones.
MODEL_ARGUMENTS = frozenset(
    {
        "pretrained", "model", "tokenizer", "revision", "dtype", "torch_dtype", "device", "device_map", "trust_remote_code",
        "attn_implementation", "low_cpu_mem_usage", "load_in_8bit", "load_in_4bit", "quantization", "tensor_parallel_size",
        "data_parallel_size", "gpu_memory_utilization", "max_model_len", "swap_space", "enforce_eager",
        "base_url", "num_concurrent", "max_retries", "tokenized_requests", "api_key",
    }
)


def _hf_model_arguments() -> frozenset[str]:
    try:
        from lm_eval.models.huggingface import HFLM
    except ImportError:  # memtasks' hooks without lm-eval's model code: only the listed names
        return frozenset()
    return frozenset(inspect.signature(HFLM.__init__).parameters) - {"self", "kwargs"}


def check_metadata(options: Mapping[str, Any], known: Sequence[str], where: str) -> None:
    """Refuse a metadata key that is neither memtasks' nor a model argument, suggesting the nearest name."""
    ours = set(known) | OTHER_TASK_KEYS
    for key in options:
        if key in ours:
            continue
        close = difflib.get_close_matches(key, sorted(ours), n=1, cutoff=0.75)
        if not close and (key in MODEL_ARGUMENTS or key in _hf_model_arguments()):
            continue
        hint = f" (did you mean '{close[0]}'?)" if close else f"; memtasks' keys: {', '.join(sorted(known))}"
        raise ValueError(f"{where}: unknown metadata key '{key}'{hint}")


@dataclass(frozen=True)
class ProbeSource:
    """Where a task's probes come from and how they are cut: the metadata ``load_probes`` reads."""

    dataset_path: str | None = None
    dataset_name: str | None = None
    split: str = "train"
    data_files: str | list[str] | None = None
    revision: str | None = None
    load_kwargs: dict[str, Any] | None = None
    input_field: str = "text"
    id_field: str | None = None
    prefix_tokens: int = DEFAULT_PREFIX_TOKENS
    min_suffix_tokens: int = DEFAULT_MIN_SUFFIX_TOKENS
    n_probes: int | None = DEFAULT_N_PROBES
    seed: int = DEFAULT_SEED
    holdout: float | None = None
    nonmember_split: str | None = None
    nonmember_data_files: str | list[str] | None = None
    nonmember_probes: int | None = None
    where: str = "task"

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any], where: str = "task") -> ProbeSource:
        """The source a task's metadata describes; its keys of other kinds (scoring, fine-tuning) are left out."""
        return cls(**{key: metadata[key] for key in _SOURCE_KEYS if key in metadata and key != "where"}, where=where)


@dataclass(frozen=True)
class ProbeSets:
    """A task's member and non-member probes, drawn from a :class:`ProbeSource`."""

    members: ProbeSet
    nonmembers: ProbeSet
    nonmember_source: str
    source: str


def draw_probes(spec: ProbeSource) -> ProbeSets:
    """The members (inputs outside the held-out slice) and the non-members of a task, cut and drawn by seed."""
    records, source = load_records(
        spec.dataset_path, spec.dataset_name, spec.split, spec.data_files, where=spec.where,
        revision=spec.revision, load_kwargs=spec.load_kwargs,
    )
    if spec.where != "task":
        source = f"{spec.where}, {source}"
    options = {"holdout": spec.holdout, "seed": spec.seed, "nonmember_split": spec.nonmember_split, "nonmember_data_files": spec.nonmember_data_files}
    try:
        fraction = holdout_fraction(options)
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from None
    # A task's id_field names its Hub dataset's own ids; a local copy without that column is numbered.
    id_field = spec.id_field if spec.id_field in (getattr(records, "column_names", None) or ()) else None
    cut = {"prefix_tokens": spec.prefix_tokens, "min_suffix_tokens": spec.min_suffix_tokens, "seed": spec.seed, "id_field": id_field}
    members = make_probes(records, spec.input_field, n=spec.n_probes, source=source, keep=lambda text: is_member(text, options), **cut)
    if not members.probes:
        raise ValueError(
            f"{source}: no record of {members.n_records} has {spec.prefix_tokens} + {spec.min_suffix_tokens} words in '{spec.input_field}'"
        )
    n = len(members.probes) if spec.nonmember_probes is None else spec.nonmember_probes
    nonmembers, described = _nonmembers(records, source, spec, fraction, members, cut, n)
    return ProbeSets(members, nonmembers, described, source)


def _nonmembers(records, source: str, spec: ProbeSource, fraction: float, members: ProbeSet, cut: dict, n) -> tuple[ProbeSet, str]:
    """The non-member probes of a task and a description of where they come from."""
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0):
        raise ValueError(f"{source}: metadata 'nonmember_probes' must be a whole number at least 0, got {n!r}")
    member_cuts = {(p.prefix, p.suffix) for p in members.eligible}
    if spec.nonmember_data_files or spec.nonmember_split:
        other, origin = load_records(
            spec.dataset_path, spec.dataset_name, spec.nonmember_split or "", spec.nonmember_data_files, where=spec.where,
            revision=spec.revision, load_kwargs=spec.load_kwargs,
        )
        described = f"{origin} ({'nonmember_data_files' if spec.nonmember_data_files else 'nonmember_split'})"

        def keep(text: str) -> bool:
            # A passage that is also a member (the same text in both sources) is no control.
            return split_prefix(text, cut["prefix_tokens"]) not in member_cuts

    else:
        other, origin = records, source
        described = f"held-out {fraction:.0%} of {source} (seed {cut['seed']})"
        options = {"holdout": fraction, "seed": cut["seed"]}

        def keep(text: str) -> bool:
            return fraction > 0 and not is_member(text, options)

    chosen = make_probes(other, spec.input_field, n=n, source=origin, keep=keep, **cut)
    renamed = [MemorizationProbe(NONMEMBER_PREFIX + p.id, p.prefix, p.suffix) for p in chosen.probes]
    eligible = [MemorizationProbe(NONMEMBER_PREFIX + p.id, p.prefix, p.suffix) for p in chosen.eligible]
    return replace(chosen, probes=renamed, eligible=eligible), described


@dataclass(frozen=True)
class ScoringSettings:
    """How a task's generations are scored: retrieval, candidates, detector, paraphrase grading."""

    retrieval: str | None = None
    search_corpus: str = "probes"
    query_stopwords: bool = False
    es_index: str | None = None
    k: int = CANDIDATES
    preset: str = DEFAULT_PRESET
    paraphrase_model: str | None = None
    summaries: bool = False


_SOURCE_KEYS = tuple(inspect.signature(ProbeSource).parameters)
_SCORING_KEYS = tuple(inspect.signature(ScoringSettings).parameters)


def check_probe_metadata(options: Mapping[str, Any], where: str) -> None:
    """Refuse a key of a task's metadata that :func:`load_probes` does not read (:func:`check_metadata`)."""
    check_metadata(options, (*_SOURCE_KEYS, *_SCORING_KEYS), where)


def row_settings(source: ProbeSource, settings: ScoringSettings) -> dict[str, dict[str, Any]]:
    """A task's settings as each probe row carries them in its ``scoring`` field (as JSON) to the aggregations.

    lm-eval hands an aggregation only the per-document records, so the task's
    settings travel in each row (one string, the same for all), and
    ``search_corpus: split`` is redrawn from them; ``memtasks rescore`` writes
    the same into rows logged before they did.
    """
    return {"source": _jsonable(source), "scoring": _jsonable(settings)}


def load_probes(**metadata):
    """The probes of a task as a ``DatasetDict`` with one split, ``test``.

    ``dataset_path`` (with ``dataset_name``, ``split``, ``revision`` and any
    other ``load_dataset`` arguments in ``load_kwargs``) is a Hugging Face
    dataset id; ``data_files`` (JSON, JSONL, CSV or parquet, by extension)
    replaces it with local files, so a task can be pointed at a local copy of
    its data with ``--metadata '{"data_files": "my.jsonl"}'``.

    Members and non-members: each distinct input is probed once. The members
    are the split's inputs outside its held-out slice (``holdout``, see
    :func:`memtasks.tasks.holdout_fraction`; ``memtasks finetune`` leaves that
    slice out); the non-members, which give the false-positive floor, are
    ``nonmember_probes`` inputs (default: as many as there are member probes)
    of ``nonmember_data_files``, else of the split ``nonmember_split`` of
    ``dataset_path``, else of the held-out slice, cut and drawn the same way.
    A non-member input that is also a member input is dropped.

    Scoring: ``retrieval`` (``embedded`` or ``elasticsearch``; default
    ``$MEMTASKS_RETRIEVAL``, else embedded), ``query_stopwords`` and
    ``es_index`` as in :class:`~memtasks.retrieval.RetrievalSettings`;
    ``search_corpus: split`` indexes the suffix of every member of the split
    long enough to probe, not only the drawn probes' (``probes``, the default);
    ``k`` candidates per generation (default 10) and the detector ``preset``
    (default ``memorization``), as ``memtasks score`` takes them;
    ``paraphrase_model`` (a sequence-pair classifier) grades paraphrases instead
    of the detector's own evidence; ``summaries: true`` also counts as idea the
    summaries the detector cannot seed (:mod:`memtasks.summaries`). An Elasticsearch server is contacted here,
    before any generation, so that a wrong address or credentials fail the run at once.
    """
    import datasets

    config_source = metadata.pop("config_source", None)
    where = f"task {Path(config_source).stem}" if config_source and str(config_source).endswith(".yaml") else "task"
    check_probe_metadata(metadata, where)
    spec = ProbeSource.from_metadata(metadata, where)
    settings = ScoringSettings(**{key: metadata[key] for key in _SCORING_KEYS if key in metadata})
    drawn = draw_probes(spec)
    _check_scoring(settings, drawn.source)
    probes = drawn.members.probes + drawn.nonmembers.probes
    count = len(probes)
    scoring = json.dumps(row_settings(spec, settings), sort_keys=True)
    rows = {
        "id": [p.id for p in probes],
        "prefix": [p.prefix for p in probes],
        "suffix": [p.suffix for p in probes],
        "member": [True] * len(drawn.members.probes) + [False] * len(drawn.nonmembers.probes),
        "records": [drawn.members.n_records] * count,
        "too_short": [drawn.members.n_too_short] * count,
        "duplicates": [drawn.members.n_duplicates + drawn.nonmembers.n_duplicates] * count,
        "nonmember_source": [drawn.nonmember_source] * count,
        "scoring": [scoring] * count,
        "position": list(range(count)),
    }
    return datasets.DatasetDict({"test": datasets.Dataset.from_dict(rows)})


def _jsonable(settings) -> dict[str, Any]:
    return {name: getattr(settings, name) for name in inspect.signature(type(settings)).parameters}


def _check_scoring(settings: ScoringSettings, where: str) -> None:
    from memtasks.detection import PRESETS

    if settings.search_corpus not in ("probes", "split"):
        raise ValueError(f"{where}: metadata 'search_corpus' must be 'probes' or 'split', got {settings.search_corpus!r}")
    if isinstance(settings.k, bool) or not isinstance(settings.k, int) or settings.k < 1:
        raise ValueError(f"{where}: metadata 'k' must be a whole number at least 1, got {settings.k!r}")
    if settings.preset not in PRESETS:
        raise ValueError(f"{where}: metadata 'preset' must be one of {', '.join(PRESETS)}, got {settings.preset!r}")
    if not isinstance(settings.summaries, bool):
        raise ValueError(f"{where}: metadata 'summaries' must be true or false, got {settings.summaries!r}")
    retrieval = _retrieval(settings, where)
    if retrieval.backend == "elasticsearch":
        from memtasks.retrieval.elastic import ElasticsearchIndex

        ElasticsearchIndex(index=retrieval.es_index).check_server()


def _retrieval(settings: ScoringSettings, where: str):
    from memtasks.retrieval import RetrievalSettings

    try:
        return RetrievalSettings.resolve(settings.retrieval, bool(settings.query_stopwords), settings.es_index)
    except ValueError as error:
        raise ValueError(f"{where}: metadata: {error}") from None


@dataclass
class ProbeResult:
    """What one probe contributes to every metric of its task.

    Scoring fills in ``outcome``; the first record of a task also keeps the
    task's rates, so the other metrics read them instead of scoring again.
    lm-eval writes these records into its per-sample logs (``--log_samples``)
    with ``str``, which shows only the outcome and the ids, never the training text.
    """

    id: str
    suffix: str
    generation: str
    records: int
    too_short: int
    member: bool = True
    duplicates: int = 0
    scoring: str = ""
    position: int | None = None
    outcome: Outcome | None = None
    rates: dict[str, dict[str, Rate]] | None = None

    def __str__(self) -> str:
        outcome = self.outcome or _OUTCOMES.get(self.scoring, {}).get((self.id, self.generation))
        return (outcome or Outcome(self.id, "unscored", self.member)).to_json()


# The outcomes of the latest scoring of each task configuration (its ``scoring`` row), by probe id and
# generation: for the copies of the records that lm-eval's per-sample logs hold after gathering them
# from several processes. An outcome is a function of the configuration, the probe and its generation,
# so an entry can only be replaced by the same outcome or by a later run's; one entry per configuration.
_OUTCOMES: dict[str, dict[tuple[str, str], Outcome]] = {}


def process_results(doc: dict, results: Sequence[str]) -> dict[str, ProbeResult]:
    """The same record for every metric; the metrics are computed over all of them at once."""
    generation = results[0] if results else ""
    record = ProbeResult(
        doc["id"], doc["suffix"], generation or "", doc["records"], doc["too_short"], doc.get("member", True),
        doc.get("duplicates", 0), doc.get("scoring", ""), doc.get("position"),
    )
    return {metric: record for metric in METRICS}


# A task's rates by family ("", "nonmember_", "excess_") and rate name.
Rates = dict[str, dict[str, Rate]]


def task_rates(items: Sequence[ProbeResult]) -> Rates:
    """Retrieval and detection over all probes of a task, once per task run: the study's
    rates over the members, the non-member floor and the excess
    (:func:`memtasks.scoring.score_with_floor`)."""
    if not items:
        return {}
    if items[0].rates is None:
        # Gathered from several processes, the records come one process's share after another.
        positioned = all(item.position is not None for item in items)
        items[0].rates = _score_task(sorted(items, key=lambda item: item.position) if positioned else items)
    return items[0].rates


def _score_task(items: Sequence[ProbeResult]) -> Rates:
    from memtasks.detection import Detector, default_workers
    from memtasks.scoring import Probe, score_with_floor

    members = [item for item in items if item.member]
    nonmembers = [item for item in items if not item.member]
    spec, settings = _settings_of(items[0])
    corpus = nonmember_corpus = None
    if settings.search_corpus == "split":
        drawn = draw_probes(spec)
        corpus = [(p.id, p.suffix) for p in drawn.members.eligible]
        nonmember_corpus = [(p.id, p.suffix) for p in drawn.nonmembers.eligible]
    report = score_with_floor(
        [Probe(i.id, i.suffix, i.generation) for i in members],
        [Probe(i.id, i.suffix, i.generation, member=False) for i in nonmembers],
        corpus=corpus,
        nonmember_corpus=nonmember_corpus,
        detector=Detector(settings.preset),
        k=settings.k,
        workers=default_workers(),
        # Retrieval, detection and grading of many probes take minutes on a CPU: their bars on a terminal,
        # none in a log (lm-eval's run under nohup, a study's output redirected).
        progress=sys.stderr.isatty(),
        paraphrase_classifier=_classifier(settings.paraphrase_model) if settings.paraphrase_model else None,
        retrieval=_retrieval(settings, spec.where),
        summaries=settings.summaries,
    )
    rates = {"": report.members.rates}
    outcomes = list(report.members.outcomes)
    if report.nonmembers is not None:
        rates.update({"nonmember_": report.nonmembers.rates, "excess_": report.excess})
        outcomes += report.nonmembers.outcomes
    scored = {}
    for item, outcome in zip((*members, *nonmembers), outcomes):
        item.outcome = scored[item.id, item.generation] = Outcome(
            item.id, outcome.category, item.member, outcome.matched_id, outcome.rank, outcome.probability, outcome.grader
        )
    _OUTCOMES[items[0].scoring] = scored
    return rates


def _settings_of(item: ProbeResult) -> tuple[ProbeSource, ScoringSettings]:
    if not item.scoring:
        return ProbeSource(), ScoringSettings()
    data = json.loads(item.scoring)
    return ProbeSource(**data["source"]), ScoringSettings(**data["scoring"])


def _classifier(model: str):
    # Loaded once per task run (the rates are computed once), and let go with it.
    from memtasks.paraphrase import ParaphraseClassifier

    return ParaphraseClassifier(model)


def _rate(family: str, rate_name: str, attribute: str) -> Callable[[Sequence[ProbeResult]], float | None]:
    def aggregate(items: Sequence[ProbeResult]) -> float | None:
        rate = task_rates(items).get(family, {}).get(rate_name)
        # Unscored, not guessed (no non-member probed): null in the results file.
        if rate is None or not rate.scored:
            return None
        return getattr(rate, attribute)

    return aggregate


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


def _aggregations() -> dict[str, Callable]:
    """One aggregation per metric of the table, named as the task YAML's metric_list names it."""
    functions: dict[str, Callable] = {}
    for family in FAMILIES:
        for metric, rate_name in RATE_METRICS.items():
            for bound, attribute in BOUNDS.items():
                function = _rate(family, rate_name, attribute)
                function.__name__ = function.__qualname__ = f"{family}{metric}{bound}"
                function.__doc__ = f"The {attribute} of the {family or 'member '}{rate_name} rate of a task."
                functions[function.__name__] = function
    return {**functions, **{name: globals()[name] for name in COUNTS}}


AGGREGATIONS = _aggregations()
globals().update(AGGREGATIONS)
