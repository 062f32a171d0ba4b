"""What a memorization run records per probe and which metrics it reports (standard library only).

Everything that reads results (the report, the study's comparison) needs
these names and nothing of the scoring pipeline, so this module imports no
detector, retriever or model code.

- Categories: a probe's outcome is ``none`` or one of :data:`CATEGORIES`; a
  paraphrase may be graded :data:`HIGH` or :data:`LOW` (it is still a
  paraphrase, see :func:`in_category`). :data:`RATE_NAMES` are the rates a run
  reports: ``memorization`` (any category) and each category.
- Per-probe outcome: an :class:`Outcome`, written into lm-eval's per-sample
  logs (``--log_samples``) as the JSON string :meth:`Outcome.to_json` renders,
  in the field :data:`LOG_FIELD`; :func:`read_outcomes` and
  :func:`read_probe_outcomes` read it back.
- The metric table: :data:`RATE_METRICS` (metric name -> category), the
  :data:`FAMILIES` of rates (members, non-members, excess), each with a value
  and its interval bounds (:data:`BOUNDS`), and the :data:`COUNTS`;
  :data:`METRICS` lists every metric name a memtasks task reports.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

NONE = "none"
MEMORIZATION = "memorization"
CATEGORIES = ("verbatim", "idea", "paraphrase")
# A paraphrase graded by confidence (spec sections 7 and 11.3).
HIGH, LOW = "paraphrase_high", "paraphrase_low"
# Every rate a run reports: any category, each category, and the two grades of paraphrase.
RATE_NAMES = (MEMORIZATION, *CATEGORIES, HIGH, LOW)
# Memorization without the low-confidence paraphrases, where one-sentence coincidences land:
# a rate the before/after comparisons compute from per-probe outcomes, not one a run reports.
HIGH_CONFIDENCE = "high_confidence"


def in_category(observed: str, name: str) -> bool:
    """Whether a probe whose outcome is ``observed`` counts towards the rate ``name``.

    ``memorization`` counts every outcome but ``none``; a graded paraphrase
    (``paraphrase_high``/``paraphrase_low``) is a paraphrase too;
    ``high_confidence`` counts verbatim, idea and ``paraphrase_high``.
    """
    if name == MEMORIZATION:
        return observed != NONE
    if name == HIGH_CONFIDENCE:
        return observed in ("verbatim", "idea", HIGH)
    return observed == name or (name == "paraphrase" and observed in (HIGH, LOW))


# Metric name -> the rate it reports (a name of RATE_NAMES).
RATE_METRICS = {
    "mem_rate": MEMORIZATION,
    "verbatim_rate": "verbatim",
    "idea_rate": "idea",
    "paraphrase_rate": "paraphrase",
    "paraphrase_high_rate": HIGH,
    "paraphrase_low_rate": LOW,
}
# Rate name -> its metric name.
CATEGORY_METRICS = {category: metric for metric, category in RATE_METRICS.items()}
# The study's rates over the member probes, the same rates over the non-members
# (the false-positive floor), and their difference.
FAMILIES = ("", "nonmember_", "excess_")
# A rate's value and the bounds of its bootstrap interval, and the attribute of a Rate each one reads.
BOUNDS = {"": "value", "_low": "low", "_high": "high"}
COUNTS = ("probes", "nonmember_probes", "skipped_too_short", "duplicates_folded")
METRICS = tuple(f"{family}{name}{bound}" for family in FAMILIES for name in RATE_METRICS for bound in BOUNDS) + COUNTS

# The suffix of a task's generated ablation variants (task_configs/_generate_configs.py):
# prefix lengths and decoding strategies, mem_imdb_prefix10, mem_imdb_topk40, ...
VARIANT_SUFFIX = re.compile(r"_(prefix|topk|topp|temp)\d+$")


def base_task(task: str) -> str:
    """The task a variant was generated from: ``mem_imdb_prefix10`` -> ``mem_imdb``."""
    return VARIANT_SUFFIX.sub("", task)


# The per-sample log field that holds a probe's outcome (lm-eval names it after the task's first metric).
LOG_FIELD = "mem_rate"
# Prefix of non-member probe ids, so that they never collide with a member's id.
NONMEMBER_PREFIX = "nonmember/"


@dataclass(frozen=True)
class Outcome:
    """How one probe of a run ended, as its per-sample log records it.

    ``category`` is ``none`` or the category the probe counts in;
    ``matched_id`` and ``rank`` name the retrieved training suffix that
    matched and its rank among the candidates (None when not memorized).
    ``member`` is False for a probe of text the model was not fine-tuned on.
    ``probability`` is what the case was graded from and ``grader`` what gave it
    (``"evidence"``, ``"cross-encoder"``, ``"sentence-encoder"`` for a summary, or a classifier's id), None when no
    grader looked at it (verbatim, expansion, none).
    """

    id: str
    category: str
    member: bool = True
    matched_id: str | None = None
    rank: int | None = None
    probability: float | None = None
    grader: str | None = None

    def to_json(self) -> str:
        """``{"id", "member", "category", "matched_id", "rank", "probability", "grader"}``: ids and
        the outcome, never a text."""
        return json.dumps(
            {
                "id": self.id, "member": self.member, "category": self.category, "matched_id": self.matched_id,
                "rank": self.rank, "probability": self.probability, "grader": self.grader,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Outcome:
        """The inverse of :meth:`to_json`; a log written before non-members existed has no ``member`` (all members),
        one written before issue 27 no ``probability`` or ``grader``.

        Raises ``ValueError`` (or ``KeyError``/``TypeError``) when ``text`` is not such an object.
        """
        data = json.loads(text)
        if not isinstance(data, dict):
            raise TypeError(f"expected a JSON object, got {type(data).__name__}")
        member = data.get("member", True)
        if not isinstance(member, bool):
            raise ValueError(f"'member' must be true or false, got {member!r}")
        rank, probability, grader = data.get("rank"), data.get("probability"), data.get("grader")
        return cls(
            str(data["id"]),
            str(data["category"]),
            member,
            None if data.get("matched_id") is None else str(data["matched_id"]),
            None if rank is None else int(rank),
            None if probability is None else float(probability),
            None if grader is None else str(grader),
        )


def read_outcomes(path: str | Path) -> list[Outcome]:
    """Every probe outcome in an lm-eval per-sample log of a memtasks task, in file order.

    Raises ``ValueError`` naming the file, line and field when a line does not
    hold an outcome in :data:`LOG_FIELD`, or when a probe id appears twice.
    """
    path = Path(path)
    outcomes: list[Outcome] = []
    seen: set[tuple[bool, str]] = set()
    # Split on "\n" only: JSON strings may hold U+2028, which str.splitlines() breaks on.
    for number, line in enumerate(path.read_text(encoding="utf-8").split("\n"), start=1):
        if not line.strip():
            continue
        try:
            outcome = Outcome.from_json(json.loads(line)[LOG_FIELD])
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(
                f"{path}:{number}: field '{LOG_FIELD}' does not hold a probe outcome ({type(error).__name__}: {error})"
            ) from None
        key = (outcome.member, outcome.id)
        if key in seen:
            raise ValueError(f"{path}:{number}: probe id {outcome.id!r} appears twice")
        seen.add(key)
        outcomes.append(outcome)
    return outcomes


def read_probe_outcomes(path: str | Path, members: bool = True) -> dict[str, str]:
    """Probe id -> category of the member probes (or, with ``members=False``,
    the non-member probes) in an lm-eval per-sample log of a memtasks task.

    Errors as :func:`read_outcomes`.
    """
    return {o.id: o.category for o in read_outcomes(path) if o.member is members}
