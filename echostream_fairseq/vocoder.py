"""fairseq's CodeHiFiGAN unit vocoder, loaded from its on-disk format (config.json + a
checkpoint whose ``generator`` key holds the state dict), with duration access."""
from __future__ import annotations

import json
import math
import threading
from pathlib import Path
from typing import List, Optional, Sequence, Union

import torch
from fairseq.models.text_to_speech.vocoder import CodeHiFiGANVocoder


def hop_size(config: dict) -> int:
    """Samples per unit frame: the product of the upsample rates (``code_hop_size`` must agree)."""
    hop = math.prod(config["upsample_rates"])
    if "code_hop_size" in config and config["code_hop_size"] != hop:
        raise ValueError(f"vocoder config: code_hop_size {config['code_hop_size']} != product of upsample_rates {hop}")
    return hop


class UnitVocoder:
    def __init__(self, checkpoint: Union[str, Path], config: Union[str, Path], device: Union[str, torch.device] = "cpu"):
        with open(config) as f:
            self.config = json.load(f)
        self.hop = hop_size(self.config)
        self.sample_rate = self.config.get("sampling_rate", 16000)
        self.num_units = self.config["num_embeddings"]
        if not self.config.get("dur_predictor_params"):
            raise ValueError(f"{config}: the vocoder has no duration predictor (dur_predictor_params)")
        self.model = CodeHiFiGANVocoder(str(checkpoint), self.config)
        self.model.eval()
        self.device = torch.device(device)
        self.model.to(self.device)
        # batched calls over sequences of unequal length: every convolution's input is zeroed past
        # each sequence's end, as a lone sequence's zero padding is (see _padded_batch)
        self._lengths = threading.local()
        for mod in self.model.model.modules():
            if isinstance(mod, (torch.nn.Conv1d, torch.nn.ConvTranspose1d)):
                mod.register_forward_pre_hook(self._mask_padding)

    def _mask_padding(self, module, inputs):
        lengths = getattr(self._lengths, "value", None)
        if lengths is None:
            return None
        x = inputs[0]
        steps, T0 = lengths
        valid = torch.arange(x.size(-1), device=x.device)[None, :] < (steps.to(x.device) * (x.size(-1) // T0))[:, None]
        return (x * valid[:, None, :],) + tuple(inputs[1:])

    def _padded_batch(self, seqs: Sequence[torch.Tensor], fn):
        """``fn(codes (B, T))`` over zero-padded sequences, each conv input masked past each
        sequence's end: equal, up to float rounding, to ``fn`` on each sequence alone."""
        if len(seqs) == 1:
            return fn(seqs[0].view(1, -1).to(self.device))
        lengths = torch.tensor([s.numel() for s in seqs])
        codes = torch.zeros(len(seqs), int(lengths.max()), dtype=torch.long)
        for b, s in enumerate(seqs):
            codes[b, : s.numel()] = s.view(-1)
        self._lengths.value = (lengths, codes.size(1))
        try:
            return fn(codes.to(self.device))
        finally:
            self._lengths.value = None

    @torch.no_grad()
    def durations(self, units: torch.Tensor) -> torch.Tensor:
        """Predicted frames per unit, as the generator computes them (>= 1)."""
        return self.durations_many([units])[0]

    @torch.no_grad()
    def durations_many(self, seqs: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        """:meth:`durations` of several unit sequences in one batched forward."""
        g = self.model.model
        log_dur = self._padded_batch(seqs, lambda codes: g.dur_predictor(g.dict(codes)))
        dur = torch.clamp(torch.round(torch.exp(log_dur) - 1).long(), min=1).cpu()
        return [dur[b, : s.numel()] for b, s in enumerate(seqs)]

    @torch.no_grad()
    def generate_many(self, frames: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        """The generator on several frame-level code sequences (units repeated by their
        durations) in one batched forward: per sequence its waveform (len * hop samples)."""
        wav = self._padded_batch(frames, lambda codes: self.model.model(code=codes)).cpu()
        return [wav[b].view(-1)[: f.numel() * self.hop] for b, f in enumerate(frames)]

    @torch.no_grad()
    def __call__(self, units: torch.Tensor) -> torch.Tensor:
        """Waveform (float, sample_rate) of a reduced unit sequence, durations predicted."""
        units = torch.as_tensor(units, dtype=torch.long).view(-1)
        if units.numel() and (units.min() < 0 or units.max() >= self.num_units):
            raise ValueError(f"unit ids must be in 0..{self.num_units - 1}")
        if units.numel() == 0:
            return torch.zeros(0)
        return self.model({"code": units.view(1, -1).to(self.device)}, dur_prediction=True).view(-1).cpu()
