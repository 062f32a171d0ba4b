"""The study manifest: what the study writes is what the report reads, and nothing else is accepted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from memtasks.manifest import AttentionStep, EvalStep, FinetuneStep, ManifestError, StudyManifest, StudyModel
from memtasks.outputs import write_atomic

RESULTS = Path(__file__).parents[1] / "results"


def _manifest(path: Path) -> StudyManifest:
    manifest = StudyManifest(path, "s")
    base = StudyModel("m", "org/m", size="1B")
    tuned = StudyModel("m-full-t", "./models/m-full-t", "m", "full", ("mem_a", "mem_b"), 3, "1B", "equal")
    manifest.record(EvalStep("m/pretrained/mem_a", "mem_a", base, "runs/a/results_1.json", "runs/a/samples_mem_a_1.jsonl", seconds=1.5))
    manifest.record(FinetuneStep("m-full-t/finetune", "models/m-full-t", {"base_model": "org/m", "epoch_losses": [1.0]}))
    manifest.record(EvalStep("m-full-t/mem_a", "mem_a", tuned, "runs/b/results_1.json"))
    manifest.record(AttentionStep("m/attention/mem_a", "mem_a", base, "attention/attention_mem_a_1.json", seconds=2.0))
    return manifest


def test_a_manifest_reads_back_as_written_and_a_step_recorded_again_replaces_the_old_one(tmp_path):
    manifest = _manifest(tmp_path / "manifest.json")
    assert StudyManifest.read(manifest.path) == manifest
    manifest.record(EvalStep("m/pretrained/mem_a", "mem_a", StudyModel("m"), "runs/c/results_2.json"))
    again = StudyManifest.read(manifest.path)
    assert [run.id for run in again.runs] == ["m/pretrained/mem_a", "m-full-t/finetune", "m-full-t/mem_a", "m/attention/mem_a"]
    assert again.runs[0].results == "runs/c/results_2.json"
    # Attention measurements are results files of one task too: the report names their model from here.
    assert [e.id for e in again.evals()] == ["m/pretrained/mem_a", "m-full-t/mem_a", "m/attention/mem_a"]
    assert isinstance(again.runs[3], AttentionStep) and json.loads(manifest.path.read_text())["runs"][3]["kind"] == "attention"
    assert again.runs[3] != EvalStep("m/attention/mem_a", "mem_a", StudyModel("m", "org/m", size="1B"), "attention/attention_mem_a_1.json", seconds=2.0)


def test_a_step_is_done_only_while_its_outputs_exist(tmp_path):
    manifest = _manifest(tmp_path / "manifest.json")
    assert not manifest.done("m/pretrained/mem_a")
    for name in ("runs/a/results_1.json", "runs/a/samples_mem_a_1.jsonl"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("{}")
    assert manifest.done("m/pretrained/mem_a") and not manifest.done("nope")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m["runs"][2]["model"].update(epoch=3), r"runs\[2\]\.model: unknown field 'epoch'"),
        (lambda m: m["runs"][1].update(model_dri="x"), r"runs\[1\]: unknown field 'model_dri'"),
        (lambda m: m["runs"][0].pop("task"), r"runs\[0\]: field 'task' is missing"),
        (lambda m: m["runs"][0].pop("kind"), r"runs\[0\]: field 'kind' is missing"),
        (lambda m: m["runs"][2]["model"].update(method="qlora"), r"runs\[2\]\.model: field 'method' must be one of"),
        (lambda m: m["runs"][2]["model"].update(epochs=True), r"runs\[2\]\.model: field 'epochs' has the wrong type"),
        (lambda m: m["runs"][2]["model"].update(trained_tasks=["mem_a", 1]), r"field 'trained_tasks' must list task names"),
        (lambda m: m["runs"].append(dict(m["runs"][0])), r"runs: step id 'm/pretrained/mem_a' appears twice"),
        (lambda m: m.update(name="s"), r"unknown field 'name'"),
        (lambda m: m["runs"][3].update(kind="attn"), r"runs\[3\]: field 'kind' must be 'eval', 'finetune' or 'attention', got 'attn'"),
    ],
)
def test_a_misspelled_unknown_or_missing_field_is_an_error_naming_file_and_field(tmp_path, change, message):
    path = _manifest(tmp_path / "manifest.json").path
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    with pytest.raises(ManifestError, match=rf"^{path}: .*{message}"):
        StudyManifest.read(path)


@pytest.mark.parametrize("path", sorted(RESULTS.glob("*/manifest.json")), ids=lambda p: p.parent.name)
def test_the_committed_manifests_are_read_and_point_inside_their_study_folder_only(path):
    manifest = StudyManifest.read(path)
    assert manifest.evals()
    for step in manifest.runs:
        for output in step.outputs():
            # lm-eval names a folder after the model's absolute path ("__work__..."); a study makes none.
            assert not Path(output).is_absolute() and not any(part.startswith("__") for part in Path(output).parts)
        if isinstance(step, AttentionStep):
            assert (manifest.root / step.results).is_file() and step.samples is None
        elif isinstance(step, EvalStep):
            assert (manifest.root / step.results).is_file() and (manifest.root / step.samples).is_file()
            assert step.model.path.startswith("./") and (step.model.method == "pretrained") == (step.model.mixing is None)
    assert str(RESULTS.resolve().parent) not in path.read_text()


def test_an_interrupted_write_leaves_the_previous_manifest_whole(tmp_path, monkeypatch):
    manifest = _manifest(tmp_path / "manifest.json")
    saved = manifest.path.read_text()
    write_text = Path.write_text

    def interrupted(self, text, encoding=None):
        """Ctrl-C half-way through writing."""
        write_text(self, text[: len(text) // 2], encoding=encoding)
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "write_text", interrupted)
    with pytest.raises(KeyboardInterrupt):
        manifest.record(EvalStep("m/pretrained/mem_b", "mem_b", StudyModel("m"), "runs/d/results_1.json"))
    monkeypatch.undo()
    assert manifest.path.read_text() == saved and sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"]
    write_atomic(tmp_path / "summary.md", "table\n")
    assert (tmp_path / "summary.md").read_text() == "table\n" and len(list(tmp_path.iterdir())) == 2
