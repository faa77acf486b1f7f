"""echostream-train-vocoder: real CLI runs on micro target speech and units made by
echostream-extract-units; the checkpoints load in fairseq's CodeHiFiGANVocoder."""
import json
import re

import numpy as np
import pytest
import torch

from conftest import cli, run
from echostream_fairseq.prep.corpus import write_tsv

SMALL = ["--channels", "32", "--embedding-dim", "16", "--resblock-kernels", "3", "--disc-period-width", "4",
         "--disc-scale-width", "8", "--batch-size", "4", "--segment-frames", "16", "--lr", "1e-3",
         "--log-interval", "5", "--save-interval", "15", "--threads", "2", "--no-progress-bar"]


@pytest.fixture(scope="module")
def voc_data(micro_data, tmp_path_factory):
    d = tmp_path_factory.mktemp("vocdata")
    rows = [l.split("\t") for l in (micro_data / "train.tsv").read_text().splitlines()[1:]]
    write_tsv(d / "train.tsv", ["id", "tgt_audio"], [[r[0], str(micro_data / "audio" / f"{r[0]}_tgt.wav")] for r in rows])
    run([cli("echostream-extract-units"), "--lists", d / "train.tsv", "--out", d / "units", "--num-units", 20])
    return d


def _train(voc_data, save_dir, steps, *extra):
    return run([cli("echostream-train-vocoder"), "--lists", voc_data / "train.tsv", "--units-dir", voc_data / "units",
                "--num-units", 20, "--save-dir", save_dir, "--max-steps", steps, *SMALL, *extra])


def _logged(stderr, key):
    return {int(m.group(1)): float(m.group(2)) for m in re.finditer(rf"step (\d+) \| g .*?\| {key} ([0-9.]+)", stderr)}


@pytest.fixture(scope="module")
def trained(voc_data, tmp_path_factory):
    save = tmp_path_factory.mktemp("voc") / "run"
    first = _train(voc_data, save, 30)
    return save, first


def test_training_lowers_the_losses(trained):
    _, first = trained
    mel, dur = _logged(first.stderr, "mel"), _logged(first.stderr, "dur")
    assert sorted(mel) == [5, 10, 15, 20, 25, 30]
    assert mel[30] < 0.8 * mel[5], mel
    assert np.mean([dur[25], dur[30]]) < dur[5], dur


def test_checkpoint_is_fairseq_format_and_loads_in_codehifigan(trained, voc_data):
    from fairseq.models.text_to_speech.vocoder import CodeHiFiGANVocoder

    from echostream_fairseq.vocoder import UnitVocoder

    save, _ = trained
    cfg = json.loads((save / "config.json").read_text())
    assert cfg["num_embeddings"] == 20 and cfg["code_hop_size"] == 320
    g = save / "g_00000030"
    assert set(torch.load(g, map_location="cpu", weights_only=True)) == {"generator"}
    fs = CodeHiFiGANVocoder(str(g), cfg)  # fairseq's own loader, unchanged
    units = torch.tensor([[3, 7, 7, 1, 19, 4]])
    with torch.no_grad():
        wav = fs({"code": units.clone()}, dur_prediction=True)
    dur = UnitVocoder(g, save / "config.json").durations(units[0])
    assert wav.numel() == int(dur.sum()) * 320
    assert float(wav.abs().max()) > 0


def test_resume_continues_the_step_count(trained, voc_data):
    save, _ = trained
    second = _train(voc_data, save, 40)
    assert "resumed from" in second.stderr and "at step 30" in second.stderr
    assert sorted(_logged(second.stderr, "mel")) == [35, 40]
    st = torch.load(save / "state_last.pt", map_location="cpu", weights_only=False)
    assert st["step"] == 40
    assert sorted(p.name for p in save.glob("g_*")) == ["g_00000030", "g_00000040"]  # --keep-last 2


