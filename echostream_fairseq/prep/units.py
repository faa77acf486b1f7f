"""Discrete units from target speech: a k-means quantiser over frame features.

Two feature sources give 20 ms frames (320 samples at 16 kHz):

* built in: two 10 ms fbank frames averaged (80 dims); the quantiser is fitted here and saved
  as ``.npy`` centroids (K x 80);
* a HuBERT / mHuBERT checkpoint in fairseq's format, one transformer layer's output, with a
  k-means model as fairseq's speech-to-unit recipes save it (a joblib-pickled scikit-learn
  model with ``cluster_centers_``) or ``.npy`` centroids.

Output per utterance: ``{id}.npy`` with the per-frame units (for vocoder training) and a line
``id<TAB>reduced units<TAB>durations`` in ``reduced.tsv`` (for manifests).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Sequence, Tuple

import numpy as np
import torch
from tqdm import tqdm

from .. import features

FBANK_PER_UNIT = 2  # 2 x 10 ms = 20 ms = 320 samples


def unit_features(wav: np.ndarray) -> np.ndarray:
    f = features.fbank(wav)
    n = f.shape[0] // FBANK_PER_UNIT * FBANK_PER_UNIT
    return f[:n].reshape(-1, FBANK_PER_UNIT, f.shape[1]).mean(1)


def fit_kmeans(feats: List[np.ndarray], k: int, iters: int = 25, seed: int = 0, init_sample: int = 20000) -> np.ndarray:
    """Lloyd's k-means with k-means++ initialisation (on at most ``init_sample`` frames)."""
    x = np.concatenate(feats).astype(np.float32)
    if x.shape[0] < k:
        raise ValueError(f"k-means needs at least K={k} frames, got {x.shape[0]}")
    rng = np.random.default_rng(seed)
    pool = x[rng.choice(x.shape[0], min(init_sample, x.shape[0]), replace=False)]
    c = np.empty((k, x.shape[1]), dtype=np.float32)
    c[0] = pool[rng.integers(pool.shape[0])]
    d2 = ((pool - c[0]) ** 2).sum(1)
    for j in range(1, k):
        c[j] = pool[rng.choice(pool.shape[0], p=d2 / d2.sum())] if d2.sum() > 0 else pool[rng.integers(pool.shape[0])]
        d2 = np.minimum(d2, ((pool - c[j]) ** 2).sum(1))
    for _ in range(iters):
        a = assign(x, c)
        # each centroid the mean of its frames (one pass per feature dimension, not one per
        # centroid: K passes over millions of frames took most of a fit); an empty one re-seeded
        counts = np.bincount(a, minlength=k)
        sums = np.stack([np.bincount(a, weights=x[:, d], minlength=k) for d in range(x.shape[1])], axis=1)
        used = counts > 0
        c[used] = sums[used] / counts[used, None]
        for j in np.flatnonzero(~used):
            c[j] = x[rng.integers(x.shape[0])]
    return c


ASSIGN_BLOCK = 65536  # frames per distance block: K distances each, so memory stays bounded


def assign(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """The nearest centroid of each frame (squared Euclidean distance)."""
    cc = (centroids**2).sum(1)[None]
    out = np.empty(x.shape[0], dtype=np.int64)
    for i in range(0, x.shape[0], ASSIGN_BLOCK):
        b = x[i : i + ASSIGN_BLOCK]
        out[i : i + b.shape[0]] = ((b**2).sum(1)[:, None] - 2 * b @ centroids.T + cc).argmin(1)
    return out


def expand_units(reduced: Sequence[int], durations: Sequence[int]) -> List[int]:
    """Inverse of :func:`reduce_units`."""
    if len(reduced) != len(durations):
        raise ValueError(f"{len(reduced)} units but {len(durations)} durations")
    return [u for u, d in zip(reduced, durations) for _ in range(int(d))]


def load_quantiser(path: Path) -> np.ndarray:
    """Centroids (K x D) from ``.npy`` or from a joblib-pickled scikit-learn k-means model."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"k-means model not found: {path}")
    if path.suffix == ".npy":
        c = np.load(path)
    else:
        import joblib

        c = np.asarray(joblib.load(path).cluster_centers_)
    if c.ndim != 2:
        raise ValueError(f"{path}: centroids must be a K x D matrix, got shape {c.shape}")
    return c.astype(np.float32)


class HubertFeatures:
    """Frame features from one layer of a fairseq HuBERT/mHuBERT checkpoint."""

    MAX_CHUNK = 1_600_000  # samples per forward pass, as fairseq's reader does

    def __init__(self, checkpoint: Path, layer: int):
        from fairseq import checkpoint_utils

        if not Path(checkpoint).is_file():
            raise FileNotFoundError(f"HuBERT checkpoint not found: {checkpoint}")
        models, cfg, task = checkpoint_utils.load_model_ensemble_and_task([str(checkpoint)])
        self.model = models[0].eval()
        self.normalize = bool(getattr(task.cfg, "normalize", False))
        n_layers = len(self.model.encoder.layers)
        if not 1 <= layer <= n_layers:
            raise ValueError(f"{checkpoint}: layer {layer} out of range 1..{n_layers}")
        self.layer = layer

    @torch.no_grad()
    def __call__(self, wav: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))
        if self.normalize:
            x = torch.nn.functional.layer_norm(x, x.shape)
        feats = []
        for start in range(0, x.numel(), self.MAX_CHUNK):
            chunk = x[start : start + self.MAX_CHUNK][None]
            f, _ = self.model.extract_features(source=chunk, padding_mask=None, mask=False, output_layer=self.layer)
            feats.append(f[0])
        return torch.cat(feats).numpy()


def write_units(
    items: Sequence[Tuple[str, Path]],
    out: Path,
    featurise: Callable[[np.ndarray], np.ndarray],
    centroids: np.ndarray,
) -> Path:
    """Quantise every (id, wav) and write ``{out}/{id}.npy`` and ``{out}/reduced.tsv``."""
    out.mkdir(parents=True, exist_ok=True)
    lines = []
    for uid, wav_path in tqdm(items, desc="units", unit="utt"):
        f = featurise(features.read_audio(wav_path))
        if f.shape[1] != centroids.shape[1]:
            raise ValueError(f"{wav_path}: features have {f.shape[1]} dims, the k-means model {centroids.shape[1]}")
        if f.shape[0] == 0:
            raise ValueError(f"{wav_path}: too short for one unit frame")
        frames = assign(f.astype(np.float32), centroids).astype(np.int16)
        tmp = out / f".{uid}.tmp.npy"
        np.save(tmp, frames)
        os.replace(tmp, out / f"{uid}.npy")
        red, dur = reduce_units(frames)
        lines.append(f"{uid}\t{' '.join(map(str, red))}\t{' '.join(map(str, dur))}\n")
    tmp = out / ".reduced.tsv.tmp"
    tmp.write_text("".join(lines))
    os.replace(tmp, out / "reduced.tsv")
    return out


def read_unit_file(path: Path) -> List[int]:
    """Per-utterance units from ``.npy`` or text (space-separated), frame-level or reduced."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"unit file not found: {path}")
    if path.suffix == ".npy":
        return [int(u) for u in np.load(path).reshape(-1)]
    try:
        return [int(u) for u in path.read_text().split()]
    except ValueError:
        raise ValueError(f"{path}: units must be integers") from None


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
