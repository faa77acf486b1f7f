"""FastAPI app: ``GET /`` (web page), ``/health``, ``/config``, ``/protocol``, ``WS /ws``.

Every connection owns one ``StreamingSession`` over the shared model; engine calls run in a
thread pool, off the event loop, so a slow client never stalls another. Limits (sessions,
session length, frame size) answer with an ``error`` message and a close code.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import numpy as np
from fastapi import FastAPI, WebSocket
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.websockets import WebSocketDisconnect

from .. import features
from ..streaming.engine import PolicyConfig, Resources, StepOutput, StreamingSession
from ..streaming.replay import Event, Replay
from ..cli.client import to_s16le
from .protocol import PROTOCOL, ProtocolError, decode_frame, parse_start

logger = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"


@dataclass
class ServerLimits:
    max_sessions: int = 4
    max_session_seconds: float = 600.0
    max_frame_bytes: int = 1 << 20
    default_segment_ms: int = 320
    max_segment_ms: int = 5000


class _Connection:
    """One client: protocol state, resampler, its engine session, pending source samples."""

    def __init__(self, app_state, ws):
        self.st, self.ws = app_state, ws
        self.start = None
        self.session: Optional[StreamingSession] = None
        self.resampler = None
        self.pending = np.zeros(0, dtype=np.float32)
        self.received = 0  # 16 kHz samples received
        self.consumed = 0  # of which the engine has read
        self.record: Optional[Replay] = None
        self.spent_ms = 0.0

    async def send_json(self, obj):
        await self.ws.send_text(json.dumps(obj))

    async def on_start(self, msg):
        if self.start is not None:
            raise ProtocolError("already_started", "'start' was already received on this connection")
        lim = self.st.limits
        start = parse_start(msg, lim.default_segment_ms, lim.max_segment_ms)
        if self.st.active >= lim.max_sessions:
            raise ProtocolError("busy", f"the server is running its maximum of {lim.max_sessions} sessions", close_code=1013)
        self.st.active += 1
        self.start = start
        self.session = StreamingSession(self.st.res, self.st.policy, speech="speech" in start.outputs and self.st.res.vocoder is not None)
        self.resampler = features.StreamingResampler(start.sample_rate)
        self.record = Replay(source_ms=0.0)
        self.id = next(self.st.ids)
        await self.send_json({"type": "ready", "session": self.id, "segment_ms": start.segment_ms,
                              "output_audio": {"sample_rate": features.SAMPLE_RATE, "format": "s16le", "channels": 1}})

    async def on_audio(self, data: bytes):
        if len(data) > self.st.limits.max_frame_bytes:
            raise ProtocolError("frame_too_large", f"frame of {len(data)} bytes is over the limit of {self.st.limits.max_frame_bytes}")
        x = decode_frame(data, self.start)
        await self.feed(self.resampler.accept(x))

    async def feed(self, x: np.ndarray, final: bool = False):
        self.received += x.size
        if self.received > self.st.limits.max_session_seconds * features.SAMPLE_RATE:
            raise ProtocolError("session_too_long", f"more than {self.st.limits.max_session_seconds:g} s of source")
        self.pending = np.concatenate([self.pending, x])
        seg = self.start.segment_ms * features.SAMPLE_RATE // 1000
        while self.pending.size >= seg or (final and self.pending.size):
            chunk, self.pending = self.pending[:seg], self.pending[seg:]
            self.consumed += chunk.size
            await self.run(self.session.step, chunk)

    async def on_end(self):
        if self.start is None:
            raise ProtocolError("not_started", "'end' before 'start'")
        await self.feed(self.resampler.accept(np.zeros(0, dtype=np.float32), final=True), final=True)
        await self.run(self.session.finish)
        lat, lat_ca = self.record.latency(), self.record.latency(computation_aware=True)
        src, tgt = self.session.recomposed()
        await self.send_json({"type": "done", "transcript": self.session.transcript, "translation": self.session.translation,
                              "display": {"transcript": src, "translation": tgt},
                              "latency": {**lat, "AL_CA": lat_ca["AL"], "StartOffset_CA": lat_ca["StartOffset"],
                                          "EndOffset_CA": lat_ca["EndOffset"]}})

    async def run(self, fn, *args):
        loop = asyncio.get_running_loop()
        t0 = time.perf_counter()
        try:
            out: StepOutput = await loop.run_in_executor(self.st.pool, fn, *args)
        except Exception as e:  # the engine failed on this session only
            logger.exception("session %s: engine error", getattr(self, "id", "?"))
            raise ProtocolError("internal", f"engine error: {e}", close_code=1011) from e
        self.spent_ms += 1000 * (time.perf_counter() - t0)
        source_ms = 1000 * self.consumed / features.SAMPLE_RATE
        self.record.source_ms = source_ms
        if out.empty:
            return
        self.record.events.append(Event(source_ms, self.spent_ms, out))
        wants = self.start.outputs
        src, tgt = self.session.recomposed()
        if out.asr and "asr" in wants:
            await self.send_json({"type": "asr", "text": out.asr, "transcript": self.session.transcript, "display": src})
        if out.words and "translation" in wants:
            await self.send_json({"type": "translation", "words": out.words, "text": self.session.translation, "display": tgt})
        for s_src, s_tgt in out.sentences:
            await self.send_json({"type": "sentence", "transcript": s_src, "translation": s_tgt})
        if out.pcm.size and "speech" in wants:
            await self.ws.send_bytes(to_s16le(out.pcm))
        await self.send_json({"type": "latency", "source_ms": source_ms, "compute_ms": self.spent_ms})

    def close(self):
        if self.start is not None:
            self.st.active -= 1
            self.start = None


def create_app(res: Resources, policy: Optional[PolicyConfig] = None, limits: Optional[ServerLimits] = None, describe: Optional[dict] = None):
    app = FastAPI(title="EchoStream", docs_url=None, redoc_url=None)
    st = app.state
    st.res, st.policy, st.limits = res, policy or PolicyConfig(), limits or ServerLimits()
    st.active, st.served, st.ids = 0, 0, itertools.count(1)
    st.pool = ThreadPoolExecutor(max_workers=st.limits.max_sessions, thread_name_prefix="engine")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/")
    def index():
        return FileResponse(STATIC / "index.html")

    @app.get("/health")
    def health():
        return {"status": "ok", "ready": True, "sessions": st.active, "max_sessions": st.limits.max_sessions, "served": st.served}

    @app.get("/config")
    def config():
        return JSONResponse({"model": describe or {}, "policy": asdict(st.policy), "limits": asdict(st.limits),
                             "speech_output": st.res.vocoder is not None,
                             "output_audio": {"sample_rate": features.SAMPLE_RATE, "format": "s16le", "channels": 1}})

    @app.get("/protocol")
    def protocol():
        return PROTOCOL

    @app.websocket("/ws")
    async def ws_endpoint(ws: WebSocket):
        await ws.accept()
        conn = _Connection(st, ws)
        try:
            while True:
                msg = await ws.receive()
                if msg["type"] == "websocket.disconnect":
                    return
                if msg.get("bytes") is not None:
                    await conn.on_audio(msg["bytes"])
                    continue
                try:
                    obj = json.loads(msg.get("text") or "")
                except ValueError:
                    raise ProtocolError("bad_json", "text messages must be JSON objects") from None
                if not isinstance(obj, dict):
                    raise ProtocolError("bad_json", "text messages must be JSON objects")
                kind = obj.get("type")
                if kind == "start":
                    await conn.on_start(obj)
                elif kind == "end":
                    await conn.on_end()
                    st.served += 1
                    await ws.close(1000)
                    return
                else:
                    raise ProtocolError("unknown_type", f"unknown message type {kind!r} (expected 'start' or 'end')")
        except ProtocolError as e:
            try:
                await conn.send_json({"type": "error", "code": e.code, "message": e.message})
                await ws.close(e.close_code)
            except Exception:  # the client is already gone
                pass
        except (WebSocketDisconnect, RuntimeError):
            pass  # the client vanished mid-stream
        finally:
            conn.close()

    return app
