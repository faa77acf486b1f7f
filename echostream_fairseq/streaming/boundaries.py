"""Sentence boundaries of one session: pauses heard in the source and sentence ends that the
punctuation model reads in the transcript. Each object owns its state; where a boundary cuts is
decided by the plain functions of ``policy``."""
from __future__ import annotations

from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

from .. import features, punct
from ..models.encoder import REDUCTION
from . import policy as decisions

FRAME_MS = features.FRAME_SHIFT_MS * REDUCTION  # one encoder frame


class PauseDetector:
    """The silence at the end of what was heard (10 ms blocks under ``silence_db`` dBFS RMS) and,
    once it has lasted ``pause_ms``, where the sentence before it ends: the pause's middle."""

    def __init__(self, pause_ms: float, silence_db: float):
        self.pause_ms, self.silence_db = pause_ms, silence_db
        self.silence_ms = 0.0  # trailing silence of the source heard so far
        self._start: Optional[float] = None  # start (ms) of the last pause long enough to end a sentence
        self.cut_ms: Optional[float] = None  # where that sentence ends, until it is taken

    def hear(self, samples: np.ndarray, heard_ms: float, gain_db: float = 0.0) -> None:
        """New samples; ``heard_ms``: the source heard so far, these samples included;
        ``gain_db``: the input level normalisation's gain on them."""
        db = features.block_db(samples) + gain_db
        if db.size == 0:
            return
        loud = np.nonzero(db >= self.silence_db)[0]
        quiet_tail = db.size if loud.size == 0 else db.size - 1 - int(loud[-1])
        self.silence_ms = (self.silence_ms if loud.size == 0 else 0.0) + quiet_tail * features.FRAME_SHIFT_MS
        if self.silence_ms >= self.pause_ms:
            start = round(heard_ms - self.silence_ms, 3)
            if start != self._start:  # a new pause: the sentence ends in its middle
                self._start = start
                self.cut_ms = start + self.pause_ms / 2

    def take(self, frames_heard: int) -> Optional[int]:
        """The encoder frame where a pause ends the sentence, once the encoder has covered it
        (the cut is then handed out once)."""
        cut = decisions.pause_cut(self.cut_ms, FRAME_MS, frames_heard)
        if cut is not None:
            self.cut_ms = None
        return cut


class SentenceBoundaries:
    """Both triggers for one session: learned (``policy.punct_delay`` with a punctuation model)
    and pauses (``policy.pause_ms``); either may be off."""

    def __init__(self, policy, punct_model: Optional[punct.PunctModel]):
        if policy.punct_delay is not None and punct_model is None:
            raise ValueError("punct_delay is set but no punctuation model was loaded")
        self.pause = PauseDetector(policy.pause_ms, policy.silence_db) if policy.pause_ms is not None else None
        self.punct = punct_model.tracker(policy.punct_delay) if policy.punct_delay is not None else None

    def hear(self, samples: np.ndarray, heard_ms: float, gain_db: float = 0.0) -> None:
        if self.pause is not None:
            self.pause.hear(samples, heard_ms, gain_db)

    def read(self, tokens: Sequence[int], first_ordinal: int) -> List[Tuple[int, int]]:
        """New transcript tokens (stream-wide ordinals from ``first_ordinal``) -> the sentence
        ends the punctuation model decided: (ordinal, mark)."""
        if self.punct is None or not tokens:
            return []
        return self.punct.push([(t, first_ordinal + i) for i, t in enumerate(tokens)])

    def next(self, decided, tokens: Sequence[int], token_frames: Sequence[int], base: int, frames_heard: int,
             sentence_start: int, is_mark: Callable[[int], bool]) -> Optional[Tuple[int, int, Optional[int], str]]:
        """The next boundary inside the current sentence (``tokens`` emitted at
        ``token_frames``, ``tokens[0]`` being stream-wide ordinal ``base``, starting at frame
        ``sentence_start``): (split, cut frame, mark or None, trigger), or None."""
        b = decisions.learned_boundary(decided, base, token_frames, tokens, frames_heard, sentence_start,
                                       punct.SENTENCE_END, is_mark)
        if b is not None:
            return (*b, "learned")
        cut = self.pause.take(frames_heard) if self.pause is not None else None
        if cut is None:
            return None
        b = decisions.pause_boundary(cut, token_frames, tokens, sentence_start, is_mark)
        if b is None:
            return None  # nothing said since the last boundary
        return (*b, self.punct.close() if self.punct is not None else None, "pause")

    def final_mark(self) -> int:
        """The end mark of the last sentence, at the end of the source."""
        return self.punct.close() if self.punct is not None else punct.MARKS.index(".")
