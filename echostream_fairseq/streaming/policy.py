"""The streaming policy: its settings (``PolicyConfig``, with the one definition of its
command-line flags) and its decisions as plain functions of what a session has counted: CTC
gating (how many target tokens the MT decoder may commit), whole-word emission (how far text
and speech may go) and sentence boundaries (where a pause or a learned sentence end cuts)."""
from __future__ import annotations

import logging
import math
from bisect import bisect_left
from dataclasses import dataclass
from typing import Callable, Iterable, Optional, Sequence, Tuple

from .. import features
from ..config import finite_nonnegative

logger = logging.getLogger(__name__)


@dataclass
class PolicyConfig:
    # the default for a model without a policy file (MODEL_FILE); lag 1 was the knee of an early
    # toy es-en model (bench/policy_sweep.py, 320 ms): +15.7 BLEU over lag 0 for +218 ms AL
    lag_k: int = 1
    stride_n: int = 1
    # CTC support: a token that the ST-CTC has counted and the MT decoder has not said yet may be
    # committed at this smaller lag; the others wait for lag_k (None: every token waits for lag_k).
    # The decoder says early what the CTC heard, and waits where it would guess (a word order
    # that differs, a word not heard yet)
    support_lag: Optional[int] = None
    whole_word: bool = True
    wait_until_end: bool = False  # decode only at the end of the source (= offline greedy)
    vocoder_context_frames: Optional[int] = 4  # None: the generator's full receptive field (exact)
    # speak every emission in full at once: its last units' durations and samples are computed
    # without the units that follow, as at the end of a sentence. Off, they wait for those units,
    # which keeps the speech closer to the offline vocoder but cuts each word's tail off into the
    # next emission, behind a pause (toy dev, 100 utterances, 320 ms: ASR-BLEU 35.1 off, 39.6 on)
    vocoder_flush: bool = True
    # a playout hold (``playout``): each sentence's first speech waits until the source has gone
    # this many ms further, so the words after it have that much longer to come before the speech
    # runs dry and a pause cuts the sentence (0: every word is spoken as soon as it is emitted)
    speech_hold_ms: float = 0.0
    pause_ms: Optional[float] = None  # sentence boundary after this much silence (None: one sentence)
    silence_db: float = features.SILENCE_DB  # RMS level (dBFS) under which a 10 ms block counts as silence
    # learned sentence boundaries: look-ahead of the punctuation model in ASR tokens (None: off);
    # needs Resources.punct
    punct_delay: Optional[int] = None

    def __post_init__(self):
        if self.lag_k < 0 or self.stride_n < 1:
            raise ValueError(f"lag_k must be >= 0 and stride_n >= 1, got {self.lag_k}, {self.stride_n}")
        if self.support_lag is not None and not 0 <= self.support_lag < self.lag_k:
            raise ValueError(f"support_lag must be None or in [0, lag_k) = [0, {self.lag_k}), got {self.support_lag}")
        if self.pause_ms is not None and self.pause_ms <= 0:
            raise ValueError(f"pause_ms must be positive or None, got {self.pause_ms}")
        if not finite_nonnegative(self.speech_hold_ms):
            raise ValueError(f"speech_hold_ms must be a finite number >= 0, got {self.speech_hold_ms!r}")
        if self.punct_delay is not None and self.punct_delay < 0:
            raise ValueError(f"punct_delay must be >= 0 or None, got {self.punct_delay}")

    # The flags' defaults: what the server, echostream-translate, the agents and the benches run
    # unless told otherwise (the fields' own defaults above are the plain one-sentence engine).
    FLAG_PAUSE_MS = 600.0
    FLAG_PUNCT_DELAY = 2
    FLAG_SPEECH_HOLD_MS = 0.0
    # A model folder (a shipped pair's model/, a --data-dir) may hold the policy measured best for
    # that model, as a config file's ``policy:`` section (bench/policy_sweep.py --write-policy):
    # it replaces the flags' defaults; a --config file and flags on the command line override it.
    MODEL_FILE = "policy.yaml"

    @classmethod
    def add_args(cls, parser) -> None:
        """The policy flags: the one definition for the agents, the CLIs, the server and the benches.
        Their parsed defaults are None ("not given"): :meth:`from_args` fills in the model folder's
        policy file, then the defaults named in the help."""
        g = parser.add_argument_group("streaming policy")
        model = f"the model folder's {cls.MODEL_FILE} or "
        g.add_argument("--lag-k", type=int,
                       help=f"CTC gating: target tokens held back behind the ST-CTC count (default: {model}{cls.lag_k})")
        g.add_argument("--stride-n", type=int, help=f"CTC gating stride (default: {model}{cls.stride_n})")
        g.add_argument("--support-lag", type=int,
                       help="CTC support: a target token the ST-CTC has counted and the translation has not said yet may "
                            "be committed at this smaller lag (0 <= it < --lag-k); the others wait for --lag-k. One "
                            "setting with --lag-k: either flag given, both come from the command line "
                            f"(-1: off; default: {model}off)")
        g.add_argument("--no-whole-word", action="store_true", default=None, help="emit subwords as soon as they are committed")
        g.add_argument("--vocoder-context-frames", type=int,
                       help=f"vocoder look-back/look-ahead in unit frames (-1: its full receptive field, exact; default: "
                            f"{model}{cls.vocoder_context_frames})")
        g.add_argument("--no-vocoder-flush", action="store_true", default=None,
                       help="hold back the speech of each emission's last units until the units after them are known "
                            "(closer to the offline vocoder; the word's tail comes with the next emission)")
        g.add_argument("--speech-hold-ms", type=float,
                       help="playout hold: each sentence's first speech waits until the source has gone this many ms "
                            "further, so the words after it come before the speech runs dry (fewer pauses inside a "
                            f"sentence, a later start; 0: speak each word at once; default: {model}{cls.FLAG_SPEECH_HOLD_MS:g})")
        g.add_argument("--pause-ms", type=float,
                       help=f"close a sentence after this much silence and reset its state (default: {model}{cls.FLAG_PAUSE_MS:g})")
        g.add_argument("--no-pause", action="store_true", default=None, help="no sentence boundaries at pauses")
        g.add_argument("--silence-db", type=float,
                       help=f"RMS level (dBFS) under which 10 ms count as silence (default: {model}{cls.silence_db:g})")
        g.add_argument("--punct-delay", type=int,
                       help="learned sentence boundaries: look-ahead in ASR tokens of the punctuation model, when one is "
                            f"loaded; larger finds more boundaries, later (default: {model}{cls.FLAG_PUNCT_DELAY})")
        g.add_argument("--no-punct", action="store_true", default=None, help="no learned sentence boundaries")

    # each setting and the flags (argparse dests) that set it: given on the command line or in a
    # --config file, a setting's flags all come from there; otherwise from the model's file
    _SETTINGS = {"lag_k": ("lag_k", "support_lag"), "stride_n": ("stride_n",), "whole_word": ("no_whole_word",),
                 "vocoder_context_frames": ("vocoder_context_frames",), "vocoder_flush": ("no_vocoder_flush",), "speech_hold_ms": ("speech_hold_ms",),
                 "pause_ms": ("pause_ms", "no_pause"), "silence_db": ("silence_db",), "punct_delay": ("punct_delay", "no_punct")}

    @classmethod
    def read_model_file(cls, model_dir) -> dict:
        """The flag values (argparse dests) that ``model_dir``'s policy file sets ({} without one)."""
        from pathlib import Path

        path = Path(model_dir) / cls.MODEL_FILE
        return cls.read_file(path) if path.is_file() else {}

    @classmethod
    def read_file(cls, path) -> dict:
        """The flag values (argparse dests) that a model policy file sets, checked as a --config
        file's ``policy:`` section; a ConfigError names the file and the key."""
        import argparse
        from pathlib import Path

        from ..config import ConfigError, load_yaml, read_config

        path = Path(path)
        data = load_yaml(path)
        if not isinstance(data, dict) or set(data) - {"policy"}:
            raise ConfigError(f"{path}: a model's policy file holds one section, 'policy:' (got {data!r:.80})")
        p = argparse.ArgumentParser(add_help=False)
        cls.add_args(p)
        return read_config(path, p, sections=("policy",))

    @classmethod
    def from_args(cls, args, punct_model: bool, model_dir=None) -> "PolicyConfig":
        """The policy of parsed :meth:`add_args` flags over ``model_dir``'s policy file over the
        flags' defaults; learned boundaries need ``punct_model`` (a punctuation model is loaded),
        and say so in the log when there is none. A bad model file is a ConfigError naming it."""
        model = cls.read_model_file(model_dir) if model_dir is not None else {}
        v = {"lag_k": cls.lag_k, "stride_n": cls.stride_n, "support_lag": -1, "no_whole_word": False, "vocoder_context_frames": cls.vocoder_context_frames,
             "no_vocoder_flush": False, "speech_hold_ms": cls.FLAG_SPEECH_HOLD_MS, "pause_ms": cls.FLAG_PAUSE_MS, "no_pause": False, "silence_db": cls.silence_db,
             "punct_delay": cls.FLAG_PUNCT_DELAY, "no_punct": False}
        for dests in cls._SETTINGS.values():
            given = {d: getattr(args, d) for d in dests if getattr(args, d, None) is not None}
            v.update(given if given else {d: model[d] for d in dests if d in model})
        delay = None if v["no_punct"] else v["punct_delay"]
        if delay is not None and not punct_model:
            logger.info("no punctuation model loaded: learned sentence boundaries are off")
            delay = None
        ctx = v["vocoder_context_frames"]
        support = v["support_lag"]
        return cls(lag_k=v["lag_k"], stride_n=v["stride_n"], support_lag=None if support is None or support < 0 else support,
                   whole_word=not v["no_whole_word"],
                   vocoder_context_frames=None if ctx is not None and ctx < 0 else ctx,
                   vocoder_flush=not v["no_vocoder_flush"], speech_hold_ms=v["speech_hold_ms"],
                   pause_ms=None if v["no_pause"] else v["pause_ms"], silence_db=v["silence_db"], punct_delay=delay)


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


def ctc_supported(token: int, committed: Sequence[int], ctc_tokens: Sequence[int]) -> bool:
    """Whether the ST-CTC backs ``token`` as the next committed token: it counted the token more
    often than the translation ``committed`` has said it (same dictionary)."""
    return sum(t == token for t in ctc_tokens) > sum(t == token for t in committed)


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
