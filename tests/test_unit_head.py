"""echostream-fit-unit-head: a trained model's unit output layer fitted to another numbering of
the units (what a new target voice's quantiser is), everything else kept."""
import json
import re
import subprocess

import numpy as np
import torch

from conftest import cli, run


def renumber_units(folder, perm):
    """Rewrite the unit sequences of a micro data folder (its tgt_audio column) through ``perm``."""
    for split in ("train", "dev"):
        path = folder / f"{split}.tsv"
        lines = path.read_text().splitlines()
        col = lines[0].split("\t").index("tgt_audio")
        out = [lines[0]]
        for line in lines[1:]:
            f = line.split("\t")
            f[col] = " ".join(str(perm[int(u)]) for u in f[col].split())
            out.append("\t".join(f))
        path.write_text("\n".join(out) + "\n")


def validate_unit_loss(checkpoint, data):
    p = run([cli("fairseq-validate"), data, "--user-dir", "echostream_fairseq", "--task", "echostream_s2st",
             "--config-yaml", "config.yaml", "--multitask-config-yaml", "config_mtl.yaml", "--path", checkpoint,
             "--valid-subset", "train", "--max-tokens", "40000", "--num-workers", "0"])
    return float(re.findall(r"\| unit_loss ([0-9.]+)", p.stdout + p.stderr)[-1])


def test_a_renumbered_quantiser_gets_its_output_layer_back_and_nothing_else_changes(trained_micro, micro_data, data_copy, tmp_path):
    before = validate_unit_loss(trained_micro, micro_data)  # the model on the units it was trained on
    perm = np.random.default_rng(0).permutation(50)
    renumber_units(data_copy, perm)
    out = tmp_path / "head.pt"
    p = run([cli("echostream-fit-unit-head"), "--checkpoint", trained_micro, "--data", data_copy, "--out", out,
             "--valid-split", "train", "--max-utterances", "16", "--epochs", "60", "--batch-size", "4", "--lr", "1e-2",
             "--threads", "2", "--no-progress-bar"])
    record = json.loads((tmp_path / "head.pt.json").read_text())
    start, kept = record["epochs"][0]["valid_unit_loss"], min(e["valid_unit_loss"] for e in record["epochs"])
    assert record["train_utterances"] == 16 and f"-> {out}" in p.stdout
    # the old layer names the wrong sounds; the fitted one is nearly as good as the model's own
    assert start > 3 * before, (start, before)
    assert kept < 1.5 * before + 2.0, (kept, before, start)
    # fairseq loads the written checkpoint and measures the loss that the record kept
    assert abs(validate_unit_loss(out, data_copy) - kept) <= 0.02 * kept + 0.05
    old = torch.load(trained_micro, map_location="cpu", weights_only=False)["model"]
    new_st = torch.load(out, map_location="cpu", weights_only=False)
    assert new_st["last_optimizer_state"] is None
    new = new_st["model"]
    assert set(old) == set(new)
    changed = {k for k in old if not torch.equal(old[k], new[k])}
    assert changed == {"unit_decoder.out.weight", "unit_decoder.out.bias"}
    # the fitted rows line up with the renumbering: new unit perm[u] took over old unit u's row
    w_old, w_new = old["unit_decoder.out.weight"][4:], new["unit_decoder.out.weight"][4:]
    sim = torch.nn.functional.normalize(w_new, dim=1) @ torch.nn.functional.normalize(w_old, dim=1).T
    used = sorted({int(u) for line in (micro_data / "train.tsv").read_text().splitlines()[1:] for u in line.split("\t")[3].split()})
    hits = sum(int(sim[perm[u]].argmax()) == u for u in used)
    assert hits >= 0.6 * len(used), (hits, len(used))


def test_a_missing_checkpoint_is_a_usage_error_naming_it(micro_data, tmp_path):
    p = subprocess.run([cli("echostream-fit-unit-head"), "--checkpoint", str(tmp_path / "nope.pt"), "--data", str(micro_data),
                        "--out", str(tmp_path / "o.pt")], capture_output=True, text=True)
    assert p.returncode == 2 and "checkpoint not found" in p.stderr and "nope.pt" in p.stderr
    assert not (tmp_path / "o.pt").exists()


def test_a_split_the_folder_lacks_is_a_usage_error_naming_the_folder(trained_micro, micro_data, tmp_path):
    p = subprocess.run([cli("echostream-fit-unit-head"), "--checkpoint", str(trained_micro), "--data", str(micro_data),
                        "--valid-split", "nosuch", "--out", str(tmp_path / "o.pt")], capture_output=True, text=True)
    assert p.returncode == 2 and str(micro_data) in p.stderr and "nosuch" in p.stderr, p.stderr[-2000:]
    assert not (tmp_path / "o.pt").exists()


def test_an_augmented_training_split_is_a_usage_error_naming_the_data_config(trained_micro, data_copy, tmp_path):
    import yaml

    config = data_copy / "config.yaml"
    cfg = yaml.safe_load(config.read_text())
    cfg["silence_augment"] = {"prob": 1.0, "max_ms": 500, "noise_db": [-70, -60]}
    config.write_text(yaml.safe_dump(cfg))
    p = subprocess.run([cli("echostream-fit-unit-head"), "--checkpoint", str(trained_micro), "--data", str(data_copy),
                        "--valid-split", "dev", "--out", str(tmp_path / "o.pt")], capture_output=True, text=True)
    assert p.returncode == 2 and f"{data_copy}/config.yaml augments split 'train'" in p.stderr, p.stderr[-2000:]
    assert not (tmp_path / "o.pt").exists()
