"""Is a fine-tuned model well trained? The downstream metric of its task on held-out examples.

The study checks its fine-tuned models with each task's usual metric before
measuring memorization: ROUGE for summarization and dialog, accuracy for
classification, exact match for extractive QA, BLEU for translation. A task's
YAML names its metric (``quality_metric``) and its held-out split (``eval_split``).
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

QUALITY_METRICS = ("rouge", "accuracy", "exact_match", "bleu")


def normalize_answer(text: str) -> str:
    """SQuAD's answer normalization: lowercase, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def quality_scores(metric: str, predictions: Sequence[str], references: Sequence[Sequence[str]]) -> dict[str, float]:
    """The task metric of ``predictions`` against their ``references`` (each a list of acceptable outputs).

    - rouge: mean ROUGE-1/2/L F1 (stemmed), against the first reference;
    - accuracy and exact_match: share of predictions whose normalized text equals
      a normalized reference (any of them);
    - bleu: corpus BLEU (sacrebleu) against the first reference.
    """
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    if not predictions:
        raise ValueError("no held-out examples to score")
    if metric == "rouge":
        from rouge_score import rouge_scorer

        names = ("rouge1", "rouge2", "rougeL")
        scorer = rouge_scorer.RougeScorer(list(names), use_stemmer=True)
        scores = [scorer.score(refs[0], pred) for pred, refs in zip(predictions, references)]
        return {name: sum(s[name].fmeasure for s in scores) / len(scores) for name in names}
    if metric in ("accuracy", "exact_match"):
        hits = [
            any(normalize_answer(pred) == normalize_answer(ref) for ref in refs)
            for pred, refs in zip(predictions, references)
        ]
        return {metric: sum(hits) / len(hits)}
    if metric == "bleu":
        import sacrebleu

        return {"bleu": sacrebleu.corpus_bleu(list(predictions), [[refs[0] for refs in references]]).score}
    raise ValueError(f"unknown quality metric {metric!r} (known: {', '.join(QUALITY_METRICS)})")
