"""Replaying a recorded source through one ``StreamingSession`` as if it were live: fixed-size
segments, wall time per segment, and SimulEval-style latency of the emitted words (AL, StartOffset,
EndOffset; plain = source time read, computation-aware = plus the compute time so far)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, List, Optional

import numpy as np

from .. import features
from .engine import PolicyConfig, Resources, StepOutput, StreamingSession
from .feeder import SegmentFeeder


@dataclass
class Event:
    source_ms: float  # source read when this output appeared
    compute_ms: float  # wall time spent in the engine so far
    out: StepOutput


@dataclass
class Replay:
    source_ms: float
    events: List[Event] = field(default_factory=list)
    transcript: str = ""
    translation: str = ""
    display: tuple = ("", "")  # (transcript, translation) recomposed: sentences capitalised and punctuated
    pcm: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    sample_rate: int = features.SAMPLE_RATE

    def word_delays(self, computation_aware: bool = False) -> List[float]:
        return [e.source_ms + (e.compute_ms if computation_aware else 0.0) for e in self.events for _ in e.out.words]

    def latency(self, computation_aware: bool = False) -> dict:
        """AL (SimulEval's scorer, reference length = hypothesis length), StartOffset, EndOffset in ms."""
        from simuleval.evaluator.scorers.latency_scorer import ALScorer

        delays = self.word_delays(computation_aware)
        if not delays:
            return {"AL": float("nan"), "StartOffset": float("nan"), "EndOffset": float("nan")}
        inst = _Delays(delays, self.source_ms)
        return {"AL": float(ALScorer().compute(inst)), "StartOffset": delays[0], "EndOffset": delays[-1] - self.source_ms}


class _Delays:
    """The fields SimulEval's AL scorer reads from an instance."""

    def __init__(self, delays, source_length):
        self.delays, self.source_length, self.reference = delays, source_length, None


def replay(res: Resources, wav: np.ndarray, segment_ms: float = 320, policy: Optional[PolicyConfig] = None,
           on_event: Optional[Callable[[Event], None]] = None, speech: bool = True) -> Replay:
    """Feed 16 kHz ``wav`` in ``segment_ms`` pieces, then finish; every non-empty output is an event."""
    feeder = SegmentFeeder(segment_ms)
    segments = feeder.push(wav) + feeder.flush()
    s = StreamingSession(res, policy, speech=speech)
    result = Replay(source_ms=1000 * len(wav) / features.SAMPLE_RATE)
    spent, read, pcm = 0.0, 0, []
    for i, seg in enumerate(segments + ([] if segments else [np.zeros(0, np.float32)])):
        last = i >= len(segments) - 1
        t0 = time.perf_counter()
        out = s.step(seg) if seg.size else StepOutput()
        if last:
            out = out.merged(s.finish())
        spent += 1000 * (time.perf_counter() - t0)
        read += seg.size
        pcm.append(out.pcm)
        if not out.empty or last:
            ev = Event(1000 * read / features.SAMPLE_RATE, spent, out)
            result.events.append(ev)
            if on_event:
                on_event(ev)
    result.transcript, result.translation = s.transcript, s.translation
    result.display = s.recomposed()
    result.pcm = np.concatenate(pcm) if pcm else result.pcm
    return result


def load_source(path) -> np.ndarray:
    """Any file soundfile reads (wav, flac, ogg; channels averaged), resampled to 16 kHz."""
    import soundfile as sf

    wav = features.read_audio(path, expected_sr=None)
    return features.resample(wav, sf.info(str(path)).samplerate)
