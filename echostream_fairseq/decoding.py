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


def unit_frames(logits, blank: int, blank_penalty: float = 0.0):
    """Best unit per frame of the CTC unit decoder's ``logits`` (... x V), the blank's score
    lowered by ``blank_penalty`` first (the model's data config ``unit_blank_penalty``; 0: plain
    greedy). A model that under-generates units (fewer than the reference speech has) says more
    with a penalty; offline generation, streaming emission and teacher-forced units all decode here."""
    if blank_penalty:
        logits = logits.clone()
        logits[..., blank] -= blank_penalty
    return logits.argmax(-1)


def detok(dictionary, ids: Sequence[int]) -> str:
    """Sentencepiece pieces -> text."""
    return post_process(dictionary.string(list(ids)), "sentencepiece").strip()


def unit_ids(unit_dict, indices: Sequence[int]) -> List[int]:
    """Unit dictionary indices -> unit ids (the symbols are "0".."K-1")."""
    return [int(unit_dict[i]) for i in indices]


# ---------------------------------------------------------------------------- output bounds
# Output is bounded by input: the number of target tokens has a ceiling set by the source length,
# and a word (or phrase) is never said more than MAX_REPEATS times in a row.
MAX_REPEATS = 2  # "very very" is language; a third copy in a row is a decoding loop
# longest phrase (in tokens) whose immediate repetition is checked: a clause looping, e.g. "old
# police officer olice officer" (11 pieces) said over and over by a model that lost its place
MAX_REPEAT_NGRAM = 32


def max_target_tokens(source_seconds: float, tokens_per_second: float, extra: int) -> int:
    """The length bound: target tokens allowed for ``source_seconds`` of source speech."""
    return int(tokens_per_second * max(0.0, source_seconds)) + int(extra)


def repeat_blocked(prefix: Sequence[int], word_start: Sequence[bool], max_repeats: int = MAX_REPEATS,
                   max_ngram: int = MAX_REPEAT_NGRAM) -> List[int]:
    """Tokens that would start another immediate copy of a phrase already said ``max_repeats``
    times in a row at the end of ``prefix``. A phrase is ``n`` <= ``max_ngram`` tokens that
    begins at a word start (``word_start[token]``), or any single piece (a piece looping inside
    a word, "Ten en en en"); the blocked token is its first one."""
    blocked = []
    for n in range(1, max_ngram + 1):
        if len(prefix) < n * max_repeats:
            break
        gram = list(prefix[-n:])
        if n > 1 and not word_start[gram[0]]:
            continue
        if gram[0] not in blocked and all(list(prefix[len(prefix) - (r + 1) * n : len(prefix) - r * n]) == gram for r in range(max_repeats)):
            blocked.append(gram[0])
    return blocked


def unsupported_repeats(prefix: Sequence[int], word_start: Sequence[bool], ctc_tokens: Sequence[int]) -> List[int]:
    """Tokens that would say the one-piece word ending ``prefix`` a second time in a row where
    the CTC translation ``ctc_tokens`` (same dictionary) never says that word twice in a row.
    Such a repeat is how the MT decoder fills a gap in what it has heard ("Diego Diego ...")."""
    if not prefix or not word_start[prefix[-1]]:
        return []
    word = prefix[-1]
    return [] if any(a == b == word for a, b in zip(ctc_tokens, ctc_tokens[1:])) else [word]


def heard_nothing(*transcripts: str) -> bool:
    """No word in any of these CTC transcripts of a sentence (ASR-CTC, ST-CTC): silence, noise or
    stray punctuation. Such a sentence has nothing to translate, offline or streaming; the MT
    decoder would otherwise say something it never heard."""
    return not any(c.isalnum() for t in transcripts for c in t)


def token_map(src_dict, dst_dict) -> Optional[List[int]]:
    """``src_dict`` index -> ``dst_dict`` index by symbol; None when the two are the same."""
    if src_dict is None or src_dict.symbols == dst_dict.symbols:
        return None
    return [dst_dict.index(x) for x in src_dict.symbols]


def word_start_table(dictionary) -> List[bool]:
    """Per dictionary index: does the piece start a word (sentencepiece's ``▁``)?"""
    return [dictionary[i].startswith("\u2581") for i in range(len(dictionary))]


class OutputBounds:
    """fairseq ``SequenceGenerator``'s n-gram blocking hook, used for both output bounds: the
    immediate-repeat rule of :func:`repeat_blocked` (instead of banning every repeated n-gram)
    and a per-sentence length bound (only end-of-sentence is left once a hypothesis reaches
    it; fairseq's own ``max_len_a/b`` applies one bound to the whole padded batch)."""

    def __init__(self, dictionary, max_repeats: int = MAX_REPEATS, max_ngram: int = MAX_REPEAT_NGRAM):
        self.word_start = word_start_table(dictionary)
        self.eos = dictionary.eos()
        self.max_repeats, self.max_ngram = max_repeats, max_ngram
        self.max_tokens: Optional[List[int]] = None  # per sentence of the batch, set before generating
        # per sentence: its CTC translation (same dictionary); a one-piece word is said twice in
        # a row only where it says so too (:func:`unsupported_repeats`); None: no such rule
        self.ctc_tokens: Optional[List[List[int]]] = None

    def __call__(self, tokens, lprobs, bsz: int, beam_size: int, step: int):
        # tokens[:, 0] is the EOS that starts every hypothesis; tokens[:, 1 : step + 1] were generated
        for row in range(tokens.size(0)):
            if self.max_tokens is not None and step >= self.max_tokens[row // beam_size]:
                keep = lprobs[row, self.eos].clone()
                lprobs[row] = -float("inf")
                lprobs[row, self.eos] = keep
                continue
            prefix = tokens[row, 1 : step + 1].tolist()
            blocked = repeat_blocked(prefix, self.word_start, self.max_repeats, self.max_ngram)
            if self.ctc_tokens is not None:
                blocked += unsupported_repeats(prefix, self.word_start, self.ctc_tokens[row // beam_size])
            for t in blocked:
                lprobs[row, t] = -float("inf")
        return lprobs
