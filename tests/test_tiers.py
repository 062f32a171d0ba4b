"""The test tiers of conftest.py name tests that exist, so a renamed test cannot leave the fast tier slow."""

import ast
from pathlib import Path

import pytest
from conftest import E2E_TESTS, SLOW_TESTS

TESTS = Path(__file__).parent


def _test_functions(file: Path) -> set[str]:
    tree = ast.parse(file.read_text(encoding="utf-8"), filename=str(file))
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}


@pytest.mark.parametrize("tier, table", [("slow", SLOW_TESTS), ("e2e", E2E_TESTS)], ids=["slow", "e2e"])
def test_every_test_a_tier_names_exists(tier, table):
    missing = []
    for file, names in table.items():
        path = TESTS / file
        if not path.is_file():
            missing.append(f"{file} (no such file)")
        elif names is not None:
            missing += [f"{file}::{name}" for name in sorted(names - _test_functions(path))]
    assert missing == [], f"tests/conftest.py marks {tier} tests that do not exist: {missing}"


def test_the_fast_tier_leaves_out_what_the_tiers_mark(pytester):
    pytester.makeconftest((TESTS / "conftest.py").read_text(encoding="utf-8"))
    pytester.makeini("[pytest]\naddopts = --strict-markers\nmarkers =\n    slow: s\n    e2e: e\n")
    pytester.makepyfile(
        test_launch="""
        import pytest

        @pytest.fixture
        def smollm2_dir():  # only the fixture's name decides the tier: nothing is converted
            return None

        def test_memtasks_eval_and_lm_evals_simple_evaluate_generate_the_same():
            pass

        def test_tasks_are_read_as_lm_eval_reads_them():
            pass

        def test_a_real_model(smollm2_dir):
            pass
        """,
        test_lm_eval_e2e="def test_anything():\n    pass\n",
    )
    # In a process of its own: this session has imported modules of the same names.
    fast = pytester.runpytest_subprocess("-v", "-m", "not slow and not e2e")
    fast.assert_outcomes(passed=1, deselected=3)
    fast.stdout.fnmatch_lines(["*::test_tasks_are_read_as_lm_eval_reads_them PASSED*"])
    pytester.runpytest_subprocess("-m", "e2e").assert_outcomes(passed=2, deselected=2)
    pytester.runpytest_subprocess("-m", "slow").assert_outcomes(passed=1, deselected=3)
