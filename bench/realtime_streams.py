"""How many concurrent real-time streams the server sustains on this machine.

Starts a real ``echostream-serve`` (default: the shipped model) and, for n = 1, 2, ... clients at
once, streams the bundled examples laid end to end (--seconds of speech per client) at the speed
of speech. Per stream: the engine's compute time over the audio time (real-time factor; the
``compute_ms`` the server reports) and the finish lag (wall time from the last frame sent to the
``done`` message). n is sustained when every stream's RTF is below 1 and its finish lag below
--max-lag-ms. Prints a table; the last line is ``realtime_streams <n> rtf_at_n=<x.xx>`` (the
largest sustained n and the worst RTF at that n).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

from echostream_fairseq import assets, features
from echostream_fairseq.features import to_s16le


async def one_stream(url: str, wav: np.ndarray, segment_ms: int):
    import websockets

    compute_ms, t_end = 0.0, None
    async with websockets.connect(url, max_size=None) as ws:
        await ws.send(json.dumps({"type": "start", "sample_rate": 16000, "format": "s16le", "segment_ms": segment_ms}))
        json.loads(await ws.recv())

        async def sender():
            nonlocal t_end
            step, t0 = 1600, time.perf_counter()
            for i in range(0, len(wav), step):
                await ws.send(to_s16le(wav[i : i + step]))
                await asyncio.sleep(max(0.0, t0 + (i + step) / 16000 - time.perf_counter()))
            t_end = time.perf_counter()
            await ws.send(json.dumps({"type": "end"}))

        task = asyncio.create_task(sender())
        async for msg in ws:
            if isinstance(msg, str):
                ev = json.loads(msg)
                if ev["type"] == "latency":
                    compute_ms = ev["compute_ms"]
                elif ev["type"] == "error":
                    raise RuntimeError(f"server error: {ev}")
                elif ev["type"] == "done":
                    break
        await task
    lag_ms = 1000 * (time.perf_counter() - t_end)
    return compute_ms / (1000 * len(wav) / 16000), lag_ms


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--assets", type=Path, default=assets.REPO_ASSETS)
    p.add_argument("--max-streams", type=int, default=6)
    p.add_argument("--seconds", type=float, default=12.0, help="speech per client")
    p.add_argument("--segment-ms", type=int, default=320)
    p.add_argument("--threads", type=int, default=1, help="torch threads in the server (default 1: one core per stream)")
    p.add_argument("--max-lag-ms", type=float, default=1000.0)
    args = p.parse_args(argv)
    import logging

    logging.getLogger("websockets").setLevel(logging.WARNING)
    ex = assets.read_examples(args.assets)
    wav = np.concatenate([features.read_audio(e["src_audio"]) for e in ex])
    reps = int(np.ceil(args.seconds * 16000 / len(wav)))
    wav = np.tile(wav, reps)[: int(args.seconds * 16000)]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    serve = Path(sys.executable).parent / "echostream-serve"
    proc = subprocess.Popen([str(serve), "--assets", str(args.assets), "--port", str(port), "--max-sessions", str(args.max_streams),
                             "--threads", str(args.threads), "--log-level", "warning"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5)
                break
            except OSError:
                time.sleep(0.5)
        url = f"ws://127.0.0.1:{port}/ws"
        print(f"{args.seconds:g} s of speech per stream, {args.segment_ms} ms segments, server torch threads {args.threads}\n")
        print("| streams | RTF mean | RTF worst | finish lag worst (ms) | sustained |\n|---|---|---|---|---|")
        best, rtf_best = 0, float("nan")
        for n in range(1, args.max_streams + 1):

            async def run_n():
                return await asyncio.gather(*(one_stream(url, wav, args.segment_ms) for _ in range(n)))

            res = asyncio.run(run_n())
            rtfs, lags = [r[0] for r in res], [r[1] for r in res]
            ok = max(rtfs) < 1.0 and max(lags) < args.max_lag_ms
            print(f"| {n} | {np.mean(rtfs):.2f} | {max(rtfs):.2f} | {max(lags):.0f} | {'yes' if ok else 'no'} |", flush=True)
            if ok:
                best, rtf_best = n, max(rtfs)
            else:
                break
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print(f"realtime_streams {best} rtf_at_n={rtf_best:.2f}")


if __name__ == "__main__":
    main()
