"""A study end to end on a tiny model: probe, fine-tune, probe again, compare; and its config checks."""

from __future__ import annotations

import json
import shutil
from importlib import resources
from pathlib import Path

import pytest
import yaml

from memtasks.manifest import StudyManifest, StudyModel
from memtasks.outcomes import read_probe_outcomes
from memtasks.outputs import OutputFolderError
from memtasks.probes import DEFAULT_HOLDOUT, held_out
from memtasks.report.summary import compare_before_after
from memtasks.study import StudyInputError, read_study_config, run_study
from memtasks.tiny import build_tiny_model, torch_threads, train_tokenizer

RESULTS = Path(__file__).parents[1] / "results"
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
            # A model trained from scratch only learns to write its inputs if the loss covers them.
            "options": {
                "learning_rate": 0.01, "warmup_ratio": 0.1, "batch_size": 4, "max_source_tokens": 384, "max_target_tokens": 32,
                "train_on_input": True,
            },
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


def test_a_study_writes_its_before_after_summary_beside_its_manifest(study):
    from memtasks.study import write_summary

    _, manifest = study
    [comparison] = write_summary(manifest)
    text = (manifest.root / "summary.md").read_text(encoding="utf-8")
    assert comparison.task == "mem_xsum"
    # One row per fine-tuned model and task, naming the loss it was trained with; then every category.
    assert f"| mem_xsum | tiny-full-mem_xsum | whole-sequence | {MEMBERS} / " in text and "### mem_xsum: tiny -> tiny-full-mem_xsum" in text


def test_the_manifest_points_at_every_result(study):
    config, manifest = study
    root = manifest.path.parent
    assert root == config.parent / "out"
    runs = {run.id: run for run in manifest.runs}
    assert set(runs) == {"tiny/pretrained/mem_xsum", "tiny-full-mem_xsum/finetune", "tiny-full-mem_xsum/mem_xsum"}
    finetuned = runs["tiny-full-mem_xsum/mem_xsum"]
    assert finetuned.model == StudyModel(
        "tiny-full-mem_xsum", "./models/tiny-full-mem_xsum", "tiny", "full", ("mem_xsum",), 80, None, "proportional", "whole-sequence"
    )
    assert runs["tiny-full-mem_xsum/finetune"].summary["loss"] == "whole-sequence"
    # The model outside the study folder keeps its path; everything inside is relative to the manifest.
    assert runs["tiny/pretrained/mem_xsum"].model.path == str(config.parent / "tiny-decoder")
    # No folder named after the model's path on this machine: the run's files sit in the step's folder.
    step_dir = "runs/tiny-full-mem_xsum__mem_xsum"
    assert Path(finetuned.results).parent.as_posix() == Path(finetuned.samples).parent.as_posix() == step_dir
    assert StudyManifest.read(manifest.path) == manifest
    results = json.loads((root / finetuned.results).read_text())
    # lm-eval ran in the study folder on paths relative to it: its outputs name no folder of this machine.
    assert results["config"]["model_args"]["pretrained"] == "./models/tiny-full-mem_xsum"
    for step in manifest.evals():
        for output in step.outputs():
            assert str(config.parent.resolve()) not in (root / output).read_text()
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
    with pytest.raises(ValueError, match=r"b.yaml: unknown key 'finetune.options.learning_rat' \(did you mean 'learning_rate'\?\)$"):
        run_study(read_study_config(config), evaluate=no_lm_eval)


@pytest.mark.parametrize("committed", sorted(RESULTS.glob("*/study.yaml")), ids=lambda p: p.parent.name)
def test_a_committed_study_runs_in_a_fresh_clone_without_its_models_and_data(tmp_path, committed):
    # What a clone holds: the study folder without the models and data copies, which are not committed.
    study = tmp_path / committed.parent.name
    shutil.copytree(committed.parent, study, ignore=shutil.ignore_patterns("models", "data"))
    before = {p: p.read_bytes() for p in study.rglob("*") if p.is_file()}

    def no_lm_eval(arguments):
        raise AssertionError(f"lm-eval ran: {arguments}")

    manifest = run_study(read_study_config(study / "study.yaml"), log=lambda line: None, evaluate=no_lm_eval)
    assert manifest == StudyManifest.read(study / "manifest.json") and manifest.evals()
    # Every step is done: nothing is fine-tuned or probed again, and no file is written or rewritten.
    assert {p: p.read_bytes() for p in study.rglob("*") if p.is_file()} == before


def _fresh_config(root: Path, **changes) -> Path:
    config = {
        "name": "fresh",
        "output_dir": "out",
        "models": [{"name": "m", "path": "./models/smollm2-135m"}],
        "tasks": ["mem_xsum"],
        "data_files": {"mem_xsum": "xsum.jsonl"},
        **changes,
    }
    return _write_config(root / "study.yaml", **config)


def _never(arguments):
    raise AssertionError("nothing may run")


