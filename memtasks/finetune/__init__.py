"""Fine-tuning recipes: train a model on memorization tasks in their own format, then probe it.

Each name is imported from its module when first used, so that importing the
package (for ``FinetuneConfig``, say) loads neither numpy nor torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_MODULES = {
    "SUMMARY_FILE": "config",
    "FinetuneConfig": "config",
    "FinetuneError": "config",
    "Runtime": "config",
    "read_summary": "config",
    "Example": "data",
    "mix": "data",
    "task_examples": "data",
    "quality_scores": "quality",
    "finetune": "train",
}

__all__ = sorted(_MODULES)


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{module}"), name)
