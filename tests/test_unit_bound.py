"""The diagnosis tools: Griffin-Lim inversion of Kaldi fbank frames (the ceiling the units put on
any vocoder) and the unit error rate. No trained model."""
import numpy as np
import pytest
import torch

from echostream_fairseq import features
from echostream_fairseq.evaluation.recipe import read_reduced_units, unit_error_rate
from echostream_fairseq.evaluation.unit_bound import invert_fbank, mel_to_power, unit_frames
from echostream_fairseq.prep import tts


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    p = tmp_path_factory.mktemp("tts") / "a.wav"
    tts.flite("The old girl washed a cake in the library.", "slt", p)
    return features.read_audio(p)


def test_mel_to_power_reproduces_the_mel_energies(speech):
    from echostream_fairseq.evaluation.unit_bound import _mel_banks

    f = features.fbank(speech)
    p = mel_to_power(f)
    assert (p >= 0).all()
    back = torch.log((p @ _mel_banks().T).clamp(min=1e-10)).numpy()
    loud = f > f.max() - 60  # ignore the near-silent floor
    assert np.median(np.abs(back - f)[loud]) < 0.5


def test_inversion_keeps_the_spectrum_and_units_repeat_at_their_durations(speech):
    f = features.fbank(speech)
    wav = invert_fbank(f, n_iter=32)
    assert abs(len(wav) - len(speech)) < 2 * features.WINDOW and np.isfinite(wav).all()
    g = features.fbank(wav)
    n = min(len(f), len(g))
    # same spectral envelope, up to a gain: frame-wise correlation of the log-mel frames
    corr = np.mean([np.corrcoef(f[i], g[i])[0, 1] for i in range(n) if f[i].max() > f.max() - 30])
    assert corr > 0.9, corr
    cent = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert unit_frames([2, 0], cent, [2, 1]).tolist() == [cent[2].tolist(), cent[2].tolist(), cent[0].tolist()]
    with pytest.raises(ValueError, match="unit ids must be in 0..2"):
        unit_frames([3], cent)


def test_unit_error_rate_and_reduced_units_file(tmp_path):
    ref = tmp_path / "reduced.tsv"
    ref.write_text("a\t1 2 3 4\t2 1 1 3\nb\t5 6\t1 1\n")
    units = read_reduced_units(ref)
    assert units["a"] == ([1, 2, 3, 4], [2, 1, 1, 3])
    res = unit_error_rate({"a": [1, 2, 4], "b": [5, 6]}, {k: v[0] for k, v in units.items()})
    assert res["uer"] == pytest.approx(100 * 1 / 6) and res["utterances"] == 2
    with pytest.raises(ValueError, match="no ground-truth units for 1"):
        unit_error_rate({"c": [1]}, {"a": [1]})
    bad = tmp_path / "bad.tsv"
    bad.write_text("a\t1 2\t3\n")
    with pytest.raises(ValueError, match="line 1: 2 units but 1 durations"):
        read_reduced_units(bad)
