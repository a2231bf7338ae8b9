"""Intervals for measurements taken in time windows, where requests are not independent samples.

An A/B run on a live service switches its flags window by window: the window, not the request, is what
was assigned an arm, and every request of a window shares its conditions (the machine's load, a garbage
collection, a neighbour's burst). A bootstrap that resamples requests as if independent ignores that
and gives intervals far too narrow: two identical arms then "differ" (on this 2-core machine, an A/A
interval excluded zero in half the runs). ``window_bootstrap_relative_delta_ci`` resamples the way the
data were made — a two-stage (cluster) bootstrap: each arm's windows with replacement, then, within each
window drawn, contiguous blocks of its requests with replacement (a stall lasting a second spoils a
block, not scattered requests). With one window per arm it reduces to a block bootstrap of that window.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from opslab.lazy import lazy_module

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray
else:
    np = lazy_module("numpy")

from opslab.judge.stats import Interval

BLOCKS_PER_WINDOW = 10
Statistic = Callable[["NDArray[np.float64]"], float]


def blocks_of(window: Sequence[float], blocks: int = BLOCKS_PER_WINDOW) -> list[NDArray[np.float64]]:
    """A window's requests (in the order they ran) as up to ``blocks`` contiguous blocks, none empty."""
    values = np.asarray(window, dtype=np.float64)
    if values.size == 0:
        return []
    return [b for b in np.array_split(values, min(blocks, values.size)) if b.size]


def window_bootstrap_relative_delta_ci(
    baseline: Sequence[Sequence[float]],
    candidate: Sequence[Sequence[float]],
    statistic: Statistic,
    *,
    level: float = 0.95,
    resamples: int = 1000,
    seed: int = 0,
    blocks: int = BLOCKS_PER_WINDOW,
) -> Interval:
    """Interval of the relative change (%) of ``statistic`` from baseline to candidate, each given as its
    windows' values in time order; windows with no value are left out. See the module docstring."""
    a = [bl for bl in (blocks_of(w, blocks) for w in baseline) if bl]
    b = [bl for bl in (blocks_of(w, blocks) for w in candidate) if bl]
    if not a or not b:
        return Interval(math.nan, math.nan, level)
    rng = np.random.default_rng(seed)

    def draw(arm: list[list[NDArray[np.float64]]]) -> NDArray[np.float64]:
        chosen: list[NDArray[np.float64]] = []
        for w in rng.integers(0, len(arm), size=len(arm)):
            window = arm[w]
            chosen.extend(window[i] for i in rng.integers(0, len(window), size=len(window)))
        return np.concatenate(chosen)

    deltas = []
    for _ in range(resamples):
        base = statistic(draw(a))
        cand = statistic(draw(b))
        if base:
            deltas.append(100.0 * (cand - base) / base)
    if not deltas:
        return Interval(math.nan, math.nan, level)
    lo, hi = np.percentile(deltas, [50 * (1 - level), 50 * (1 + level)])
    return Interval(float(lo), float(hi), level)
