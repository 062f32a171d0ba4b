"""memtasks on a real pre-trained language model (SmolLM2-135M, converted offline from PyPI).

What a rate must mean: a model that has seen none of the records shows no excess
over its non-member floor, a model fine-tuned until it memorizes a handful of
records shows a positive one, and an input that occurs several times is probed
once. Slow on a CPU: the model is converted once per test run (see
``tests/conftest.py``) and every generation is a real 135M-parameter decode;
torch takes as many threads as ``OMP_NUM_THREADS`` allows (set it to 1 on a
busy machine, where two threads can stall each other).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest

from memtasks.finetune import FinetuneConfig, Runtime, finetune
from memtasks.harness import run_lm_eval
from memtasks.probes import held_out

pytestmark = pytest.mark.slow

DEMO_DATA = Path(str(resources.files("memtasks") / "demo_data"))


def _records(name: str, n: int) -> list[dict]:
    return [json.loads(line) for line in (DEMO_DATA / name).read_text(encoding="utf-8").splitlines()[:n]]


def _write(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _probe(model_args: str, metadata: dict, out: Path) -> dict:
    code = run_lm_eval(
        [
            "--model", "hf",
            "--model_args", model_args,
            "--tasks", "mem_xsum",
            "--device", "cpu",
            "--batch_size", "16",
            "--metadata", json.dumps(metadata),
            "--output_path", str(out),
        ]
    )
    assert code == 0
    return json.loads(next(out.rglob("results_*.json")).read_text())["results"]["mem_xsum"]


def test_a_pretrained_model_shows_no_excess_on_news_and_repeated_inputs_are_probed_once(smollm2_dir, tmp_path):
    articles = [a for a in _records("xsum_train.jsonl", 56) if len(a["document"].split()) >= 60]
    # Every fifth article twice more, as a QA split repeats a passage once per question.
    repeated = [a for i, a in enumerate(articles) if i % 5 == 0]
    data = _write(tmp_path / "xsum.jsonl", articles + repeated + repeated)
    held = sum(held_out(a["document"], 0.5) for a in articles)
    results = _probe(f"pretrained={smollm2_dir}", {"data_files": str(data), "holdout": 0.5}, tmp_path / "out")
    assert results["duplicates_folded,none"] == 2 * len(repeated)
    assert results["probes,none"] == len(articles) - held
    assert results["nonmember_probes,none"] == min(held, len(articles) - held) >= 15
    assert results["excess_mem_rate_low,none"] <= 0 <= results["excess_mem_rate_high,none"]


def test_a_model_fine_tuned_to_memorize_a_handful_of_records_shows_a_positive_excess(smollm2_dir, tmp_path):
    members = _write(tmp_path / "train.jsonl", _records("xsum_train.jsonl", 8))
    nonmembers = _write(tmp_path / "heldout.jsonl", _records("xsum_heldout.jsonl", 8))
    config = FinetuneConfig(
        tasks=("mem_xsum",),
        model=str(smollm2_dir),
        epochs=6,
        learning_rate=3e-4,
        batch_size=4,
        max_source_tokens=128,
        max_target_tokens=32,
        data_files={"mem_xsum": str(members)},
        eval_data_files={"mem_xsum": str(nonmembers)},
        eval_examples=2,
        # Trained to write its inputs: memorization the probes must find, whatever the task's outputs carry.
        train_on_input=True,
    )
    finetune(config, tmp_path / "model", Runtime(device="cpu", progress=False))
    results = _probe(
        f"pretrained={tmp_path / 'model'}",
        {"data_files": str(members), "nonmember_data_files": str(nonmembers)},
        tmp_path / "out",
    )
    assert results["probes,none"] == 8 and results["nonmember_probes,none"] == 8
    assert results["mem_rate,none"] >= 0.5
    assert results["excess_mem_rate_low,none"] > 0
