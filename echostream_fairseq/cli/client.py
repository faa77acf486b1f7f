"""echostream-client: stream a wav to an echostream-serve server and save the translated speech.

Prints the transcript and the translation as they arrive (with the source time they answer),
then the latency figures. --realtime paces the frames at the speed of speech.
"""
import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import numpy as np

from ..features import to_s16le


async def stream(url: str, wav: np.ndarray, sample_rate: int, segment_ms: int = 320, frame_ms: int = 100,
                 realtime: bool = False, outputs=("asr", "translation", "speech"), on_event=None, pair=None):
    """Send ``wav`` (float mono) as s16le frames; returns (events, pcm bytes, done message).
    ``pair``: the language pair to ask for (None: the server's default)."""
    import websockets

    events, pcm = [], bytearray()
    async with websockets.connect(url, max_size=None) as ws:
        start = {"type": "start", "sample_rate": sample_rate, "format": "s16le", "channels": 1, "segment_ms": segment_ms,
                 "outputs": list(outputs)}
        if pair is not None:
            start["pair"] = pair
        await ws.send(json.dumps(start))
        ready = json.loads(await ws.recv())
        if ready.get("type") != "ready":
            raise RuntimeError(f"server refused the session: {ready}")

        async def sender():
            step = max(1, sample_rate * frame_ms // 1000)
            t0 = time.perf_counter()
            for i in range(0, len(wav), step):
                await ws.send(to_s16le(wav[i : i + step]))
                if realtime:
                    await asyncio.sleep(max(0.0, t0 + (i + step) / sample_rate - time.perf_counter()))
            await ws.send(json.dumps({"type": "end"}))

        send_task = asyncio.create_task(sender())
        done = None
        try:
            async for msg in ws:
                if isinstance(msg, bytes):
                    pcm.extend(msg)
                    continue
                ev = json.loads(msg)
                events.append(ev)
                if on_event:
                    on_event(ev)
                if ev["type"] == "error":
                    raise RuntimeError(f"server error {ev['code']}: {ev['message']}")
                if ev["type"] == "done":
                    done = ev
        except BaseException:  # the sender stops with the session (its own error is the same one)
            send_task.cancel()
            await asyncio.gather(send_task, return_exceptions=True)
            raise
        await send_task
    return events, bytes(pcm), done


def main(argv=None):
    p = argparse.ArgumentParser(prog="echostream-client", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--wav", type=Path, required=True, help="source speech (any rate soundfile reads; sent at its own rate)")
    p.add_argument("--url", default="ws://127.0.0.1:8000/ws")
    p.add_argument("--out", type=Path, help="where the translated speech goes (16 kHz 16-bit wav)")
    p.add_argument("--segment-ms", type=int, default=320)
    p.add_argument("--realtime", action="store_true", help="send at the speed of speech instead of as fast as possible")
    p.add_argument("--pair", help="the language pair (GET /config lists them; default: the server's first)")
    args = p.parse_args(argv)
    import logging

    import soundfile as sf

    logging.getLogger("websockets").setLevel(logging.WARNING)

    from ..features import AudioError, read_audio

    try:
        wav = read_audio(args.wav, expected_sr=None)
    except AudioError as e:
        p.error(str(e))
    sr = sf.info(str(args.wav)).samplerate
    last = {"source_ms": 0.0}

    def show(ev):
        if ev["type"] == "latency":
            last.update(ev)
        elif ev["type"] == "asr":
            print(f"[{last['source_ms']:7.0f} ms] asr        +{ev['text'].strip()!r}", flush=True)
        elif ev["type"] == "translation":
            print(f"[{last['source_ms']:7.0f} ms] translation +{' '.join(ev['words'])!r}", flush=True)
        elif ev["type"] == "sentence":
            print(f"[{last['source_ms']:7.0f} ms] sentence    {ev['transcript']} -> {ev['translation']}", flush=True)

    try:
        _, pcm, done = asyncio.run(stream(args.url, wav, sr, args.segment_ms, realtime=args.realtime, on_event=show, pair=args.pair))
    except (OSError, RuntimeError) as e:
        sys.exit(f"echostream-client: {e}")
    lat = done["latency"]
    print(f"transcript : {done['display']['transcript']}\ntranslation: {done['display']['translation']}")
    if lat["AL"] is None:  # the server sends null latencies for a session that translated nothing
        print("latency: none (no translation)")
    else:
        print(f"latency: AL {lat['AL']:.0f} ms (computation-aware {lat['AL_CA']:.0f} ms), StartOffset {lat['StartOffset']:.0f} ms, "
              f"EndOffset {lat['EndOffset']:.0f} ms")
    if args.out:
        sf.write(str(args.out), np.frombuffer(pcm, dtype="<i2"), 16000, subtype="PCM_16")
        print(f"speech: {args.out} ({len(pcm) // 2 / 16000:.2f} s)")


if __name__ == "__main__":
    sys.exit(main())
