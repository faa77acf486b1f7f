"""``StreamingSession``: one utterance or connection, fed samples chunk by chunk. The session
conducts stage objects that own their state: the front end (``features.OnlineFrontEnd``), the
encoder state, the sentence's MT decoder (``mt_decoder``), its emission of words and units
(``emission``), the vocoder stream (``vocoder_sync``) and the sentence boundaries
(``boundaries``); the policy's decisions are plain functions (``policy``). ``step_many`` /
``finish_many`` step many sessions as one batch per model stage.

Per chunk only new work is done:

* online fbank + CMVN on the new samples, Emformer ``infer`` on complete segments;
* ASR-CTC / ST-CTC argmax on the new encoder frames, greedy prefixes extended (append-only);
* MT decoder: committed tokens are never re-decoded; the cross-attention keys/values of each
  decoder layer are extended with the new encoder frames only;
* T2U + CTC unit decoder on the states of newly emitted tokens only (KV caches);
* vocoder on a fixed window around the frames whose durations became final (with
  ``vocoder_flush``, the default, every emission's frames are final at once);
* a sentence's first speech held until the source has gone ``speech_hold_ms`` further
  (``playout``), so that the words after it come before the speech runs dry.

Policy (``PolicyConfig``):

* CTC gating: the MT decoder runs only when the ASR-CTC prefix grew since it last ran and the
  ST-CTC prefix grew by at least ``stride_n`` tokens; it may then commit up to
  ``((|ST| - lag_k) // stride_n) * stride_n`` target tokens (+1 in whole-word mode, the token
  that shows whether the last word is complete). With ``support_lag``, a second gate opens at
  that smaller lag for tokens the ST-CTC backs (counted more often than said so far); a token
  past the first gate that the ST-CTC does not back is a stop decision.
* Whole words: a subword is emitted (text, units, speech) only once the next committed token
  starts a new word, or at the end of the source.
* A decoder step whose argmax is end-of-sentence before the source has ended is a stop
  decision: the step is rolled back and the token is decoded again when more speech is there.
* Sentence boundaries, two triggers:
  - learned (``punct_delay``): the punctuation model (``punct.py``) reads the ASR-CTC tokens and
    decides, ``punct_delay`` tokens later, that a sentence ended after a token. The sentence is
    cut at the encoder frame where the next sentence's first token was emitted: frames and
    tokens before it are closed, those after it start the next sentence.
  - pause (``pause_ms``): after that much silence (10 ms blocks under ``silence_db`` dBFS RMS)
    following transcribed speech, and once the encoder has covered it, the sentence is closed
    with everything heard.
  A closed sentence is finished as if its source had ended (translation, units and speech
  flushed), then the per-sentence state is reset -- encoder-frame window, cross-attention
  keys/values, CTC prefixes, MT incremental state, unit caches, vocoder tail -- while the
  Emformer state carries on. The cost of a chunk then depends on the current sentence only, not
  on the talk. Closed sentences are shown recomposed: capitalised, with the predicted mark.
"""
from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from .. import features, punct
from ..decoding import ctc_spikes, heard_nothing, repeat_blocked, token_map, unsupported_repeats, word_start_table
from ..models.echostream import ctc_blank
from . import policy as decisions
from .policy import PolicyConfig  # noqa: F401  (the engine's API)
from .boundaries import FRAME_MS, SentenceBoundaries
from .emission import WORD_START, Emission, emit_units
from .mt_decoder import IncrementalMTDecoder, step_batch
from .playout import PlayoutHold
from .resources import Resources, check_device, load_resources  # noqa: F401  (the engine's API)
from .vocoder_sync import VocoderStream, push_many

# the profiler labels of a step's model stages, in the order they run
STAGES = FRONT_END, ENCODER, PUNCTUATION, MT_DECODER, EMISSION, VOCODER = (
    "echostream.front_end", "echostream.encoder", "echostream.punctuation", "echostream.mt_decoder", "echostream.emission",
    "echostream.vocoder")
stage = torch.profiler.record_function


def _load_malloc_trim():
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to trim
        return None


_MALLOC_TRIM = _load_malloc_trim()


