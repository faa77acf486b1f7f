"""Bad data gets a clear error naming the file and the line or entry."""
import re

import numpy as np
import torch

import pytest
import yaml

from conftest import build
from echostream_fairseq.tasks.echostream_s2st import DataConfigError


def _rewrite_row(tsv, row_index, column, value):
    lines = tsv.read_text().splitlines()
    header = lines[0].split("\t")
    cells = lines[row_index].split("\t")
    cells[header.index(column)] = value
    lines[row_index] = "\t".join(cells)
    tsv.write_text("\n".join(lines) + "\n")
    return cells[0]


def test_missing_audio_names_file_and_line(data_copy):
    uid = _rewrite_row(data_copy / "train.tsv", 3, "src_audio", "audio/nowhere.wav")
    task, *_ = build(data_copy)
    with pytest.raises(FileNotFoundError) as e:
        task.load_dataset("train")
    msg = str(e.value)
    assert "train.tsv" in msg and "line 4" in msg and uid in msg and "nowhere.wav" in msg


def test_unit_outside_dictionary_names_line(data_copy):
    uid = _rewrite_row(data_copy / "train.tsv", 5, "tgt_audio", "1 2 3 50 4")
    task, *_ = build(data_copy)
    with pytest.raises(ValueError) as e:
        task.load_dataset("train")
    msg = str(e.value)
    assert "train.tsv" in msg and "line 6" in msg and uid in msg and "unit id 50" in msg


def test_non_integer_unit_names_line(data_copy):
    _rewrite_row(data_copy / "train.tsv", 2, "tgt_audio", "1 x 3")
    task, *_ = build(data_copy)
    with pytest.raises(ValueError, match=r"train\.tsv: line 3"):
        task.load_dataset("train")


def test_multitask_entry_without_dict(data_copy):
    p = data_copy / "config_mtl.yaml"
    cfg = yaml.safe_load(p.read_text())
    del cfg["ctc_target_unigram"]["dict"]
    p.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ValueError) as e:
        build(data_copy)
    assert "config_mtl.yaml" in str(e.value) and "ctc_target_unigram" in str(e.value) and "'dict'" in str(e.value)


def test_multitask_dict_file_missing(data_copy):
    (data_copy / "dict_src.txt").unlink()
    with pytest.raises(ValueError, match=r"source_unigram.*dict_src\.txt"):
        build(data_copy)


def test_data_config_missing_gcmvn(data_copy):
    (data_copy / "gcmvn.npz").unlink()
    with pytest.raises(ValueError) as e:
        build(data_copy)
    msg = str(e.value)
    assert "config.yaml" in msg and "global_cmvn.stats_npz_path" in msg and "gcmvn.npz" in msg


def test_data_config_missing_vocoder_file(data_copy):
    (data_copy / "vocoder" / "config.json").unlink()
    with pytest.raises(ValueError, match=r"vocoder\.config points at a missing file"):
        build(data_copy)


def test_multitask_target_missing_for_an_id(data_copy):
    p = data_copy / "src_text" / "train.tsv"
    lines = p.read_text().splitlines()
    removed = lines.pop(4).split("\t")[0]
    p.write_text("\n".join(lines) + "\n")
    task, *_ = build(data_copy)
    with pytest.raises(ValueError, match=rf"src_text/train\.tsv.*source_unigram.*{re.escape(removed)}"):
        task.load_dataset("train")


def test_corrupt_wav_names_file(data_copy):
    from echostream_fairseq import features

    wav = data_copy / "audio" / "micro000_src.wav"
    wav.write_bytes(b"RIFF....not a wav")
    with pytest.raises(features.AudioError, match="micro000_src.wav"):
        features.read_audio(wav)


