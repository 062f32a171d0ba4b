"""What the Trainer shows and keeps while it trains: one progress bar, and the model of each epoch.

Both are ``TrainerCallback``s, transformers' extension point for a training loop.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from tqdm.auto import tqdm
from transformers import TrainerCallback

from memtasks.finetune.config import write_summary
from memtasks.outputs import flush_folder


class TrainingProgress(TrainerCallback):
    """One bar over the optimizer steps: the epoch in its description, the epoch's mean loss so far after it.

    It takes the place of the Trainer's own output (a bar that writes every log
    as a dict, or the dicts alone): the Trainer logs each step's loss so that the
    summary covers every step, and none of those logs is printed.
    """

    def __init__(self, epochs: int, enabled: bool = True):
        self.epochs, self.enabled = epochs, enabled
        self.bar = None
        self.losses: list[float] = []

    def on_train_begin(self, args, state, control, **kwargs):
        self.bar = tqdm(
            total=state.max_steps,
            initial=state.global_step,
            unit="step",
            desc="fine-tuning",
            dynamic_ncols=True,
            disable=not (self.enabled and state.is_world_process_zero),
        )

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.losses = []
        self.bar.set_description(f"fine-tuning, epoch {int(state.epoch or 0) + 1}/{self.epochs}", refresh=False)

    def on_step_end(self, args, state, control, **kwargs):
        self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.losses.append(logs["loss"])
            self.bar.set_postfix(loss=f"{sum(self.losses) / len(self.losses):.4f}")

    def on_train_end(self, args, state, control, **kwargs):
        self.close()

    def close(self) -> None:
        """End the bar's line; also for a run stopped by an exception, which the Trainer tells no callback."""
        if self.bar is not None:
            self.bar.close()


class EpochCheckpoints(TrainerCallback):
    """Saves the model at the end of each epoch into ``epoch-N/`` (for the epochs ablation), whole or not at all.

    The copy is written into ``epoch-N.partial/`` and renamed once its summary is
    in, so an interrupt never leaves an ``epoch-N/`` that looks finished.
    ``summary(folder, epoch)`` is the summary the copy in ``folder`` gets.
    """

    def __init__(self, out: Path, tokenizer, summary: Callable[[Path, int], dict]):
        self.out, self.tokenizer, self.summary = out, tokenizer, summary

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        epoch = round(state.epoch)
        target = self.out / f"epoch-{epoch}"
        partial = self.out / f"epoch-{epoch}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        try:
            model.save_pretrained(partial)
            self.tokenizer.save_pretrained(partial)
            write_summary(partial, self.summary(target, epoch))
            flush_folder(partial)
        except BaseException:
            # A copy cut short (a full disk) holds the space the run's summary needs.
            shutil.rmtree(partial, ignore_errors=True)
            raise
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)
