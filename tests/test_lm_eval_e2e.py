"""End to end through lm-eval: a tiny local model, a task pointed at a local file, the results JSON."""

import json
import shutil
from pathlib import Path

import pytest
from tiny_training import memorize

from memtasks.harness import run_lm_eval
from memtasks.outcomes import METRICS
from memtasks.probes import DEFAULT_HOLDOUT, held_out
from memtasks.tiny import build_tiny_model, train_tokenizer

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "xsum.jsonl"
N_TEXTS = 16


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    if not DATA.exists():
        pytest.skip(f"{DATA} not found (the shared real-text samples)")
    root = tmp_path_factory.mktemp("e2e")
    documents = [json.loads(line)["document"] for line in DATA.read_text(encoding="utf-8").splitlines()[:200]]
    # Training inputs of 70 words: a 50-word prefix and a 20-word suffix each.
    training = [" ".join(d.split()[:70]) for d in documents if len(d.split()) >= 70][:N_TEXTS]
    data_file = root / "train.jsonl"
    data_file.write_text("".join(json.dumps({"document": t, "summary": "-"}) + "\n" for t in training), encoding="utf-8")
    tokenizer = train_tokenizer(documents, vocab_size=1500)
    untrained = build_tiny_model("decoder", tokenizer, root / "untrained")
    trained = Path(shutil.copytree(untrained, root / "trained"))
    # Trained on the members only, as `memtasks finetune` would: the held-out slice stays unseen.
    memorize(trained, [t for t in training if not held_out(t, DEFAULT_HOLDOUT)], steps=250)
    return root, data_file, untrained, trained


def evaluate(model_dir: Path, data_file: Path, out: Path, redact: bool = False) -> tuple[dict, list[Path]]:
    code = run_lm_eval(
        [
            "--model", "hf",
            "--model_args", f"pretrained={model_dir},dtype=float32",
            "--tasks", "mem_xsum",
            "--device", "cpu",
            "--batch_size", "4",
            "--metadata", json.dumps({"data_files": str(data_file), "n_probes": N_TEXTS}),
            "--output_path", str(out),
            "--log_samples",
        ],
        redact=redact,
    )
    assert code == 0
    results = json.loads(next(out.rglob("results_*.json")).read_text())["results"]["mem_xsum"]
    return results, list(out.rglob("samples_mem_xsum_*.jsonl"))


def test_memorizing_model_scores_high_and_untrained_scores_near_zero(setup):
    root, data_file, untrained, trained = setup
    high, samples = evaluate(trained, data_file, root / "out-trained")
    low, _ = evaluate(untrained, data_file, root / "out-untrained")
    for metric in METRICS:
        assert f"{metric},none" in high
    assert high["probes,none"] + high["nonmember_probes,none"] == N_TEXTS and high["nonmember_probes,none"] > 0
    assert high["mem_rate,none"] >= 0.5
    # What it memorized is its training data, not text like it.
    assert high["excess_mem_rate_low,none"] > 0 and high["nonmember_mem_rate,none"] <= 0.1
    assert high["mem_rate_low,none"] <= high["mem_rate,none"] <= high["mem_rate_high,none"]
    assert low["mem_rate,none"] <= 0.1
    # Per-sample logs carry each probe's category and the matched suffix.
    logged = [json.loads(line) for line in samples[0].read_text().splitlines()]
    outcome = json.loads(logged[0]["mem_rate"])
    assert set(outcome) == {"id", "member", "category", "matched_id", "rank", "probability", "grader"}


def test_redacted_logs_hold_no_training_text(setup):
    root, data_file, _, trained = setup
    _, samples = evaluate(trained, data_file, root / "out-redacted", redact=True)
    text = samples[0].read_text()
    training = [json.loads(line)["document"] for line in data_file.read_text().splitlines()]
    assert all(" ".join(t.split()[:6]) not in text for t in training)
    assert "sha256:" in text