def test_a_study_missing_its_model_says_in_one_line_what_to_run_first_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "xsum.jsonl").write_text(json.dumps(RECORDS[0]) + "\n")
    with pytest.raises(StudyInputError) as refused:
        run_study(read_study_config(_fresh_config(tmp_path)), log=lambda line: None, evaluate=_never)
    assert str(refused.value) == (
        f"{tmp_path / 'study.yaml'}: model m: models/smollm2-135m does not exist: "
        "run `memtasks models get smollm2-135m models/smollm2-135m` first"
    )
    config = _fresh_config(tmp_path, models=[{"name": "m", "path": "./my-model"}])
    with pytest.raises(StudyInputError, match=r"model m: my-model does not exist \(a local model is a folder saved by save_pretrained\)$"):
        run_study(read_study_config(config), log=lambda line: None, evaluate=_never)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.yaml", "xsum.jsonl"]


def test_a_study_missing_a_data_file_or_a_writable_folder_is_refused_before_any_step(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models" / "smollm2-135m").mkdir(parents=True)
    with pytest.raises(StudyInputError, match=r"study.yaml: data_files.mem_xsum: xsum.jsonl does not exist$"):
        run_study(read_study_config(_fresh_config(tmp_path)), log=lambda line: None, evaluate=_never)
    (tmp_path / "xsum.jsonl").write_text(json.dumps(RECORDS[0]) + "\n{oops\n")
    with pytest.raises(StudyInputError, match=r"study.yaml: data_files.mem_xsum: xsum.jsonl:2: invalid JSON \(Expecting property name"):
        run_study(read_study_config(_fresh_config(tmp_path)), log=lambda line: None, evaluate=_never)
    (tmp_path / "xsum.jsonl").write_text(json.dumps(RECORDS[0]) + "\n")
    (tmp_path / "taken").write_text("a file, not a folder")
    config = _fresh_config(tmp_path, output_dir="taken/out")
    with pytest.raises(OutputFolderError, match=r"^taken/out: cannot be made: taken is a file, not a folder$"):
        run_study(read_study_config(config), log=lambda line: None, evaluate=_never)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models", "study.yaml", "taken", "xsum.jsonl"]


def test_an_interrupted_step_leaves_no_output_that_looks_finished(tmp_path):
    (tmp_path / "xsum.jsonl").write_text(json.dumps(RECORDS[0]) + "\n")
    config = _fresh_config(tmp_path, models=[{"name": "m", "path": "org/m"}], tasks=["mem_xsum", "mem_imdb"])
    calls = []

    def lm_eval(arguments):
        """Writes what lm-eval writes (results first, then the samples); Ctrl-C in the second run, between the two."""
        output = Path(arguments[arguments.index("--output_path") + 1])
        task = arguments[arguments.index("--tasks") + 1]
        calls.append((Path.cwd(), output, arguments[arguments.index("--model_args") + 1]))
        output.parent.mkdir(parents=True, exist_ok=True)
        (output.parent / "results_2026-01-01T00-00-00.json").write_text(json.dumps({"results": {task: {}}}))
        if len(calls) == 2:
            raise KeyboardInterrupt
        (output.parent / f"samples_{task}_2026-01-01T00-00-00.jsonl").write_text("{}\n")
        return 0

    here = Path.cwd()
    with pytest.raises(KeyboardInterrupt):
        run_study(read_study_config(config), log=lambda line: None, evaluate=lm_eval)
    out = tmp_path / "out"
    # lm-eval ran inside the study folder with paths relative to it; the current directory is back.
    assert Path.cwd() == here and [(cwd, args) for cwd, _, args in calls] == [(out, "pretrained=org/m")] * 2
    assert all(not output.is_absolute() for _, output, _ in calls)
    manifest = StudyManifest.read(out / "manifest.json")
    assert [run.id for run in manifest.runs] == ["m/pretrained/mem_xsum"]
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "manifest.json",
        "runs/m__pretrained__mem_xsum/results_2026-01-01T00-00-00.json",
        "runs/m__pretrained__mem_xsum/samples_mem_xsum_2026-01-01T00-00-00.jsonl",
    ]


def test_an_error_lm_eval_raises_mid_step_names_the_data_file_as_the_user_can_open_it(study, tmp_path):
    config, _ = study
    root = config.parent
    settings = yaml.safe_load(config.read_text(encoding="utf-8"))
    settings.update(output_dir=str(tmp_path / "elsewhere" / "out"), models=[{"name": "tiny", "path": str(root / "tiny-decoder")}],
                    data_files={"mem_xsum": str(root / "xsum.jsonl")})
    given = []

    def failing_lm_eval(arguments):
        # lm-eval runs in the study folder and is given paths relative to it.
        data = json.loads(arguments[arguments.index("--metadata") + 1])["data_files"]
        given.append(data)
        raise ValueError(f"{data}: line 2: not JSON")

    with pytest.raises(ValueError) as raised:
        run_study(read_study_config(_write_config(tmp_path / "moved.yaml", **settings)), log=lambda line: None, evaluate=failing_lm_eval)
    assert given and given[0].startswith("..")
    assert str(raised.value) == f"{(root / 'xsum.jsonl').resolve()}: line 2: not JSON"
