"""Attention dispersion: how evenly output tokens attend over the input, and what it predicts.

The study (Zeng et al., ACL 2024, Figure 4 and Appendix K) explains why
memorization differs by task through attention: in summarization and dialog
each output token's attention is spread over the whole input, in sentiment,
extractive QA and translation it is concentrated on a few input tokens.

* :mod:`~memtasks.attention.capture`: teacher-forced forward passes, masks, one layer at a time;
* :mod:`~memtasks.attention.dispersion`: CAD, coverage and row divergence of attention rows (formulas there);
* :mod:`~memtasks.attention.measure`: :func:`measure_attention`, those measures of a model over (input, output) pairs;
* :mod:`~memtasks.attention.runner`: :func:`run_attention`, the ``memtasks attention`` command;
* :mod:`~memtasks.attention.plots`: heatmaps; :mod:`~memtasks.attention.predict`: Spearman with memorization (:mod:`memtasks.stats`).
"""

from memtasks.attention.capture import AttentionInputError, AttentionModelError
from memtasks.attention.measure import MEASURES, AttentionResult, measure_attention, select_layers
from memtasks.attention.dispersion import AttentionRowError, cad, coverage, row_divergence
from memtasks.attention.predict import Prediction, predict_memorization, read_metric
from memtasks.attention.runner import TaskRun, run_attention
from memtasks.stats import spearman

__all__ = [
    "MEASURES",
    "AttentionInputError",
    "AttentionModelError",
    "AttentionResult",
    "AttentionRowError",
    "Prediction",
    "TaskRun",
    "cad",
    "coverage",
    "measure_attention",
    "predict_memorization",
    "read_metric",
    "row_divergence",
    "run_attention",
    "select_layers",
    "spearman",
]
