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
    assert d.speech_hold_ms == PolicyConfig.FLAG_SPEECH_HOLD_MS and _policy(["--speech-hold-ms", "640"]).speech_hold_ms == 640


@pytest.mark.parametrize("argv,match", [(["--lag-k", "-1"], "lag_k"), (["--stride-n", "0"], "stride_n"),
                                        (["--pause-ms", "0"], "pause_ms"), (["--punct-delay", "-2"], "punct_delay"),
                                        (["--speech-hold-ms", "-1"], "speech_hold_ms"), (["--speech-hold-ms", "inf"], "speech_hold_ms"),
                                        (["--speech-hold-ms", "nan"], "speech_hold_ms")])
def test_bad_policy_flags_are_errors(argv, match):
    with pytest.raises(ValueError, match=match):
        _policy(argv)


# ---------------------------------------------------------------- policy decisions
from echostream_fairseq.streaming import policy as decisions  # noqa: E402


def test_gate_opens_with_the_st_count_less_the_lag():
    g = decisions.Gate()
    g = decisions.open_gate(g, n_asr=1, n_st=3, lag_k=1, stride_n=1, whole_word=True)
    assert (g.allowed, g.asr_seen, g.st_seen) == (3, 1, 3)  # 3 - 1 + 1 to finish a word
    assert decisions.open_gate(g, n_asr=1, n_st=5, lag_k=1, stride_n=1, whole_word=True) is g  # transcript did not grow
    g2 = decisions.open_gate(g, n_asr=2, n_st=5, lag_k=1, stride_n=1, whole_word=False)
    assert g2.allowed == 4
    assert decisions.open_gate(g2, n_asr=3, n_st=2, lag_k=1, stride_n=1, whole_word=False).allowed == 4  # never shrinks
    strided = decisions.open_gate(decisions.Gate(), n_asr=1, n_st=7, lag_k=0, stride_n=3, whole_word=False)
    assert strided.allowed == 6
    assert decisions.open_gate(strided, n_asr=2, n_st=8, lag_k=0, stride_n=3, whole_word=False) is strided  # moved < stride
    assert decisions.open_gate(decisions.Gate(), 0, 2, 0, 1, False, asr_head=False).allowed == 2  # no ASR head: ST alone


def test_ctc_support_counts_what_the_ctc_heard_and_the_translation_has_not_said():
    assert decisions.ctc_supported(7, committed=[], ctc_tokens=[5, 7])
    assert not decisions.ctc_supported(7, committed=[7], ctc_tokens=[5, 7])  # said as often as heard
    assert decisions.ctc_supported(7, committed=[7], ctc_tokens=[7, 5, 7])  # heard twice
    assert not decisions.ctc_supported(9, committed=[], ctc_tokens=[5, 7])  # never heard


def test_support_lag_is_one_setting_with_the_lag():
    assert _policy(["--lag-k", "3", "--support-lag", "0"]).support_lag == 0
    assert _policy(["--lag-k", "3", "--support-lag", "-1"]).support_lag is None
    with pytest.raises(ValueError, match="support_lag"):
        _policy(["--lag-k", "1", "--support-lag", "1"])  # not below the lag


def test_whole_word_emission_stops_before_the_last_word_start():
    #            ▁the ▁gi  rl  ▁dr  aws
    starts = [True, True, False, True, False]
    assert decisions.whole_word_end(starts.__getitem__, 5, ready=4, emitted=0) == 3  # "the girl" is complete
    assert decisions.whole_word_end(starts.__getitem__, 5, ready=2, emitted=0) == 1  # "girl" may still grow
    assert decisions.whole_word_end(starts.__getitem__, 5, ready=4, emitted=3) == 3  # nothing new: never back
    assert decisions.whole_word_end([True, False, False].__getitem__, 3, ready=2, emitted=0) == 0
    assert decisions.whole_word_end(starts.__getitem__, 4, ready=4, emitted=0) == 3  # token `ready` not committed yet


