"""fairseq-train -> resume -> fairseq-generate through the real CLIs, with wavs from a
CodeHiFiGAN checkpoint in fairseq's on-disk format."""
import re

import pytest
import soundfile as sf
import torch
import yaml

from conftest import TRAIN_ARGS, cli, run
from echostream_fairseq.vocoder import UnitVocoder

pytestmark = pytest.mark.slow

COMMON = [
    "--optimizer", "adam", "--lr", "3e-3", "--lr-scheduler", "inverse_sqrt", "--warmup-updates", "20",
    "--max-tokens", "40000", "--train-subset", "train", "--valid-subset", "dev",
    "--required-batch-size-multiple", "1", "--num-workers", "0", "--no-epoch-checkpoints",
    "--log-format", "simple", "--log-interval", "10", "--clip-norm", "5", "--dropout", "0", "--seed", "1",
]


def test_train_resume_generate(micro_data, tmp_path):
    save = tmp_path / "ckpt"
    first = run([cli("fairseq-train"), micro_data, *TRAIN_ARGS, *COMMON, "--save-dir", save, "--max-update", 50])
    assert (save / "checkpoint_last.pt").is_file()
    for term in ("unit_loss", "mt_loss", "asr_loss", "st_loss"):
        assert term in first.stdout + first.stderr

    # resume: fairseq-train picks up checkpoint_last.pt and continues the update count
    second = run([cli("fairseq-train"), micro_data, *TRAIN_ARGS, *COMMON, "--save-dir", save, "--max-update", 60])
    log = second.stdout + second.stderr
    assert re.search(r"Loaded checkpoint .*checkpoint_last\.pt \(epoch \d+ @ 50 updates\)", log), log[-3000:]
    assert "num_updates: 60 >= max_update: 60" in log

    # the resumed checkpoint decodes through fairseq-generate: a row per utterance in every output
    # file and a wav per utterance as long as its units say. 60 updates may not have taught it to
    # say anything yet (all four heads blank: then no units, empty wavs), so what is decoded is
    # checked on the fixture's model, trained 150 updates on the same data by the same CLI
    generate_and_check(micro_data, save / "checkpoint_last.pt", tmp_path / "gen")


def test_generate_decodes_translation_units_and_speech(micro_data, trained_micro, tmp_path):
    files, n_units = generate_and_check(micro_data, trained_micro, tmp_path / "gen")
    assert any(text.strip() for text in files["mt.txt"].values()), "no translation decoded"
    assert n_units > 0, "no units decoded"


def generate_and_check(micro_data, checkpoint, results):
    """fairseq-generate on the dev split: ({file: {id: line}}, units decoded in all)."""
    run([
        cli("fairseq-generate"), micro_data, "--user-dir", TRAIN_ARGS[1], "--task", "echostream_s2st",
        "--config-yaml", "config.yaml", "--multitask-config-yaml", "config_mtl.yaml",
        "--path", checkpoint, "--gen-subset", "dev", "--max-tokens", "40000",
        "--beam", "1", "--results-path", results,
    ])
    out = results / "dev"
    dev_ids = [line.split("\t")[0] for line in (micro_data / "dev.tsv").read_text().splitlines()[1:]]
    files = {}
    for name in ("mt.txt", "asr.txt", "st_ctc.txt", "units.txt"):
        rows = dict(line.split("\t", 1) for line in (out / name).read_text().splitlines())
        assert sorted(rows) == sorted(dev_ids), name
        files[name] = rows
    assert (results / "generate-dev.txt").is_file()

    cfg = yaml.safe_load((micro_data / "config.yaml").read_text())["vocoder"]
    vocoder = UnitVocoder(micro_data / cfg["checkpoint"], micro_data / cfg["config"])
    assert vocoder.hop == 320
    n_units = 0
    for uid in dev_ids:
        units = [int(u) for u in files["units.txt"][uid].split()]
        n_units += len(units)
        wav, sr = sf.read(out / "wav" / f"{uid}.wav")
        assert sr == 16000
        expected = int(vocoder.durations(torch.tensor(units)).sum()) * vocoder.hop if units else 0
        assert len(wav) == expected, uid
    return files, n_units



