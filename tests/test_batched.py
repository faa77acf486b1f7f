"""Sessions stepped as a batch give exactly what each gives alone: same transcript, words and
units, PCM within float rounding, whatever chunk each joins and leaves at."""
import numpy as np
import pytest
import torch

from echostream_fairseq import assets, features
from echostream_fairseq.streaming.engine import PolicyConfig, StreamingSession, finish_many, load_resources, step_many
from echostream_fairseq.streaming.feeder import SegmentFeeder
from echostream_fairseq.streaming.mt_decoder import IncrementalMTDecoder, step_batch

ROOT = assets.REPO_ASSETS
POLICY = PolicyConfig(pause_ms=PolicyConfig.FLAG_PAUSE_MS, punct_delay=PolicyConfig.FLAG_PUNCT_DELAY)


def _load(device="cpu"):
    return load_resources(ROOT / "model" / "checkpoint.pt", ROOT / "model", punct_model=ROOT / "model" / "punct.pt", device=device)


@pytest.fixture(scope="module")
def res():
    return _load()


NEEDS_CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(scope="module")
def sources():
    """The five bundled examples, and two of them joined by a second of silence (a sentence
    boundary inside one stream)."""
    wavs = [features.read_audio(ex["src_audio"]) for ex in assets.read_examples(ROOT)]
    two = np.concatenate([wavs[0], np.zeros(features.SAMPLE_RATE, dtype=np.float32), wavs[1]])
    return wavs + [two]


def _chunks(wav, segment_ms=320):
    f = SegmentFeeder(segment_ms)
    return f.push(wav) + f.flush()


def _solo(res, wav, speech=True):
    s = StreamingSession(res, POLICY, speech=speech)
    outs = [s.step(c) for c in _chunks(wav)] + [s.finish()]
    return s, outs


def _same(a, b, what):
    assert a.asr == b.asr and a.words == b.words and a.units == b.units and a.sentences == b.sentences, what
    assert a.pcm.shape == b.pcm.shape, what
    if a.pcm.size:
        assert np.abs(a.pcm - b.pcm).max() < 1e-4, what


@pytest.mark.slow
@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=NEEDS_CUDA)])
def test_batched_sessions_equal_each_session_alone(res, sources, device):
    """On each device, a batch against the sessions alone on that same device."""
    res = res if device == "cpu" else _load(device)
    # session i joins at chunk 2 * i; each leaves when its source ends (different chunks)
    starts = [2 * i for i in range(len(sources))]
    chunks = [_chunks(w) for w in sources]
    solo = [_solo(res, w) for w in sources]
    sessions = [StreamingSession(res, POLICY) for _ in sources]
    outs = [[] for _ in sources]
    tick, batch_sizes = 0, []
    while any(len(o) < len(c) + 1 for o, c in zip(outs, chunks)):
        items, ending = [], []
        for i, s in enumerate(sessions):
            k = tick - starts[i]
            if 0 <= k < len(chunks[i]):
                items.append((i, chunks[i][k]))
            elif k == len(chunks[i]):
                ending.append(i)
        if items:
            for (i, _), out in zip(items, step_many([(sessions[i], c) for i, c in items])):
                outs[i].append(out)
        if ending:
            for i, out in zip(ending, finish_many([sessions[i] for i in ending])):
                outs[i].append(out)
        batch_sizes.append(len(items) + len(ending))
        tick += 1
    assert max(batch_sizes) >= 4  # the batches really held several sessions
    for i, ((s_alone, alone), together) in enumerate(zip(solo, outs)):
        assert len(alone) == len(together)
        for k, (a, b) in enumerate(zip(alone, together)):
            _same(a, b, f"session {i}, output {k}")
        assert sessions[i].translation == s_alone.translation and sessions[i].units == s_alone.units
        assert sessions[i].recomposed() == s_alone.recomposed()
    assert solo[-1][0].count.sentences >= 1  # the joined stream was cut at its pause
    assert all(s.translation for s, _ in solo)


@pytest.mark.slow
def test_text_only_and_speech_sessions_batch_together(res, sources):
    a, b = sources[0], sources[2]
    ref_a, ref_b = _solo(res, a, speech=False), _solo(res, b)
    sa, sb = StreamingSession(res, POLICY, speech=False), StreamingSession(res, POLICY)
    ca, cb = _chunks(a), _chunks(b)
    got_a, got_b = [], []
    for k in range(max(len(ca), len(cb))):
        items = [(s, c[k]) for s, c in ((sa, ca), (sb, cb)) if k < len(c)]
        for (s, _), o in zip(items, step_many(items)):
            (got_a if s is sa else got_b).append(o)
    for s, got in zip(finish_many([sa, sb]), (got_a, got_b)):
        got.append(s)
    for (_, ref), got in ((ref_a, got_a), (ref_b, got_b)):
        for x, y in zip(ref, got):
            _same(x, y, "mixed batch")
    assert not any(o.pcm.size for o in got_a) and any(o.pcm.size for o in got_b)


