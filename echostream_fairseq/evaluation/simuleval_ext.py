"""Three gaps of SimulEval 1.1.4, closed from the plugin (no SimulEval patch):

* with ``--output``, scores are computed from ``instances.log``, but speech-output instances
  log ``"elapsed": []``, so ``--computation-aware`` (the ``*_CA`` columns) has no data. The
  speech-to-speech instance class registered here logs the elapsed times it already measures.
* with ``--computation-aware`` it builds the plain-named scorers from the same flag, so ``AL``
  and ``AL_CA`` are both computation-aware. Here every plain-named scorer is computed without
  computation time and only the ``*_CA`` columns include it.
* its Discontinuity scorers require live instance objects and fail on logged ones; the
  ``SpeechDiscontinuity{Sum,Ave,Num}`` scorers here compute the same from the logged
  ``intervals`` (silence inserted between consecutive output segments, in ms).

Both are active when SimulEval imports the plugin (``simuleval --user-dir echostream_fairseq``).
"""
from __future__ import annotations

from simuleval.evaluator import instance as _instance
from simuleval.evaluator.scorers.latency_scorer import LATENCY_SCORERS_DICT, LatencyScorer, register_latency_scorer


class SpeechToSpeechInstanceWithElapsed(_instance.SpeechToSpeechInstance):
    def summarize(self):
        info = super().summarize()
        info["elapsed"] = list(self.elapsed)
        return info


_instance.INSTANCE_TYPE_DICT["speech-speech"] = SpeechToSpeechInstanceWithElapsed


def _gaps(ins):
    ivs = getattr(ins, "intervals", None) or []
    return [max(0.0, s - (ps + pd)) for (ps, pd), (s, _) in zip(ivs, ivs[1:]) if s - (ps + pd) > 1e-6]


@register_latency_scorer("SpeechDiscontinuitySum")
class SpeechDiscontinuitySum(LatencyScorer):
    """Total silence (ms) inserted between output speech segments."""

    def compute(self, ins):
        return sum(_gaps(ins))


@register_latency_scorer("SpeechDiscontinuityAve")
class SpeechDiscontinuityAve(LatencyScorer):
    """Mean length (ms) of the inserted silences (0 without any)."""

    def compute(self, ins):
        g = _gaps(ins)
        return sum(g) / len(g) if g else 0.0


@register_latency_scorer("SpeechDiscontinuityNum")
class SpeechDiscontinuityNum(LatencyScorer):
    """Number of inserted silences."""

    def compute(self, ins):
        return len(_gaps(ins))


def _plain_from_args(cls, args):
    return cls(computation_aware=False, use_ref_len=not args.no_use_ref_len)


for _name, _cls in list(LATENCY_SCORERS_DICT.items()):
    if "from_args" not in _cls.__dict__:
        # same class name: SimulEval maps class names to column names
        LATENCY_SCORERS_DICT[_name] = type(_cls.__name__, (_cls,), {"from_args": classmethod(_plain_from_args)})