def test_init_from_copies_every_matching_tensor(micro_data, tmp_path):
    """--init-from: a model for other units starts from a checkpoint's parameters wherever name
    and shape match; only the unit output layer is fresh."""
    import shutil

    from fairseq import checkpoint_utils

    save = tmp_path / "a"
    run([cli("fairseq-train"), micro_data, *TRAIN_ARGS, *COMMON, "--save-dir", save, "--max-update", 5])
    # the same data with twice the unit vocabulary
    other = tmp_path / "data"
    shutil.copytree(micro_data, other)
    cfg = yaml.safe_load((other / "config.yaml").read_text())
    cfg["num_units"] *= 2
    cfg.pop("vocoder")
    (other / "config.yaml").write_text(yaml.safe_dump(cfg))
    out = run([cli("fairseq-train"), other, *TRAIN_ARGS, *COMMON, "--save-dir", tmp_path / "b", "--max-update", 1,
               "--lr", "1e-9", "--init-from", save / "checkpoint_last.pt"])
    log = out.stdout + out.stderr
    m = re.search(r"--init-from .*: (\d+) of (\d+) tensors copied", log)
    assert m and int(m.group(2)) - int(m.group(1)) == 2, log[-2000:]
    assert "fresh: unit_decoder.out.bias, unit_decoder.out.weight" in log
    a = checkpoint_utils.load_checkpoint_to_cpu(str(save / "checkpoint_last.pt"))["model"]
    b = checkpoint_utils.load_checkpoint_to_cpu(str(tmp_path / "b" / "checkpoint_last.pt"))["model"]
    assert b["unit_decoder.out.weight"].shape[0] > a["unit_decoder.out.weight"].shape[0]
    k = "mt_decoder.embed_tokens.weight"
    assert torch.allclose(a[k], b[k], atol=1e-6)  # copied (a 1e-9 step moves nothing)
    with pytest.raises(AssertionError, match="checkpoint not found"):
        run([cli("fairseq-train"), other, *TRAIN_ARGS, *COMMON, "--save-dir", tmp_path / "c", "--max-update", 1,
             "--init-from", tmp_path / "missing.pt"])


def test_grown_unit_decoder_trained_alone(micro_data, tmp_path):
    """A deeper unit decoder from --init-from: the layers the checkpoint lacked start as the
    identity (the grown model computes the checkpoint's units), and --train-only t2u
    unit_decoder leaves every other tensor exactly as it was."""
    import copy

    from fairseq import checkpoint_utils

    save = tmp_path / "a"
    run([cli("fairseq-train"), micro_data, *TRAIN_ARGS, *COMMON, "--save-dir", save, "--max-update", 5])
    a_path = save / "checkpoint_last.pt"
    out = run([cli("fairseq-train"), micro_data, *TRAIN_ARGS, *COMMON, "--save-dir", tmp_path / "b", "--max-update", 3,
               "--unit-decoder-layers", 4, "--train-only", "t2u", "unit_decoder", "--init-from", a_path])
    log = out.stdout + out.stderr
    assert "layers it lacked start as the identity: unit_decoder.layers.2, unit_decoder.layers.3" in log, log[-3000:]
    a = checkpoint_utils.load_checkpoint_to_cpu(str(a_path))["model"]
    b = checkpoint_utils.load_checkpoint_to_cpu(str(tmp_path / "b" / "checkpoint_last.pt"))["model"]
    frozen = [k for k in a if not k.startswith(("unit_decoder.", "t2u_encoder."))]
    assert frozen and all(torch.equal(a[k], b[k]) for k in frozen), [k for k in frozen if not torch.equal(a[k], b[k])]
    assert not torch.equal(a["unit_decoder.layers.0.ffn.0.weight"], b["unit_decoder.layers.0.ffn.0.weight"])
    assert b["unit_decoder.layers.3.ffn.3.weight"].abs().max() > 0  # the grown layers learn

    # the grown model, fresh from --init-from, computes the checkpoint's unit logits
    models, _, task = checkpoint_utils.load_model_ensemble_and_task([str(a_path)], arg_overrides={"data": str(micro_data)})
    model = models[0].eval()
    args = copy.deepcopy(model.args)
    args.unit_decoder_layers, args.init_from = 4, str(a_path)
    grown = task.build_model(args).eval()
    assert len(grown.unit_decoder.layers) == 4
    states = torch.randn(2, 5, args.decoder_embed_dim)
    tokens = torch.randint(4, len(model.mt_dict), (2, 5))
    lengths = torch.tensor([5, 3])
    with torch.no_grad():
        want, _ = model.units_forward(states, lengths, tokens)
        got, _ = grown.units_forward(states, lengths, tokens)
    assert torch.allclose(want, got, atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_fairseq_train_on_cuda(micro_data, tmp_path):
    """fairseq-train's own CUDA path with the plugin's task, model and criterion."""
    out = run([cli("fairseq-train"), micro_data, *TRAIN_ARGS, *COMMON, "--save-dir", tmp_path / "gpu", "--max-update", 10])
    log = out.stdout + out.stderr
    assert "num_updates: 10 >= max_update: 10" in log or (tmp_path / "gpu" / "checkpoint_last.pt").is_file()
    assert "cuda" in log.lower()
    st = torch.load(tmp_path / "gpu" / "checkpoint_last.pt", map_location="cpu", weights_only=False)
    assert all(torch.isfinite(v).all() for v in st["model"].values() if v.is_floating_point())
