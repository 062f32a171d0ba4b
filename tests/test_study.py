"""A study end to end on a tiny model: probe, fine-tune, probe again, compare; and its config checks."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest
import yaml

from memtasks.manifest import StudyManifest, StudyModel
from memtasks.outcomes import read_probe_outcomes
from memtasks.probes import DEFAULT_HOLDOUT, held_out
from memtasks.study import compare_before_after, read_study_config, run_study
from memtasks.tiny import build_tiny_model, torch_threads, train_tokenizer

DEMO_DATA = Path(str(resources.files("memtasks") / "demo_data"))
RECORDS = [json.loads(line) for line in (DEMO_DATA / "xsum_train.jsonl").read_text().splitlines()[:12]]
MEMBERS = sum(not held_out(r["document"], DEFAULT_HOLDOUT) for r in RECORDS)


def _write_config(path: Path, **config) -> Path:
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A tiny decoder fine-tuned for many epochs on 12 XSum articles, probed before and after."""
    root = tmp_path_factory.mktemp("study")
    records = RECORDS
    (root / "xsum.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    tokenizer = train_tokenizer([r["document"] for r in records] + [r["summary"] for r in records], vocab_size=1000)
    build_tiny_model("decoder", tokenizer, root / "tiny-decoder")
    config = _write_config(
        root / "study.yaml",
        name="tiny",
        output_dir="out",
        models=[{"name": "tiny", "path": "./tiny-decoder"}],
        tasks=["mem_xsum"],
        data_files={"mem_xsum": "xsum.jsonl"},
        device="cpu",
        finetune={
            "epochs": 80,
            "options": {"learning_rate": 0.01, "warmup_ratio": 0.1, "batch_size": 4, "max_source_tokens": 384, "max_target_tokens": 32},
        },
        evaluate={"lm_eval_args": ["--batch_size", "16", "--device", "cpu"]},
    )
    with torch_threads(1):
        manifest = run_study(read_study_config(config), log=lambda line: None)
    return config, manifest


def test_fine_tuning_for_many_epochs_makes_the_model_memorize_its_training_inputs(study):
    _, manifest = study
    [comparison] = compare_before_after(manifest)
    before, after = comparison.before, comparison.after
    assert (comparison.task, before.model.name, after.model.name) == ("mem_xsum", "tiny", "tiny-full-mem_xsum")
    # The 12 articles minus the held-out slice, which is never trained on and probed as non-members.
    assert comparison.probes == comparison.difference.paired == MEMBERS
    assert before.rates["memorization"].value <= 0.1
    assert after.rates["memorization"].value >= 0.5
    assert comparison.difference.rates["memorization"].low > 0
    assert after.excess["memorization"].low > 0
    assert before.excess["memorization"].low <= 0 <= before.excess["memorization"].high


def test_the_manifest_points_at_every_result(study):
    config, manifest = study
    root = manifest.path.parent
    assert root == config.parent / "out"
    runs = {run.id: run for run in manifest.runs}
    assert set(runs) == {"tiny/pretrained/mem_xsum", "tiny-full-mem_xsum/finetune", "tiny-full-mem_xsum/mem_xsum"}
    finetuned = runs["tiny-full-mem_xsum/mem_xsum"]
    assert finetuned.model == StudyModel("tiny-full-mem_xsum", "./models/tiny-full-mem_xsum", "tiny", "full", ("mem_xsum",), 80, None, "proportional")
    # The model outside the study folder keeps its path; everything inside is relative to the manifest.
    assert runs["tiny/pretrained/mem_xsum"].model.path == str(config.parent / "tiny-decoder")
    # No folder named after the model's path on this machine: the run's files sit in the step's folder.
    step_dir = "runs/tiny-full-mem_xsum__mem_xsum"
    assert Path(finetuned.results).parent.as_posix() == Path(finetuned.samples).parent.as_posix() == step_dir
    assert StudyManifest.read(manifest.path) == manifest
    results = json.loads((root / finetuned.results).read_text())
    assert results["results"]["mem_xsum"]["probes,none"] == MEMBERS
    assert results["results"]["mem_xsum"]["nonmember_probes,none"] == 12 - MEMBERS
    assert len(read_probe_outcomes(root / finetuned.samples)) == MEMBERS
    assert len(read_probe_outcomes(root / finetuned.samples, members=False)) == 12 - MEMBERS
    assert json.loads((root / "models/tiny-full-mem_xsum/memtasks_finetune.json").read_text())["complete"]


def test_running_a_study_again_skips_finished_steps(study):
    config, manifest = study

    def no_lm_eval(arguments):
        raise AssertionError(f"lm-eval ran again: {arguments}")

    again = run_study(read_study_config(config), log=lambda line: None, evaluate=no_lm_eval)
    assert again.runs == manifest.runs


@pytest.mark.parametrize(
    "config, message",
    [
        ({"name": "x", "models": [{"name": "m", "path": "gpt2"}]}, "'tasks' is required"),
        ({"name": "x", "models": [{"path": "gpt2"}], "tasks": ["mem_xsum"]}, r"models\[0\] needs a name and a path"),
        ({"name": "x", "models": [{"name": "m", "path": "gpt2"}], "tasks": ["mem_xsum"], "epochs": 3}, "unknown key 'epochs'"),
        (
            {"name": "x", "models": [{"name": "m", "path": "gpt2"}], "tasks": ["mem_xsum"], "finetune": {"mixtures": ["mixed"]}},
            "finetune.mixtures: 'mixed'",
        ),
        ({"name": "x", "models": [{"name": "m", "path": "gpt2"}], "tasks": ["mem_xsum"], "finetune": {"epoch": 3}}, "unknown key 'finetune.epoch'"),
        ({"name": "x", "models": [{"name": "m", "path": "gpt2", "sise": "1B"}], "tasks": ["mem_xsum"]}, r"unknown key 'models\[0\]\.sise'"),
        ({"name": "x", "models": [{"name": "m", "path": "gpt2"}], "tasks": ["mem_xsum"], "evaluate": {"variant": ["prefix10"]}}, "unknown key 'evaluate.variant'"),
    ],
)
def test_config_errors_name_the_file_and_the_key(tmp_path, config, message):
    path = _write_config(tmp_path / "bad.yaml", **config)
    with pytest.raises(ValueError, match=f"bad.yaml: .*{message}"):
        read_study_config(path)


def test_unknown_tasks_and_options_fail_before_any_step(tmp_path):
    base = {"name": "x", "models": [{"name": "m", "path": "gpt2"}]}

    def no_lm_eval(arguments):
        raise AssertionError("nothing may run")

    with pytest.raises(ValueError, match="unknown task 'mem_nope'"):
        run_study(read_study_config(_write_config(tmp_path / "a.yaml", **base, tasks=["mem_nope"])), evaluate=no_lm_eval)
    config = _write_config(tmp_path / "b.yaml", **base, tasks=["mem_xsum"], finetune={"options": {"learning_rat": 1}})
    with pytest.raises(ValueError, match="b.yaml: finetune.options: .*learning_rat"):
        run_study(read_study_config(config), evaluate=no_lm_eval)
