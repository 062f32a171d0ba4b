"""Tests for memtasks.tiny (tokenizer, tiny GPT-2 / T5 models, lm-eval loading) and for the
memorization helper the other tests train them with (tests/tiny_training.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from tiny_training import load_tiny_model, memorize

from memtasks.tiny import (
    EOS_TOKEN,
    MAX_POSITIONS,
    PAD_TOKEN,
    UNK_TOKEN,
    build_tiny_model,
    torch_threads,
    train_tokenizer,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
XSUM = DATA / "xsum.jsonl"
N_TEXTS = 8
TEXT_WORDS = 40
PREFIX_WORDS = 10
CHECK_WORDS = 10

# Used when the shared real-text samples are missing, so that the tests still run.
PARAGRAPHS = [
    "The harbour master said the ferry would stay in port until the storm passed, and that "
    "passengers booked on the evening crossing could change their tickets for free at the "
    "terminal desk or online before Friday.",
    "A rare orchid that had not been seen in the county for ninety years was found growing beside "
    "a railway embankment by two volunteers counting butterflies for a national survey last summer.",
    "Council officers will recommend that the old library building is sold to a housing trust, "
    "which plans to turn the upper floors into twelve flats while keeping a reading room open on "
    "the ground floor.",
    "The striker scored twice in the second half as the visitors came from behind to win three "
    "goals to one, lifting them out of the relegation places for the first time since the autumn.",
    "Engineers replacing the bridge bearings found that the original iron supports were in better "
    "condition than expected, so the road is now likely to reopen three weeks earlier than planned.",
    "The museum's new gallery tells the story of the town's glassworks through letters, tools and "
    "hundreds of bottles recovered from the river during dredging work carried out in the nineteen "
    "seventies.",
    "Hospital managers said waiting times in the emergency department had fallen after a second "
    "triage nurse was added to each night shift and a minor injuries unit opened in the car park.",
    "Residents of the island voted by a large majority to keep their own school, even though it "
    "has only eleven pupils, after a long campaign led by parents, teachers and the local fishing "
    "cooperative.",
]


def load_texts() -> tuple[list[str], list[str]]:
    """``(corpus for the tokenizer, texts to memorize)``, single-spaced so word prefixes are exact."""
    if XSUM.exists():
        documents = [json.loads(line)["document"] for line in XSUM.read_text(encoding="utf-8").splitlines()[:200]]
        texts = [" ".join(d.split()[:TEXT_WORDS]) for d in documents if len(d.split()) >= TEXT_WORDS][:N_TEXTS]
        return documents, texts
    return PARAGRAPHS, [" ".join(p.split()) for p in PARAGRAPHS]


@pytest.fixture(autouse=True)
def offline_single_thread(monkeypatch):
    # Offline: a load that tried the hub would fail here instead of passing by chance.
    # One torch thread: on a busy 2-core machine two OpenMP threads made these tiny models
    # an order of magnitude slower.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def corpus() -> tuple[list[str], list[str]]:
    return load_texts()


@pytest.fixture(scope="module")
def tokenizer(corpus):
    return train_tokenizer(corpus[0], vocab_size=1500)


@pytest.fixture(scope="module")
def decoders(tmp_path_factory, tokenizer, corpus):
    """``(untrained, trained)`` tiny GPT-2 directories, the trained one memorized the texts."""
    root = tmp_path_factory.mktemp("tiny-decoder")
    untrained = build_tiny_model("decoder", tokenizer, root / "untrained")
    trained = Path(shutil.copytree(untrained, root / "trained"))
    with torch_threads(1):
        memorize(trained, corpus[1], steps=120)
    return untrained, trained


@pytest.fixture(scope="module")
def seq2seqs(tmp_path_factory, tokenizer, corpus):
    """``(untrained, trained)`` tiny T5 directories, the trained one memorized the texts."""
    root = tmp_path_factory.mktemp("tiny-seq2seq")
    untrained = build_tiny_model("seq2seq", tokenizer, root / "untrained")
    trained = Path(shutil.copytree(untrained, root / "trained"))
    with torch_threads(1):
        memorize(trained, corpus[1], steps=120, prefix_words=[PREFIX_WORDS, 20])
    return untrained, trained


def continuation(model_dir: Path, prefix: str, max_new_tokens: int = 40) -> str:
    """Greedy continuation of ``prefix`` by the model in ``model_dir``."""
    model, tokenizer = load_tiny_model(model_dir)
    inputs = tokenizer(prefix, return_tensors="pt")
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    new = output[0] if model.config.is_encoder_decoder else output[0, inputs["input_ids"].shape[1]:]
    return tokenizer.decode(new, skip_special_tokens=True)


def reproduced(model_dir: Path, texts: list[str]) -> int:
    """How many texts the model continues with their next CHECK_WORDS words from PREFIX_WORDS words."""
    hits = 0
    for text in texts:
        words = text.split()
        generated = continuation(model_dir, " ".join(words[:PREFIX_WORDS])).split()
        hits += generated[:CHECK_WORDS] == words[PREFIX_WORDS:PREFIX_WORDS + CHECK_WORDS]
    return hits


# --------------------------------------------------------------------------- tokenizer


@pytest.mark.parametrize("text", [
    "Plain words and punctuation: a, b; c. (d) 'e' \"f\"!",
    "  leading and   repeated spaces, trailing space ",
    "Lines\nand\ttabs\r\nand a blank line\n\nend",
    "£80m, 29-12, naïve café, 東京, emoji 🙂 and a rare-word-never-seen xqzjv",
    "",
])
def test_tokenizer_round_trips(tokenizer, text):
    assert tokenizer.decode(tokenizer.encode(text)) == text
    assert tokenizer.decode(tokenizer(text)["input_ids"], skip_special_tokens=True) == text


def test_tokenizer_special_tokens_and_size(tokenizer):
    assert (tokenizer.pad_token, tokenizer.eos_token, tokenizer.unk_token) == (PAD_TOKEN, EOS_TOKEN, UNK_TOKEN)
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (0, 1, 2)
    assert tokenizer.bos_token_id == tokenizer.eos_token_id
    assert 300 < len(tokenizer) <= 1500
    assert tokenizer.model_max_length == MAX_POSITIONS
    # No special tokens are added: lm-eval contexts are encoded as they are.
    assert EOS_TOKEN not in tokenizer.decode(tokenizer.encode("some words"), skip_special_tokens=False)


def test_tokenizer_word_prefix_encodes_as_a_prefix(tokenizer, corpus):
    for text in corpus[1]:
        words = text.split()
        prefix, full = tokenizer.encode(" ".join(words[:PREFIX_WORDS])), tokenizer.encode(text)
        assert full[: len(prefix)] == prefix


def test_tokenizer_is_deterministic(corpus):
    first = train_tokenizer(corpus[0], vocab_size=800)
    again = train_tokenizer(list(reversed(corpus[0])), vocab_size=800)
    assert first.backend_tokenizer.to_str() == again.backend_tokenizer.to_str()


# --------------------------------------------------------------------------- build and reload


@pytest.mark.parametrize("kind", ["decoder", "seq2seq"])
def test_build_saves_a_model_auto_classes_reload_offline(tmp_path, tokenizer, kind):
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    path = build_tiny_model(kind, tokenizer, tmp_path / kind, seed=3)
    assert path == tmp_path / kind
    assert (path / "config.json").exists() and (path / "generation_config.json").exists()

    auto = AutoModelForCausalLM if kind == "decoder" else AutoModelForSeq2SeqLM
    model = auto.from_pretrained(path)
    loaded = AutoTokenizer.from_pretrained(path)
    assert model.config.model_type == ("gpt2" if kind == "decoder" else "t5")
    assert model.config.vocab_size == len(tokenizer) == len(loaded)
    assert model.get_input_embeddings().weight.shape == (len(tokenizer), 64)
    assert loaded.encode("The owners said") == tokenizer.encode("The owners said")
    assert (loaded.pad_token_id, loaded.eos_token_id) == (0, 1)

    generation = model.generation_config
    assert (generation.eos_token_id, generation.pad_token_id) == (1, 0)
    if kind == "seq2seq":
        assert generation.decoder_start_token_id == model.config.decoder_start_token_id == 0
    else:
        assert model.config.n_positions == MAX_POSITIONS

    # A forward pass and a short greedy generation work on the reloaded model.
    inputs = loaded("The owners said", return_tensors="pt")
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert output.shape[0] == 1 and output.shape[1] >= 2


@pytest.mark.parametrize("kind", ["decoder", "seq2seq"])
def test_build_is_seeded(tmp_path, tokenizer, kind):
    def weights(seed: int, name: str) -> dict[str, torch.Tensor]:
        model, _ = load_tiny_model(build_tiny_model(kind, tokenizer, tmp_path / name, seed=seed))
        return model.state_dict()

    first, same, other = weights(0, "a"), weights(0, "b"), weights(1, "c")
    assert first.keys() == same.keys()
    assert all(torch.equal(first[k], same[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_build_rejects_bad_arguments(tmp_path, tokenizer):
    with pytest.raises(ValueError, match="kind"):
        build_tiny_model("encoder", tokenizer, tmp_path / "x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="divide"):
        build_tiny_model("decoder", tokenizer, tmp_path / "y", d_model=64, heads=3)


def test_memorize_rejects_empty_input_before_reading_the_model(tmp_path):
    with pytest.raises(ValueError, match="no texts"):
        memorize(tmp_path / "no-model", [])
    with pytest.raises(ValueError, match="blank"):
        memorize(tmp_path / "no-model", ["some text", "  "])


# --------------------------------------------------------------------------- memorization
# The tests from here on train tiny models until they memorize their texts (tens of seconds).


@pytest.mark.e2e
def test_memorized_decoder_continues_training_texts(decoders, corpus):
    untrained, trained = decoders
    texts = corpus[1]
    assert reproduced(trained, texts) >= len(texts) - 1
    assert reproduced(untrained, texts) == 0


@pytest.mark.e2e
def test_memorized_seq2seq_continues_training_texts(seq2seqs, corpus):
    untrained, trained = seq2seqs
    texts = corpus[1]
    assert reproduced(trained, texts) >= len(texts) // 2 + 1
    assert reproduced(untrained, texts) == 0


@pytest.mark.e2e
def test_memorize_keeps_the_model_loadable(decoders, tokenizer):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(decoders[1])
    assert model.config.vocab_size == len(tokenizer)
    assert (model.generation_config.eos_token_id, model.generation_config.pad_token_id) == (1, 0)


# --------------------------------------------------------------------------- lm-eval


def generate_until(lm, prompts: list[str], max_gen_toks: int) -> list[str]:
    """Run lm-eval's generate_until on ``prompts`` the way a generation task builds requests."""
    from lm_eval.api.instance import Instance

    requests = [
        Instance(
            request_type="generate_until",
            doc={},
            arguments=(prompt, {"until": ["\n\n"], "max_gen_toks": max_gen_toks, "do_sample": False}),
            idx=0,
        )
        for prompt in prompts
    ]
    return lm.generate_until(requests, disable_tqdm=True)