def release_freed_memory() -> None:
    """Hand the heap memory that freed tensors leave behind back to the OS. Per-sentence
    tensors of ever-different sizes otherwise fragment glibc's heap, and a long session's
    resident memory creeps up although its live state is bounded (measured: +16 % over the
    first 10 minutes of a talk without it, flat with it; bench/longform.py)."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


@dataclass
class StepOutput:
    asr: str = ""  # new transcript text
    words: List[str] = field(default_factory=list)  # newly emitted translated words (pieces joined)
    units: List[int] = field(default_factory=list)
    pcm: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    finished: bool = False
    sentences: List[tuple] = field(default_factory=list)  # (transcript, translation) closed in this step, recomposed

    @property
    def empty(self) -> bool:
        return not (self.asr or self.words or self.units or self.pcm.size)

    def merged(self, later: "StepOutput") -> "StepOutput":
        """This output followed by ``later`` (e.g. a last step and ``finish()``) as one."""
        return StepOutput(self.asr + later.asr, self.words + later.words, self.units + later.units,
                          np.concatenate([self.pcm, later.pcm]), self.finished or later.finished,
                          self.sentences + later.sentences)


@dataclass
class Counters:
    samples: int = 0
    fbank_frames: int = 0
    encoder_frames: int = 0
    mt_steps: int = 0
    stop_decisions: int = 0
    unit_decoder_tokens: int = 0
    sentences: int = 0  # sentences closed at a boundary (pause or learned)
    learned_boundaries: int = 0
    pause_boundaries: int = 0
    closed_tokens: int = 0  # target tokens committed in closed sentences


class StreamingSession:
    def __init__(self, res: Resources, policy: PolicyConfig = None, speech: bool = True, translate: bool = True):
        self.res = res
        self.m = res.model
        self.policy = policy or PolicyConfig()
        self.front = features.OnlineFrontEnd(res.cmvn, res.input_level)
        self.enc_state = self.m.encoder.init_state()
        self.speech = speech and res.vocoder is not None
        self.translate = translate  # False: transcript only (streaming ASR), no MT work at all
        self.finished = False
        self.count = Counters()
        self._word_start = word_start_table(self.m.mt_dict)
        self._st_as_mt = token_map(self.m.st_dict, self.m.mt_dict)  # ST-CTC tokens as MT decoder tokens
        self.boundaries = SentenceBoundaries(self.policy, res.punct)  # pauses and learned sentence ends
        self.done_transcripts: List[str] = []  # closed sentences, as decoded
        self.done_translations: List[str] = []
        self.done_marks: List[int] = []  # their end mark (punct.MARKS class)
        self.boundary_log: List[dict] = []  # per closed sentence: trigger, when (ms of input), cut (ms)
        self._asr_base = 0  # stream-wide ordinal of asr[0]
        self._frame0 = 0  # stream-wide index of the first frame in the window
        self._new_sentence()

    def _new_sentence(self) -> None:
        """The per-sentence state (everything but the front end and the Emformer state)."""
        self.mt = IncrementalMTDecoder(self.m)  # the sentence's encoder frames and MT decoder caches
        self.asr: List[int] = []
        self.st: List[int] = []
        self.asr_frames: List[int] = []  # stream-wide encoder frame at which each token was emitted
        self.st_frames: List[int] = []
        self._asr_prev: Optional[int] = None
        self._st_prev: Optional[int] = None
        self.gate = decisions.Gate()  # CTC gating: how many target tokens may be committed
        self.support_gate = decisions.Gate()  # how many, when the ST-CTC backs them (support_lag)
        self.committed: List[int] = []  # target tokens fed / to feed to the MT decoder
        self.text_states: List[torch.Tensor] = []  # decoder state of committed[i]
        self.mt_done = False
        self.emission = Emission(self.m, self.res.unit_dict, self.policy.whole_word, self.res.unit_blank_penalty)  # text words and units
        self.vocoder = VocoderStream(self.res.vocoder, self.policy.vocoder_context_frames) if self.speech else None
        self.playout = PlayoutHold(self.policy.speech_hold_ms)  # the sentence's speech on its way out
        self._closing = False  # the current sentence is being closed at a pause
        self._fbank0 = self.count.fbank_frames  # where the sentence starts

    # ------------------------------------------------------------------ encoder side
    def _ingest(self, samples) -> torch.Tensor:
        """New 16 kHz samples -> normalised fbank frames (silence tracked, counted)."""
        samples = features.check_samples(np.asarray(samples, dtype=np.float32).reshape(-1), "session input")
        self.count.samples += samples.size
        feats = self.front.accept(samples)
        # pauses are heard at the level the model reads (a quiet speaker's speech is not a pause)
        self.boundaries.hear(samples, 1000 * self.count.samples / features.SAMPLE_RATE, self.front.gain_db)
        self.count.fbank_frames += feats.shape[0]
        return torch.from_numpy(feats).to(self.res.device)

    def _ctc_extend(self, ids: List[int], n_frames: int, dictionary, prefix, positions, prev_attr) -> None:
        """Extend a greedy CTC prefix with the argmax ``ids`` of the newest ``n_frames`` frames."""
        first = self.count.encoder_frames - n_frames
        for tok, off in ctc_spikes(ids, ctc_blank(dictionary), getattr(self, prev_attr)):
            prefix.append(tok)
            positions.append(first + off)
        setattr(self, prev_attr, ids[-1])

    # ------------------------------------------------------------------ MT decoder
    def _max_len(self) -> int:
        """The length bound for the sentence's source heard so far."""
        return self.res.length_bound.max_tokens((self.count.fbank_frames - self._fbank0) * features.FRAME_SHIFT_MS / 1000)

    @property
    def allowed(self) -> int:
        return max(self.gate.allowed, self.support_gate.allowed)

    def _update_allowance(self) -> None:
        p = self.policy
        if self._sentence_ends:
            self.gate = decisions.Gate(self._max_len() + 1, len(self.asr), len(self.st))
            return
        if p.wait_until_end or self.m.st_ctc_proj is None:
            return
        asr_head = self.m.asr_ctc_proj is not None
        self.gate = decisions.open_gate(self.gate, len(self.asr), len(self.st), p.lag_k, p.stride_n, p.whole_word, asr_head)
        if p.support_lag is not None:
            self.support_gate = decisions.open_gate(self.support_gate, len(self.asr), len(self.st), p.support_lag,
                                                    p.stride_n, p.whole_word, asr_head)

    def _decode_begin(self) -> bool:
        """Whether the MT decoder may run at all in this step."""
        if self.mt.n_frames == 0 or heard_nothing(self._current_transcript(), "".join(self.m.st_dict[t] for t in self.st)):
            # no word heard (yet) in this sentence: nothing to translate; at its end, nothing at all
            self.mt_done = self._sentence_ends
            return False
        return True

    def _wants_step(self) -> bool:
        return not self.mt_done and len(self.committed) < self.allowed

    def _take_step(self, snapshot, lprobs: torch.Tensor, state: torch.Tensor) -> bool:
        """Decide on one decoder step's output; False: a stop decision (no more steps now)."""
        eos, pad = self.m.mt_dict.eos(), self.m.mt_dict.pad()
        self.count.mt_steps += 1
        lprobs[pad] = -float("inf")
        if not self.committed:
            lprobs[eos] = -float("inf")  # at least one token, as offline decoding
        for t in repeat_blocked(self.committed, self._word_start):
            lprobs[t] = -float("inf")  # no loops: a third copy of a word or phrase in a row
        nxt = eos if len(self.committed) >= self._max_len() else int(lprobs.argmax())
        st = self.st if self._st_as_mt is None else [self._st_as_mt[t] for t in self.st]
        if nxt in unsupported_repeats(self.committed, self._word_start, st):
            # a word said again where the ST-CTC does not: wait for more source, or at the
            # sentence's end say the next best thing
            if not self._sentence_ends:
                nxt = eos
            else:
                lprobs[nxt] = -float("inf")
                nxt = int(lprobs.argmax())
        if (nxt != eos and len(self.committed) >= self.gate.allowed and not self._sentence_ends
                and not decisions.ctc_supported(nxt, self.committed, st)):
            nxt = eos  # past the lag_k gate, only what the ST-CTC heard: wait for more source
        if nxt == eos and not self._sentence_ends:
            self.mt.rollback(snapshot)  # stop decision: decode this position again later
            self.count.stop_decisions += 1
            return False
        if self.committed:
            self.text_states.append(state)  # the state whose input is the last committed token
        if nxt == eos:
            self.mt_done = True
        else:
            self.committed.append(nxt)
        return True

    # ------------------------------------------------------------------ API
    def step(self, samples) -> StepOutput:
        """Consume new 16 kHz samples (float in [-1, 1]); return what is new."""
        return step_many([(self, samples)])[0]

    def finish(self) -> StepOutput:
        """End of the source: flush encoder, translation, units and speech."""
        return finish_many([self])[0]

    def _is_mark(self, token: int) -> bool:
        return punct.piece_mark(self.m.asr_dict[token]) is not None

    def _advance(self, out: StepOutput) -> None:
        """Translate what the policy allows and emit it (text, units, speech) into ``out``."""
        _advance_many([self], [out])

    def _heard(self, new_asr: List[int]) -> Tuple[StepOutput, list]:
        """The output's transcript part, and the sentence ends the punctuation model decided."""
        out = StepOutput()
        out.asr = "".join(self.m.asr_dict[t] for t in new_asr).replace(WORD_START, " ") if self.m.asr_dict else ""
        return out, self.boundaries.read(new_asr, self._asr_base + len(self.asr) - len(new_asr))

    def _boundaries(self, out: StepOutput, decided: list) -> None:
        """Close every sentence that ended (learned or at a pause) and go on with the next."""
        while not self.finished:
            b = self.boundaries.next(decided, self.asr, self.asr_frames, self._asr_base, self.count.encoder_frames,
                                     self._frame0, self._is_mark)
            if b is None:
                break
            self._close_sentence(out, *b)
            self._advance(out)  # the next sentence may already have enough to translate

    @property
    def _sentence_ends(self) -> bool:
        """The current sentence is being finished: the source ended or a boundary closes it."""
        return self.finished or self._closing

    @property
    def units(self) -> List[int]:
        """The units of the current sentence so far."""
        return self.emission.units

    def _close_sentence(self, out: StepOutput, split: int, cut: int, mark: Optional[int], trigger: str) -> None:
        """Close the sentence made of asr[:split] and the frames before ``cut`` (stream-wide
        index); what follows starts the next sentence."""
        rel = cut - self._frame0
        carry_frames = self.mt.frames[rel:].clone() if rel < self.mt.n_frames else None
        keep_st = bisect_left(self.st_frames, cut)
        carry = (self.asr[split:], self.asr_frames[split:], self.st[keep_st:], self.st_frames[keep_st:],
                 self._asr_prev, self._st_prev)
        self.mt.truncate(rel)  # the closing sentence sees its own frames only
        del self.asr[split:], self.asr_frames[split:], self.st[keep_st:], self.st_frames[keep_st:]
        self._closing = True  # finish the sentence as if its source had ended
        self._advance(out)
        if mark is None:
            mark = punct.MARKS.index(".")
        transcript, translation = self._current_transcript(), self._current_translation()
        self.done_transcripts.append(transcript)
        self.done_translations.append(translation)
        self.done_marks.append(mark)
        out.sentences.append(self._shown(transcript, translation, mark))
        self.boundary_log.append({"at_ms": 1000 * self.count.samples / features.SAMPLE_RATE, "cut_ms": cut * FRAME_MS,
                                  "trigger": trigger})
        self.count.sentences += 1
        if trigger == "learned":
            self.count.learned_boundaries += 1
        else:
            self.count.pause_boundaries += 1
        self.count.closed_tokens += len(self.committed)
        self._asr_base += split
        self._frame0 = cut
        self._new_sentence()
        self.asr, self.asr_frames, self.st, self.st_frames, self._asr_prev, self._st_prev = carry
        if carry_frames is not None:
            self.mt.extend(carry_frames)
        release_freed_memory()

    # ------------------------------------------------------------------ views
    def _current_transcript(self) -> str:
        return "".join(self.m.asr_dict[t] for t in self.asr).replace(WORD_START, " ").strip()

    def _current_translation(self) -> str:
        return "".join(self.m.mt_dict[t] for t in self.committed[: self.emission.emitted]).replace(WORD_START, " ").strip()

    @property
    def transcript(self) -> str:
        return " ".join(t for t in self.done_transcripts + [self._current_transcript()] if t)

    @property
    def translation(self) -> str:
        return " ".join(t for t in self.done_translations + [self._current_translation()] if t)

    def _shown(self, transcript: str, translation: str, mark: int) -> tuple:
        """A closed sentence as shown: capitalised, ending in its mark (the translation keeps its own)."""
        openers = self.res.punct.openers if self.res.punct is not None else {}
        return punct.recompose(transcript, mark, openers), punct.recompose(translation, mark, {}, keep_own=True)

    def recomposed(self) -> tuple:
        """(transcript, translation) as shown: closed sentences capitalised and punctuated by the
        boundary that closed them, then the open sentence as it stands."""
        marks = self.done_marks + ([self._final_mark] if self.finished else [])
        shown = [self._shown(a, b, m) for a, b, m in zip(self.done_transcripts + [self._current_transcript()],
                                                         self.done_translations + [self._current_translation()], marks)]
        src, tgt = [a for a, _ in shown], [b for _, b in shown]
        if not self.finished:  # the open sentence as it stands
            src.append(self._current_transcript())
            tgt.append(self._current_translation())
        return " ".join(x for x in src if x), " ".join(x for x in tgt if x)


