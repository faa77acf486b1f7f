"""How many concurrent real-time streams the server sustains on this machine, with each session
stepped alone and with the sessions stepped together as one batch.

For each mode it starts a real ``echostream-serve`` (default: the shipped model; per session:
``--max-batch 1``, each session in its own thread with one torch thread; batched: ``--max-batch`` = the stream count,
--batched-workers batches in parallel with --threads torch threads each) and streams the bundled examples laid end to end (--seconds of speech per client)
from n clients at once at the speed of speech. Per stream: the engine's compute time over the
audio time (real-time factor, from the ``compute_ms`` the server reports: the time each chunk
waited for and spent in the engine) and the finish lag (wall time from the last frame sent to
``done``). n is sustained when every stream's RTF is at most --rtf (and, if given, its finish lag
below --max-lag-ms); n doubles until it fails, then a bisection finds the largest sustained n. Prints a
table per mode; the last line is exactly
``realtime_streams per_session=<n> batched=<m> rtf=<--rtf>`` (for the first of --models).

``--device cuda`` serves on a GPU. ``--models mini paper`` also measures the paper-size
architecture (``echostream_s2st``: 16-layer Emformer d256, 6-layer unit decoder) with untrained
weights over the shipped dictionaries and vocoder (a load test: its outputs are noise, bounded
by the target length bound); each extra model prints ``realtime_streams_<model> ...`` before
the last line.
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


def paper_checkpoint(assets_dir: Path, out: Path) -> Path:
    """A paper-size model (``echostream_s2st`` defaults) with untrained weights, over the shipped
    model's dictionaries and task configuration, saved as a fairseq checkpoint."""
    from argparse import Namespace

    import torch
    from fairseq import checkpoint_utils

    import echostream_fairseq  # noqa: F401
    from echostream_fairseq.models.echostream import EchoStreamModel, base_architecture

    src = assets_dir / "model" / "checkpoint.pt"
    _, _, task = checkpoint_utils.load_model_ensemble_and_task(
        [str(src)], arg_overrides={"data": str(assets_dir / "model"), "config_yaml": "config.yaml",
                                   "multitask_config_yaml": "config_mtl.yaml"})
    state = torch.load(src, map_location="cpu", weights_only=False)
    paper = Namespace()
    base_architecture(paper)
    args = Namespace(**{**vars(state["cfg"]["model"]), **vars(paper), "arch": "echostream_s2st"})
    torch.manual_seed(0)
    model = EchoStreamModel.build_model(args, task)
    state["cfg"]["model"] = args
    state["model"] = model.state_dict()
    state["last_optimizer_state"] = None
    out.mkdir(parents=True, exist_ok=True)
    torch.save(state, out / "checkpoint.pt")
    return out / "checkpoint.pt"


