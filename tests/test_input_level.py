"""Input level normalisation (features.InputLevel, a data config's ``input_level``): a quiet
speaker is raised to the level the model learned from, speech at that level and steady noise
are left as they are, and a stream read in chunks gets exactly the frames of the whole recording."""
import csv
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import yaml

from echostream_fairseq import features
from echostream_fairseq.tasks.echostream_s2st import DataConfigError, EchoStreamDataConfig

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "assets"
LEVEL = features.InputLevel(target_db=-20.0)


def _example(name="es-en-test-00000.wav") -> np.ndarray:
    return features.read_audio(ASSETS / "examples" / name)


def _noise(kind: str, seconds: float, rms_db: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(seconds * features.SAMPLE_RATE)
    w = rng.standard_normal(n)
    if kind != "white":  # pink: power falling 3 dB an octave; brown: 6 dB
        spec = np.fft.rfft(w) / (np.arange(n // 2 + 1) + 1.0) ** (0.5 if kind == "pink" else 1.0)
        w = np.fft.irfft(spec, n)
    return (w / np.sqrt(np.mean(w ** 2)) * 10 ** (rms_db / 20)).astype(np.float32)


def _quiet_speech(gain_db: float = -35.0, noise_db: float = -75.0) -> np.ndarray:
    """An example spoken ``gain_db`` quieter, after half a second of a quiet room."""
    x = _example()
    lead = np.zeros(features.SAMPLE_RATE // 2, np.float32)
    wav = np.concatenate([lead, x * 10 ** (gain_db / 20)])
    return wav + _noise("white", wav.size / features.SAMPLE_RATE, noise_db, seed=1)


def _chunked(norm: features.LevelNormaliser, feats: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out, i = [], 0
    while i < feats.shape[0]:
        n = int(rng.integers(0, 40))
        out.append(norm.accept(feats[i : i + n]))
        i += n
    return np.concatenate(out)


def test_levels_read_as_dbfs_of_a_sine():
    t = np.arange(features.SAMPLE_RATE) / features.SAMPLE_RATE
    for db in (-50.0, -20.0, 0.0):
        sine = (np.sqrt(2) * 10 ** (db / 20) * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
        assert abs(features.frame_level_db(features.fbank(sine)).mean() - db) < 0.05


def test_quiet_speech_is_raised_to_the_target_and_no_frame_beyond_it():
    feats = features.fbank(_quiet_speech())
    out = LEVEL.apply(feats)
    before, after = features.peak_level_db(feats), features.peak_level_db(out)
    assert before < -45
    assert abs(after - LEVEL.target_db) < 1.0
    gain = features.frame_level_db(out) - features.frame_level_db(feats)
    assert gain.max() <= LEVEL.max_gain_db + 1e-3 and gain.min() >= -1e-3
    raised = gain > 0.01
    assert (features.frame_level_db(out)[raised] <= LEVEL.target_db + 0.01).all()  # no frame raised beyond the target
    # the fbank floor (bins that held no power) is not raised
    silent = np.zeros((3, features.NUM_MEL_BINS), np.float32) + features.LOG_FLOOR
    stream = LEVEL.stream()
    stream.accept(feats)
    assert np.array_equal(stream.accept(silent), silent)


def test_speech_at_the_learned_level_and_steady_noise_are_left_exactly_as_they_are():
    for name in ("es-en-test-00000.wav", "es-en-test-00120.wav"):
        feats = features.fbank(_example(name))
        assert np.array_equal(LEVEL.apply(feats), feats), name
    for kind in ("white", "pink", "brown"):
        for db in (-70.0, -55.0):
            feats = features.fbank(_noise(kind, 4.0, db, seed=2))
            assert features.peak_level_db(feats) < LEVEL.target_db
            assert np.array_equal(LEVEL.apply(feats), feats), (kind, db)


def test_a_click_does_not_stop_a_quiet_speaker_being_raised():
    wav = _quiet_speech()
    wav[4000:4160] = 0.9  # 10 ms at nearly full scale in the silence before the speech
    feats = features.fbank(wav)
    assert features.frame_level_db(feats).max() > LEVEL.target_db + 3  # louder than the target
    assert abs(features.peak_level_db(LEVEL.apply(feats)) - LEVEL.target_db) < 1.0


def test_a_stream_in_chunks_gets_the_frames_of_the_whole_recording():
    feats = features.fbank(np.concatenate([_quiet_speech(), _example() * 0.5, _quiet_speech(-25.0)]))
    whole = LEVEL.apply(feats)
    assert not np.array_equal(whole, feats)  # (the gain moves along the stream)
    for seed in range(3):
        assert np.array_equal(_chunked(LEVEL.stream(), feats, seed), whole)
    # and the online front end from samples: the same frames as the whole recording's, normalised
    wav = _quiet_speech()
    cmvn = features.GlobalCMVN(np.zeros(features.NUM_MEL_BINS), np.ones(features.NUM_MEL_BINS))
    fe, rng, parts, i = features.OnlineFrontEnd(cmvn, LEVEL), np.random.default_rng(4), [], 0
    while i < wav.size:
        n = int(rng.integers(1, 3000))
        parts.append(fe.accept(wav[i : i + n]))
        i += n
    assert np.abs(np.concatenate(parts) - LEVEL.apply(features.fbank(wav))).max() < 1e-3
    assert fe.gain_db > 20


def test_the_gain_rises_at_the_attack_rate_and_falls_at_once():
    quiet = features.fbank(_quiet_speech())
    stream, gains = LEVEL.stream(), []
    for i in range(quiet.shape[0]):
        stream.accept(quiet[i : i + 1])
        gains.append(stream.gain_db)
    step = LEVEL.attack_db_per_s * features.FRAME_SHIFT_MS / 1000
    assert np.diff(gains).max() <= step + 1e-6
    assert max(gains) > 20
    loud = features.fbank(_example())  # the speaker comes closer: no frame of theirs is raised
    before = stream.gain_db
    out = stream.accept(loud)
    assert before > 20 and stream.gain_db == 0.0
    assert (features.frame_level_db(out) - features.frame_level_db(loud)).max() < 2 * step


def test_the_rule_sets_the_target_from_the_training_speech():
    peaks = np.linspace(-30.0, -5.0, 101)
    assert features.input_level_for(list(peaks) + [float("-inf")]).target_db == np.floor(np.percentile(peaks, 5))
    with pytest.raises(ValueError, match="no training utterance"):
        features.input_level_for([float("-inf")])


@pytest.mark.parametrize("entry, fragment", [
    ({"target_db": "loud"}, "target_db must be a number"),
    ({"target_db": -20, "max_gain_db": -3}, "max_gain_db must be a number in [0, 60]"),
    ({"target_db": 5}, "target_db must be a number in [-80, 0]"),
    ({"target_db": -20, "gain": 3}, "unexpected keyword argument 'gain'"),
    ({"max_gain_db": 20}, "target_db"),
    ([1, 2], "input_level must be a mapping"),
])
def test_a_bad_input_level_entry_names_the_file_and_the_key(tmp_path, entry, fragment):
    cfg = yaml.safe_load((ASSETS / "model" / "config.yaml").read_text())
    cfg["input_level"] = entry
    cfg.pop("vocoder")
    for name in ("gcmvn.npz",):
        (tmp_path / name).write_bytes((ASSETS / "model" / name).read_bytes())
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(DataConfigError) as e:
        EchoStreamDataConfig(tmp_path / "config.yaml")
    assert "config.yaml: input_level" in str(e.value) and fragment in str(e.value), str(e.value)


def test_the_shipped_models_hear_a_quiet_speaker():
    """The shipped model, streaming: an example spoken 35 dB quieter in a quiet room says nothing
    without the normalisation; with it (the shipped data config's), most of what the example at
    its own level says."""
    from echostream_fairseq.evaluation.recipe import bleu
    from echostream_fairseq.streaming.engine import load_resources
    from echostream_fairseq.streaming.replay import replay

    res = load_resources(ASSETS / "model" / "checkpoint.pt", ASSETS / "model", vocoder=False)
    assert res.input_level is not None and res.input_level.target_db <= -10
    rows = list(csv.DictReader(open(ASSETS / "examples" / "examples.tsv", encoding="utf-8"), delimiter="\t",
                               quoting=csv.QUOTE_NONE))
    plain, quiet, off = [], [], []
    for r in rows:
        x = features.read_audio(ASSETS / "examples" / r["src_audio"])
        lead = np.zeros(features.SAMPLE_RATE // 2, np.float32)
        q = np.concatenate([lead, x * 10 ** (-35 / 20)])
        q = q + _noise("white", q.size / features.SAMPLE_RATE, -80.0, seed=3)
        plain.append(replay(res, x, speech=False).translation)
        quiet.append(replay(res, q, speech=False).translation)
        off.append(replay(dataclasses.replace(res, input_level=None), q, speech=False).translation)
    refs = [r["tgt_text"] for r in rows]
    assert bleu(off, refs) < 10, off
    assert bleu(quiet, refs) > 0.8 * bleu(plain, refs), (quiet, plain)