# ---------------------------------------------------------------------- many sessions at once
# A step of several sessions runs each model stage once for all of them: the encoder's
# segments, the CTC heads, every MT decoder position, T2U + unit decoder and the vocoder. What
# each session decides (gating, whole words, boundaries) stays its own; one session stepped
# alone is the batch of one, so alone and together give the same output.


def _by_resources(sessions: Sequence[StreamingSession], fn: Callable[[List[StreamingSession]], list]) -> list:
    """``fn`` on the sessions of each shared model (Resources) in turn; results in input order."""
    groups: Dict[int, List[int]] = {}
    for i, s in enumerate(sessions):
        groups.setdefault(id(s.res), []).append(i)
    out = [None] * len(sessions)
    for idx in groups.values():
        for i, r in zip(idx, fn([sessions[i] for i in idx])):
            out[i] = r
    return out


def _accept_frames(sessions: Sequence[StreamingSession], news: Sequence[torch.Tensor]) -> None:
    """New encoder frames: CTC heads over all sessions' frames at once, then each session's
    greedy prefixes and MT frames."""
    live = [(s, f) for s, f in zip(sessions, news) if f.numel()]
    if not live:
        return
    for s, f in live:
        s.count.encoder_frames += f.size(0)
        s.mt.extend(f)
    m = live[0][0].m
    frames = torch.cat([f for _, f in live]) if len(live) > 1 else live[0][1]
    sizes = [f.size(0) for _, f in live]
    for proj, dictionary, tokens, positions, prev in ((m.asr_ctc_proj, m.asr_dict, "asr", "asr_frames", "_asr_prev"),
                                                      (m.st_ctc_proj, m.st_dict, "st", "st_frames", "_st_prev")):
        if proj is None:
            continue
        ids = proj(frames).argmax(-1).tolist()
        start = 0
        for (s, _), n in zip(live, sizes):
            s._ctc_extend(ids[start:start + n], n, dictionary, getattr(s, tokens), getattr(s, positions), prev)
            start += n


