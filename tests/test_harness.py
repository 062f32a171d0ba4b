import json

import pytest
import yaml

from memtasks.harness import hooks
from memtasks.harness.hooks import load_probes, process_results
from memtasks.outcomes import METRICS
from memtasks.tasks import task_configs_dir
from memtasks.probes import DEFAULT_HOLDOUT, held_out


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
    members = [row for row in test if row["member"]]
    nonmembers = [row for row in test if not row["member"]]
    assert len(members) == 5
    # As many non-members as the held-out slice (20% of the inputs, by text) holds, up to the member count.
    held = [f"Story {i}. " + words(80, f"s{i}x") for i in range(12)]
    n_held = sum(held_out(text, DEFAULT_HOLDOUT) for text in held)
    assert 0 < n_held < 12 and len(nonmembers) == min(n_held, 5)
    assert all(row["id"].startswith("nonmember/") for row in nonmembers)
    assert all(held_out(row["prefix"] + " " + row["suffix"], DEFAULT_HOLDOUT) for row in nonmembers)
    assert not any(held_out(row["prefix"] + " " + row["suffix"], DEFAULT_HOLDOUT) for row in members)
    assert test[0]["records"] == 13 and test[0]["too_short"] == 1 and test[0]["duplicates"] == 0
    assert "held-out 20%" in test[0]["nonmember_source"]
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
    import memtasks.scoring

    real = memtasks.scoring.score_with_floor

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(memtasks.scoring, "score_with_floor", counting)
    docs = [
        {"id": str(i), "suffix": f"Sentence one of text {i} about {words(12, f't{i}w')}. And then a second sentence {words(10, f'u{i}v')}.", "records": 20, "too_short": 2}
        for i in range(20)
    ]
    generations = [d["suffix"] if i < 5 else "" for i, d in enumerate(docs)]
    per_doc = [process_results(doc, [gen]) for doc, gen in zip(docs, generations)]
    values = {metric: getattr(hooks, metric)([r[metric] for r in per_doc]) for metric in METRICS}
    assert len(calls) == 1
    assert values["probes"] == 20 and values["skipped_too_short"] == 2
    assert values["verbatim_rate"] == pytest.approx(5 / 20)
    assert values["mem_rate"] == pytest.approx(values["verbatim_rate"] + values["idea_rate"] + values["paraphrase_rate"])
    for name in ("mem_rate", "verbatim_rate", "idea_rate", "paraphrase_rate"):
        assert values[f"{name}_low"] <= values[name] <= values[f"{name}_high"]
    # Without a paraphrase classifier, the detector's evidence grades paraphrases: the two grades add up.
    assert values["paraphrase_high_rate"] + values["paraphrase_low_rate"] == pytest.approx(values["paraphrase_rate"])
    assert all(isinstance(values[m], (int, float)) for m in METRICS if not m.startswith(("nonmember_", "excess_")))
    # No non-member was probed: their rates are unscored, null in the results file (strict JSON, no NaN).
    assert values["nonmember_mem_rate"] is None and values["excess_mem_rate_low"] is None
    json.dumps(values, allow_nan=False)
    logged = json.loads(str(per_doc[0]["mem_rate"]))
    # a verbatim copy is graded by no grader: no probability
    assert logged == {
        "id": "0", "member": True, "category": "verbatim", "matched_id": "0", "rank": 1, "probability": None, "grader": None,
    }
    assert "Sentence" not in str(per_doc[0]["mem_rate"])


def test_every_task_yaml_names_existing_functions_and_a_dataset():
    folder = task_configs_dir()

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!function", lambda loader, node: loader.construct_scalar(node))
    default = yaml.load((folder / "_mem_default.yaml").read_text(), Loader=Loader)
    for entry in default["metric_list"]:
        assert entry["aggregation"] == f"memtasks.harness.hooks.{entry['metric']}"
        assert callable(getattr(hooks, entry["metric"]))
    assert {e["metric"] for e in default["metric_list"]} == set(METRICS)
    tasks = [p for p in folder.glob("mem_*.yaml") if "group" not in yaml.load(p.read_text(), Loader=Loader)]
    assert len(tasks) >= 12
    for path in tasks:
        config = yaml.load(path.read_text(), Loader=Loader)
        assert config["task"] == path.stem
        if config["include"] == "_mem_default.yaml":
            assert {"dataset_path", "input_field", "instruction", "output_field"} <= set(config["metadata"])


