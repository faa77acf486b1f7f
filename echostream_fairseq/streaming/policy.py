"""The streaming policy's decisions as plain functions of what a session has counted: CTC
gating (how many target tokens the MT decoder may commit), whole-word emission (how far text
and speech may go) and sentence boundaries (where a pause or a learned sentence end cuts)."""
from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass
from typing import Callable, Iterable, Optional, Sequence, Tuple


@dataclass
class Gate:
    """CTC gating state: the token allowance and the ASR/ST counts it was last opened at."""

    allowed: int = 0
    asr_seen: int = 0
    st_seen: int = 0


def open_gate(gate: Gate, n_asr: int, n_st: int, lag_k: int, stride_n: int, whole_word: bool, asr_head: bool = True) -> Gate:
    """After the CTC heads counted ``n_asr`` source and ``n_st`` target tokens: the gate opens
    when the source transcript grew (or there is no ASR head) and the ST count moved ``stride_n``
    since it last opened, to the ST count less ``lag_k`` (rounded down to the stride) plus one
    token to finish a word with ``whole_word``. The allowance never shrinks."""
    if (n_asr > gate.asr_seen or not asr_head) and n_st - gate.st_seen >= stride_n:
        allowed = max(gate.allowed, max(0, (n_st - lag_k) // stride_n * stride_n) + int(whole_word))
        return Gate(allowed, n_asr, n_st)
    return gate


def whole_word_end(starts_word: Callable[[int], bool], n_tokens: int, ready: int, emitted: int) -> int:
    """How far emission may go with ``ready`` of ``n_tokens`` committed tokens decoded to their
    final state and ``emitted`` out already: up to the last token that starts a word (the word
    before it is complete), never back. ``starts_word(i)`` tells whether committed token ``i``
    starts a word; token ``ready`` (when committed) is the one that shows a word has ended."""
    for b in range(min(ready, n_tokens - 1), emitted, -1):
        if starts_word(b):
            return b
    return emitted


def pause_cut(pause_cut_ms: Optional[float], frame_ms: float, frames_heard: int) -> Optional[int]:
    """The encoder frame at which a pause ends its sentence (its middle, ``pause_cut_ms``), once
    the encoder has covered it; None while there is no pause or it is not covered yet."""
    if pause_cut_ms is None:
        return None
    cut = math.ceil(pause_cut_ms / frame_ms)
    return cut if frames_heard >= cut else None


def split_after_marks(tokens: Sequence[int], split: int, is_mark: Callable[[int], bool]) -> int:
    """Move a split past closing marks (a late full stop belongs to the sentence it closes)."""
    while split < len(tokens) and is_mark(tokens[split]):
        split += 1
    return split


def pause_boundary(cut: int, token_frames: Sequence[int], tokens: Sequence[int], sentence_start: int,
                   is_mark: Callable[[int], bool]) -> Optional[Tuple[int, int]]:
    """(split, cut) for a pause cut at encoder frame ``cut``: the transcript tokens emitted before
    it (and the marks that close them) end the sentence; None when nothing was said since the
    sentence began at frame ``sentence_start``."""
    split = split_after_marks(tokens, bisect_left(list(token_frames), cut), is_mark)
    if split == 0 or cut <= sentence_start:
        return None
    return split, cut


def learned_boundary(decided: Iterable[Tuple[int, int]], base: int, token_frames: Sequence[int], tokens: Sequence[int],
                     frames_heard: int, sentence_start: int, sentence_end_marks, is_mark: Callable[[int], bool]
                     ) -> Optional[Tuple[int, int, int]]:
    """The first decided sentence end inside the current sentence: ``decided`` holds
    (stream-wide token ordinal, mark) from the punctuation model, ``base`` is the ordinal of
    ``tokens[0]``. Returns (split, cut frame, mark) or None."""
    for ordinal, mark in decided:
        n = ordinal - base
        if mark not in sentence_end_marks or n < 0:
            continue  # no sentence end, or one in a sentence already closed at a pause
        split = split_after_marks(tokens, n + 1, is_mark)
        cut = token_frames[split] if split < len(tokens) else frames_heard
        if cut <= sentence_start:
            continue
        return split, cut, mark
    return None
