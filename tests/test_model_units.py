"""echostream-model-units: a model's teacher-forced units laid on the frames of the reference
speech (vocoder training data), and the vocoder trainer fine-tuning on them."""
import json
import subprocess

import numpy as np
import pytest
import torch

from conftest import cli, run
from echostream_fairseq.prep.corpus import write_tsv
from echostream_fairseq.prep.model_units import align_to_frames, predicted_units
from echostream_fairseq.prep.units import expand_units, reduce_units, unit_features
from echostream_fairseq.features import read_audio


def test_alignment_recovers_the_durations_of_noisy_frames():
    rng = np.random.default_rng(0)
    centroids = rng.normal(size=(30, 6)) * 3
    units = [3, 7, 3, 12, 29, 0, 7]
    durations = [2, 1, 4, 3, 1, 5, 2]
    truth = np.array(expand_units(units, durations))
    frames = centroids[truth] + rng.normal(scale=0.3, size=(len(truth), 6))
    out = align_to_frames(units, frames, centroids)
    assert out.tolist() == truth.tolist()


def test_alignment_spells_every_unit_in_order_even_against_the_frames():
    rng = np.random.default_rng(1)
    centroids = rng.normal(size=(10, 4))
    frames = np.repeat(centroids[[5]], 9, axis=0)  # every frame sounds like unit 5
    out = align_to_frames([1, 5, 2], frames, centroids)
    assert reduce_units(out.tolist())[0] == [1, 5, 2]
    assert (out == 5).sum() == 7  # the others get the one frame they must have


@pytest.mark.parametrize("units, n_frames, message", [([1, 2, 3], 2, "3 units cannot be aligned to 2 frames"),
                                                      ([], 4, "no units")])
def test_alignment_refuses_what_cannot_be_laid(units, n_frames, message):
    with pytest.raises(ValueError, match=message):
        align_to_frames(units, np.zeros((n_frames, 3)), np.zeros((5, 3)))


@pytest.fixture(scope="module")
def model_units(trained_micro, micro_data, tmp_path_factory):
    d = tmp_path_factory.mktemp("model_units")
    rows = [l.split("\t") for l in (micro_data / "train.tsv").read_text().splitlines()[1:]]
    write_tsv(d / "train.tsv", ["id", "tgt_audio"], [[r[0], str(micro_data / "audio" / f"{r[0]}_tgt.wav")] for r in rows])
    p = run([cli("echostream-model-units"), "--checkpoint", trained_micro, "--data", micro_data, "--split", "train",
             "--lists", d / "train.tsv", "--kmeans", micro_data / "kmeans.npy", "--out", d / "units", "--no-progress-bar"])
    return d, rows, p


def test_cli_writes_the_models_units_over_every_frame_of_the_speech(model_units, trained_micro, micro_data):
    d, rows, p = model_units
    report = json.loads((d / "units" / "report.json").read_text())
    pred = dict(predicted_units(trained_micro, micro_data, "train"))
    assert set(pred) == {r[0] for r in rows}
    written = 0
    for uid, units in pred.items():
        if uid in report["skipped"]:
            continue
        frames = np.load(d / "units" / f"{uid}.npy")
        speech = unit_features(read_audio(micro_data / "audio" / f"{uid}_tgt.wav"))
        assert len(frames) == len(speech)
        # the file spells exactly the predicted sequence (consecutive repeats merge)
        assert reduce_units(frames.tolist())[0] == reduce_units(units)[0]
        written += 1
    assert written == report["utterances"] > 0
    assert report["units"] == sum(len(pred[u]) for u in pred if u not in report["skipped"])


def test_predictions_are_the_models_own_teacher_forced_units(trained_micro, micro_data, tmp_path):
    """The units come from the model's unit decoder, not from the data: force its output layer
    to one unit and every utterance predicts that unit alone."""
    import echostream_fairseq  # noqa: F401
    from fairseq.data import Dictionary

    ckpt = torch.load(trained_micro, map_location="cpu", weights_only=False)
    unit_dict = Dictionary()  # as the task builds it: the specials, then "0".."K-1"
    for i in range(50):
        unit_dict.add_symbol(str(i))
    forced = 7
    bias = ckpt["model"]["unit_decoder.out.bias"]
    bias[:] = -1e4
    bias[unit_dict.index(str(forced))] = 1e4
    path = tmp_path / "forced.pt"
    torch.save(ckpt, path)
    a = dict(predicted_units(trained_micro, micro_data, "dev"))
    b = dict(predicted_units(path, micro_data, "dev"))
    assert set(a) == set(b) and len(a) == 4
    assert all(v == [forced] for v in b.values())  # one unit, collapsed as in inference
    assert a != b


def test_vocoder_fine_tunes_from_a_checkpoint_on_two_unit_folders(model_units, micro_data, tmp_path):
    d, rows, _ = model_units
    gt = tmp_path / "gt_units"
    run([cli("echostream-extract-units"), "--lists", d / "train.tsv", "--out", gt, "--kmeans", micro_data / "kmeans.npy"])
    for r in rows:  # skipped utterances have no file of their own: train only on those both folders hold
        if not (d / "units" / f"{r[0]}.npy").is_file():
            pytest.skip(f"{r[0]} was skipped")
    small = ["--channels", "32", "--embedding-dim", "16", "--resblock-kernels", "3", "--disc-period-width", "4",
             "--disc-scale-width", "8", "--batch-size", "2", "--segment-frames", "16", "--threads", "2", "--no-progress-bar"]
    base = [cli("echostream-train-vocoder"), "--lists", d / "train.tsv", "--num-units", 50, *small]
    run([*base, "--units-dir", gt, "--save-dir", tmp_path / "a", "--max-steps", 2, "--save-interval", 2])
    g = tmp_path / "a" / "g_00000002"
    p = run([*base, "--units-dir", d / "units", gt, "--save-dir", tmp_path / "b", "--max-steps", 0, "--init-from", g])
    assert f"{2 * len(rows)} training utterances" in p.stderr
    a, b = torch.load(g)["generator"], torch.load(tmp_path / "b" / "g_00000000")["generator"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # a checkpoint of another size is refused by name
    bad = subprocess.run([str(c) for c in [*base, "--channels", "64", "--units-dir", gt, "--save-dir", tmp_path / "c",
                                           "--max-steps", 1, "--init-from", g]], capture_output=True, text=True)
    assert bad.returncode != 0 and f"{g}: does not fit the generator" in bad.stderr
