"""Data parallel under accelerate: two processes (CPU, gloo) give the rates of one, on a model that memorizes.

``accelerate launch --multi_gpu`` on a machine without GPUs, with ``ACCELERATE_USE_CPU=1``, starts the
processes with torchrun and joins them in a gloo group: the same code path as a multi-GPU run, on CPUs.
memtasks' model class shares the documents between the processes (lm-eval's ``hf`` does so only
across GPUs), lm-eval gathers the per-probe records in the main process, and memtasks scores them
there in the order one process has them.
"""

import json
import os
import pickle
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_training import memorize

from memtasks.harness.hooks import ProbeResult, task_rates
from memtasks.probes import DEFAULT_HOLDOUT, held_out
from memtasks.tiny import build_tiny_model, train_tokenizer

DEMO = Path(__file__).resolve().parents[1] / "memtasks" / "demo_data" / "xsum_train.jsonl"
N_TEXTS = 16
# An odd number of documents: lm-eval pads the shorter share with a copy of its last request.
NONMEMBERS = 6


@pytest.fixture(scope="module")
def memorizer(tmp_path_factory):
    """A tiny GPT-2 trained on half of its members: it reproduces some training inputs, not all."""
    root = tmp_path_factory.mktemp("scale")
    documents = [json.loads(line)["document"] for line in DEMO.read_text(encoding="utf-8").splitlines()]
    # Inputs of 70 words: a 50-word prefix and a 20-word suffix each.
    training = [" ".join(d.split()[:70]) for d in documents if len(d.split()) >= 70][:N_TEXTS]
    data_file = root / "train.jsonl"
    data_file.write_text("".join(json.dumps({"document": t}) + "\n" for t in training), encoding="utf-8")
    model = build_tiny_model("decoder", train_tokenizer(documents, vocab_size=1500), root / "model")
    members = [t for t in training if not held_out(t, DEFAULT_HOLDOUT)]
    memorize(model, members[::2], steps=200)
    return root, model, data_file, training


def _arguments(model: Path, data_file: Path, out: Path) -> list[str]:
    metadata = {"data_files": str(data_file), "n_probes": N_TEXTS, "nonmember_probes": NONMEMBERS}
    return [
        "--model_args", f"pretrained={model},dtype=float32", "--tasks", "mem_xsum", "--device", "cpu",
        "--batch_size", "3", "--metadata", json.dumps(metadata), "--output_path", str(out), "--log_samples",
    ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _read(out: Path) -> tuple[dict, dict[int, dict]]:
    """The task's metrics (without lm-eval's "N/A" stderrs) and each document's outcome by doc id."""
    (results,) = out.rglob("results_*.json")
    (samples,) = out.rglob("samples_mem_xsum_*.jsonl")
    metrics = json.loads(results.read_text())["results"]["mem_xsum"]
    rows = [json.loads(line) for line in samples.read_text(encoding="utf-8").splitlines()]
    outcomes = {row["doc_id"]: json.loads(row["mem_rate"]) for row in rows}
    assert len(outcomes) == len(rows)
    return {k: v for k, v in metrics.items() if "_stderr" not in k}, outcomes


@pytest.mark.e2e
def test_two_processes_under_accelerate_give_the_rates_of_one(memorizer):
    root, model, data_file, training = memorizer
    # Both runs in processes of their own with one thread each, so that no thread count changes a float of the generations.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    alone = [sys.executable, "-m", "memtasks.cli", "eval", *_arguments(model, data_file, root / "one")]
    done = subprocess.run(alone, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    one, one_outcomes = _read(root / "one")

    env["ACCELERATE_USE_CPU"] = "1"
    launch = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(_free_port()),
        "-m", "memtasks.cli", "eval", "--redact", *_arguments(model, data_file, root / "two"),
    ]
    done = subprocess.run(launch, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    # Each process built and generated its own share of the documents.
    assert "Building contexts for mem_xsum on rank 0" in done.stderr
    assert "Building contexts for mem_xsum on rank 1" in done.stderr
    # The main process alone printed the summary and wrote one results file and one samples file (read below).
    assert sum(line.startswith("mem_xsum: ") for line in done.stdout.splitlines()) == 1
    two, two_outcomes = _read(root / "two")

    assert two == one
    assert one["probes,none"] + one["nonmember_probes,none"] == N_TEXTS - 1
    # A model that memorizes some of its training inputs, and what it memorized is its training data.
    assert 0 < one["mem_rate,none"] < 1 and one["mem_rate_low,none"] < one["mem_rate_high,none"]
    assert one["excess_mem_rate_low,none"] > 0
    # Every document's outcome is logged, scored, and the same as in one process.
    assert two_outcomes == one_outcomes
    assert sorted(one_outcomes) == list(range(N_TEXTS - 1))
    assert {o["category"] for o in one_outcomes.values()} >= {"verbatim", "none"}
    # Redacted in the main process after gathering: no training text in the logs.
    logged = next((root / "two").rglob("samples_mem_xsum_*.jsonl")).read_text(encoding="utf-8")
    assert all(" ".join(t.split()[:6]) not in logged for t in training)


SUFFIX = "the committee said the new bridge over the river would open to traffic next spring after years of delays"


def _records() -> list[ProbeResult]:
    """Six member probes: the second and third with the same suffix (a tie for retrieval), three generations that reproduce it."""
    other = "another passage number {} about the weather and the rain in the hills with more words"
    return [
        ProbeResult(f"p{i}", SUFFIX if i in (1, 2) else other.format(i), SUFFIX if i < 3 else "nothing", 10, 0, position=i)
        for i in range(6)
    ]


def test_records_gathered_out_of_order_are_scored_in_document_order():
    # One process's share after the other's, as lm-eval gathers two processes' records: p2 before p1.
    in_order, gathered = _records(), _records()
    gathered = gathered[::2] + gathered[1::2]
    assert task_rates(gathered) == task_rates(in_order)
    # The two tied suffixes: the first document's wins, whatever order the records came in.
    assert [str(r) for r in sorted(gathered, key=lambda r: r.position)] == [str(r) for r in in_order]
    assert json.loads(str(in_order[2])) == {
        "id": "p2", "member": True, "category": "verbatim", "matched_id": "p1", "rank": 1, "probability": None, "grader": None,
    }


def test_a_copy_of_a_record_made_before_scoring_logs_the_scored_outcome():
    # lm-eval gathers the per-sample logs apart from the metrics: copies of the records, pickled before scoring.
    records = _records()
    copies = pickle.loads(pickle.dumps(records))
    task_rates(records)
    assert [str(c) for c in copies] == [str(r) for r in records]
    assert json.loads(str(copies[2]))["category"] == "verbatim" and json.loads(str(copies[4]))["category"] == "none"
    # A record of no scored run stays unscored.
    unseen = ProbeResult("p9", SUFFIX, "a generation no run scored", 10, 0)
    assert json.loads(str(unseen))["category"] == "unscored"
