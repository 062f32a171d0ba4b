"""memtasks eval against lm-eval itself: the same generations, other tasks untouched, redaction that cannot leak."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from memtasks.harness import MODEL_NAME, run_lm_eval
from memtasks.harness.launch import LaunchError, _memtasks_tasks, effective_settings, include_paths, parse_arguments, task_names
from memtasks.tasks import task_configs_dir
from memtasks.tiny import build_tiny_model, train_tokenizer

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "xsum.jsonl"
WINDOW = 6


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    if not DATA.exists():
        pytest.skip(f"{DATA} not found (the shared real-text samples)")
    root = tmp_path_factory.mktemp("launch")
    documents = [json.loads(line)["document"] for line in DATA.read_text(encoding="utf-8").splitlines()[:120]]
    training = [" ".join(d.split()[:70]) for d in documents if len(d.split()) >= 70][:8]
    data_file = root / "train.jsonl"
    data_file.write_text("".join(json.dumps({"document": t, "summary": "-"}) + "\n" for t in training), encoding="utf-8")
    tokenizer = train_tokenizer(documents, vocab_size=800)
    return root, data_file, training, tokenizer


@pytest.fixture(scope="module")
def seq2seq(corpus):
    root, _, _, tokenizer = corpus
    return build_tiny_model("seq2seq", tokenizer, root / "t5")


@pytest.fixture(scope="module")
def decoder(corpus):
    root, _, _, tokenizer = corpus
    return build_tiny_model("decoder", tokenizer, root / "gpt2")


def _arguments(model_dir, data_file, *extra, model=MODEL_NAME, **metadata):
    metadata = {"data_files": str(data_file), "n_probes": 8, **metadata}
    return [
        "--model", model, "--model_args", f"pretrained={model_dir},dtype=float32", "--tasks", "mem_xsum",
        "--device", "cpu", "--batch_size", "8", "--metadata", json.dumps(metadata), *extra,
    ]


def _not_json(constant: str):
    raise AssertionError(f"{constant} is not JSON")


def _generations(samples: Path) -> dict[str, str]:
    rows = [json.loads(line) for line in samples.read_text(encoding="utf-8").splitlines()]
    return {row["doc"]["id"]: row["resps"][0][0] for row in rows}


def test_memtasks_eval_and_lm_evals_simple_evaluate_generate_the_same(corpus, seq2seq):
    root, data_file, _, _ = corpus
    out = root / "memtasks-eval"
    # Without non-members their rates are unscored: null, where NaN would not be JSON.
    assert run_lm_eval(_arguments(seq2seq, data_file, "--output_path", str(out), "--log_samples", nonmember_probes=0)) == 0
    ours = _generations(next(out.rglob("samples_mem_xsum_*.jsonl")))
    # Strict JSON: no NaN or Infinity anywhere in the results file.
    results = json.loads(next(out.rglob("results_*.json")).read_text(), parse_constant=_not_json)
    assert results["config"]["model"] == MODEL_NAME
    assert results["results"]["mem_xsum"]["nonmember_mem_rate,none"] is None

    # The same task under lm-eval's own API, with the registered class and memtasks' folder as include path.
    script = f"""
import json, sys
import memtasks.harness.model
from lm_eval import simple_evaluate
from lm_eval.tasks import TaskManager
manager = TaskManager(include_path={str(task_configs_dir())!r}, include_defaults=False,
                      metadata={{"data_files": {str(data_file)!r}, "n_probes": 8, "nonmember_probes": 0}})
results = simple_evaluate(model="memtasks-hf", model_args="pretrained={seq2seq},dtype=float32", tasks=["mem_xsum"],
                          device="cpu", batch_size=8, task_manager=manager, log_samples=True)
json.dump({{s["doc"]["id"]: s["resps"][0][0] for s in results["samples"]["mem_xsum"]}}, sys.stdout)
"""
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    plain = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    theirs = json.loads(plain.stdout.strip().splitlines()[-1])
    assert theirs == ours
    # max_gen_toks bounds the decoder's new tokens: no generation is longer than 64 tokens' worth of words.
    assert all(len(text.split()) <= 64 for text in ours.values())


def test_another_tasks_generations_are_unchanged_by_memtasks(corpus, seq2seq, tmp_path):
    _, data_file, _, _ = corpus
    (tmp_path / "echo.yaml").write_text(
        "task: third_party_echo\n"
        "dataset_path: json\n"
        f"dataset_kwargs: {{data_files: {{test: {data_file}}}}}\n"
        "test_split: test\n"
        "output_type: generate_until\n"
        "doc_to_text: '{{document}}'\n"
        "doc_to_target: '{{summary}}'\n"
        "generation_kwargs: {until: [], max_gen_toks: 16, do_sample: false}\n"
        "metric_list: [{metric: exact_match, aggregation: mean, higher_is_better: true}]\n"
    )
    out = tmp_path / "with-memtasks"
    code = run_lm_eval([
        "--model", "hf", "--model_args", f"pretrained={seq2seq},dtype=float32", "--tasks", "third_party_echo",
        "--include_path", str(tmp_path), "--device", "cpu", "--batch_size", "8", "--limit", "4",
        "--output_path", str(out), "--log_samples",
    ])
    assert code == 0
    ours = _generations_by_doc(next(out.rglob("samples_third_party_echo_*.jsonl")))
    script = f"""
