"""The lm-eval model class memtasks' tasks are run with: ``--model memtasks-hf``.

lm-eval's ``hf`` model asks ``generate()`` for ``max_length = input tokens +
max_gen_toks``. A decoder-only model then writes ``max_gen_toks`` new tokens,
but for an encoder-decoder that bound applies to the decoder output alone, so
T5 may write hundreds of tokens where GPT-2 writes ``max_gen_toks``; rates of
the two would not be comparable. ``memtasks-hf`` is ``hf`` with two changes:

- every model gets ``max_gen_toks`` new tokens. For decoder-only models the two
  classes generate the same text;
- under ``accelerate launch`` with several processes, the processes share the
  documents on any device. lm-eval's ``hf`` splits them only across GPUs: on
  CPUs (gloo), each of its processes runs every document as if it were alone.
  On GPUs the two classes split the same way.

Its generation bar advances by a batch when the batch is done. lm-eval's
advances by one request at a time, all of a batch's at once, and tqdm redraws
at most every 0.1 s: after the first batch it stayed at ``1/N`` for a whole
batch, its estimate a batch size too long (49 minutes for a 5-minute run).

Registered under lm-eval's model registry, so the results file records which
class ran, and ``lm_eval.simple_evaluate(model="memtasks-hf", ...)`` after
``import memtasks.harness.model`` generates what ``memtasks eval`` does.
"""

from __future__ import annotations

from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM
from tqdm import tqdm

from memtasks.harness import MODEL_NAME


@register_model(MODEL_NAME)
class EqualBudgetHFLM(HFLM):
    """``hf`` with the same generation budget, ``max_gen_toks`` new tokens, for every architecture."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        accelerator = getattr(self, "accelerator", None)
        if accelerator is not None and accelerator.num_processes > 1 and self.world_size == 1:
            # HFLM kept the accelerator (several processes) but found no GPUs to split over.
            self._rank = accelerator.process_index
            self._world_size = accelerator.num_processes
        self._generation_bar: tqdm | None = None

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        """lm-eval's ``generate_until``, with a bar that advances a whole batch at a time."""
        with tqdm(total=len(requests), desc="generate", unit="request", disable=disable_tqdm or self.rank != 0) as bar:
            self._generation_bar = bar
            try:
                return super().generate_until(requests, disable_tqdm=True)
            finally:
                self._generation_bar = None

    def _model_generate(self, context, max_length, stop, **generation_kwargs):
        if self.backend == "seq2seq":
            # lm-eval counted the encoder input into max_length; the decoder output starts with its start token.
            max_length = max_length - context.shape[1] + 1
        generated = super()._model_generate(context, max_length, stop, **generation_kwargs)
        if self._generation_bar is not None:
            self._generation_bar.update(context.shape[0])
        return generated
