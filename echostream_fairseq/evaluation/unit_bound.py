"""How much speech the units themselves carry, without a learned vocoder.

The built-in k-means centroids are fbank frames (Kaldi log-mel energies of int16-scaled
samples, 20 ms = two averaged 10 ms frames). :func:`invert_fbank` turns any such frame sequence
back into a waveform: mel energies -> linear power spectrum (non-negative least squares through
Kaldi's own mel filterbank) -> magnitude -> Griffin-Lim -> de-emphasis. Passing the original
fbank frames, their 20 ms averages, the centroids of the ground-truth units at their true
durations, and the centroids at durations a vocoder predicts through the *same* inversion
separates what the inversion loses from what quantisation loses: the WER gap between the first
and the third row is the ceiling the units put on any vocoder.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Optional, Sequence

import numpy as np
import torch

from .. import features

N_FFT = 512  # Kaldi rounds the 400-sample window up to a power of two
PREEMPH = 0.97


@lru_cache(maxsize=1)
def _mel_banks() -> torch.Tensor:
    """Kaldi's mel filterbank (80 x 257, the Nyquist bin appended as zero), as fbank uses it."""
    import torchaudio.compliance.kaldi as kaldi

    banks, _ = kaldi.get_mel_banks(features.NUM_MEL_BINS, N_FFT, float(features.SAMPLE_RATE), 20.0, 0.0, 100.0, -500.0, 1.0)
    return torch.nn.functional.pad(banks, (0, 1)).double()


def mel_to_power(fbank_frames: np.ndarray, iters: int = 200) -> torch.Tensor:
    """Non-negative linear power spectra (n, 257) whose Kaldi mel energies match ``fbank_frames``
    (projected gradient on the least-squares fit, started from the filterbank transpose)."""
    m = _mel_banks()  # (80, 257)
    target = torch.exp(torch.as_tensor(np.asarray(fbank_frames), dtype=torch.float64))  # (n, 80)
    norm = m.sum(1).clamp(min=1e-8)
    p = (target / norm) @ m / m.sum(0).clamp(min=1e-8)  # spread each band's mean energy over its bins
    step = 1.0 / float(torch.linalg.matrix_norm(m, 2) ** 2)
    for _ in range(iters):
        p = (p - step * ((p @ m.T - target) @ m)).clamp(min=0)
    return p


def invert_fbank(fbank_frames: np.ndarray, frame_repeat: int = 1, n_iter: int = 60, seed: int = 0) -> np.ndarray:
    """16 kHz waveform (float32, about [-1, 1]) from Kaldi fbank frames.

    ``frame_repeat`` is the number of 10 ms hops each given frame lasts (2 for 20 ms unit
    centroids)."""
    import torchaudio

    frames = np.repeat(np.asarray(fbank_frames, dtype=np.float32), frame_repeat, axis=0)
    if frames.shape[0] == 0:
        return np.zeros(0, dtype=np.float32)
    mag = mel_to_power(frames).sqrt().float().T  # (257, n) in int16-scaled units
    torch.manual_seed(seed)
    gl = torchaudio.transforms.GriffinLim(n_fft=N_FFT, win_length=features.WINDOW, hop_length=features.HOP, power=1.0,
                                          n_iter=n_iter, window_fn=lambda n: torch.hann_window(n).pow(0.85))
    wav = gl(mag).double() / 32768.0
    # undo Kaldi's pre-emphasis: y[t] = x[t] + 0.97 y[t-1]
    import scipy.signal

    y = scipy.signal.lfilter([1.0], [1.0, -PREEMPH], wav.numpy())
    peak = np.abs(y).max()
    return (0.9 * y / peak if peak > 0 else y).astype(np.float32)


def unit_frames(units: Sequence[int], centroids: np.ndarray, durations: Optional[Sequence[int]] = None) -> np.ndarray:
    """Centroid frames of a unit sequence (each repeated ``durations[i]`` times when given)."""
    units = np.asarray(units, dtype=np.int64)
    if units.size and (units.min() < 0 or units.max() >= centroids.shape[0]):
        raise ValueError(f"unit ids must be in 0..{centroids.shape[0] - 1}")
    if durations is not None:
        if len(durations) != len(units):
            raise ValueError(f"{len(units)} units but {len(durations)} durations")
        units = np.repeat(units, np.asarray(durations, dtype=np.int64))
    return centroids[units]
