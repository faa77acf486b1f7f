"""Cutting a source into the engine's segments: the one place a segment size in ms becomes
samples, and the one feeder that replay, the agents' benches and the server step a session with."""
from __future__ import annotations

from typing import List

import numpy as np

from .. import features


def segment_samples(segment_ms: float) -> int:
    """16 kHz samples per engine step for a segment of ``segment_ms``."""
    if not segment_ms > 0:
        raise ValueError(f"segment_ms must be positive, got {segment_ms}")
    return max(1, int(round(segment_ms * features.SAMPLE_RATE / 1000)))


class SegmentFeeder:
    """Collects 16 kHz samples as they arrive and hands out whole segments; ``flush()`` hands
    out what is left at the end of the source (a shorter last segment, or nothing)."""

    def __init__(self, segment_ms: float):
        self.size = segment_samples(segment_ms)
        self._pending = np.zeros(0, dtype=np.float32)
        self.fed = 0  # samples handed out so far

    def push(self, samples: np.ndarray) -> List[np.ndarray]:
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        self._pending = np.concatenate([self._pending, x]) if self._pending.size else x
        n = self._pending.size // self.size * self.size
        ready, self._pending = self._pending[:n], self._pending[n:]
        return self._hand_out(np.split(ready, n // self.size) if n else [])

    def flush(self) -> List[np.ndarray]:
        rest, self._pending = self._pending, np.zeros(0, dtype=np.float32)
        return self._hand_out([rest] if rest.size else [])

    @property
    def pending(self) -> int:
        return self._pending.size

    def _hand_out(self, segs: List[np.ndarray]) -> List[np.ndarray]:
        self.fed += sum(s.size for s in segs)
        return segs