import json, sys
from lm_eval import simple_evaluate
from lm_eval.tasks import TaskManager
manager = TaskManager(include_path={str(tmp_path)!r}, include_defaults=False)
results = simple_evaluate(model="hf", model_args="pretrained={seq2seq},dtype=float32", tasks=["third_party_echo"],
                          device="cpu", batch_size=8, limit=4, task_manager=manager, log_samples=True)
json.dump({{str(s["doc_id"]): s["resps"][0][0] for s in results["samples"]["third_party_echo"]}}, sys.stdout)
"""
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    plain = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    assert json.loads(plain.stdout.strip().splitlines()[-1]) == ours


def _generations_by_doc(samples: Path) -> dict[str, str]:
    rows = [json.loads(line) for line in samples.read_text(encoding="utf-8").splitlines()]
    return {str(row["doc_id"]): row["resps"][0][0] for row in rows}


def _windows(texts, size=WINDOW):
    for text in texts:
        words = text.split()
        for start in range(0, len(words) - size + 1, size):
            yield " ".join(words[start : start + size])


@pytest.mark.parametrize(
    "form",
    [
        lambda out: ["-o", str(out)],
        lambda out: [f"--output_path={out}"],
        lambda out: ["--output_path", str(out / "run.json")],
        lambda out: ["--output_path", str(out)],
    ],
    ids=["-o DIR", "--output_path=DIR", "--output_path FILE.json", "--output_path DIR"],
)
def test_redacted_runs_write_no_training_text_in_any_output_form(corpus, decoder, tmp_path, capfd, form):
    _, data_file, training, _ = corpus
    out = tmp_path / "out"
    assert run_lm_eval(_arguments(decoder, data_file, *form(out), "--log_samples"), redact=True) == 0
    written = [p for p in out.rglob("*") if p.is_file()]
    assert any(p.name.startswith("samples_mem_xsum_") for p in written)
    streams = capfd.readouterr()
    texts = [p.read_text(encoding="utf-8") for p in written] + [streams.out, streams.err]
    # Every window of the training text, and of what the model generated, is absent.
    generations = [json.loads(line).get("resps") for p in written if p.suffix == ".jsonl" for line in p.read_text().splitlines()]
    assert all(str(g).count("sha256:") for g in generations)
    leaks = [w for w in _windows(training) if any(w in text for text in texts)]
    assert leaks == []


@pytest.mark.parametrize(
    "channel",
    [["--use_cache", "cache"], ["--write_out"], ["--wandb_args", "project=x"], ["--hf_hub_log_args", "hub_results_org=x"], ["--cache_requests"]],
    ids=["use_cache", "write_out", "wandb", "hub", "cache_requests"],
)
def test_a_redacted_run_refuses_every_channel_that_would_carry_text(corpus, decoder, tmp_path, channel):
    _, data_file, _, _ = corpus
    out = tmp_path / "out"
    with pytest.raises(LaunchError, match="--redact"):
        run_lm_eval(_arguments(decoder, data_file, "--output_path", str(out), "--log_samples", *channel), redact=True)
    assert not out.exists() and not (tmp_path / "cache").exists()


def test_a_redacted_run_reads_channels_from_lm_evals_config_file_too(corpus, decoder, tmp_path):
    _, data_file, _, _ = corpus
    config = tmp_path / "run.yaml"
    config.write_text("write_out: true\n")
    with pytest.raises(LaunchError, match="--write_out"):
        run_lm_eval(_arguments(decoder, data_file, "--config", str(config)), redact=True)


def test_tasks_are_read_as_lm_eval_reads_them():
    settings = effective_settings(parse_arguments(["--tasks", "mem_xsum", "arc_easy", "--model", "hf"]))
    assert task_names(settings) == ["mem_xsum", "arc_easy"]
    assert task_names(effective_settings(parse_arguments(["--tasks=mem_xsum,mem_imdb"]))) == ["mem_xsum", "mem_imdb"]
    paths = include_paths(settings)
    assert paths == [str(task_configs_dir())]
    assert _memtasks_tasks(["mem_xsum", "arc_easy", "mem_paper"], paths) == (["mem_xsum", "mem_paper"], ["arc_easy"])
    with pytest.raises(LaunchError, match="needs --tasks"):
        task_names(effective_settings(parse_arguments(["--model", "hf"])))


def test_a_chat_template_is_refused_for_bare_prefix_probes(corpus, decoder):
    _, data_file, _, _ = corpus
    with pytest.raises(LaunchError, match="--apply_chat_template"):
        run_lm_eval(_arguments(decoder, data_file, "--apply_chat_template"))


def test_the_lm_eval_tasks_entry_point_resolves_memtasks_tasks():
    """Read the group as an lm-eval that scans it would: each entry point names a package of task YAMLs."""
    from importlib.metadata import entry_points

    from lm_eval.tasks import TaskManager

    folders = [folder for point in entry_points(group="lm_eval.tasks") for folder in point.load().__path__]
    assert str(task_configs_dir()) in folders
    manager = TaskManager(include_path=folders, include_defaults=False)
    assert {"mem_multinews", "mem_paper", "mem_decoding_variants"} <= set(manager.all_tasks)


def test_a_memorization_task_prints_one_summary_line(corpus, decoder, capsys):
    from memtasks.harness.launch import summary_line

    metrics = {"mem_rate,none": 0.5, "mem_rate_low,none": 0.25, "mem_rate_high,none": 0.75, "probes,none": 8,
               "verbatim_rate,none": 0.375, "idea_rate,none": 0.0, "paraphrase_rate,none": 0.125,
               "nonmember_probes,none": 0, "nonmember_mem_rate,none": None}
    assert summary_line("mem_x", metrics) == (
        "mem_x: 50.0% [25.0%, 75.0%] of 8 member probes memorized (verbatim 37.5%, idea 0.0%, paraphrase 12.5%)"
    )
    _, data_file, _, _ = corpus
    assert run_lm_eval(_arguments(decoder, data_file)) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("mem_xsum: ") and "excess" in out[0]
    assert run_lm_eval(_arguments(decoder, data_file), verbose=True) == 0
    assert "|mem_rate" in capsys.readouterr().out.replace(" ", "")


def test_uploads_run_through_lm_evals_own_command_with_memtasks_folder(corpus, decoder, tmp_path):
    # Without --redact, a run that asks lm-eval for uploads is lm-eval's own run command, given
    # memtasks' folder beside the user's (no token here, so nothing is pushed).
    _, data_file, _, _ = corpus
    out = tmp_path / "out"
    assert run_lm_eval(_arguments(decoder, data_file, "--output_path", str(out), "--hf_hub_log_args", "public_repo=False")) == 0
    results = json.loads(next(out.rglob("results_*.json")).read_text())
    assert results["config"]["model"] == MODEL_NAME and "mem_rate,none" in results["results"]["mem_xsum"]


def test_a_missing_or_empty_data_file_is_refused_before_any_model_loads(tmp_path):
    never = str(tmp_path / "no-such-model")
    with pytest.raises(LaunchError, match="data_files: .*missing.jsonl does not exist"):
        run_lm_eval(_arguments(never, tmp_path / "missing.jsonl"))
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(LaunchError, match="data_files: .*empty.jsonl: the file is empty"):
        run_lm_eval(_arguments(never, tmp_path / "empty.jsonl"))


def test_lm_evals_validate_command_sees_memtasks_tasks(capsys):
    assert run_lm_eval(["validate", "--tasks", "mem_xsum,mem_imdb_prefix10"]) == 0
    assert "All tasks found and valid" in capsys.readouterr().out


def test_a_model_whose_fine_tuning_did_not_finish_is_refused(corpus, tmp_path):
    _, data_file, _, _ = corpus
    model = tmp_path / "half-trained"
    model.mkdir()
    (model / "memtasks_finetune.json").write_text(json.dumps({"complete": False, "stopped": {"reason": "interrupted"}}))
    with pytest.raises(LaunchError, match="unfinished fine-tuning run"):
        run_lm_eval(_arguments(model, data_file))


def test_the_generation_bar_advances_a_whole_batch_at_a_time(corpus, decoder, capfd):
    # lm-eval's bar advanced request by request after each batch and, redrawn at most every 0.1 s, showed
    # "1/N" with a batch's time per request: an estimate a batch size too long.
    import re

    root, data_file, _, _ = corpus
    assert run_lm_eval(_arguments(decoder, data_file)) == 0
    shown = [(int(done), int(total)) for done, total in re.findall(r"generate: +\d+%\|[^|]*\| (\d+)/(\d+) ", capfd.readouterr().err)]
    assert shown and all(done % 8 == 0 for done, total in shown if done < total), shown


def test_a_run_outside_a_git_repository_ends_without_gits_complaint(corpus, decoder, tmp_path, monkeypatch, capfd):
    # lm-eval records the working folder's commit with `git describe`, which complains outside a repository.
    if subprocess.run(["git", "describe", "--always"], cwd=tmp_path, capture_output=True).returncode == 0:
        pytest.skip(f"{tmp_path} is inside a git repository")
    _, data_file, _, _ = corpus
    monkeypatch.chdir(tmp_path)
    assert run_lm_eval(_arguments(decoder, data_file, "--output_path", str(tmp_path / "out"))) == 0
    streams = capfd.readouterr()
    assert "not a git repository" not in streams.err
    assert streams.out.startswith("mem_xsum: ")