def test_a_session_twice_in_one_batch_is_refused(res):
    s = StreamingSession(res, POLICY)
    with pytest.raises(ValueError, match="twice"):
        step_many([(s, np.zeros(160, np.float32)), (s, np.zeros(160, np.float32))])


def test_mt_decoder_batch_pads_unequal_caches(res):
    """Decoders with different frame counts and prefix lengths, stepped together, equal each
    stepped alone (the padding is masked)."""
    torch.manual_seed(0)
    m = res.model
    frames = [torch.randn(n, m.encoder.embed_dim) for n in (3, 11, 7)]
    alone = [IncrementalMTDecoder(m, f) for f in frames]
    together = [IncrementalMTDecoder(m, f) for f in frames]
    prefixes = [[], [], []]
    for t in range(6):
        active = [b for b in range(3) if t >= b]  # decoder b starts at step b
        ref = [alone[b].step(prefixes[b]) for b in active]
        got = step_batch([together[b] for b in active], [prefixes[b] for b in active])
        for b, (lr, sr), (lg, sg) in zip(active, ref, got):
            assert torch.allclose(lr, lg, atol=1e-5) and torch.allclose(sr, sg, atol=1e-5)
            prefixes[b] = prefixes[b] + [int(lr.argmax())]


@pytest.mark.slow
def test_scheduler_batches_concurrent_sessions_and_keeps_each_result(res, sources):
    import asyncio

    from echostream_fairseq.streaming.scheduler import BatchScheduler

    wavs = sources[:4]
    alone = [_solo(res, w, speech=False)[0] for w in wavs]
    sizes = []
    sched = BatchScheduler(max_batch=3, on_batch=lambda n, secs: sizes.append(n))

    async def client(wav, delay):
        await asyncio.sleep(delay)
        s = StreamingSession(res, POLICY, speech=False)
        for c in _chunks(wav):
            await sched.step(s, c)
        await sched.finish(s)
        return s

    async def main():
        s = StreamingSession(res, POLICY, speech=False)
        first = asyncio.ensure_future(sched.step(s, np.zeros(5120, np.float32)))
        await asyncio.sleep(0)
        with pytest.raises(RuntimeError, match="in flight"):
            await sched.step(s, np.zeros(5120, np.float32))
        await first
        return await asyncio.gather(*(client(w, 0.01 * i) for i, w in enumerate(wavs)))

    together = asyncio.run(main())
    sched.shutdown()
    assert [s.translation for s in together] == [s.translation for s in alone]
    assert [s.transcript for s in together] == [s.transcript for s in alone]
    assert 2 <= max(sizes) <= 3  # sessions were stepped together, never more than max_batch at once


@NEEDS_CUDA
def test_cuda_sessions_equal_cpu_sessions(res, sources):
    gpu = _load("cuda")
    assert gpu.device.type == "cuda" and next(gpu.vocoder.model.parameters()).device.type == "cuda"
    for wav in sources[:3]:
        (cs, cpu_outs), (gs, gpu_outs) = _solo(res, wav), _solo(gpu, wav)
        # one assertion per field, each saying what differs (a GPU run is short and rare)
        assert gs.translation == cs.translation, (gs.translation, cs.translation)
        diff = next((i for i, (g, c) in enumerate(zip(gs.units, cs.units)) if g != c), min(len(gs.units), len(cs.units)))
        assert gs.units == cs.units, f"units differ from position {diff} of {len(cs.units)} (cuda {len(gs.units)})"
        pcm_c, pcm_g = (np.concatenate([o.pcm for o in outs]) for outs in (cpu_outs, gpu_outs))
        assert pcm_c.shape == pcm_g.shape, (pcm_c.shape, pcm_g.shape)
        assert np.abs(pcm_c - pcm_g).max() < 1e-3, f"PCM max abs difference {np.abs(pcm_c - pcm_g).max():.2e}"


def test_a_missing_device_is_a_clear_error():
    from echostream_fairseq.streaming.engine import check_device

    assert check_device("cpu").type == "cpu"
    with pytest.raises(ValueError, match="unknown device"):
        check_device("tpu9")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            load_resources(ROOT / "model" / "checkpoint.pt", ROOT / "model", device="cuda")


def test_cuda_math_is_full_fp32():
    """The engine on CUDA turns TF32 off (cuDNN convolutions use it by default), so a session
    gives there what it gives on the CPU."""
    from echostream_fairseq.streaming.resources import use_exact_fp32

    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
        use_exact_fp32()
        assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