def _decode(sessions: Sequence[StreamingSession]) -> None:
    """MT decoding as far as each session's gate allows: one batched decoder position per round
    for every session that still decodes."""
    live = [s for s in sessions if s._decode_begin()]
    while True:
        live = [s for s in live if s._wants_step()]
        if not live:
            return
        snaps = [s.mt.snapshot() for s in live]
        results = step_batch([s.mt for s in live], [s.committed for s in live])
        live = [s for s, snap, (lprobs, state) in zip(live, snaps, results) if s._take_step(snap, lprobs, state)]


def _emit(sessions: Sequence[StreamingSession]) -> List[StepOutput]:
    """Words the policy lets out, and their units: T2U and unit decoder batched."""
    outs, todo = [], []
    for s in sessions:
        words, work = s.emission.begin(s.committed, s.text_states, s.mt_done)
        outs.append(StepOutput(words=words))
        if work is not None:
            todo.append((s, outs[-1], work))
    if todo:
        for (s, out, work), units in zip(todo, emit_units([s.emission for s, _, _ in todo], [w for _, _, w in todo])):
            s.count.unit_decoder_tokens += work[0].size(0)
            out.units = units
    return outs


def _advance_group(sessions: List[StreamingSession], outs: List[StepOutput]) -> list:
    pairs = [(s, o) for s, o in zip(sessions, outs) if s.translate]
    for s, _ in pairs:
        s._update_allowance()
    with stage(MT_DECODER):
        _decode([s for s, _ in pairs])
    with stage(EMISSION):
        more = _emit([s for s, _ in pairs])
    for (s, o), mo in zip(pairs, more):
        o.words += mo.words
        o.units += mo.units
    speech = [(s, o, mo) for (s, o), mo in zip(pairs, more) if s.vocoder is not None]
    if speech:
        with stage(VOCODER):
            pcm = push_many([s.vocoder for s, _, _ in speech], [mo.units for _, _, mo in speech],
                            [s._sentence_ends or s.policy.vocoder_flush for s, _, _ in speech])
        for (s, o, _), p in zip(speech, pcm):
            now_ms = 1000 * s.count.samples / features.SAMPLE_RATE
            o.pcm = np.concatenate([o.pcm, s.playout.push(p, now_ms, flush=s._sentence_ends)])
    return outs


