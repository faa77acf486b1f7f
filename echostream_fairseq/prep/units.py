"""Discrete units from target speech: a k-means quantiser over acoustic features.

Unit frames are 20 ms (320 samples at 16 kHz): two 10 ms fbank frames averaged. The
quantiser is saved as ``.npy`` of centroids (K x 80).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, List, Tuple

import numpy as np

from .. import features

FBANK_PER_UNIT = 2  # 2 x 10 ms = 20 ms = 320 samples


def unit_features(wav: np.ndarray) -> np.ndarray:
    f = features.fbank(wav)
    n = f.shape[0] // FBANK_PER_UNIT * FBANK_PER_UNIT
    return f[:n].reshape(-1, FBANK_PER_UNIT, f.shape[1]).mean(1)


def fit_kmeans(feats: List[np.ndarray], k: int, iters: int = 25, seed: int = 0) -> np.ndarray:
    x = np.concatenate(feats).astype(np.float32)
    if x.shape[0] < k:
        raise ValueError(f"k-means needs at least K={k} frames, got {x.shape[0]}")
    rng = np.random.default_rng(seed)
    c = x[rng.choice(x.shape[0], k, replace=False)].copy()
    for _ in range(iters):
        a = assign(x, c)
        for j in range(k):
            m = a == j
            c[j] = x[m].mean(0) if m.any() else x[rng.integers(x.shape[0])]
    return c


def assign(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    d = (x**2).sum(1)[:, None] - 2 * x @ centroids.T + (centroids**2).sum(1)[None]
    return d.argmin(1)


def reduce_units(units: Iterable[int]) -> Tuple[List[int], List[int]]:
    """Merge consecutive duplicates: (reduced units, durations in unit frames)."""
    red, dur = [], []
    for u in units:
        u = int(u)
        if red and red[-1] == u:
            dur[-1] += 1
        else:
            red.append(u)
            dur.append(1)
    return red, dur
