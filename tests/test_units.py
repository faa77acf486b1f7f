"""Unit extraction: quantiser round trip, reduce/expand, built-in and HuBERT paths."""
import shutil

import joblib
import numpy as np
import pytest

from conftest import cli, run
from echostream_fairseq.prep import units
from tiny_hubert import write_tiny_hubert


def test_quantiser_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(6, 8)) * 20
    labels = rng.integers(0, 6, size=600)
    x = (centres[labels] + rng.normal(size=(600, 8))).astype(np.float32)
    c = units.fit_kmeans([x[:300], x[300:]], 6, seed=1)
    a = units.assign(x, c)
    # clusters recovered up to a permutation
    mapping = {int(l): int(a[labels == l][0]) for l in range(6)}
    assert len(set(mapping.values())) == 6
    assert all(a[i] == mapping[int(labels[i])] for i in range(600))
    np.save(tmp_path / "km.npy", c)
    assert np.array_equal(units.assign(x, units.load_quantiser(tmp_path / "km.npy")), a)
    # fairseq's recipes save a scikit-learn k-means with joblib
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=6, n_init=1, random_state=0).fit(x)
    joblib.dump(km, tmp_path / "km.bin")
    assert np.array_equal(units.assign(x, units.load_quantiser(tmp_path / "km.bin")), km.predict(x))


def test_kmeans_steps_are_lloyds_in_blocks(monkeypatch):
    """assign() works through the frames in blocks (bounded memory) and gives the plain argmin;
    each fitted centroid is the mean of the frames assigned to it (Lloyd's fixed point)."""
    rng = np.random.default_rng(2)
    x = (rng.normal(size=(1000, 5)) + rng.integers(0, 4, size=(1000, 1)) * 10).astype(np.float32)
    c = x[rng.choice(1000, 7, replace=False)]
    plain = ((x[:, None, :] - c[None]) ** 2).sum(-1).argmin(1)
    monkeypatch.setattr(units, "ASSIGN_BLOCK", 64)
    assert np.array_equal(units.assign(x, c), plain)
    fitted = units.fit_kmeans([x[:500], x[500:]], 4, iters=10)
    a = units.assign(x, fitted)
    for j in range(4):
        assert np.allclose(fitted[j], x[a == j].mean(0), atol=1e-4)


def test_reduce_expand_round_trip():
    frames = [3, 3, 3, 7, 7, 1, 3, 3, 9]
    red, dur = units.reduce_units(frames)
    assert red == [3, 7, 1, 3, 9] and dur == [3, 2, 1, 2, 1]
    assert units.expand_units(red, dur) == frames
    with pytest.raises(ValueError):
        units.expand_units([1, 2], [1])


def _list(tmp_path, micro_data, n=4):
    rows = (micro_data / "train.tsv").read_text().splitlines()[1 : n + 1]
    lst = tmp_path / "train.tsv"
    lines = ["id\ttgt_audio"]
    for r in rows:
        uid = r.split("\t")[0]
        lines.append(f"{uid}\t{micro_data / 'audio' / (uid + '_tgt.wav')}")
    lst.write_text("\n".join(lines) + "\n")
    return lst, [r.split("\t")[0] for r in rows]


def test_builtin_cli_writes_frames_and_reduced(tmp_path, micro_data):
    lst, ids = _list(tmp_path, micro_data)
    out = tmp_path / "units"
    run([cli("echostream-extract-units"), "--lists", lst, "--out", out, "--num-units", 8])
    assert (out / "kmeans.npy").is_file() and np.load(out / "kmeans.npy").shape == (8, 80)
    reduced = {l.split("\t")[0]: l.split("\t")[1:] for l in (out / "reduced.tsv").read_text().splitlines()}
    assert sorted(reduced) == sorted(ids)
    import soundfile as sf

    for uid in ids:
        frames = np.load(out / f"{uid}.npy")
        n_samples = sf.info(str(micro_data / "audio" / f"{uid}_tgt.wav")).frames
        assert abs(len(frames) - n_samples / 320) <= 2  # 20 ms frames
        red, dur = ([int(u) for u in s.split()] for s in reduced[uid])
        assert units.expand_units(red, dur) == frames.tolist()
        assert 0 <= min(red) and max(red) < 8


def test_hubert_path_on_a_fairseq_format_checkpoint(tmp_path, micro_data):
    ckpt = write_tiny_hubert(tmp_path / "hubert.pt", tmp_path / "labels", dim=32, layers=2)
    shutil.rmtree(tmp_path / "labels")  # a released checkpoint comes without its label files
    lst, ids = _list(tmp_path, micro_data, n=3)
    km = np.random.default_rng(0).normal(size=(5, 32)).astype(np.float32)
    np.save(tmp_path / "km.npy", km)
    out = tmp_path / "units"
    run([cli("echostream-extract-units"), "--lists", lst, "--out", out, "--hubert", ckpt, "--layer", 2, "--kmeans", tmp_path / "km.npy"])
    feats = units.HubertFeatures(ckpt, 2)
    from echostream_fairseq import features

    for uid in ids:
        wav = features.read_audio(micro_data / "audio" / f"{uid}_tgt.wav")
        expected = units.assign(feats(wav), km)
        assert np.array_equal(np.load(out / f"{uid}.npy"), expected)
    with pytest.raises(ValueError, match="layer 5 out of range"):
        units.HubertFeatures(ckpt, 5)


def test_cli_argument_errors(tmp_path, micro_data):
    lst, _ = _list(tmp_path, micro_data, n=1)
    import subprocess
    import sys

    p = subprocess.run([cli("echostream-extract-units"), "--lists", str(lst), "--out", str(tmp_path / "u")], capture_output=True, text=True)
    assert p.returncode == 2 and "--num-units" in p.stderr
    p = subprocess.run([cli("echostream-extract-units"), "--lists", str(lst), "--out", str(tmp_path / "u"), "--hubert", "x.pt"], capture_output=True, text=True)
    assert p.returncode == 2 and "--layer" in p.stderr