def test_resume_with_other_sizes_is_an_error(trained, voc_data):
    save, _ = trained
    with pytest.raises(AssertionError, match="different generator config"):
        _train(voc_data, save, 50, "--channels", "48")


def test_units_longer_than_the_audio_name_the_file(voc_data, tmp_path):
    bad_units = tmp_path / "units"
    bad_units.mkdir()
    for f in (voc_data / "units").glob("*.npy"):
        np.save(bad_units / f.name, np.load(f))
    first_id = (voc_data / "train.tsv").read_text().splitlines()[1].split("\t")[0]
    victim = bad_units / f"{first_id}.npy"
    np.save(victim, np.concatenate([np.load(victim), np.zeros(50, dtype=np.int16)]))
    with pytest.raises(AssertionError, match=re.escape(str(victim))):
        run([cli("echostream-train-vocoder"), "--lists", voc_data / "train.tsv", "--units-dir", bad_units,
             "--num-units", 20, "--save-dir", tmp_path / "run", "--max-steps", 1, *SMALL])


def test_one_units_folder_per_corpus(voc_data, tmp_path):
    """Two corpora (e.g. the target speech of two pairs), each with its own units folder: every
    utterance is used once, with its own folder's units. A folder that holds part of a list, or a
    list that no folder holds, is an error naming the file or the list."""
    lines = (voc_data / "train.tsv").read_text().splitlines()
    header, rows = lines[0], [l.split("\t") for l in lines[1:]]
    half = len(rows) // 2
    lists = []
    for name, part in (("a", rows[:half]), ("b", rows[half:])):
        (tmp_path / f"units_{name}").mkdir()
        for r in part:
            (tmp_path / f"units_{name}" / f"{r[0]}.npy").write_bytes((voc_data / "units" / f"{r[0]}.npy").read_bytes())
        write_tsv(tmp_path / f"{name}.tsv", header.split("\t"), part)
        lists.append(tmp_path / f"{name}.tsv")
    base = [cli("echostream-train-vocoder"), "--lists", *lists, "--num-units", 20, "--max-steps", 1, *SMALL]
    out = run([*base, "--units-dir", tmp_path / "units_a", tmp_path / "units_b", "--save-dir", tmp_path / "run"])
    assert f"; {len(rows)} training utterances;" in out.stderr, out.stderr[-2000:]
    (tmp_path / "units_b" / f"{rows[-1][0]}.npy").unlink()
    with pytest.raises(AssertionError, match=re.escape(f"{tmp_path / 'units_b' / rows[-1][0]}.npy: no units for utterance")):
        run([*base, "--units-dir", tmp_path / "units_a", tmp_path / "units_b", "--save-dir", tmp_path / "run2"])
    with pytest.raises(AssertionError, match=re.escape(f"{lists[1]}: no units folder holds its utterances")):
        run([*base, "--units-dir", tmp_path / "units_a", "--save-dir", tmp_path / "run3"])


def _generator_state(path):
    return torch.load(path, map_location="cpu", weights_only=True)["generator"]


def test_resume_is_exact(voc_data, tmp_path):
    """Stopping and resuming gives bit for bit the run that never stopped: same step, same weights,
    same optimiser and random state (regression phase first, then the discriminators join)."""
    common = ["--gan-start", "6", "--stft-weight", "1", "--save-interval", "5"]
    _train(voc_data, tmp_path / "straight", 10, *common)
    _train(voc_data, tmp_path / "resumed", 5, *common)
    second = _train(voc_data, tmp_path / "resumed", 10, *common)
    assert "at step 5" in second.stderr
    a, b = _generator_state(tmp_path / "straight" / "g_00000010"), _generator_state(tmp_path / "resumed" / "g_00000010")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])][:5]
    sa = torch.load(tmp_path / "straight" / "state_last.pt", map_location="cpu", weights_only=False)
    sb = torch.load(tmp_path / "resumed" / "state_last.pt", map_location="cpu", weights_only=False)
    assert sa["step"] == sb["step"] == 10 and sa["rng"] == sb["rng"]
    assert all(torch.equal(sa["mpd"][k], sb["mpd"][k]) for k in sa["mpd"])


