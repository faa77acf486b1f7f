"""Where a streaming step's time goes, per model stage, with sessions stepped alone and together.

``--streams`` sessions of the shipped model (the server's default policy: pauses, learned
sentence boundaries, speech on) are fed the bundled examples laid end to end (--seconds each,
every stream started ``--offset-ms`` after the one before, so that they are at different points
of their sentences) in 320 ms chunks, in one process with ``--threads`` torch threads:

* per session: each session's chunk is its own ``step_many([...])`` call, one after the other;
* batched: one ``step_many`` call for the chunks of all sessions.

After a warm-up stream, each mode runs twice: once plain, for the wall time (compute per second of audio per stream,
the real-time factor a single core would give each stream), once under ``torch.profiler`` for
the split by the engine's stage labels (``engine.STAGES``: front end, encoder + CTC heads, the
punctuation model, MT decoder, T2U + unit decoder, vocoder; "other": the policy, boundaries and
bookkeeping). The profiler's own cost inflates the second run; its shares, not its seconds, are
what it gives.

The last line is ``stage_split per_session=<rtf> batched=<rtf> speedup=<x> vocoder_share=<f>``;
``bound`` in the table is the most any batching of the other stages could give while the
vocoder costs what it does (Amdahl: total / vocoder of the per-session run).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from echostream_fairseq import assets, features
from echostream_fairseq.streaming import engine
from echostream_fairseq.streaming.engine import PolicyConfig, StreamingSession, load_resources, step_many, finish_many
from echostream_fairseq.streaming.feeder import segment_samples


def run(res, policy, streams, segment: int, mode: str, profile: bool):
    """Feed every stream through its own session; returns (seconds, {stage: seconds} or None)."""
    sessions = [StreamingSession(res, policy) for _ in streams]
    n_chunks = max(len(x) for x in streams) // segment
    prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) if profile else None
    if prof is not None:
        prof.__enter__()
    t0 = time.perf_counter()
    try:
        for c in range(n_chunks):
            items = [(s, x[c * segment:(c + 1) * segment]) for s, x in zip(sessions, streams)]
            if mode == "batched":
                step_many(items)
            else:
                for item in items:
                    step_many([item])
        if mode == "batched":
            finish_many(sessions)
        else:
            for s in sessions:
                finish_many([s])
    finally:
        secs = time.perf_counter() - t0  # the profiler's processing on exit left out
        if prof is not None:
            prof.__exit__(None, None, None)
    if prof is None:
        return secs, None
    split = {name: 0.0 for name in engine.STAGES}
    for ev in prof.key_averages():
        if ev.key in split:
            split[ev.key] += ev.cpu_time_total / 1e6
    return secs, split


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--assets", type=Path, default=assets.REPO_ASSETS)
    p.add_argument("--streams", type=int, default=8)
    p.add_argument("--seconds", type=float, default=12.0, help="speech per stream")
    p.add_argument("--offset-ms", type=float, default=480.0, help="start of each stream after the one before (default 480)")
    p.add_argument("--segment-ms", type=int, default=320)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = p.parse_args(argv)
    if args.streams < 1 or args.seconds <= 0:
        p.error("--streams must be >= 1 and --seconds > 0")
    torch.set_num_threads(args.threads)
    root = args.assets / "model"
    res = load_resources(root / "checkpoint.pt", root, punct_model=root / "punct.pt")
    policy = PolicyConfig(pause_ms=PolicyConfig.FLAG_PAUSE_MS, punct_delay=PolicyConfig.FLAG_PUNCT_DELAY)
    wav = np.concatenate([features.read_audio(e["src_audio"]) for e in assets.read_examples(args.assets)])
    n = int(args.seconds * features.SAMPLE_RATE)
    wav = np.tile(wav, int(np.ceil(n / len(wav))) + 1)
    shift = int(args.offset_ms * features.SAMPLE_RATE / 1000)
    streams = [wav[i * shift % (len(wav) - n):][:n] for i in range(args.streams)]
    segment = segment_samples(args.segment_ms)
    audio = args.streams * (n // segment) * segment / features.SAMPLE_RATE
    print(f"{args.streams} streams x {args.seconds:g} s, {args.segment_ms} ms chunks, {args.threads} torch thread(s)\n")
    names = [s.split(".", 1)[1] for s in engine.STAGES]
    print("| mode | RTF per stream (1 core) | " + " | ".join(names) + " | other | bound |")
    print("|---|---|" + "---|" * (len(names) + 2))
    rtf, vshare = {}, {}
    run(res, policy, streams[:1], segment, "batched", profile=False)  # warm-up: first calls, allocator, oneDNN
    for mode in ("per_session", "batched"):
        secs, _ = run(res, policy, streams, segment, mode, profile=False)
        psecs, split = run(res, policy, streams, segment, mode, profile=True)
        shares = [split[s] / psecs for s in engine.STAGES]
        rtf[mode] = secs / audio
        vshare[mode] = split[engine.VOCODER] / psecs
        print(f"| {mode} | {rtf[mode]:.4f} | " + " | ".join(f"{x:.0%}" for x in shares)
              + f" | {max(0.0, 1 - sum(shares)):.0%} | {1 / max(vshare[mode], 1e-9):.2f}x |")
    print(f"\nstage_split per_session={rtf['per_session']:.4f} batched={rtf['batched']:.4f} "
          f"speedup={rtf['per_session'] / rtf['batched']:.2f} vocoder_share={vshare['per_session']:.2f}")


if __name__ == "__main__":
    main()
