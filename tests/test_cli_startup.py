"""The command line starts without the heavy libraries: only the command that runs imports what it needs.

(How long ``memtasks --help`` takes is printed by tests/benchmarks/bench_cli_startup.py.)
"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("numba", "numpy", "torch", "transformers", "lm_eval", "datasets", "memtasks.detection", "memtasks.harness.hooks", "memtasks.harness.launch")


def imported_after(code: str) -> list[str]:
    """Which of HEAVY a fresh interpreter has imported after running ``code``."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_building_the_parser_imports_nothing_heavy():
    assert imported_after("import memtasks.cli\nmemtasks.cli.build_parser()") == []


def test_every_commands_help_imports_nothing_heavy():
    commands = ["score", "eval", "finetune", "study", "demo", "attention", "report", "rescore", "models", "tiny-models", "task-path", "pan-eval"]
    code = (
        "import contextlib, io\nfrom memtasks.cli import main\n"
        f"for argv in [[]] + [[c] for c in {commands!r}]:\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        assert main([*argv, '--help']) == 0, argv"
    )
    assert imported_after(code) == []


def test_a_usage_mistake_imports_nothing_heavy():
    code = (
        "import contextlib, io\nfrom memtasks.cli import main\n"
        "with contextlib.redirect_stderr(io.StringIO()):\n"
        "    assert main(['finetune', '--task', 'mem_xsum', '--kk', '5']) == 2\n"
        "    assert main(['eval']) == 2\n"
        "    assert main(['scor']) == 2"
    )
    assert imported_after(code) == []