def probe(args, wav, mode: str, n: int, port: int, model_args=()):
    """Serve in ``mode`` and stream n clients at once: (every stream sustained, mean RTF, worst RTF, worst lag)."""
    serve = Path(sys.executable).parent / "echostream-serve"
    batch = 1 if mode == "per_session" else max(2, n)
    model_args = list(model_args) or ["--assets", str(args.assets)]
    proc = subprocess.Popen([str(serve), *model_args, "--device", args.device, "--port", str(port), "--max-sessions", str(n),
                             "--max-batch", str(batch), "--engine-workers", str(args.batched_workers if mode == "batched" else 0), "--max-connections-per-client", str(n + 1), "--max-connections", str(n + 8),
                             "--max-requests-per-second", str(max(20, 4 * n)),  # (all n clients connect from one address at once)
                             "--threads", str(1 if mode == "per_session" else args.threads), "--log-level", "warning"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        for _ in range(240):
            if proc.poll() is not None:
                raise SystemExit(f"echostream-serve ({mode}, {n} streams) exited with {proc.returncode}: {' '.join(proc.args)}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5)
                break
            except OSError:
                time.sleep(0.5)
        url = f"ws://127.0.0.1:{port}/ws"

        async def run_n():
            return await asyncio.gather(*(one_stream(url, wav, args.segment_ms) for _ in range(n)))

        res = asyncio.run(run_n())
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    rtfs, lags = [r[0] for r in res], [r[1] for r in res]
    return max(rtfs) <= args.rtf and max(lags) < args.max_lag_ms, float(np.mean(rtfs)), max(rtfs), max(lags)


def most_streams(args, wav, mode: str, port: int, model: str = "mini", model_args=()) -> int:
    """The largest n sustained in ``mode``: doubling from --start-streams, then bisection; one table row per probe."""
    tried = {}

    def ok(n):
        if n not in tried:
            good, mean, worst, lag = probe(args, wav, mode, n, port, model_args)
            print(f"| {model} | {mode} | {n} | {mean:.2f} | {worst:.2f} | {lag:.0f} | {'yes' if good else 'no'} |", flush=True)
            tried[n] = good
        return tried[n]

    lo, hi = 0, max(1, min(args.start_streams, args.max_streams))
    while hi <= args.max_streams and ok(hi):
        lo, hi = hi, 2 * hi
    hi = min(hi, args.max_streams + 1)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--assets", type=Path, default=assets.REPO_ASSETS)
    p.add_argument("--max-streams", type=int, default=64)
    p.add_argument("--start-streams", type=int, default=1,
                   help="the first stream count tried (doubling from there; a failure bisects below it). "
                        "Fewer probes on a machine that sustains many streams (default 1)")
    p.add_argument("--seconds", type=float, default=12.0, help="speech per client")
    p.add_argument("--segment-ms", type=int, default=320)
    p.add_argument("--threads", type=int, default=1, help="torch threads per batch of the batched server (default 1; per session: 1 per session)")
    p.add_argument("--batched-workers", type=int, default=2, help="batches stepped in parallel by the batched server (default 2)")
    p.add_argument("--rtf", type=float, default=0.5, help="the real-time factor every stream must stay under (default 0.5)")
    p.add_argument("--max-lag-ms", type=float, default=float("inf"), help="also require a finish lag under this (default: no bound)")
    p.add_argument("--modes", nargs="+", default=["per_session", "batched"], choices=["per_session", "batched"])
    p.add_argument("--device", default="cpu", help="where the servers run the model: cpu (default) or cuda")
    p.add_argument("--models", nargs="+", default=["mini"], choices=["mini", "paper"],
                   help="mini: the shipped model; paper: the paper-size architecture, untrained (default: mini)")
    args = p.parse_args(argv)
    import logging

    logging.getLogger("websockets").setLevel(logging.WARNING)
    logging.getLogger("asyncio").setLevel(logging.WARNING)
    ex = assets.read_examples(args.assets)
    wav = np.concatenate([features.read_audio(e["src_audio"]) for e in ex])
    reps = int(np.ceil(args.seconds * 16000 / len(wav)))
    wav = np.tile(wav, reps)[: int(args.seconds * 16000)]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    print(f"{args.seconds:g} s of speech per stream, {args.segment_ms} ms segments, batched server: {args.batched_workers} worker(s) x "
          f"{args.threads} torch thread(s); sustained: every stream RTF <= {args.rtf:g}, finish lag < {args.max_lag_ms:g} ms\n")
    print(f"device {args.device}\n")
    print("| model | mode | streams | RTF mean | RTF worst | finish lag worst (ms) | sustained |\n|---|---|---|---|---|---|---|")
    import tempfile

    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            model_args = ()
            if model == "paper":
                ckpt = paper_checkpoint(args.assets, Path(tmp) / "paper")
                model_args = ("--checkpoint", str(ckpt), "--data-dir", str(args.assets / "model"),
                              "--punct", str(args.assets / "model" / "punct.pt"))
            best = {mode: most_streams(args, wav, mode, port, model, model_args) for mode in args.modes}
            name = "realtime_streams" if model == args.models[0] else f"realtime_streams_{model}"
            lines.append(f"{name} per_session={best.get('per_session', 0)} batched={best.get('batched', 0)} rtf={args.rtf:g}")
    for line in lines[1:] + lines[:1]:
        print(line)


if __name__ == "__main__":
    main()
