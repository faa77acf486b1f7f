"""Small decoding helpers shared by offline generation and the streaming engine."""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

from fairseq.data.data_utils import post_process


def ctc_spikes(frame_ids: Sequence[int], blank: int, prev: Optional[int] = None) -> List[Tuple[int, int]]:
    """Greedy CTC with positions: (label, index of the frame that emitted it). ``prev`` is the
    label of the frame before ``frame_ids`` (for decoding a stream piece by piece)."""
    out = []
    for n, t in enumerate(frame_ids):
        t = int(t)
        if t != prev and t != blank:
            out.append((t, n))
        prev = t
    return out


def ctc_collapse(frame_ids: Sequence[int], blank: int, prev: Optional[int] = None) -> List[int]:
    """Greedy CTC: merge repeats, drop blanks."""
    return [t for t, _ in ctc_spikes(frame_ids, blank, prev)]


def detok(dictionary, ids: Sequence[int]) -> str:
    """Sentencepiece pieces -> text."""
    return post_process(dictionary.string(list(ids)), "sentencepiece").strip()


def unit_ids(unit_dict, indices: Sequence[int]) -> List[int]:
    """Unit dictionary indices -> unit ids (the symbols are "0".."K-1")."""
    return [int(unit_dict[i]) for i in indices]
