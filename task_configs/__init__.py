"""memtasks' lm-eval task definitions (YAML), installed as ``memtasks.task_configs``."""