def test_truncated_wav_is_an_error_naming_the_file(tmp_path):
    """A WAV cut short (its data chunk declares more than the file holds) would otherwise be read
    as the part that is there and translated as if whole. A size left open by a streaming writer
    is not a truncation."""
    import struct

    import soundfile as sf

    from echostream_fairseq import features

    whole = tmp_path / "whole.wav"
    sf.write(whole, (0.1 * np.sin(np.arange(16000) / 7)).astype(np.float32), 16000, subtype="PCM_16")
    data = whole.read_bytes()
    assert features.read_audio(whole).size == 16000
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(features.AudioError, match=r"cut.wav: truncated: its data chunk declares 32000 bytes, the file holds \d+"):
        features.read_audio(cut)
    opened = bytearray(data)
    at = opened.find(b"data")
    opened[at + 4 : at + 8] = struct.pack("<I", 0xFFFFFFFF)
    streamed = tmp_path / "streamed.wav"
    streamed.write_bytes(bytes(opened))
    assert np.array_equal(features.read_audio(streamed), features.read_audio(whole))


def test_relative_paths_survive_moving_the_folder(data_copy, tmp_path):
    moved = tmp_path / "elsewhere"
    data_copy.rename(moved)
    task, *_ = build(moved)
    task.load_dataset("dev")
    assert len(task.datasets["dev"]) == 4
    assert task.datasets["dev"][0][0].source.shape[1] == 80


def test_silence_augment_pads_training_audio_reproducibly(data_copy):
    p = data_copy / "config.yaml"
    cfg = yaml.safe_load(p.read_text())
    cfg["silence_augment"] = {"prob": 1.0, "max_ms": 1000, "noise_db": [-70, -60]}
    p.write_text(yaml.safe_dump(cfg))
    task, *_ = build(data_copy)
    task.load_dataset("train")
    task.load_dataset("dev")
    train, dev = task.datasets["train"], task.datasets["dev"]
    n0 = [train._get_source_audio(i).shape[0] for i in range(4)]
    assert n0 == [train._get_source_audio(i).shape[0] for i in range(4)]  # the same draw within an epoch
    train.set_epoch(2)
    assert n0 != [train._get_source_audio(i).shape[0] for i in range(4)]  # another one the next epoch
    assert all(n >= s for n, s in zip(n0, train.n_frames[:4]))  # silence is added, never speech removed
    assert [dev._get_source_audio(i).shape[0] for i in range(4)] == list(dev.n_frames[:4])  # dev untouched


def test_silence_augment_config_errors_name_the_file(data_copy):
    p = data_copy / "config.yaml"
    cfg = yaml.safe_load(p.read_text())
    cfg["silence_augment"] = {"prob": 2.0}
    p.write_text(yaml.safe_dump(cfg))
    with pytest.raises(DataConfigError, match=r"config\.yaml: silence_augment"):
        build(data_copy)


def test_voice_augment_changes_voice_reproducibly_on_training_splits_only(data_copy):
    p = data_copy / "config.yaml"
    cfg = yaml.safe_load(p.read_text())
    cfg["voice_augment"] = {"speed": [1.25, 1.25], "vtlp": [0.9, 1.1], "reverb_prob": 1.0, "rt60": [0.2, 0.4],
                            "noise_prob": 1.0, "snr_db": [20, 30]}
    p.write_text(yaml.safe_dump(cfg))
    task, *_ = build(data_copy)
    task.load_dataset("train")
    task.load_dataset("dev")
    train, dev = task.datasets["train"], task.datasets["dev"]
    first = [train._get_source_audio(i) for i in range(4)]
    assert all(torch.equal(a, train._get_source_audio(i)) for i, a in enumerate(first))  # same draw within an epoch
    for a, n in zip(first, train.n_frames[:4]):  # 1.25 times faster: 80 % of the frames
        assert abs(a.shape[0] - n / 1.25) <= 2
    train.set_epoch(2)
    assert not any(torch.equal(a, train._get_source_audio(i)) for i, a in enumerate(first))
    assert [dev._get_source_audio(i).shape[0] for i in range(4)] == list(dev.n_frames[:4])  # dev untouched