def test_regression_phase_runs_no_discriminator(voc_data, tmp_path):
    """Before --gan-start the step logs mel and STFT losses and no discriminator loss; after it the
    adversarial terms appear."""
    out = _train(voc_data, tmp_path / "run", 10, "--gan-start", "5", "--stft-weight", "1")
    lines = {int(m.group(1)): m.group(0) for m in re.finditer(r"step (\d+) \| g .*", out.stderr)}
    assert "| stft " in lines[5] and "| d " not in lines[5] and "| adv " not in lines[5], lines[5]
    assert "| d " in lines[10] and "| adv " in lines[10] and "| fm " in lines[10], lines[10]
    assert (tmp_path / "run" / "g_00000010").is_file()


def test_bf16_autocast_trains(voc_data, tmp_path):
    from echostream_fairseq.vocoder_train import cpu_native_bf16

    out = _train(voc_data, tmp_path / "run", 10, "--bf16", "--stft-weight", "1", "--gan-start", "100")
    mel = _logged(out.stderr, "mel")
    assert np.isfinite(list(mel.values())).all() and mel[10] < mel[5], mel
    assert "bf16 autocast on (--bf16 on)" in out.stderr, out.stderr[-2000:]
    # forced on where the CPU only emulates bf16: said, with the way out
    assert ("no native bf16" in out.stderr) == (not cpu_native_bf16()), out.stderr[-2000:]


def test_bf16_auto_follows_the_cpu(voc_data, tmp_path):
    """--bf16 auto turns autocast on only where the CPU runs bf16 natively, and says which."""
    from echostream_fairseq.vocoder_train import cpu_native_bf16

    out = _train(voc_data, tmp_path / "run", 2, "--bf16", "auto")
    want = "on" if cpu_native_bf16() else "off"
    assert f"bf16 autocast {want} (--bf16 auto)" in out.stderr, out.stderr[-2000:]
    assert "no native bf16" not in out.stderr


def test_resolve_bf16():
    from echostream_fairseq.vocoder_train import cpu_native_bf16, resolve_bf16

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_bf16("on", cpu) is True and resolve_bf16("off", cpu) is False
    assert resolve_bf16("auto", cpu) is cpu_native_bf16()
    assert resolve_bf16("auto", cuda) is False  # measured slower than fp32 on an H200
    assert resolve_bf16("on", cuda) is True
    with pytest.raises(ValueError, match="unknown bf16 choice 'yes'"):
        resolve_bf16("yes", cpu)


def test_bad_bf16_choice_is_a_clear_error(voc_data, tmp_path):
    with pytest.raises(AssertionError, match="invalid choice: 'maybe'"):
        _train(voc_data, tmp_path / "run", 1, "--bf16", "maybe")


@pytest.mark.parametrize("device, message", [("tpu", "invalid choice: 'tpu'"), ("cuda", "no CUDA device is available")])
def test_bad_device_is_a_clear_error(voc_data, tmp_path, device, message):
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(AssertionError, match=message):
        _train(voc_data, tmp_path / "run", 1, "--device", device)


def test_resolve_device():
    from echostream_fairseq.vocoder_train import resolve_device

    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        resolve_device("gpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_training_smoke(voc_data, tmp_path):
    from echostream_fairseq.vocoder import UnitVocoder

    out = _train(voc_data, tmp_path / "run", 10, "--device", "cuda", "--gan-start", "5", "--stft-weight", "1")
    assert "on cuda" in out.stderr
    voc = UnitVocoder(tmp_path / "run" / "g_00000010", tmp_path / "run" / "config.json")  # loads on the CPU
    assert voc(torch.tensor([1, 2, 3])).numel() > 0
