"""What the study found, per kind of task: which kinds of fine-tuning memorize their inputs most.

Zeng et al. (ACL 2024) found that fine-tuning on tasks whose outputs restate
their inputs (summarization, medical dialogue) makes a model memorize its
training inputs far more than tasks whose outputs are short (sentiment,
extractive QA, translation). :data:`KINDS` names each shipped task's kind and
:data:`HIGH_KINDS` the kinds the study saw memorize most; a task of a kind
the study did not cover has no expectation. Its published rates, beside
memtasks' own, are in docs/finetuning.md.
"""

from __future__ import annotations

from memtasks.outcomes import base_task

KINDS = {
    "mem_multinews": "summarization",
    "mem_cnn_dailymail": "summarization",
    "mem_xsum": "summarization",
    "mem_healthcaremagic": "dialogue",
    "mem_imdb": "sentiment",
    "mem_squad_v2": "QA",
    "mem_adversarial_qa": "QA",
    "mem_duorc_selfrc": "QA",
    "mem_wmt16_en_de": "translation",
}
HIGH_KINDS = ("summarization", "dialogue")


def expected_more(first: str, second: str) -> bool:
    """Whether the study found fine-tuning on ``first``'s kind of task memorizes more than on ``second``'s."""
    first, second = base_task(first), base_task(second)
    return KINDS.get(first) in HIGH_KINDS and KINDS.get(second) not in HIGH_KINDS and second in KINDS
