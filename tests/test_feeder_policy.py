"""The pieces every streaming front door shares, without a trained model: segment sizes, the
segment feeder, merging step outputs, and the policy flags (one definition for all tools)."""
import argparse

import numpy as np
import pytest

from echostream_fairseq.streaming.engine import PolicyConfig, StepOutput
from echostream_fairseq.streaming.feeder import SegmentFeeder, segment_samples


def test_segment_samples():
    assert segment_samples(320) == 5120
    assert segment_samples(10.03) == 160  # rounded, not truncated
    assert segment_samples(0.01) == 1
    for bad in (0, -5, float("nan")):
        with pytest.raises(ValueError, match="segment_ms must be positive"):
            segment_samples(bad)


@pytest.mark.parametrize("pieces", [[16000], [1, 5119, 5121, 5759], [300] * 53 + [100]])
def test_feeder_cuts_the_same_segments_whatever_the_arrival(pieces):
    wav = np.random.default_rng(0).standard_normal(sum(pieces)).astype(np.float32)
    f = SegmentFeeder(320)
    segs, at = [], 0
    for n in pieces:
        segs += f.push(wav[at : at + n])
        at += n
        assert f.pending < 5120
    segs += f.flush()
    assert [s.size for s in segs[:-1]] == [5120] * (len(segs) - 1) and 0 < segs[-1].size <= 5120
    assert np.array_equal(np.concatenate(segs), wav) and f.fed == wav.size
    assert f.flush() == [] and f.pending == 0


def test_step_outputs_merge_in_order():
    a = StepOutput("hola ", ["the"], [1, 2], np.ones(3, np.float32), False, [("a", "b")])
    b = StepOutput("mundo", ["girl"], [3], np.zeros(2, np.float32), True, [("c", "d")])
    m = a.merged(b)
    assert (m.asr, m.words, m.units, m.finished, m.sentences) == ("hola mundo", ["the", "girl"], [1, 2, 3], True,
                                                                   [("a", "b"), ("c", "d")])
    assert np.array_equal(m.pcm, [1, 1, 1, 0, 0])


def _policy(argv, punct_model=True):
    p = argparse.ArgumentParser()
    PolicyConfig.add_args(p)
    return PolicyConfig.from_args(p.parse_args(argv), punct_model=punct_model)


def test_policy_flags_have_one_set_of_defaults():
    d = _policy([])
    assert (d.lag_k, d.stride_n, d.whole_word, d.vocoder_context_frames) == (1, 1, True, 4)
    assert (d.pause_ms, d.punct_delay) == (PolicyConfig.FLAG_PAUSE_MS, PolicyConfig.FLAG_PUNCT_DELAY)
    assert _policy([], punct_model=False).punct_delay is None  # learned boundaries need a model
    off = _policy(["--no-pause", "--no-punct", "--no-whole-word", "--vocoder-context-frames", "-1", "--lag-k", "3"])
    assert (off.pause_ms, off.punct_delay, off.whole_word, off.vocoder_context_frames, off.lag_k) == (None, None, False, None, 3)
    assert _policy(["--pause-ms", "900", "--punct-delay", "0", "--silence-db", "-50"]).pause_ms == 900


@pytest.mark.parametrize("argv,match", [(["--lag-k", "-1"], "lag_k"), (["--stride-n", "0"], "stride_n"),
                                        (["--pause-ms", "0"], "pause_ms"), (["--punct-delay", "-2"], "punct_delay")])
def test_bad_policy_flags_are_errors(argv, match):
    with pytest.raises(ValueError, match=match):
        _policy(argv)