@pytest.mark.e2e
def test_lm_eval_hflm_loads_and_generates_with_the_decoder(decoders, tokenizer, corpus):
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=str(decoders[1]), device="cpu", batch_size=2)
    assert lm.backend == "causal"
    assert lm.max_length == MAX_POSITIONS
    assert lm.tokenizer.pad_token_id == 0 and lm.eot_token_id == 1
    assert lm.tok_encode("The owners said") == tokenizer.encode("The owners said")

    texts = corpus[1][:4]
    prompts = [" ".join(t.split()[:PREFIX_WORDS]) for t in texts]
    outputs = generate_until(lm, prompts, max_gen_toks=24)
    assert len(outputs) == len(prompts) and all(isinstance(o, str) for o in outputs)
    hits = sum(o.split()[:5] == t.split()[PREFIX_WORDS:PREFIX_WORDS + 5] for o, t in zip(outputs, texts))
    assert hits >= 3


@pytest.mark.e2e
def test_lm_eval_hflm_loads_and_generates_with_the_seq2seq_model(seq2seqs, tokenizer, corpus):
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=str(seq2seqs[1]), backend="seq2seq", device="cpu", batch_size=2)
    assert lm.backend == "seq2seq"
    # T5's config has no position limit, so lm-eval takes the tokenizer's model_max_length.
    assert lm.max_length == MAX_POSITIONS
    assert lm.tok_encode("The owners said") == tokenizer.encode("The owners said")

    texts = corpus[1][:4]
    prompts = [" ".join(t.split()[:PREFIX_WORDS]) for t in texts]
    outputs = generate_until(lm, prompts, max_gen_toks=16)
    assert len(outputs) == len(prompts) and all(isinstance(o, str) for o in outputs)
    # The decoder start token is not part of the text lm-eval returns.
    assert not any(PAD_TOKEN in o for o in outputs)
    assert any(o.split()[:5] == t.split()[PREFIX_WORDS:PREFIX_WORDS + 5] for o, t in zip(outputs, texts))


def test_tiny_models_replaces_its_own_folders_and_refuses_any_other(tmp_path, capsys):
    from memtasks.cli import main
    from memtasks.models import untrained

    text = Path(__file__).resolve().parents[1] / "memtasks" / "demo_data" / "xsum_train.jsonl"
    argv = ["tiny-models", str(tmp_path / "tiny"), "--text", str(text), "--field", "document"]
    assert main(argv) == 0 and untrained(tmp_path / "tiny" / "tiny-decoder") and untrained(tmp_path / "tiny" / "tiny-seq2seq")
    assert main(argv) == 0  # its own folders, made again
    capsys.readouterr()
    foreign = tmp_path / "other" / "tiny-seq2seq"
    foreign.mkdir(parents=True)
    (foreign / "weights.bin").write_bytes(b"someone's model")
    assert main([*argv[:1], str(tmp_path / "other"), *argv[2:]]) == 2
    assert capsys.readouterr().err == (
        f"memtasks tiny-models: error: {foreign}: holds something tiny-models did not make; give another OUT_DIR, or remove it\n"
    )
    assert sorted(p.name for p in (tmp_path / "other").rglob("*")) == ["tiny-seq2seq", "weights.bin"]
