"""Fine-tuning recipes: train a model on memorization tasks in their own format, then probe it."""

from memtasks.finetune.data import Example, mix, task_examples
from memtasks.finetune.quality import quality_scores
from memtasks.finetune.train import SUMMARY_FILE, FinetuneConfig, FinetuneError, Runtime, finetune, read_summary

__all__ = [
    "SUMMARY_FILE",
    "Example",
    "FinetuneConfig",
    "FinetuneError",
    "Runtime",
    "finetune",
    "mix",
    "quality_scores",
    "read_summary",
    "task_examples",
]