def test_the_generated_task_configs_are_up_to_date():
    from memtasks.task_configs._generate_configs import main

    assert main(["--check"]) == 0


def test_unknown_or_misspelled_metadata_is_an_error(local_file):
    with pytest.raises(ValueError, match="unknown metadata key 'n_probe' \\(did you mean 'n_probes'\\?\\)"):
        load_probes(data_files=str(local_file), input_field="document", n_probe=5)
    with pytest.raises(ValueError, match="unknown metadata key 'colour'"):
        load_probes(data_files=str(local_file), input_field="document", colour="red")
    with pytest.raises(ValueError, match="'preset' must be one of"):
        load_probes(data_files=str(local_file), input_field="document", preset="pan15")
    with pytest.raises(ValueError, match="'k' must be a whole number"):
        load_probes(data_files=str(local_file), input_field="document", k=0)
    # Model arguments lm-eval merges into the metadata, the task's version and fine-tuning fields pass.
    rows = load_probes(
        data_files=str(local_file), input_field="document", k=3, preset="pan14", pretrained="gpt2", dtype="float32",
        version=1.0, instruction="Summarize.", eval_split="validation",
    )["test"]
    assert json.loads(rows[0]["scoring"])["scoring"]["k"] == 3


def test_summaries_is_a_yes_or_no_setting_that_travels_with_the_rows(monkeypatch, local_file):
    rows = load_probes(data_files=str(local_file), input_field="document", summaries=True)["test"]
    assert json.loads(rows[0]["scoring"])["scoring"]["summaries"] is True
    assert json.loads(load_probes(data_files=str(local_file), input_field="document")["test"][0]["scoring"])["scoring"]["summaries"] is False
    with pytest.raises(ValueError, match="'summaries' must be true or false, got 'yes'"):
        load_probes(data_files=str(local_file), input_field="document", summaries="yes")
    # The task's scoring asks for them: score_with_floor gets summaries=True.
    seen = {}
    import memtasks.scoring

    def fake_score_with_floor(members, nonmembers, **options):
        seen.update(options)
        raise RuntimeError("stop here")

    monkeypatch.setattr(memtasks.scoring, "score_with_floor", fake_score_with_floor)
    items = [hooks.process_results(row, ["a generation"])["mem_rate"] for row in rows]
    with pytest.raises(RuntimeError, match="stop here"):
        hooks.task_rates(items)
    assert seen["summaries"] is True


def test_dataset_revision_and_load_arguments_reach_load_dataset(monkeypatch, local_file):
    import datasets

    calls = []
    real = datasets.load_dataset

    def recording(path, name=None, **kwargs):
        calls.append((path, name, kwargs))
        return real("json", data_files=str(local_file), split="train")

    monkeypatch.setattr(datasets, "load_dataset", recording)
    load_probes(
        dataset_path="alexfabbri/multi_news", revision="refs/convert/parquet", load_kwargs={"verification_mode": "no_checks"},
        input_field="document",
    )
    assert calls[0] == ("alexfabbri/multi_news", None, {"split": "train", "revision": "refs/convert/parquet", "verification_mode": "no_checks"})


def _metrics(docs, generations):
    per_doc = [process_results(doc, [gen]) for doc, gen in zip(docs, generations)]
    return {metric: getattr(hooks, metric)([r[metric] for r in per_doc]) for metric in METRICS}, per_doc


