"""memtasks inside lm-evaluation-harness.

- :mod:`memtasks.harness.hooks`: what a task YAML names with ``!function``
  (the probe dataset, per-sample results, the metrics' aggregations);
- :mod:`memtasks.harness.model`: the ``memtasks-hf`` model class;
- :mod:`memtasks.harness.launch`: ``memtasks eval``, lm-eval's command line with both;
- :mod:`memtasks.harness.redact`: per-sample logs without training text;
- :mod:`memtasks.harness.save`: results and per-sample logs written whole or not at all.
"""

from __future__ import annotations

MODEL_NAME = "memtasks-hf"


def run_lm_eval(arguments, redact: bool = False, verbose: bool = False, notes=()) -> int:
    """:func:`memtasks.harness.launch.run_lm_eval`, importable without lm-eval."""
    from memtasks.harness.launch import run_lm_eval as run

    return run(arguments, redact=redact, verbose=verbose, notes=notes)
