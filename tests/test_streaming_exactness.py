"""Chunk-by-chunk streaming equals whole-utterance forward, front end included."""
import numpy as np
import pytest
import torch

from conftest import encoder_args
from echostream_fairseq import features
from echostream_fairseq.models.encoder import EmformerSpeechEncoder


def _speech_like(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(seconds * features.SAMPLE_RATE)
    t = np.arange(n) / features.SAMPLE_RATE
    wav = 0.3 * np.sin(2 * np.pi * (150 + 50 * np.sin(2 * np.pi * 3 * t)) * t) + 0.05 * rng.standard_normal(n)
    return wav.astype(np.float32)


def _uneven_chunks(x, seed=1):
    rng = np.random.default_rng(seed)
    i = 0
    while i < len(x):
        n = int(rng.integers(1, 2500))
        yield x[i : i + n]
        i += n


def test_online_fbank_equals_offline_for_uneven_chunks():
    wav = _speech_like(2.37)
    offline = features.fbank(wav)
    online = features.OnlineFbank()
    got = np.concatenate([online.accept(c) for c in _uneven_chunks(wav)])
    assert got.shape == offline.shape == (features.num_frames(len(wav)), 80)
    assert np.abs(got - offline).max() < 1e-3  # log-mel values of magnitude ~10


@pytest.mark.parametrize("sr", [8000, 22050, 44100, 48000])
def test_streaming_resampler_equals_whole_signal_resampling(sr):
    rng = np.random.default_rng(sr)
    x = (0.3 * rng.standard_normal(int(sr * 1.7))).astype(np.float32)
    r = features.StreamingResampler(sr)
    outs, i, held = [], 0, 0
    while i < len(x):
        n = int(rng.integers(1, 4000))
        outs.append(r.accept(x[i : i + n]))
        i += n
        held = max(held, len(r.buf))
    outs.append(r.accept(np.zeros(0, dtype=np.float32), final=True))
    y, ref = np.concatenate(outs), features.resample(x, sr)
    assert len(y) == len(ref) and np.abs(y - ref).max() < 1e-5
    assert held < 4000 + 4 * r.half + 2 * r.a  # bounded: one chunk + kernel, not the whole signal


@pytest.mark.parametrize("sr", [0, 1, 4000, 7999, 384_001])
def test_streaming_resampler_rejects_rates_outside_the_source_range(sr):
    """At 1 Hz one 10 kB frame used to become 80 million samples (1.3 GB) before any limit looked."""
    with pytest.raises(features.AudioError, match=f"sample rate {sr} Hz is outside 8000..384000"):
        features.StreamingResampler(sr)


def test_a_file_at_a_rate_outside_the_source_range_is_refused_by_name(tmp_path):
    import soundfile as sf

    path = tmp_path / "low.wav"
    sf.write(str(path), np.zeros(4000, dtype=np.float32), 4000)
    with pytest.raises(features.AudioError, match=f"{path}: sample rate 4000 Hz is outside"):
        features.read_audio(path, expected_sr=None)
    sf.write(str(path), np.zeros(8000, dtype=np.float32), 8000)
    assert features.read_audio(path, expected_sr=None).size == 8000


@pytest.mark.parametrize(
    "S,R,L,M",
    [(4, 1, 8, 0), (8, 2, 32, 0), (8, 0, 16, 4), (3, 2, 0, 0), (6, 1, 12, 2)],
)
def test_encoder_streaming_equals_forward(S, R, L, M):
    torch.manual_seed(0)
    enc = EmformerSpeechEncoder(encoder_args(segment_length=S, right_context_length=R, left_context_length=L, max_memory_size=M)).eval()
    for T in (1, 37, 4 * S * 3, 203):  # fbank frames: partial reduction group, exact segments, long
        feats = torch.randn(T, 80)
        with torch.no_grad():
            full = enc(feats[None], torch.tensor([T]))["encoder_out"][0][:, 0]
            st = enc.init_state()
            parts, i, rng = [], 0, np.random.default_rng(T)
            while i < T:
                n = int(rng.integers(1, 23))
                parts.append(enc.streaming_step(feats[i : i + n], st))
                i += n
            parts.append(enc.streaming_finish(st))
        stream = torch.cat(parts)
        assert stream.shape == full.shape, (T, stream.shape, full.shape)
        assert (stream - full).abs().max().item() < 1e-4, (S, R, L, M, T)


def test_streaming_emits_before_the_end():
    enc = EmformerSpeechEncoder(encoder_args(segment_length=4, right_context_length=1)).eval()
    st = enc.init_state()
    with torch.no_grad():
        out = enc.streaming_step(torch.randn(4 * 5, 80), st)  # 5 encoder frames = S + R
    assert out.shape[0] == 4


def test_batched_forward_matches_single_utterances():
    torch.manual_seed(0)
    enc = EmformerSpeechEncoder(encoder_args(segment_length=4, right_context_length=2, max_memory_size=2)).eval()
    lens = [57, 90, 13]
    feats = [torch.randn(n, 80) for n in lens]
    batch = torch.nn.utils.rnn.pad_sequence(feats, batch_first=True)
    with torch.no_grad():
        out = enc(batch, torch.tensor(lens))
        for i, f in enumerate(feats):
            single = enc(f[None], torch.tensor([len(f)]))["encoder_out"][0][:, 0]
            n = single.size(0)
            assert (out["encoder_out"][0][:n, i] - single).abs().max() < 1e-4


def test_front_end_samples_to_encoder_frames(tmp_path):
    """16 kHz samples in uneven chunks -> online fbank -> CMVN -> streaming encoder equals
    offline fbank -> CMVN -> forward."""
    torch.manual_seed(0)
    wav = _speech_like(3.1, seed=3)
    feats = features.fbank(wav)
    cmvn = features.GlobalCMVN(feats.mean(0), feats.std(0) + 1e-3)
    cmvn.save(tmp_path / "gcmvn.npz")
    cmvn = features.GlobalCMVN.load(tmp_path / "gcmvn.npz")
    enc = EmformerSpeechEncoder(encoder_args(segment_length=8, right_context_length=2, left_context_length=16, max_memory_size=2)).eval()
    with torch.no_grad():
        norm = torch.from_numpy(cmvn(feats))
        full = enc(norm[None], torch.tensor([norm.size(0)]))["encoder_out"][0][:, 0]
        fe, st = features.OnlineFrontEnd(cmvn), enc.init_state()
        parts = [enc.streaming_step(torch.from_numpy(fe.accept(c)), st) for c in _uneven_chunks(wav, seed=7)]
        parts.append(enc.streaming_finish(st))
    stream = torch.cat(parts)
    assert stream.shape == full.shape
    assert (stream - full).abs().max().item() < 1e-4
