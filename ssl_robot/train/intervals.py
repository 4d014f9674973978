"""95 % confidence intervals of evaluation figures over the units they are measured on (episodes, retrieval batches).

An evaluation figure is a ratio of sums over units: alignment error is the mean over episodes of each episode's
error (numerator the episode's error, denominator 1); a kNN error is the wrong rows over all rows of the test
episodes (numerator an episode's wrong rows, denominator its rows). Frames of one episode are not independent, so the
interval resamples whole units with replacement (a cluster bootstrap) and takes the 2.5 and 97.5 percentiles of the
resampled ratio. Its own fixed seed makes a report's intervals repeat exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

RESAMPLES = 2000
SEED = 0


class Interval(NamedTuple):
    low: float
    high: float
    units: int
    """How many units (episodes, batches) the interval resamples: its n."""


def ratio_interval(numerators: Sequence[float], denominators: Sequence[float] | None = None, *,
                   resamples: int = RESAMPLES, seed: int = SEED) -> Interval | None:
    """The 95 % percentile bootstrap interval of sum(numerators) / sum(denominators) (denominators default to 1 per
    unit: the mean of the numerators), resampling units with replacement. None for fewer than two units, where the
    spread between units cannot be seen."""
    values = np.asarray(numerators, dtype=np.float64)
    weights = np.ones_like(values) if denominators is None else np.asarray(denominators, dtype=np.float64)
    if values.ndim != 1 or weights.shape != values.shape:
        raise ValueError(f'numerators and denominators must be 1-D and pair up, got shapes {values.shape} and '
                         f'{weights.shape}')
    if not (np.isfinite(values).all() and np.isfinite(weights).all() and (weights > 0).all()):
        raise ValueError('numerators must be finite and denominators finite and positive')
    if len(values) < 2:
        return None
    drawn = np.random.default_rng(seed).integers(len(values), size=(resamples, len(values)))
    low, high = np.quantile(values[drawn].sum(axis=1) / weights[drawn].sum(axis=1), [0.025, 0.975])
    return Interval(float(low), float(high), len(values))