def test_pause_and_learned_boundaries():
    assert decisions.pause_cut(None, 40, 100) is None
    assert decisions.pause_cut(1000, 40, 24) is None  # the encoder has not reached the pause's middle
    assert decisions.pause_cut(1010, 40, 26) == 26
    mark = {9}.__contains__  # token 9 is a closing mark
    tokens, frames = [5, 6, 9, 7], [3, 8, 12, 30]
    assert decisions.pause_boundary(20, frames, tokens, 0, mark) == (3, 20)  # the late mark stays with its sentence
    assert decisions.pause_boundary(2, frames, tokens, 0, mark) is None  # nothing said before the cut
    assert decisions.pause_boundary(20, frames, tokens, 25, mark) is None  # nothing since the sentence began
    # the punctuation model decided: ordinal 11 -> comma (1), ordinal 12 -> full stop (2); tokens[0] is ordinal 11
    assert decisions.learned_boundary([(11, 1), (12, 2)], 11, frames, tokens, 40, 0, {2}, mark) == (3, 30, 2)
    assert decisions.learned_boundary([(10, 2)], 11, frames, tokens, 40, 0, {2}, mark) is None  # already closed
    assert decisions.learned_boundary([(14, 2)], 11, frames, tokens, 40, 0, {2}, mark) == (4, 40, 2)  # at the end


def test_pause_detector_finds_the_middle_of_a_long_pause():
    from echostream_fairseq.streaming.boundaries import FRAME_MS, PauseDetector, SentenceBoundaries

    tone = 0.3 * np.sin(np.arange(16000) * 2 * np.pi * 220 / 16000).astype(np.float32)  # 1 s of speech-loud tone
    quiet = np.zeros(16000, dtype=np.float32)
    d = PauseDetector(pause_ms=600, silence_db=-45)
    d.hear(tone, 1000)
    d.hear(quiet[:8000], 1500)
    assert d.cut_ms is None and d.silence_ms == 500  # 500 ms of silence: not a pause yet
    d.hear(quiet[:8000], 2000)
    assert d.silence_ms == 1000 and d.cut_ms == 1000 + 300  # the pause began at 1 s; cut 300 ms into it
    assert d.take(frames_heard=int(1300 // FRAME_MS)) is None  # the encoder has not covered the cut yet
    assert d.take(frames_heard=40) == int(np.ceil(1300 / FRAME_MS)) and d.cut_ms is None  # handed out once
    d.hear(quiet[:1600], 2100)
    assert d.cut_ms is None  # the same pause goes on: no second cut
    d.hear(tone[:1600], 2200)
    assert d.silence_ms == 0
    # boundaries off: nothing is ever cut, nothing is read
    off = SentenceBoundaries(PolicyConfig(), None)
    off.hear(quiet, 1000)
    assert off.read([1, 2], 0) == [] and off.next([], [1, 2], [1, 2], 0, 100, 0, lambda t: False) is None
    with pytest.raises(ValueError, match="no punctuation model"):
        SentenceBoundaries(PolicyConfig(punct_delay=2), None)


# ---------------------------------------------------------------- playout hold
from echostream_fairseq.streaming.playout import PlayoutHold, hold_released  # noqa: E402


def test_hold_releases_after_the_source_went_on_or_at_the_end():
    assert not hold_released(None, 5000, 320, flush=True)  # nothing held
    assert not hold_released(960, 1279, 320, flush=False)
    assert hold_released(960, 1280, 320, flush=False)
    assert hold_released(960, 961, 320, flush=True)


def test_playout_hold_delays_the_first_speech_and_keeps_every_sample():
    rng = np.random.default_rng(0)
    pushes = [(np.zeros(0, np.float32), 320), (rng.standard_normal(7).astype(np.float32), 640),
              (np.zeros(0, np.float32), 960), (rng.standard_normal(5).astype(np.float32), 1280),
              (rng.standard_normal(3).astype(np.float32), 1600), (np.zeros(0, np.float32), 1920)]
    h = PlayoutHold(640)
    outs = [h.push(p, t, flush=False) for p, t in pushes]
    # the first speech came at 640 ms: held until 1280, then out with what came meanwhile
    assert [o.size for o in outs] == [0, 0, 0, 12, 3, 0]
    assert np.array_equal(np.concatenate(outs), np.concatenate([p for p, _ in pushes]))
    # off, speech passes at once; at a sentence end, held speech goes out whatever the time
    assert [PlayoutHold(0).push(p, t, False).size for p, t in pushes] == [0, 7, 0, 5, 3, 0]
    h = PlayoutHold(10_000)
    assert h.push(pushes[1][0], 640, False).size == 0 and h.held_samples == 7
    assert np.array_equal(h.push(pushes[3][0], 960, flush=True), np.concatenate([pushes[1][0], pushes[3][0]]))
