"""Where a vocoder training step spends its time, and what each lever buys.

Builds the real ``VocoderTrainer`` on synthetic speech-length data (random units, noise audio:
the cost of a step does not depend on what the audio says) and times its ``train_step`` for a
grid of settings: generator width, regression phase vs adversarial phase, bf16 autocast, CPU
threads, batch and segment size. Also times the generator's forward alone. Prints a table of
ms per step and seconds of audio per second of compute; the last line is
``vocoder_step adversarial_ms=<x> regression_ms=<y> speedup=<x/y>`` for the default generator at
the given thread count.
"""
from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import torch

from echostream_fairseq import vocoder_train as vt


class SyntheticData(vt.UnitSpeechData):
    def __init__(self, hop: int, num_units: int, segment_frames: int, n: int = 16, frames: int = 150, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.hop, self.segment_frames = hop, segment_frames
        self.items = []
        for i in range(n):
            codes = torch.randint(0, num_units, (frames // 3,), generator=g).repeat_interleave(3)
            self.items.append((f"u{i}", codes, 0.1 * torch.randn(codes.numel() * hop, generator=g)))


def time_steps(channels: int, gan: bool, bf16: bool, threads: int, batch: int, segment: int, steps: int, device: str) -> float:
    torch.set_num_threads(threads)
    cfg = vt.vocoder_config(100, channels=channels)
    opts = vt.TrainOptions(batch_size=batch, segment_frames=segment, gan_start=0 if gan else 10**9, stft_weight=1.0, bf16=bf16)
    with tempfile.TemporaryDirectory() as d:
        tr = vt.VocoderTrainer(Path(d), cfg, opts, SyntheticData(cfg["code_hop_size"], 100, segment), device=device)
        tr.train_step()  # warm-up
        t0 = time.perf_counter()
        for _ in range(steps):
            tr.train_step()
        if tr.device.type == "cuda":
            torch.cuda.synchronize()
        return 1000 * (time.perf_counter() - t0) / steps


def time_forward(channels: int, threads: int, batch: int, segment: int, device: str) -> float:
    from fairseq.models.text_to_speech.codehifigan import CodeGenerator

    torch.set_num_threads(threads)
    gen = CodeGenerator(vt.vocoder_config(100, channels=channels)).to(device)
    codes = torch.randint(0, 100, (batch, segment), device=device)
    gen(code=codes).sum().backward()  # warm-up
    t0 = time.perf_counter()
    for _ in range(3):
        gen(code=codes).sum().backward()
    if device == "cuda":
        torch.cuda.synchronize()
    return 1000 * (time.perf_counter() - t0) / 3


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=5, help="timed steps per setting")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--channels", type=int, nargs="+", default=[128, 256])
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--segment-frames", type=int, default=32)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = p.parse_args()
    random.seed(0)
    audio_s = args.batch_size * args.segment_frames * 320 / 16000
    print(f"batch {args.batch_size} x {args.segment_frames} frames = {audio_s:.2f} s of audio per step, device {args.device}")
    print("| generator channels | threads | phase | bf16 | ms/step | audio s per compute s |")
    print("|---|---|---|---|---|---|")
    ref = {}
    for threads in args.threads:
        for ch in args.channels:
            fw = time_forward(ch, threads, args.batch_size, args.segment_frames, args.device)
            print(f"| {ch} | {threads} | generator fwd+bwd only | no | {fw:.0f} | {audio_s / fw * 1000:.1f} |")
            for gan in (True, False):
                for bf16 in (False, True):
                    ms = time_steps(ch, gan, bf16, threads, args.batch_size, args.segment_frames, args.steps, args.device)
                    phase = "adversarial" if gan else "regression"
                    print(f"| {ch} | {threads} | {phase} | {'yes' if bf16 else 'no'} | {ms:.0f} | {audio_s / ms * 1000:.1f} |", flush=True)
                    if ch == args.channels[0] and threads == args.threads[-1] and not bf16:
                        ref[phase] = ms
    print(f"vocoder_step adversarial_ms={ref['adversarial']:.0f} regression_ms={ref['regression']:.0f} "
          f"speedup={ref['adversarial'] / ref['regression']:.2f}")


if __name__ == "__main__":
    main()
