"""Dispersion of attention over input tokens: pure functions on attention rows.

Every function takes ``rows``, an array of shape ``(..., T, S)``: for each of T
output tokens (and any leading axes, e.g. heads), a distribution over the S
real input tokens (each row sums to 1; see :func:`restrict_rows`). Entropies
use the natural log, with 0 ln 0 = 0.

* CAD (corrective attention dispersion): the mean normalized entropy of a row,

      CAD = (1/T) sum_t H(a_t) / ln S,   H(p) = -sum_j p_j ln p_j

  1 when every output token attends uniformly to the input, 0 when each
  attends to a single input token.
* coverage: the normalized entropy of the output-averaged row
  abar = (1/T) sum_t a_t,

      coverage = H(abar) / ln S

  how much of the input the output as a whole draws on; coverage >= CAD
  (entropy is concave), equal when all rows are the same.
* row divergence: the mean Jensen-Shannon divergence of each row from abar,
  in units of ln 2 so that it lies in [0, 1],

      row_divergence = (1/T) sum_t JS(a_t, abar) / ln 2,
      JS(p, q) = KL(p || m)/2 + KL(q || m)/2,  m = (p + q)/2

  0 when every output token looks at the same input positions with the same
  weights (whatever their spread), near 1 when each looks at a part of the
  input no other token looks at. (coverage - CAD) ln S = (1/T) sum_t
  KL(a_t || abar) is the mutual information between output and input position,
  which grows with the same disagreement but is not bounded by 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from memtasks.stats import BOOTSTRAP_SEED, INTERVAL_PERCENTILES, N_RESAMPLES


class AttentionRowError(ValueError):
    """Attention rows that have no distribution over the input to measure."""


def entropy(p: np.ndarray, axis: int = -1) -> np.ndarray:
    """Shannon entropy (nats) along ``axis``, with 0 ln 0 = 0."""
    p = np.asarray(p, dtype=np.float64)
    return -np.sum(p * np.log(np.where(p > 0, p, 1.0)), axis=axis)


def _input_length(rows: np.ndarray) -> int:
    if rows.ndim < 2 or rows.shape[-2] == 0:
        raise AttentionRowError("no output token: attention rows need at least one output position")
    if rows.shape[-1] < 2:
        raise AttentionRowError(
            f"{rows.shape[-1]} input token(s): dispersion over the input needs at least 2 (ln S = 0)"
        )
    return rows.shape[-1]


def cad(rows: np.ndarray) -> np.ndarray:
    """Corrective attention dispersion of ``rows`` (..., T, S): mean_t H(a_t) / ln S, shape (...)."""
    rows = np.asarray(rows, dtype=np.float64)
    n = _input_length(rows)
    return entropy(rows).mean(axis=-1) / np.log(n)


def coverage(rows: np.ndarray) -> np.ndarray:
    """Normalized entropy of the output-averaged row: H(mean_t a_t) / ln S, shape (...)."""
    rows = np.asarray(rows, dtype=np.float64)
    n = _input_length(rows)
    return entropy(rows.mean(axis=-2)) / np.log(n)


def js_divergence(p: np.ndarray, q: np.ndarray, axis: int = -1) -> np.ndarray:
    """Jensen-Shannon divergence in nats (between 0 and ln 2), as H(m) - (H(p) + H(q))/2 with m = (p + q)/2.

    That equals KL(p || m)/2 + KL(q || m)/2 and needs no division.
    """
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    value = entropy((p + q) / 2, axis) - (entropy(p, axis) + entropy(q, axis)) / 2
    # Rounding can leave -1e-17 where p = q.
    return np.maximum(value, 0.0)


def row_divergence(rows: np.ndarray) -> np.ndarray:
    """Mean JS divergence of each row from the output-averaged row, over ln 2: shape (...)."""
    rows = np.asarray(rows, dtype=np.float64)
    _input_length(rows)
    mean_row = rows.mean(axis=-2, keepdims=True)
    return js_divergence(rows, mean_row).mean(axis=-1) / np.log(2.0)


def restrict_rows(attention: np.ndarray, rows: Sequence[int], columns: Sequence[int], where: str = "sample") -> np.ndarray:
    """The output-to-input block of ``attention`` (..., Q, K), each row renormalized over ``columns``.

    ``rows`` are the query positions of output tokens, ``columns`` the key
    positions of real input tokens; attention to anything else (padding,
    special tokens, end of sequence, masked instruction tokens, earlier output
    tokens of a decoder-only model) is dropped and the rest rescaled to sum to 1:

        a_t[j] = A[t, j] / sum_{j' in columns} A[t, j']
    """
    block = np.asarray(attention, dtype=np.float64)[..., list(rows), :][..., list(columns)]
    mass = block.sum(axis=-1, keepdims=True)
    if block.size and not np.all(mass > 0):
        raise AttentionRowError(
            f"{where}: an output token gives no attention at all to the input tokens, so its row cannot be renormalized"
        )
    if not np.all(np.isfinite(mass)):
        raise AttentionRowError(f"{where}: attention weights are not finite (NaN or inf in the model's output)")
    return block / mass


def bootstrap_mean(
    values: np.ndarray, n_resamples: int = N_RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over samples (axis 0) with its bootstrap interval.

    Samples are resampled with replacement ``n_resamples`` times (the same
    resamples for every trailing index, so per-layer intervals are drawn
    together); the interval is the 5th-95th percentile of the resampled means,
    as for memorization rates. Returns (mean, low, high), each of shape
    ``values.shape[1:]``.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.shape[0] == 0:
        raise ValueError("no samples to average")
    n = values.shape[0]
    # How often each sample is drawn in a resample of n with replacement is
    # Multinomial(n, 1/n each): drawing the counts keeps memory at
    # n_resamples x n whatever the number of layers and heads.
    counts = np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=n_resamples)
    means = (counts @ values.reshape(n, -1) / n).reshape((n_resamples, *values.shape[1:]))
    low, high = np.percentile(means, INTERVAL_PERCENTILES, axis=0)
    return values.mean(axis=0), low, high
