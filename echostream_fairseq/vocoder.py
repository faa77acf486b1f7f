"""fairseq's CodeHiFiGAN unit vocoder, loaded from its on-disk format (config.json + a
checkpoint whose ``generator`` key holds the state dict), with duration access."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Union

import torch
from fairseq.models.text_to_speech.vocoder import CodeHiFiGANVocoder


def hop_size(config: dict) -> int:
    """Samples per unit frame: the product of the upsample rates (``code_hop_size`` must agree)."""
    hop = math.prod(config["upsample_rates"])
    if "code_hop_size" in config and config["code_hop_size"] != hop:
        raise ValueError(f"vocoder config: code_hop_size {config['code_hop_size']} != product of upsample_rates {hop}")
    return hop


class UnitVocoder:
    def __init__(self, checkpoint: Union[str, Path], config: Union[str, Path]):
        with open(config) as f:
            self.config = json.load(f)
        self.hop = hop_size(self.config)
        self.sample_rate = self.config.get("sampling_rate", 16000)
        self.num_units = self.config["num_embeddings"]
        if not self.config.get("dur_predictor_params"):
            raise ValueError(f"{config}: the vocoder has no duration predictor (dur_predictor_params)")
        self.model = CodeHiFiGANVocoder(str(checkpoint), self.config)
        self.model.eval()

    @torch.no_grad()
    def durations(self, units: torch.Tensor) -> torch.Tensor:
        """Predicted frames per unit, as the generator computes them (>= 1)."""
        g = self.model.model
        x = g.dict(units.view(1, -1))
        return torch.clamp(torch.round(torch.exp(g.dur_predictor(x)) - 1).long(), min=1).view(-1)

    @torch.no_grad()
    def __call__(self, units: torch.Tensor) -> torch.Tensor:
        """Waveform (float, sample_rate) of a reduced unit sequence, durations predicted."""
        units = torch.as_tensor(units, dtype=torch.long).view(-1)
        if units.numel() and (units.min() < 0 or units.max() >= self.num_units):
            raise ValueError(f"unit ids must be in 0..{self.num_units - 1}")
        if units.numel() == 0:
            return torch.zeros(0)
        return self.model({"code": units.view(1, -1)}, dur_prediction=True).view(-1)