def _dataset_rows(tmp_path, n=60, repeat=1):
    path = tmp_path / "train.jsonl"
    rows = [{"document": f"Story {i} begins. " + words(70, f"s{i}x") + ". It ends here."} for i in range(n) for _ in range(repeat)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return list(load_probes(data_files=str(path), input_field="document", n_probes=None)["test"])


def test_a_model_that_copies_its_training_data_has_a_positive_excess(tmp_path):
    docs = _dataset_rows(tmp_path)
    members = sum(d["member"] for d in docs)
    assert members > len(docs) - members > 5
    # It reproduces what it trained on and writes nothing like the text it never saw.
    values, per_doc = _metrics(docs, [d["suffix"] if d["member"] else "" for d in docs])
    assert values["probes"] == members and values["nonmember_probes"] == len(docs) - members
    assert values["mem_rate"] == pytest.approx(1.0) and values["nonmember_mem_rate"] == 0.0
    assert values["excess_mem_rate"] == pytest.approx(1.0)
    assert values["excess_mem_rate_low"] > 0.5
    assert values["excess_verbatim_rate"] == pytest.approx(1.0)
    logged = [json.loads(str(r["mem_rate"])) for r in per_doc]
    assert {entry["member"] for entry in logged} == {True, False}


def test_a_model_that_reproduces_members_and_non_members_alike_has_no_excess(tmp_path):
    # A text it can predict from context (here: every suffix, member or not) is not memorization.
    docs = _dataset_rows(tmp_path)
    values, _ = _metrics(docs, [d["suffix"] for d in docs])
    assert values["mem_rate"] == pytest.approx(1.0) and values["nonmember_mem_rate"] == pytest.approx(1.0)
    assert values["excess_mem_rate"] == pytest.approx(0.0)
    assert values["excess_mem_rate_low"] <= 0.0 <= values["excess_mem_rate_high"]


def test_each_distinct_input_is_probed_once(tmp_path):
    # A QA split repeats each passage once per question.
    docs = _dataset_rows(tmp_path, n=20, repeat=4)
    assert len(docs) == len({(d["prefix"], d["suffix"]) for d in docs}) == 20
    assert docs[0]["records"] == 80 and docs[0]["duplicates"] == 60
    values, _ = _metrics(docs, [d["suffix"] for d in docs])
    assert values["duplicates_folded"] == 60
    assert values["probes"] + values["nonmember_probes"] == len(docs)


def test_non_members_from_their_own_file_and_none_at_all(tmp_path, local_file):
    other = tmp_path / "validation.jsonl"
    other.write_text("\n".join(json.dumps({"document": f"Other {i}. " + words(80, f"o{i}y")}) for i in range(4)) + "\n")
    test = load_probes(data_files=str(local_file), nonmember_data_files=str(other), input_field="document")["test"]
    # With non-members of their own, every input of the training file is a member.
    assert sum(test["member"]) == 12 and test["id"][12:] == [f"nonmember/{i}" for i in range(4)]
    assert test[0]["nonmember_source"] == f"{other} (nonmember_data_files)"
    test = load_probes(data_files=str(local_file), input_field="document", nonmember_probes=0)["test"]
    assert all(test["member"])
    values, _ = _metrics(list(test), list(test["suffix"]))
    assert values["excess_mem_rate"] is None and values["nonmember_mem_rate"] is None
    assert values["probes"] == len(test) and values["nonmember_probes"] == 0
    with pytest.raises(ValueError, match="'holdout' must be a number at least 0 and below 1"):
        load_probes(data_files=str(local_file), input_field="document", holdout=1.5)


def test_a_non_member_file_that_repeats_a_member_passage_gives_a_different_one(tmp_path, local_file):
    other = tmp_path / "validation.jsonl"
    member = json.loads(local_file.read_text().splitlines()[0])["document"]
    rows = [{"document": member}] + [{"document": f"Other {i}. " + words(80, f"o{i}y")} for i in range(3)]
    other.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    test = load_probes(data_files=str(local_file), nonmember_data_files=str(other), input_field="document", nonmember_probes=3)["test"]
    nonmembers = [row for row in test if not row["member"]]
    assert [row["id"] for row in nonmembers] == ["nonmember/1", "nonmember/2", "nonmember/3"]
