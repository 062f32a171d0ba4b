"""Attention dispersion: closed-form measures, masks, streaming capture, the command end to end, bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
import torch
from tiny_training import load_tiny_model

from memtasks.attention import dispersion
from memtasks.attention.capture import (
    AttentionInputError,
    AttentionModelError,
    attention_modules,
    encode_pair,
    forward_layers,
)
from memtasks.attention.measure import measure_attention, select_layers
from memtasks.attention.predict import predict_memorization, read_metric
from memtasks.stats import permutation_p_value, ranks, spearman
from memtasks.cli import main
from memtasks.tiny import build_tiny_model, train_tokenizer

torch.set_num_threads(1)

DATA = Path(__file__).parent / "data" / "example_probes.jsonl"
INSTRUCTION = "Summarize the following document in one sentence."


# ---------------------------------------------------------------- closed forms


def _js_onehot_from_uniform(s: int) -> float:
    """JS(delta_j, uniform over s) in nats, by hand: m = (delta + u) / 2."""
    kl_delta = math.log(2 * s / (s + 1))
    kl_uniform = (1 / s) * math.log(2 / (s + 1)) + ((s - 1) / s) * math.log(2)
    return (kl_delta + kl_uniform) / 2


def test_uniform_rows_are_fully_dispersed():
    rows = np.full((3, 5, 8), 1 / 8)  # 3 heads, 5 output tokens, 8 input tokens
    np.testing.assert_allclose(dispersion.cad(rows), 1.0)
    np.testing.assert_allclose(dispersion.coverage(rows), 1.0)
    np.testing.assert_allclose(dispersion.row_divergence(rows), 0.0, atol=1e-12)


def test_one_hot_rows_on_one_token_are_fully_concentrated():
    rows = np.zeros((4, 8))
    rows[:, 3] = 1
    assert dispersion.cad(rows) == pytest.approx(0.0)
    assert dispersion.coverage(rows) == pytest.approx(0.0)
    assert dispersion.row_divergence(rows) == pytest.approx(0.0)


def test_one_hot_rows_on_different_tokens_cover_the_input_without_dispersion():
    s = 6
    rows = np.eye(s)  # output token t looks only at input token t
    assert dispersion.cad(rows) == pytest.approx(0.0)
    assert dispersion.coverage(rows) == pytest.approx(1.0)
    assert dispersion.row_divergence(rows) == pytest.approx(_js_onehot_from_uniform(s) / math.log(2))


def test_half_and_half_rows():
    # Each row spreads evenly over half of 8 input tokens: H = ln 4, so CAD = ln 4 / ln 8 = 2/3.
    rows = np.zeros((4, 8))
    rows[:2, :4] = 1 / 4
    rows[2:, 4:] = 1 / 4
    assert dispersion.cad(rows) == pytest.approx(2 / 3)
    assert dispersion.coverage(rows) == pytest.approx(1.0)
    # JS(uniform on a half, uniform on all) = 3/4 ln(4/3), worked out by hand.
    assert dispersion.row_divergence(rows) == pytest.approx(0.75 * math.log(4 / 3) / math.log(2))
    # Every row on the same half: same CAD, coverage equal to it, no divergence.
    same = np.zeros((4, 8))
    same[:, :4] = 1 / 4
    assert dispersion.coverage(same) == pytest.approx(2 / 3)
    assert dispersion.row_divergence(same) == pytest.approx(0.0)
    # Two tokens with half the mass each: ln 2 / ln S.
    pair = np.zeros((1, 16))
    pair[0, [2, 9]] = 0.5
    assert dispersion.cad(pair) == pytest.approx(0.25)


def _kl_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """KL(p || q) = sum_j p_j ln(p_j / q_j) in nats over the last axis, with 0 ln 0 = 0 (q_j > 0 wherever p_j > 0)."""
    ratio = np.where(p > 0, p / np.where(q > 0, q, 1.0), 1.0)
    return np.sum(p * np.log(ratio), axis=-1)


def test_coverage_minus_cad_is_the_mean_kl_from_the_average_row():
    rows = np.random.default_rng(0).dirichlet(np.full(10, 0.3), size=(2, 7))
    mean_kl = _kl_divergence(rows, rows.mean(axis=-2, keepdims=True)).mean(axis=-1)
    np.testing.assert_allclose(dispersion.coverage(rows) - dispersion.cad(rows), mean_kl / math.log(10))
    assert np.all(dispersion.coverage(rows) >= dispersion.cad(rows))
    assert np.all((0 <= dispersion.row_divergence(rows)) & (dispersion.row_divergence(rows) <= 1))


def test_measures_refuse_what_has_no_dispersion():
    with pytest.raises(dispersion.AttentionRowError, match="at least 2"):
        dispersion.cad(np.ones((3, 1)))
    with pytest.raises(dispersion.AttentionRowError, match="no output token"):
        dispersion.coverage(np.ones((0, 4)))


def test_restrict_rows_drops_masked_columns_and_renormalizes():
    attention = np.array(
        [
            [0.5, 0.1, 0.2, 0.2],  # query 0: not an output row
            [0.4, 0.3, 0.1, 0.2],
            [0.0, 0.6, 0.3, 0.1],
        ]
    )
    rows = dispersion.restrict_rows(attention, rows=[1, 2], columns=[1, 2])
    np.testing.assert_allclose(rows, [[0.75, 0.25], [2 / 3, 1 / 3]])
    np.testing.assert_allclose(rows.sum(axis=-1), 1.0)
    with pytest.raises(dispersion.AttentionRowError, match="record 7: an output token gives no attention"):
        dispersion.restrict_rows(attention, rows=[2], columns=[0], where="record 7")


def test_bootstrap_mean_interval():
    values = np.array([0.2, 0.4, 0.6, 0.8])
    mean, low, high = dispersion.bootstrap_mean(values)
    assert mean == pytest.approx(0.5)
    assert 0.2 <= low < mean < high <= 0.8
    assert dispersion.bootstrap_mean(values) == dispersion.bootstrap_mean(values)  # seeded
    mean, low, high = dispersion.bootstrap_mean(np.full((5, 3), 0.7))
    np.testing.assert_allclose([mean, low, high], 0.7)


def test_select_layers():
    assert select_layers("last", 6) == [5]
    assert select_layers("all", 3) == [0, 1, 2]
    assert select_layers("0,-1", 6) == [0, 5]
    with pytest.raises(ValueError, match="layer 6 does not exist"):
        select_layers("6", 6)
    with pytest.raises(ValueError, match="'last', 'all'"):
        select_layers("first", 6)


# ---------------------------------------------------------------- tiny models


def _texts() -> list[str]:
    return [json.loads(line)["suffix"] for line in DATA.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("attention-models")
    tokenizer = train_tokenizer(_texts() + [INSTRUCTION], vocab_size=800)
    return {kind: build_tiny_model(kind, tokenizer, root / kind) for kind in ("seq2seq", "decoder")}


def _pairs(n: int = 3) -> list[tuple[str, str]]:
    texts = _texts()
    return [(f"{INSTRUCTION}\n\n{texts[i]}", texts[i + 100][:80]) for i in range(n)]


def test_masks_leave_only_the_input_text_as_columns(models):
    _, tokenizer = load_tiny_model(models["seq2seq"])
    source = f"{INSTRUCTION}\n\nThe river flooded </s> the town."
    pair = encode_pair(tokenizer, source, "A flood.", encoder_decoder=True, decoder_start_token_id=0, instruction=INSTRUCTION)
    kept = tokenizer.decode([pair.input_ids[i] for i in pair.columns])
    assert kept.replace(" ", "") == "Theriverflooded" + "thetown."
    assert INSTRUCTION.split()[0] not in kept
    # Teacher forcing: decoder position t reads y_{t-1} and every row predicts an output token.
    target = tokenizer("A flood.", add_special_tokens=False)["input_ids"]
    assert pair.decoder_input_ids == [0, *target[:-1]]
    assert pair.rows == list(range(len(target)))
    whole = encode_pair(tokenizer, source, "A flood.", encoder_decoder=True, decoder_start_token_id=0, instruction=None)
    assert len(whole.columns) > len(pair.columns)


def test_decoder_only_rows_are_the_positions_that_predict_output_tokens(models):
    _, tokenizer = load_tiny_model(models["decoder"])
    source, target = f"{INSTRUCTION}\n\nThe river flooded the town.", "A flood in town."
    pair = encode_pair(tokenizer, source, target, encoder_decoder=False, instruction=INSTRUCTION)
    target_ids = tokenizer(target, add_special_tokens=False)["input_ids"]
    assert [pair.input_ids[row + 1] for row in pair.rows] == target_ids
    assert max(pair.columns) < pair.rows[0]  # columns are input tokens only, before the separator


def test_truncation_is_counted_and_empty_outputs_refused(models):
    _, tokenizer = load_tiny_model(models["seq2seq"])
    long = " ".join(_texts()[:20])
    pair = encode_pair(tokenizer, long, "x y z", encoder_decoder=True, decoder_start_token_id=0, max_input_tokens=40)
    assert pair.input_truncated and len(pair.input_ids) == 40 and not pair.output_truncated
    with pytest.raises(AttentionInputError, match="data.jsonl: record 3: the output is empty"):
        encode_pair(tokenizer, long, "  ", encoder_decoder=True, decoder_start_token_id=0, where="data.jsonl: record 3")


@pytest.mark.parametrize("kind", ["seq2seq", "decoder"])
def test_streamed_layers_match_the_full_attention_output(models, kind):
    model, tokenizer = load_tiny_model(models[kind])
    model.set_attn_implementation("eager")
    pairs = _pairs(3)
    result = measure_attention(
        model, tokenizer, pairs, layers="all", instruction=INSTRUCTION, batch_size=2, max_input_tokens=120, progress=False
    )
    encoder_decoder = kind == "seq2seq"
    for i, (source, target) in enumerate(pairs):
        pair = encode_pair(
            tokenizer, source, target, encoder_decoder=encoder_decoder, decoder_start_token_id=0,
            instruction=INSTRUCTION, max_input_tokens=120,
        )
        with torch.no_grad():
            if encoder_decoder:
                out = model(input_ids=torch.tensor([pair.input_ids]), decoder_input_ids=torch.tensor([pair.decoder_input_ids]), output_attentions=True)
                weights = out.cross_attentions
            else:
                weights = model(input_ids=torch.tensor([pair.input_ids]), output_attentions=True).attentions
        for layer in range(2):
            rows = dispersion.restrict_rows(weights[layer][0].numpy(), pair.rows, pair.columns)
            for name, function in (("cad", dispersion.cad), ("coverage", dispersion.coverage), ("row_divergence", dispersion.row_divergence)):
                # Batched with padding (batch_size 2) and streamed per layer, yet the same as one unpadded pass.
                np.testing.assert_allclose(result.values[name][i, layer], function(rows), rtol=1e-5, atol=1e-7)
    assert result.attention == ("cross" if encoder_decoder else "self")
    assert result.layers == [0, 1] and len(result.samples) == 3


@pytest.mark.parametrize("kind", ["seq2seq", "decoder"])
def test_a_model_that_cannot_tell_tokens_apart_attends_uniformly(models, kind):
    # With query weights zeroed every score is equal: each output token attends
    # evenly to every position it may see, so over the input CAD = coverage = 1.
    model, tokenizer = load_tiny_model(models[kind])
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith(("EncDecAttention.q.weight", "attn.c_attn.weight")):
                if kind == "decoder":
                    parameter[:, : parameter.shape[0]] = 0  # GPT-2 packs q, k, v: zero q
                else:
                    parameter.zero_()
    result = measure_attention(model, tokenizer, _pairs(2), layers="all", instruction=INSTRUCTION, progress=False)
    summary = result.summary()
    assert summary["cad"][0] == pytest.approx(1.0, abs=1e-6)
    assert summary["coverage"][0] == pytest.approx(1.0, abs=1e-6)
    assert summary["row_divergence"][0] == pytest.approx(0.0, abs=1e-6)


def test_sub_model_declarations_are_followed(models):
    # BART declares its cross-attention on its decoder stack, not on the model itself.
    from transformers import BartConfig, BartForConditionalGeneration

    _, tokenizer = load_tiny_model(models["seq2seq"])
    torch.manual_seed(0)
    config = BartConfig(
        vocab_size=len(tokenizer), d_model=32, encoder_layers=1, decoder_layers=2, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, pad_token_id=0, eos_token_id=1,
        bos_token_id=1, decoder_start_token_id=1, max_position_embeddings=1024,
    )
    model = BartForConditionalGeneration(config).eval()
    assert [name for name, _, _ in attention_modules(model)] == [
        "model.decoder.layers.0.encoder_attn", "model.decoder.layers.1.encoder_attn"
    ]
    source, target = _pairs(1)[0]
    result = measure_attention(model, tokenizer, [(source, target)], layers="all", progress=False)
    pair = encode_pair(tokenizer, source, target, encoder_decoder=True, decoder_start_token_id=1)
    with torch.no_grad():
        weights = model(
            input_ids=torch.tensor([pair.input_ids]), decoder_input_ids=torch.tensor([pair.decoder_input_ids]), output_attentions=True
        ).cross_attentions
    expected = [dispersion.cad(dispersion.restrict_rows(w[0].numpy(), pair.rows, pair.columns)) for w in weights]
    np.testing.assert_allclose(result.values["cad"][0], expected, rtol=1e-6)


def test_sdpa_models_are_switched_to_eager_and_weightless_attention_is_refused(models):
    model, tokenizer = load_tiny_model(models["seq2seq"])
    model.set_attn_implementation("sdpa")
    pair = encode_pair(tokenizer, *_pairs(1)[0], encoder_decoder=True, decoder_start_token_id=0)
    with pytest.raises(AttentionModelError, match="returned no attention weights"):
        forward_layers(model, [pair], [1], lambda layer, weights: None, pad_token_id=0)
    result = measure_attention(model, tokenizer, _pairs(1), progress=False)
    assert model.config._attn_implementation == "eager" and 0 < result.summary()["cad"][0] <= 1


def test_a_model_without_cross_attention_outputs_is_refused(models, monkeypatch):
    model, tokenizer = load_tiny_model(models["seq2seq"])
    model.set_attn_implementation("sdpa")
    from transformers import PreTrainedModel

    for module in model.modules():
        if isinstance(module, PreTrainedModel):
            monkeypatch.setattr(module, "_can_record_outputs", {})
    assert attention_modules(model) == []
    pair = encode_pair(tokenizer, *_pairs(1)[0], encoder_decoder=True, decoder_start_token_id=0)
    with pytest.raises(AttentionModelError, match="returns no cross-attention weights"):
        forward_layers(model, [pair], None, lambda layer, weights: None, pad_token_id=0)


def test_inputs_beyond_the_model_limit_are_refused(models):
    model, tokenizer = load_tiny_model(models["decoder"])
    with pytest.raises(ValueError, match="has 1024 positions"):
        measure_attention(model, tokenizer, _pairs(1), max_input_tokens=1000, max_output_tokens=128, progress=False)


# ---------------------------------------------------------------- prediction


def test_spearman_and_its_permutation_p_value():
    assert spearman([0.1, 0.5, 0.9], [1, 2, 3]) == pytest.approx(1.0)
    assert spearman([0.1, 0.5, 0.9, 0.7], [4, 3, 1, 2]) == pytest.approx(-1.0)
    np.testing.assert_allclose(ranks([3.0, 1.0, 3.0, 2.0]), [3.5, 1, 3.5, 2])
    # n = 3: only 2 of the 6 orderings reach |rho| = 1.
    assert permutation_p_value([1, 2, 3], [1, 2, 3], 1.0) == pytest.approx(2 / 6)
    with pytest.raises(ValueError, match="same for every task"):
        spearman([1, 2, 3], [0.5, 0.5, 0.5])
    # Beyond 8 tasks the p-value is estimated from 100,000 seeded random orderings (exactly 2/10! here).
    x = np.arange(10.0)
    assert permutation_p_value(x, x, 1.0) < 1e-3
    assert permutation_p_value(x, x, 1.0) == permutation_p_value(x, x, 1.0)


def _write_results(path: Path, rates: dict[str, float]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"results": {t: {"mem_rate,none": r, "alias": t} for t, r in rates.items()}}), encoding="utf-8")


def test_read_metric_takes_the_latest_run_of_each_task(tmp_path):
    _write_results(tmp_path / "m" / "results_2026-01-01T10-00-00.json", {"mem_a": 0.1, "mem_b": 0.2})
    _write_results(tmp_path / "m" / "results_2026-02-01T10-00-00.json", {"mem_a": 0.3})
    found = read_metric(tmp_path, "mem_rate")
    assert {t: v for t, (v, _) in found.items()} == {"mem_a": 0.3, "mem_b": 0.2}
    with pytest.raises(ValueError, match="at least 3 tasks.*no memorization result for mem_c"):
        predict_memorization({"mem_a": 0.5, "mem_b": 0.6, "mem_c": 0.7}, found)


# ---------------------------------------------------------------- the command


def _task_data(root: Path) -> dict[str, Path]:
    texts = _texts()
    files = {
        "mem_xsum": [{"document": texts[i], "summary": texts[i + 50][:120]} for i in range(12)],
        "mem_imdb": [{"text": texts[i], "label": ["negative", "positive"][i % 2]} for i in range(12)],
        "mem_squad_v2": [
            {"context": texts[i], "question": "Who?", "answers": {"text": [texts[i][:15]] if i % 3 else []}} for i in range(12)
        ],
    }
    paths = {}
    for task, records in files.items():
        paths[task] = root / f"{task}.jsonl"
        paths[task].write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return paths


def _png_shape(path: Path) -> tuple[int, ...]:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return matplotlib.image.imread(path).shape


@pytest.mark.e2e
def test_command_seq2seq_writes_results_heatmaps_and_predicts_memorization(models, tmp_path, capsys):
    data = _task_data(tmp_path)
    rates = {"mem_xsum": 0.30, "mem_imdb": 0.05, "mem_squad_v2": 0.20}
    _write_results(tmp_path / "mem" / "ft" / "results_2026-01-01T10-00-00.json", rates)
    code = main(
        [
            "attention", "--model", "hf", "--model_args", f"pretrained={models['seq2seq']}",
            "--tasks", "mem_xsum,mem_imdb,mem_squad_v2", "--samples", "4", "--layers", "all",
            "--plot", str(tmp_path / "plots"), "--output_path", str(tmp_path / "results"),
            *[arg for task, path in data.items() for arg in ("--data-files", f"{task}={path}")],
            "--memorization", str(tmp_path / "mem"), "--max-input-tokens", "256",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    files = sorted((tmp_path / "results").glob("*/attention_*.json"))
    assert [f.name.split("_2")[0] for f in files] == [
        "attention_mem_imdb", "attention_mem_squad_v2", "attention_mem_xsum"
    ]
    assert files[0].parent.name.endswith("seq2seq")  # lm-eval's sanitized model name
    cad = {}
    for file in files:
        document = json.loads(file.read_text())
        (task, metrics), = document["results"].items()
        assert metrics["samples,none"] == 4 and document["n-samples"][task] == {"original": 12, "effective": 4}
        for name in ("cad", "coverage", "row_divergence"):
            assert metrics[f"{name}_low,none"] <= metrics[f"{name},none"] <= metrics[f"{name}_high,none"]
            assert 0 <= metrics[f"{name},none"] <= 1
        assert metrics["coverage,none"] >= metrics["cad,none"]
        extra = document["memtasks"]
        assert extra["kind"] == "attention" and extra["attention"] == "cross" and extra["layers"] == [0, 1]
        assert len(extra["per_layer"]["cad"]) == 2 and len(extra["per_head"]["cad"][0]) == 2
        assert np.mean([s["cad"] for s in extra["per_sample"]]) == pytest.approx(metrics["cad,none"])
        assert document["config"]["model_args"].endswith("attn_implementation=eager")
        cad[task] = metrics["cad,none"]
    expected = spearman([cad[t] for t in rates], list(rates.values()))
    assert f"Spearman rho(CAD, mem_rate) = {expected:+.3f} over 3 tasks" in out
    plots = tmp_path / "plots"
    assert _png_shape(plots / "attention_average.png")[1] > 3 * _png_shape(plots / "attention_average.png")[0] / 2
    for name in ("attention_samples.png", "attention_layers_mem_xsum.png", "attention_layers_mem_imdb.png"):
        assert _png_shape(plots / name)[0] > 100


@pytest.mark.e2e
def test_command_decoder_only(models, tmp_path, capsys):
    data = _task_data(tmp_path)
    code = main(
        [
            "attention", "--model_args", f"pretrained={models['decoder']}", "--tasks", "mem_xsum",
            "--data-files", str(data["mem_xsum"]), "--samples", "3", "--plot", str(tmp_path / "plots"),
            "--output_path", str(tmp_path / "results"), "--json",
        ]
    )
    printed = json.loads(capsys.readouterr().out)
    assert code == 0
    document = json.loads(Path(printed["tasks"]["mem_xsum"]["path"]).read_text())
    assert document["memtasks"]["attention"] == "self" and document["memtasks"]["layers"] == [1]
    assert printed["tasks"]["mem_xsum"]["cad"][0] == document["results"]["mem_xsum"]["cad,none"]
    assert (tmp_path / "plots" / "attention_layers_mem_xsum.png").is_file()


def test_command_bad_input(models, tmp_path, capsys):
    data = _task_data(tmp_path)
    base = ["attention", "--tasks", "mem_xsum", "--output_path", str(tmp_path / "results")]
    assert main([*base, "--model_args", f"pretrained={models['seq2seq']},attn_implementation=sdpa", "--data-files", str(data["mem_xsum"])]) == 2
    assert "attn_implementation=sdpa returns no attention weights" in capsys.readouterr().err
    empty = tmp_path / "empty.jsonl"
    empty.write_text(json.dumps({"document": "a b c d", "summary": ""}) + "\n", encoding="utf-8")
    assert main([*base, "--model_args", f"pretrained={models['seq2seq']}", "--data-files", str(empty)]) == 2
    assert f"{empty}:1: field 'summary' (the output) is empty" in capsys.readouterr().err
    assert main([*base, "--model_args", f"pretrained={models['seq2seq']}", "--data-files", f"mem_imdb={empty}"]) == 2
    assert "not among the tasks" in capsys.readouterr().err
    # A metadata key naming a task overrides that task's fields only.
    override = json.dumps({"mem_xsum": {"output_field": "headline"}})
    args = [*base, "--model_args", f"pretrained={models['seq2seq']}", "--data-files", str(data["mem_xsum"])]
    assert main([*args, "--metadata", override]) == 2
    # The record named by its line, with the fields it has.
    err = capsys.readouterr().err
    assert f"{data['mem_xsum']}:" in err and ": field 'headline' is missing (the record has document, summary)" in err
    assert main([*args, "--metadata", '{"mem_xsum": 3}']) == 2
    assert "metadata for task mem_xsum must be a JSON object" in capsys.readouterr().err
    assert main([*args, "--metadata", '{"mem_xsum": {}, "mem_imdb": {"output_field": "label"}}']) == 2
    assert "metadata given for mem_imdb, which is not among the tasks" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()
