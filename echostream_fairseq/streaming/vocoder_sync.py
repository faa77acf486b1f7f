"""Incremental CodeHiFiGAN output synchronised on predicted durations.

Units arrive a few at a time. A unit's duration is final once the duration predictor's
receptive field (two kernel-3 convolutions: 2 units each side) is covered; a frame's samples are
final once the generator's receptive field is covered on both sides. Each update runs the
predictor and the generator on a fixed-size window only, and emits exactly the samples of
frames that became final: concatenated, the output equals the offline vocoder's (no gap, no
repeated sample), and its length is the sum of durations times the hop.

``push(units, final=True)`` before the end speaks everything pushed so far: the last units'
durations and samples are computed without the units that follow (as at the end of a
sentence), and later pushes go on from that left context. The engine does this for every
emission by default (``PolicyConfig.vocoder_flush``), so a word is never split by a pause.
"""
from __future__ import annotations

import math
from typing import List, Sequence

import numpy as np
import torch

from ..vocoder import UnitVocoder

DUR_CONTEXT = 2  # units each side that a duration depends on


def generator_context_frames(config: dict) -> int:
    """Frames each side that one output sample of the HiFiGAN generator depends on (upper bound)."""
    pre = 3  # conv_pre, kernel 7
    radius = float(pre)
    cum = 1
    dil = config["resblock_dilation_sizes"]
    for u, k in zip(config["upsample_rates"], config["upsample_kernel_sizes"]):
        radius += math.ceil(k / u) / cum  # transposed conv: input steps each side, in frames
        cum *= u
        res = 0
        for ks, ds in zip(config["resblock_kernel_sizes"], dil):
            half = (ks - 1) // 2
            if config.get("resblock", "1") == "1":
                res = max(res, sum(half * d + half for d in ds))
            else:
                res = max(res, sum(half * d for d in ds))
        radius += res / cum
    radius += 3 / cum  # conv_post, kernel 7
    return int(math.ceil(radius)) + 1


class VocoderStream:
    def __init__(self, vocoder: UnitVocoder, context_frames: int = None):
        self.vocoder = vocoder
        self.hop = vocoder.hop
        self.ctx = generator_context_frames(vocoder.config) if context_frames is None else context_frames
        self.units: List[int] = []
        self.durations: List[int] = []  # final durations of units[: len(durations)]
        self.frames: List[int] = []  # unit id per frame, tail only (from frame_offset)
        self.frame_offset = 0
        self.frames_emitted = 0
        self.samples_emitted = 0

    def push(self, units: List[int], final: bool = False) -> np.ndarray:
        return push_many([self], [units], [final])[0]

    def _duration_window(self, final: bool):
        """(units window, first new, last new) whose durations become final, or None."""
        n_known, n_final = len(self.units), len(self.durations)
        upto = n_known if final else n_known - DUR_CONTEXT
        if upto <= n_final:
            return None
        lo = max(0, n_final - DUR_CONTEXT)
        hi = n_known if final else upto + DUR_CONTEXT
        return torch.tensor(self.units[lo:hi], dtype=torch.long), n_final - lo, upto - lo

    def _take_durations(self, window, dur: torch.Tensor) -> None:
        _, a, b = window
        n_final = len(self.durations)
        d = dur[a:b].tolist()
        self.durations.extend(d)
        for u, k in zip(self.units[n_final : n_final + len(d)], d):
            self.frames.extend([u] * k)

    def _frame_window(self, final: bool):
        """(codes, first sample, last sample, end frame) of the frames whose samples become
        final, with the generator context each side, or None."""
        total = self.frame_offset + len(self.frames)
        end = total if final else total - self.ctx
        start = self.frames_emitted
        if end <= start:
            return None
        lo = max(self.frame_offset, start - self.ctx)
        hi = total if final else min(total, end + self.ctx)
        codes = torch.tensor(self.frames[lo - self.frame_offset : hi - self.frame_offset], dtype=torch.long)
        return codes, (start - lo) * self.hop, (end - lo) * self.hop, end

    def _take_samples(self, window, wav: torch.Tensor) -> np.ndarray:
        _, a, b, end = window
        out = wav[a:b].numpy().astype(np.float32)
        self.frames_emitted = end
        self.samples_emitted += out.size
        # keep only the left context the next window needs
        keep_from = max(self.frame_offset, end - self.ctx)
        del self.frames[: keep_from - self.frame_offset]
        self.frame_offset = keep_from
        return out


@torch.no_grad()
def push_many(streams: Sequence[VocoderStream], units: Sequence[List[int]], finals: Sequence[bool]) -> List[np.ndarray]:
    """Push new units into several streams over the same vocoder: one batched duration
    forward and one batched generator forward for all of them. Returns each stream's new
    samples (what ``push`` would return for it alone)."""
    for s, u in zip(streams, units):
        s.units.extend(int(x) for x in u)
    vocoder = streams[0].vocoder if streams else None
    windows = [(s, s._duration_window(f)) for s, f in zip(streams, finals)]
    windows = [(s, w) for s, w in windows if w is not None]
    if windows:
        for (s, w), dur in zip(windows, vocoder.durations_many([w[0] for _, w in windows])):
            s._take_durations(w, dur)
    out = [np.zeros(0, dtype=np.float32) for _ in streams]
    windows = [(i, s._frame_window(f)) for i, (s, f) in enumerate(zip(streams, finals))]
    windows = [(i, w) for i, w in windows if w is not None]
    if windows:
        for (i, w), wav in zip(windows, vocoder.generate_many([w[0] for _, w in windows])):
            out[i] = streams[i]._take_samples(w, wav)
    return out
