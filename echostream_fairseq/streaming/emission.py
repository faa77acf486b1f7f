"""A sentence's output side: committed target tokens become whole words of text and, through the
T2U encoder and the CTC unit decoder (whose caches this object owns), units for the vocoder.
``emit_units`` runs the unit side of many sessions in one batched forward. A unit decoder with
word look-ahead gets complete words only, whatever the text policy."""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch

from ..decoding import ctc_collapse, unit_frames, unit_ids, word_start_table
from ..models.echostream import ctc_blank
from ..models.unit_decoder import word_end_index
from . import policy as decisions

WORD_START = "\u2581"


class Emission:
    def __init__(self, model, unit_dict, whole_word: bool, unit_blank_penalty: float = 0.0):
        self.m, self.unit_dict, self.whole_word = model, unit_dict, whole_word
        self.unit_blank_penalty = unit_blank_penalty
        self.emitted = 0  # committed tokens already out as text
        self.voiced = 0  # committed tokens already through the unit decoder
        self.word_lookahead = model.word_lookahead
        self._word_start = word_start_table(model.mt_dict)
        self._pending_word: List[str] = []
        self.t2u_cache: dict = {}
        self.unit_cache: dict = {}
        self._unit_prev: Optional[int] = None
        self.units: List[int] = []

    def _starts_word(self, token: int) -> bool:
        return self._word_start[token]

    def _complete_words_end(self, committed: Sequence[int], ready: int, mt_done: bool, since: int) -> int:
        if mt_done:
            return ready
        return decisions.whole_word_end(lambda i: self._starts_word(committed[i]), len(committed), ready, since)

    def begin(self, committed: Sequence[int], text_states: Sequence[torch.Tensor], mt_done: bool
              ) -> Tuple[List[str], Optional[Tuple[torch.Tensor, Optional[List[int]]]]]:
        """The words that may go out now, and the unit decoder's work (None: nothing new): the
        decoder states (n, D) of the tokens to voice and, with word look-ahead, the last token of
        each one's word. ``text_states[i]`` is the final state of ``committed[i]``; whole words
        wait for the token that shows a word has ended."""
        ready = len(text_states)
        upto = self._complete_words_end(committed, ready, mt_done, self.emitted) if self.whole_word else ready
        words: List[str] = []
        if upto > self.emitted:
            new_tokens = committed[self.emitted : upto]
            self.emitted = upto
            # the last word out is complete when the next committed token starts a new word or
            # nothing follows it
            ends_word = (mt_done and upto == len(committed)) or (upto < len(committed) and self._starts_word(committed[upto]))
            words = self._words(new_tokens, ends_word)
        voice_upto = self._complete_words_end(committed, ready, mt_done, self.voiced) if self.word_lookahead else upto
        if voice_upto <= self.voiced:
            return words, None
        start, self.voiced = self.voiced, voice_upto
        states = torch.stack(list(text_states[start:voice_upto]))
        return words, (states, self._word_ends(committed, start, voice_upto) if self.word_lookahead else None)

    def _word_ends(self, committed: Sequence[int], start: int, end: int) -> List[int]:
        """The last token of each token's word, for tokens start..end-1 (``end``: a word start or
        the end of the sentence), by the rule the model applies to whole sentences."""
        starts = torch.tensor([[self._starts_word(t) for t in committed[start:end]]], dtype=torch.bool)
        return (word_end_index(starts, torch.tensor([end - start]))[0] + start).tolist()

    def end(self, logits: torch.Tensor) -> List[int]:
        """The new units in the unit decoder's ``logits`` for the tokens of the last ``begin``."""
        blank = ctc_blank(self.unit_dict)
        ids = unit_frames(logits, blank, self.unit_blank_penalty).tolist()
        new_units = unit_ids(self.unit_dict, ctc_collapse(ids, blank, self._unit_prev))
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


def emit_units(emissions: Sequence[Emission], work: Sequence[Tuple[torch.Tensor, Optional[List[int]]]]) -> List[List[int]]:
    """T2U + unit decoder for several emissions over the same model in one batched forward:
    ``work[b]`` is the unit decoder's work that ``emissions[b].begin`` returned."""
    m = emissions[0].m
    t2u = m.t2u_encoder.step_many([w[0] for w in work], [e.t2u_cache for e in emissions])
    ends = [w[1] for w in work] if m.word_lookahead else None
    logits = m.unit_decoder.step_many(t2u, [e.unit_cache for e in emissions], ends)
    return [e.end(lg) for e, lg in zip(emissions, logits)]
