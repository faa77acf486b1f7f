"""Long-form streaming: does an hour of speech cost what a minute does?

One continuous stream -- the shipped long-form stream with pauses (assets/longform), repeated
for as long as asked -- is fed in 320 ms chunks to a ``StreamingSession`` (speech output on),
twice, in two processes side by side (one core each):

* boundaries on: learned sentence boundaries (punctuation model, ``--punct-delay``) and the
  pause trigger (``--pause-ms``), the server's defaults;
* boundaries off: one sentence for the whole talk, with the output-length cap lifted so that
  the translation keeps up with the talk (as a system without segmentation must).

At each mark (default 1, 10 and 60 minutes) it reports the mean wall time per chunk over the
``--window-s`` seconds before the mark (default: one pass of the repeated stream, so that every
mark averages over the same sentences), the process's resident memory, and the size of the
session's own state (encoder-frame window, cross-attention keys/values, decoder states, CTC
prefixes, unit history). Last line: ``longform_ratio cost=<x> memory=<y>``, 60 min over 1 min
with boundaries on (memory: resident memory).
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time
from pathlib import Path

import numpy as np


def state_bytes(s) -> int:
    """Bytes held by a session's growing state (tensors and token lists)."""
    import torch

    n = sum(t.numel() * t.element_size() for t in s.mt.state_tensors())
    n += sum(t.numel() * 4 for t in s.text_states)
    for cache in (s.t2u_cache, s.unit_cache):
        for v in cache.values():
            for x in (v.values() if isinstance(v, dict) else [v]):
                if isinstance(x, torch.Tensor):
                    n += x.numel() * x.element_size()
    n += 8 * (len(s.asr) + len(s.st) + len(s.asr_frames) + len(s.st_frames) + len(s.committed) + len(s.units))
    if s.vocoder is not None:
        n += 8 * (len(s.vocoder.units) + len(s.vocoder.durations) + len(s.vocoder.frames))
    return n


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def worker(args, boundaries: bool, queue) -> None:
    import torch

    from echostream_fairseq import features
    from echostream_fairseq.prep import longform
    from echostream_fairseq.streaming.engine import PolicyConfig, StreamingSession, load_resources
    from echostream_fairseq.streaming.feeder import segment_samples

    torch.set_num_threads(1)
    res = load_resources(args.checkpoint, args.data_dir, punct_model=args.punct if boundaries else None)
    base = features.read_audio(longform.stream_audio(args.longform, args.stream))
    policy = PolicyConfig.from_args(args, punct_model=True) if boundaries else PolicyConfig()
    session = StreamingSession(res, policy)
    chunk = segment_samples(args.segment_ms)
    per_min = 60_000 // args.segment_ms
    marks = {int(m * per_min): m for m in args.marks}
    window_s = args.window_s or base.size / features.SAMPLE_RATE
    window = int(window_s * 1000 // args.segment_ms)
    times, rows, total, pos = [], [], 0.0, 0
    for i in range(max(marks) + 1):
        piece = np.take(base, np.arange(pos, pos + chunk), mode="wrap")  # the stream repeats
        pos = (pos + chunk) % base.size
        t0 = time.perf_counter()
        session.step(piece)
        dt = time.perf_counter() - t0
        total += dt
        times.append(dt)
        if i + 1 in marks:
            rows.append({"minute": marks[i + 1], "ms_per_chunk": 1000 * float(np.mean(times[-window:])),
                         "p90_ms": 1000 * float(np.percentile(times[-window:], 90)), "rss_mb": rss_mb(),
                         "state_mb": state_bytes(session) / 2**20, "sentences": session.count.sentences,
                         "frames_in_window": session.mt.n_frames})
            print(f"  [{'on' if boundaries else 'off'}] {marks[i + 1]:g} min: {rows[-1]['ms_per_chunk']:.1f} ms/chunk, "
                  f"{rows[-1]['rss_mb']:.0f} MB", flush=True)
    queue.put((boundaries, rows, total / ((max(marks) + 1) * args.segment_ms / 1000), window_s))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, default=Path("assets/model/checkpoint.pt"), help="default: the shipped model")
    p.add_argument("--data-dir", type=Path, default=Path("assets/model"))
    p.add_argument("--punct", type=Path, default=Path("assets/model/punct.pt"))
    p.add_argument("--longform", type=Path, default=Path("assets/longform"), help="echostream-make-longform output")
    p.add_argument("--stream", default="pauses0", help="stream to repeat (default pauses0)")
    p.add_argument("--marks", type=float, nargs="+", default=[1, 10, 60], help="minutes into the stream (default 1 10 60)")
    p.add_argument("--window-s", type=float, help="seconds of chunks averaged before each mark (default: the length of the repeated stream)")
    p.add_argument("--segment-ms", type=int, default=320)
    from echostream_fairseq.streaming.engine import PolicyConfig

    PolicyConfig.add_args(p)
    args = p.parse_args(argv)
    for path in (args.checkpoint, args.data_dir, args.punct, args.longform):
        if not path.exists():
            raise SystemExit(f"{path} not found (the shipped assets, or pass the option)")
    args.marks = sorted(args.marks)
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=worker, args=(args, b, queue)) for b in (True, False)]
    t0 = time.time()
    for pr in procs:
        pr.start()
    results = {}
    for _ in procs:
        b, rows, rtf, window_s = queue.get()
        results[b] = (rows, rtf)
    for pr in procs:
        pr.join()
        if pr.exitcode:
            raise SystemExit(f"a worker failed (exit code {pr.exitcode})")
    print(f"\n{args.stream} repeated to {args.marks[-1]:g} min, {args.segment_ms} ms chunks, one core per run, "
          f"{time.time() - t0:.0f} s wall; cost = mean over the {window_s:.1f} s before each mark")
    print(f"{'boundaries':>10} | {'minute':>6} | {'ms/chunk':>8} | {'p90 ms':>6} | {'RSS MB':>7} | {'state MB':>8} | {'frames in window':>16} | sentences")
    for b in (True, False):
        rows, rtf = results[b]
        for r in rows:
            print(f"{'on' if b else 'off':>10} | {r['minute']:>6g} | {r['ms_per_chunk']:>8.1f} | {r['p90_ms']:>6.1f} | {r['rss_mb']:>7.0f} | "
                  f"{r['state_mb']:>8.2f} | {r['frames_in_window']:>16} | {r['sentences']}")
        first, last = rows[0], rows[-1]
        print(f"{'':>10}   {last['minute']:g} min / {first['minute']:g} min: cost {last['ms_per_chunk'] / first['ms_per_chunk']:.2f}, "
              f"RSS {last['rss_mb'] / first['rss_mb']:.2f}, state {last['state_mb'] / max(first['state_mb'], 1e-9):.2f}; "
              f"real-time factor {rtf:.3f}")
    on = results[True][0]
    print(f"longform_ratio cost={on[-1]['ms_per_chunk'] / on[0]['ms_per_chunk']:.2f} memory={on[-1]['rss_mb'] / on[0]['rss_mb']:.2f}")


if __name__ == "__main__":
    main()
