"""Per-sample logs without training text: every text replaced by its SHA-256.

Fails closed: a sample keeps in clear only the fields known to hold no text
(ids, hashes, the metric outcomes memtasks writes, counts); every other string
anywhere in it, whichever task wrote it, becomes ``sha256:<hex>``.
"""

from __future__ import annotations

import hashlib
from typing import Any

# lm-eval's own fields that carry no document or generation text.
SAFE_SAMPLE_FIELDS = frozenset({"doc_id", "doc_hash", "prompt_hash", "target_hash", "filter", "metrics"})
# The probe row's fields that are not training text (the probe id is a record id, not its text).
SAFE_DOC_FIELDS = frozenset({"id", "member", "records", "too_short", "duplicates", "nonmember_source", "scoring", "position"})


def digest(text: str) -> str:
    """``sha256:`` and the hex SHA-256 of the UTF-8 text."""
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def _hashed(value: Any) -> Any:
    if isinstance(value, str):
        return digest(value)
    if isinstance(value, (list, tuple)):
        return [_hashed(v) for v in value]
    if isinstance(value, dict):
        return {k: _hashed(v) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float)):
        return value
    # Anything else is written with str(), which may hold text.
    return digest(str(value))


def redact_sample(sample: dict[str, Any], outcome_fields: frozenset[str] = frozenset()) -> dict[str, Any]:
    """A copy of one lm-eval sample with every text hashed.

    ``outcome_fields`` are the metric fields whose values are memtasks'
    per-probe outcomes (ids and categories, no text); they stay readable.
    """
    redacted: dict[str, Any] = {}
    for key, value in sample.items():
        if key in SAFE_SAMPLE_FIELDS or key in outcome_fields:
            redacted[key] = value
        elif key == "doc" and isinstance(value, dict):
            redacted[key] = {k: (v if k in SAFE_DOC_FIELDS else _hashed(v)) for k, v in value.items()}
        else:
            redacted[key] = _hashed(value)
    return redacted

