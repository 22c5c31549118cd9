"""Derived seeds: one user seed → independent, reproducible streams per purpose and epoch."""

from __future__ import annotations

import numpy as np

_PURPOSES = {"init": 0, "shuffle": 1, "noise": 2, "eval": 3, "walk": 4, "placement": 5, "snr": 6, "draws": 7,
             "marginal": 8}


def derive_seed(seed: int, purpose: str, *counters: int) -> int:
    """A 63-bit seed for ``purpose`` and counters.

    Purposes: ``init``, ``shuffle``, ``noise``, ``eval``, ``walk``, ``placement``, ``snr``, ``draws`` (a
    backend's own noise in a walk), ``marginal``.

    Uses numpy's SeedSequence, so nearby user seeds give unrelated streams.
    """
    entropy = [int(seed), _PURPOSES[purpose], *(int(c) for c in counters)]
    return int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0] >> 1)
