"""A sentence's output side: committed target tokens become whole words of text and, through the
T2U encoder and the CTC unit decoder (whose caches this object owns), units for the vocoder.
``emit_units`` runs the unit side of many sessions in one batched forward."""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch

from ..decoding import ctc_collapse, unit_ids
from ..models.echostream import ctc_blank
from . import policy as decisions

WORD_START = "\u2581"


class Emission:
    def __init__(self, model, unit_dict, whole_word: bool):
        self.m, self.unit_dict, self.whole_word = model, unit_dict, whole_word
        self.emitted = 0  # committed tokens already out as text / units / speech
        self._pending_word: List[str] = []
        self.t2u_cache: dict = {}
        self.unit_cache: dict = {}
        self._unit_prev: Optional[int] = None
        self.units: List[int] = []

    def _starts_word(self, token: int) -> bool:
        return self.m.mt_dict[token].startswith(WORD_START)

    def begin(self, committed: Sequence[int], text_states: Sequence[torch.Tensor], mt_done: bool
              ) -> Tuple[List[str], Optional[torch.Tensor]]:
        """The words that may go out now, and the decoder states (n, D) of their tokens for the
        unit decoder (None: nothing new). ``text_states[i]`` is the final state of
        ``committed[i]``; whole words wait for the token that shows a word has ended."""
        ready = len(text_states)
        upto = ready
        if self.whole_word and not mt_done:
            upto = decisions.whole_word_end(lambda i: self._starts_word(committed[i]), len(committed), ready, self.emitted)
        if upto <= self.emitted:
            return [], None
        new_tokens = committed[self.emitted : upto]
        states = torch.stack(list(text_states[self.emitted : upto]))
        self.emitted = upto
        # the last word out is complete when the next committed token starts a new word or
        # nothing follows it
        ends_word = (mt_done and upto == len(committed)) or (upto < len(committed) and self._starts_word(committed[upto]))
        return self._words(new_tokens, ends_word), states

    def end(self, logits: torch.Tensor) -> List[int]:
        """The new units in the unit decoder's ``logits`` for the tokens of the last ``begin``."""
        ids = logits.argmax(-1).tolist()
        new_units = unit_ids(self.unit_dict, ctc_collapse(ids, ctc_blank(self.unit_dict), self._unit_prev))
        self._unit_prev = ids[-1]
        self.units.extend(new_units)
        return new_units

    def _words(self, tokens: Sequence[int], ends_word: bool) -> List[str]:
        """Text of newly emitted tokens as whole words; a word's pieces wait until it is complete."""
        words = []
        for t in tokens:
            piece = self.m.mt_dict[t]
            if piece.startswith(WORD_START) and self._pending_word:
                words.append("".join(self._pending_word))
                self._pending_word = []
            self._pending_word.append(piece.lstrip(WORD_START) if piece.startswith(WORD_START) else piece)
        if ends_word and self._pending_word:
            words.append("".join(self._pending_word))
            self._pending_word = []
        return words


def emit_units(emissions: Sequence[Emission], states: Sequence[torch.Tensor]) -> List[List[int]]:
    """T2U + unit decoder for several emissions over the same model in one batched forward:
    ``states[b]`` are the decoder states that ``emissions[b].begin`` returned."""
    m = emissions[0].m
    t2u = m.t2u_encoder.step_many(list(states), [e.t2u_cache for e in emissions])
    logits = m.unit_decoder.step_many(t2u, [e.unit_cache for e in emissions])
    return [e.end(lg) for e, lg in zip(emissions, logits)]
