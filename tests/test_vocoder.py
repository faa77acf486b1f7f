"""CodeHiFiGAN checkpoints in fairseq's on-disk format, loaded by fairseq's CodeHiFiGANVocoder."""
import json

import pytest
import torch
import yaml

from echostream_fairseq.prep.micro import small_vocoder_config, write_untrained_vocoder
from echostream_fairseq.vocoder import UnitVocoder, hop_size


def _units(micro_data):
    row = (micro_data / "dev.tsv").read_text().splitlines()[1].split("\t")
    return torch.tensor([int(u) for u in row[3].split()])


def test_length_is_sum_of_durations_times_hop(micro_data):
    cfg = yaml.safe_load((micro_data / "config.yaml").read_text())["vocoder"]
    vocoder = UnitVocoder(micro_data / cfg["checkpoint"], micro_data / cfg["config"])
    units = _units(micro_data)
    wav = vocoder(units)
    dur = vocoder.durations(units)
    assert len(dur) == len(units) and dur.min() >= 1
    assert wav.numel() == int(dur.sum()) * vocoder.hop == int(dur.sum()) * 320


def test_hop_comes_from_the_config(micro_data, tmp_path):
    ckpt, cfg_path = write_untrained_vocoder(tmp_path, 50)
    cfg = json.loads(cfg_path.read_text())
    cfg["upsample_rates"] = [4, 4, 4, 2, 2]  # 256 samples per unit frame
    cfg["upsample_kernel_sizes"] = [8, 8, 8, 4, 4]
    cfg["code_hop_size"] = 256
    from fairseq.models.text_to_speech.codehifigan import CodeGenerator

    torch.save({"generator": CodeGenerator(cfg).state_dict()}, ckpt)
    cfg_path.write_text(json.dumps(cfg))
    vocoder = UnitVocoder(ckpt, cfg_path)
    units = _units(micro_data)
    assert vocoder.hop == 256
    assert vocoder(units).numel() == int(vocoder.durations(units).sum()) * 256


def test_inconsistent_hop_is_an_error():
    cfg = small_vocoder_config(10)
    cfg["code_hop_size"] = 256
    with pytest.raises(ValueError, match="code_hop_size 256"):
        hop_size(cfg)


def test_unit_out_of_range_is_an_error(micro_data):
    cfg = yaml.safe_load((micro_data / "config.yaml").read_text())["vocoder"]
    vocoder = UnitVocoder(micro_data / cfg["checkpoint"], micro_data / cfg["config"])
    with pytest.raises(ValueError, match="0..49"):
        vocoder(torch.tensor([3, 50]))
