"""The study in miniature, offline on a CPU: does summarization memorize more than classification?

``run_demo`` builds a tiny T5-style model and a tokenizer from the bundled
samples (``memtasks/demo_data``: 100 XSum articles, 100 IMDB reviews), writes a
study config for them, and runs it with ``memtasks.study``: the model is probed
on both tasks, fine-tuned on each task separately, and each fine-tuned model is
probed again on the records it was trained on. The result is the study's
Table 2 in small: memorization before, after and the difference (paired
bootstrap interval) per category. The pre-trained model's cross-attention
dispersion on both tasks (``memtasks attention``) is measured too, with heatmaps.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import yaml

from memtasks.attention import run_attention
from memtasks.study import Comparison, compare_before_after, read_study_config, run_study

TASKS = {"mem_xsum": "xsum", "mem_imdb": "imdb"}
CATEGORY_ROWS = ("memorization", "verbatim", "idea", "paraphrase", "paraphrase_high", "paraphrase_low")
# Small enough to fine-tune in about a minute per task on one CPU core.
MODEL_SHAPE = {"d_model": 64, "layers": 2, "heads": 2}
VOCAB_SIZE = 4000


def demo_config(epochs: int, decoder: bool = False) -> dict:
    """The study config the demo runs (also written to ``OUT/study.yaml`` to re-run or edit)."""
    models = [{"name": "tiny-t5", "path": "./models/tiny-t5", "size": "tiny"}]
    if decoder:
        models.append({"name": "tiny-gpt", "path": "./models/tiny-gpt", "size": "tiny"})
    return {
        "name": "demo",
        "output_dir": ".",
        "models": models,
        "tasks": list(TASKS),
        "data_files": {task: f"data/{name}_train.jsonl" for task, name in TASKS.items()},
        "eval_data_files": {task: f"data/{name}_heldout.jsonl" for task, name in TASKS.items()},
        "device": "cpu",
        "finetune": {
            "methods": ["full"],
            "mixtures": ["single"],
            "epochs": epochs,
            "options": {"learning_rate": 0.01, "warmup_ratio": 0.05, "batch_size": 16, "max_source_tokens": 128, "max_target_tokens": 64},
        },
        "evaluate": {"lm_eval_args": ["--batch_size", "32", "--device", "cpu"]},
    }


def run_demo(
    out_dir: str | Path = "results/demo",
    epochs: int = 40,
    resume: bool = False,
    decoder: bool = False,
    log: Callable[[str], None] = print,
) -> list[Comparison]:
    """Run the demo into ``out_dir`` and return its comparisons.

    The demo starts from scratch, replacing an earlier run in ``out_dir``
    (the committed one included); with ``resume`` it keeps the finished steps.
    ``decoder`` adds a tiny GPT-2-style model, fine-tuned and probed the same
    way; its loss covers the inputs too, so it can memorize them.
    """
    from memtasks.tiny import build_tiny_model, torch_threads, train_tokenizer

    out = Path(out_dir)
    if not resume and out.exists():
        log(f"[fresh] removing the earlier demo run in {out}")
        shutil.rmtree(out)
    data = out / "data"
    data.mkdir(parents=True, exist_ok=True)
    bundled = resources.files("memtasks") / "demo_data"
    for entry in bundled.iterdir():
        if entry.name.endswith((".jsonl", ".md")):
            target = data / entry.name
            if not target.exists():
                target.write_bytes(entry.read_bytes())
    model_dir = out / "models" / "tiny-t5"
    decoder_dir = out / "models" / "tiny-gpt"
    if not (model_dir / "config.json").exists() or (decoder and not (decoder_dir / "config.json").exists()):
        log(f"[build] tiny models and their tokenizer, trained on {data}")
        tokenizer = train_tokenizer(_texts(data), vocab_size=VOCAB_SIZE)
        build_tiny_model("seq2seq", tokenizer, model_dir, **MODEL_SHAPE)
        if decoder:
            build_tiny_model("decoder", tokenizer, decoder_dir, **MODEL_SHAPE)
    config_path = out / "study.yaml"
    config_path.write_text(yaml.safe_dump(demo_config(epochs, decoder), sort_keys=False), encoding="utf-8")
    # Tiny models run fastest on one thread; two threads on a busy 2-core machine
    # made generation several times slower.
    with torch_threads(1):
        manifest = run_study(read_study_config(config_path), log=log)
        attention = out / "attention"
        if not attention.exists():
            log("[attention] cross-attention dispersion of the pre-trained model on both tasks")
            run_attention(
                "hf",
                f"pretrained={model_dir.resolve()}",
                list(TASKS),
                layers="all",
                output_path=attention,
                plot_dir=attention / "heatmaps",
                data_files={task: str(data / f"{name}_train.jsonl") for task, name in TASKS.items()},
                progress=False,
            )
    comparisons = compare_before_after(manifest)
    (out / "summary.md").write_text(format_comparisons(comparisons), encoding="utf-8")
    return comparisons


def _texts(data: Path) -> list[str]:
    import json

    texts = []
    for path in sorted(data.glob("*_train.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            texts.extend(str(value) for value in record.values() if isinstance(value, str))
    return texts


def format_comparisons(comparisons: list[Comparison]) -> str:
    """Markdown: one table per task, rates in percent with their 90% intervals.

    ``excess`` is each run's member rate minus its rate on held-out text the
    model was never fine-tuned on: what the model reproduces beyond chance.
    """
    lines = []
    for c in comparisons:
        lines += [
            f"### {c.task}: {c.before} -> {c.after} ({c.probes} probes)",
            "",
            "| category | before | after | difference | excess before | excess after |",
            "|---|---|---|---|---|---|",
        ]
        for name in CATEGORY_ROWS:
            cells = [c.rates_before[name], c.rates_after[name]]
            signed = [c.difference[name], *(e[name] if e else None for e in (c.excess_before, c.excess_after))]
            lines.append(f"| {name} | " + " | ".join([*map(_cell, cells), *(_cell(r, signed=True) for r in signed)]) + " |")
        lines.append("")
    return "\n".join(lines)


def _cell(rate, signed: bool = False) -> str:
    if rate is None:
        return "n/a"
    sign = "+" if signed else ""
    return f"{rate.value:{sign}.1%} [{rate.low:{sign}.1%}, {rate.high:{sign}.1%}]"