def test_voice_augment_parts():
    from echostream_fairseq import features
    from echostream_fairseq.tasks.echostream_s2st import VoiceAugment

    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    wav = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    off = dict(speed=[1, 1], vtlp=[1, 1], reverb_prob=0, noise_prob=0)
    same, warp = VoiceAugment(**off)(wav, rng)
    assert warp == 1.0 and np.array_equal(same, wav)
    slow, _ = VoiceAugment(**{**off, "speed": [0.8, 0.8]})(wav, rng)
    assert abs(slow.size - 20000) <= 1
    noisy, _ = VoiceAugment(**{**off, "noise_prob": 1, "snr_db": [10, 10]})(wav, rng)
    snr = 10 * np.log10(np.mean(wav ** 2) / np.mean((noisy - wav) ** 2))
    assert 9 < snr < 11
    wet, _ = VoiceAugment(**{**off, "reverb_prob": 1, "rt60": [0.5, 0.5]})(wav, rng)
    assert wet.size == wav.size and not np.allclose(wet, wav)
    assert abs(np.sqrt(np.mean(wet ** 2)) - np.sqrt(np.mean(wav ** 2))) < 0.02  # level kept
    _, warp = VoiceAugment(**{**off, "vtlp": [1.1, 1.1]})(wav, rng)
    assert warp == pytest.approx(1.1)
    assert not np.allclose(features.fbank(wav, vtln_warp=warp), features.fbank(wav))


@pytest.mark.parametrize("entry,match", [
    ({"speed": [1.2, 0.9]}, "speed must be"),
    ({"vtlp": "wide"}, "vtlp must be"),
    ({"noise_prob": 3}, "noise_prob must be"),
    ({"loudness": 1}, "loudness"),
    ("yes", "must be a mapping"),
])
def test_voice_augment_config_errors_name_the_file_and_key(data_copy, entry, match):
    p = data_copy / "config.yaml"
    cfg = yaml.safe_load(p.read_text())
    cfg["voice_augment"] = entry
    p.write_text(yaml.safe_dump(cfg))
    with pytest.raises(DataConfigError, match=rf"config\.yaml: voice_augment.*{match}"):
        build(data_copy)


def test_start_fields_are_checked_and_never_echoed_at_length():
    from echostream_fairseq.server.protocol import ProtocolError, parse_start

    pairs = ["es-en", "ko-en"]
    assert parse_start({"sample_rate": 16000}, 320, 5000, pairs).pair == "es-en"  # the default: the first pair
    assert parse_start({"sample_rate": 16000, "pair": "ko-en"}, 320, 5000, pairs).pair == "ko-en"
    for bad in ({"pair": "fr-en"}, {"pair": ["es-en"]}, {"pair": None}, {"pair": "x" * 100_000}, {"format": "y" * 100_000},
                {"outputs": ["z" * 100_000]}):
        with pytest.raises(ProtocolError) as e:
            parse_start({"sample_rate": 16000, **bad}, 320, 5000, pairs)
        assert e.value.code == "bad_start" and len(e.value.message) < 200, e.value.message


@pytest.mark.parametrize("bad,what", [(float("nan"), "not finite"), (float("inf"), "not finite"), (1e30, "outside"),
                                      (12345.0, "int16 values sent as float")])
def test_samples_off_the_float_scale_are_named_wherever_they_enter(tmp_path, bad, what):
    """A float WAV file, an f32le WebSocket frame and the engine's input: a sample that is not
    finite or far beyond full scale (it would overflow the fbank into NaN, and the model would
    read noise) is an error that says where, which sample and why."""
    import soundfile as sf

    from echostream_fairseq import features
    from echostream_fairseq.server.protocol import ProtocolError, Start, decode_frame

    x = np.zeros(1600, dtype=np.float32)
    x[:700] = 0.5 * np.sin(np.arange(700) / 5)
    x[700] = -1.5  # over full scale, within the headroom: fine everywhere
    assert features.check_samples(x, "ok") is x
    x[777] = bad
    path = tmp_path / "loud.wav"
    sf.write(path, x, 16000, subtype="FLOAT")
    with pytest.raises(features.AudioError, match=rf"loud.wav: sample 777 .*{what}"):
        features.read_audio(path)
    with pytest.raises(ProtocolError, match=rf"f32le frame: sample 777 .*{what}") as e:
        decode_frame(x.astype("<f4").tobytes(), Start(16000, "f32le", 1, 320, ["translation"], "es-en"))
    assert e.value.code == "bad_frame"