def _advance_many(sessions: Sequence[StreamingSession], outs: Sequence[StepOutput]) -> None:
    index = {id(s): o for s, o in zip(sessions, outs)}
    _by_resources(sessions, lambda group: _advance_group(group, [index[id(s)] for s in group]))


def _respond(sessions: Sequence[StreamingSession], asr_before: Sequence[int]) -> List[StepOutput]:
    with stage(PUNCTUATION):
        heard = [s._heard(s.asr[n:]) for s, n in zip(sessions, asr_before)]
    outs = [out for out, _ in heard]
    _advance_many(sessions, outs)
    for s, (out, decided) in zip(sessions, heard):
        s._boundaries(out, decided)
    return outs


def _check(sessions: Sequence[StreamingSession], finished_error: str) -> None:
    if len({id(s) for s in sessions}) != len(sessions):
        raise ValueError("a session appears twice in one batched step")
    if any(s.finished for s in sessions):
        raise RuntimeError(finished_error)


def _encode(sessions: Sequence[StreamingSession], run: Callable) -> None:
    """``run(encoder, group)`` gives each session's new encoder frames, per shared model; they go
    to the CTC heads and the MT decoders."""
    def encode(group):
        with stage(ENCODER):
            news = run(group[0].m.encoder, group)
            _accept_frames(group, news)
        return news

    _by_resources(sessions, encode)


