import json
import math

import pytest
import yaml

from memtasks import harness
from memtasks.harness import METRICS, load_probes, process_results, task_configs_dir


def words(n: int, stem: str) -> str:
    return " ".join(f"{stem}{i}" for i in range(n))


@pytest.fixture
def local_file(tmp_path):
    path = tmp_path / "train.jsonl"
    rows = [{"document": f"Story {i}. " + words(80, f"s{i}x"), "summary": "s"} for i in range(12)]
    rows.append({"document": "too short", "summary": "s"})
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_load_probes_from_a_local_file(local_file):
    dataset = load_probes(dataset_path="EdinburghNLP/xsum", data_files=str(local_file), input_field="document", n_probes=5, version=1.0)
    test = dataset["test"]
    assert len(test) == 5
    assert set(test.column_names) == {"id", "prefix", "suffix", "records", "too_short", "paraphrase_model", "retrieval"}
    assert test[0]["records"] == 13 and test[0]["too_short"] == 1
    assert len(test[0]["prefix"].split()) == 50


def test_load_probes_errors_name_the_problem(tmp_path, local_file):
    with pytest.raises(ValueError, match="field 'text' is missing"):
        load_probes(data_files=str(local_file), input_field="text")
    bad = tmp_path / "train.xml"
    bad.write_text("<x/>")
    with pytest.raises(ValueError, match=r"train.xml: cannot read .xml files"):
        load_probes(data_files=str(bad), input_field="document")
    with pytest.raises(ValueError, match="no record of 13 has 200 \\+ 10 words"):
        load_probes(data_files=str(local_file), input_field="document", prefix_tokens=200)


def test_metrics_are_computed_once_and_agree(monkeypatch):
    calls = []
    real = harness.score_probes

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(harness, "score_probes", counting)
    harness._reports.clear()
    docs = [
        {"id": str(i), "suffix": f"Sentence one of text {i} about {words(12, f't{i}w')}. And then a second sentence {words(10, f'u{i}v')}.", "records": 20, "too_short": 2}
        for i in range(20)
    ]
    generations = [d["suffix"] if i < 5 else "" for i, d in enumerate(docs)]
    per_doc = [process_results(doc, [gen]) for doc, gen in zip(docs, generations)]
    values = {metric: getattr(harness, metric)([r[metric] for r in per_doc]) for metric in METRICS}
    assert len(calls) == 1
    assert values["probes"] == 20 and values["skipped_too_short"] == 2
    assert values["verbatim_rate"] == pytest.approx(5 / 20)
    assert values["mem_rate"] == pytest.approx(values["verbatim_rate"] + values["idea_rate"] + values["paraphrase_rate"])
    for name in ("mem_rate", "verbatim_rate", "idea_rate", "paraphrase_rate"):
        assert values[f"{name}_low"] <= values[name] <= values[f"{name}_high"]
    # Without a paraphrase classifier, confidence is unscored rather than guessed.
    assert all(math.isnan(values[m]) for m in METRICS if m.startswith(("paraphrase_high", "paraphrase_low")))
    logged = json.loads(str(per_doc[0]["mem_rate"]))
    assert logged == {"id": "0", "category": "verbatim", "matched_id": "0", "rank": 1}
    assert "Sentence" not in str(per_doc[0]["mem_rate"])


def test_every_task_yaml_names_existing_functions_and_a_dataset():
    folder = task_configs_dir()

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!function", lambda loader, node: loader.construct_scalar(node))
    default = yaml.load((folder / "_mem_default.yaml").read_text(), Loader=Loader)
    for entry in default["metric_list"]:
        assert entry["aggregation"] == f"memtasks.harness.{entry['metric']}"
        assert callable(getattr(harness, entry["metric"]))
    assert {e["metric"] for e in default["metric_list"]} == set(METRICS)
    tasks = [p for p in folder.glob("mem_*.yaml") if "group" not in yaml.load(p.read_text(), Loader=Loader)]
    assert len(tasks) >= 12
    for path in tasks:
        config = yaml.load(path.read_text(), Loader=Loader)
        assert config["task"] == path.stem
        if config["include"] == "_mem_default.yaml":
            assert {"dataset_path", "input_field", "instruction", "output_field"} <= set(config["metadata"])


def test_lm_evals_own_task_index_is_skipped_only_when_no_task_needs_it(tmp_path):
    from memtasks.harness import _needs_lm_eval_tasks

    assert not _needs_lm_eval_tasks(["--model", "hf", "--tasks", "mem_xsum,mem_paper"])
    assert _needs_lm_eval_tasks(["--tasks", "mem_xsum,hellaswag"])
    assert _needs_lm_eval_tasks(["--tasks", "list"])
    (tmp_path / "mine.yaml").write_text("include: " + str(task_configs_dir() / "_mem_default.yaml") + "\ntask: mem_mine\n")
    assert not _needs_lm_eval_tasks(["--include_path", str(tmp_path), "--tasks=mem_mine"])
