"""A playout hold for a sentence's speech: its first samples wait until the source has gone on
``hold_ms`` further, and go out together with whatever speech came in the meantime; from then
on speech goes out as it comes. Speech is emitted word by word as the translation allows, and a
listener (or SimulEval, which lays each emission at the time it was made) hears a pause whenever
the speech said so far ends before the next words are ready. The hold gives the words after the
first that much longer to arrive, as a jitter buffer does for packets: fewer pauses inside a
sentence, for a start that much later. Nothing is dropped or changed: the samples are the same,
only released later; the end of a sentence or of the source releases everything."""
from __future__ import annotations

from typing import List, Optional

import numpy as np


def hold_released(first_ms: Optional[float], now_ms: float, hold_ms: float, flush: bool) -> bool:
    """Whether held speech goes out now: speech is waiting (it first came at ``first_ms`` of
    source), and either the source has gone on ``hold_ms`` since then or the sentence ends."""
    if first_ms is None:
        return False
    return flush or now_ms >= first_ms + hold_ms


class PlayoutHold:
    """One sentence's speech on its way out (see the module)."""

    def __init__(self, hold_ms: float):
        self.hold_ms = float(hold_ms)
        self.open = self.hold_ms <= 0  # released: speech passes straight through
        self.first_ms: Optional[float] = None  # source time at which the first speech came
        self._held: List[np.ndarray] = []

    @property
    def held_samples(self) -> int:
        return sum(x.size for x in self._held)

    def push(self, pcm: np.ndarray, now_ms: float, flush: bool) -> np.ndarray:
        """New speech ``pcm`` made with ``now_ms`` of source read; returns what goes out now.
        ``flush``: the sentence (or the source) ends, so nothing may stay behind."""
        if self.open:
            return pcm
        if pcm.size:
            self._held.append(pcm)
            if self.first_ms is None:
                self.first_ms = now_ms
        if not hold_released(self.first_ms, now_ms, self.hold_ms, flush):
            return np.zeros(0, dtype=np.float32)
        self.open = True
        out, self._held = np.concatenate(self._held), []
        return out