@torch.no_grad()
def step_many(items: Sequence[Tuple[StreamingSession, np.ndarray]]) -> List[StepOutput]:
    """Step several sessions, each with its new 16 kHz samples, in one batched forward per model
    stage. Returns each session's output: exactly what ``session.step(samples)`` returns alone
    (PCM up to float rounding)."""
    sessions = [s for s, _ in items]
    _check(sessions, "step() after finish()")
    with stage(FRONT_END):
        feats = {id(s): s._ingest(x) for s, x in items}
    asr_before = [len(s.asr) for s in sessions]
    _encode(sessions, lambda enc, group: enc.streaming_step_many([feats[id(s)] for s in group], [s.enc_state for s in group]))
    return _respond(sessions, asr_before)


@torch.no_grad()
def finish_many(sessions: Sequence[StreamingSession]) -> List[StepOutput]:
    """``finish()`` for several sessions at once (end of each one's source)."""
    _check(sessions, "finish() called twice")
    asr_before = [len(s.asr) for s in sessions]
    _encode(sessions, lambda enc, group: enc.streaming_finish_many([s.enc_state for s in group]))
    for s in sessions:
        s.finished = True
    outs = _respond(sessions, asr_before)
    for s, out in zip(sessions, outs):
        out.finished = True
        s._final_mark = s.boundaries.final_mark()
    return outs
