"""FastAPI app: ``GET /`` (web page), ``/health``, ``/config``, ``/protocol``, ``/metrics``
(Prometheus), ``WS /ws``.

Every connection owns one ``StreamingSession`` over the shared model; a ``BatchScheduler`` steps
the chunks that the sessions have waiting as one batch per model stage, in a worker thread off
the event loop, one chunk per session per batch, so a slow client never stalls another and a
fast one never starves them. Limits (sessions,
session length, frame size, idle time, wall time, connections) and refusals (foreign Origin,
missing or wrong token) answer with an ``error`` message and a close code.
"""
from __future__ import annotations

import asyncio
import hmac
import itertools
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
from fastapi import FastAPI, WebSocket
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.websockets import WebSocketDisconnect

from .. import features
from ..streaming.engine import PolicyConfig, Resources, StepOutput, StreamingSession
from ..streaming.replay import Event, Replay
from ..features import to_s16le
from ..streaming.feeder import SegmentFeeder
from ..streaming.scheduler import BatchScheduler
from .protocol import PROTOCOL, ProtocolError, decode_frame, dumps, parse_start

logger = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"


@dataclass
class ServerLimits:
    max_sessions: int = 4
    max_session_seconds: float = 600.0  # source audio per session
    max_frame_bytes: int = 1 << 20
    default_segment_ms: int = 320
    max_segment_ms: int = 5000
    # a connection that sends no 'start' within this is closed (and one that has not finished its
    # HTTP request head within this is cut)
    idle_before_start_s: float = 10.0
    idle_between_frames_s: float = 30.0  # a started session that sends nothing for this long is closed
    max_session_wall_s: float = 1200.0  # wall-clock time per connection, whatever it sends
    max_connections: int = 64  # open WebSockets, started or not
    max_connections_per_client: int = 8  # open WebSockets per client address
    max_batch: int = 16  # sessions stepped together in one batch (1: each session alone)
    engine_workers: int = 0  # batches stepped in parallel threads (0: 1 when batching, else max_sessions)
    # binary frames a connection may send per second (and in one burst); beyond it the server reads
    # its frames more slowly (TCP pushes back on the client; nothing is lost), so that a client
    # sending a flood of tiny frames cannot take the event loop from the others
    max_frames_per_second: float = 1000.0
    # a client must take what the server sends within this long: one that has stopped reading its
    # output (every buffer on the way full) is dropped with 'slow_reader' and its session freed,
    # and its socket is cut this long after (uvicorn's close would wait for it forever)
    max_send_wait_s: float = 10.0
    # HTTP requests (page, API, example audio) and WebSocket handshakes one client address may make
    # per second (and in one burst); beyond it each waits its turn before the app sees it (slowed,
    # not refused), so that a client flooding them cannot take the event loop and the GIL from the
    # sessions of others
    max_requests_per_second: float = 20.0

    # TCP connections one client address may hold, whatever they carry (WebSockets, page and API
    # requests, request heads still coming): more are cut as they are accepted
    SOCKETS_PER_WEBSOCKET = 4

    @property
    def max_sockets_per_client(self) -> int:
        return self.SOCKETS_PER_WEBSOCKET * self.max_connections_per_client

    def __post_init__(self):
        if self.engine_workers < 0:
            raise ValueError(f"engine_workers must be >= 0, got {self.engine_workers}")
        for name in ("max_sessions", "max_frame_bytes", "max_connections", "max_connections_per_client", "max_batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_session_seconds", "idle_before_start_s", "idle_between_frames_s", "max_session_wall_s",
                     "max_frames_per_second", "max_send_wait_s", "max_requests_per_second"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")


@dataclass
class Access:
    """Who may connect: browser pages from ``allowed_origins`` (empty: the server's own origin
    only; ``*``: any), and, with a ``token``, only clients that present it (``Authorization:
    Bearer`` header or ``?token=`` query parameter)."""

    allowed_origins: Sequence[str] = ()
    token: Optional[str] = None

    def check(self, headers, query) -> Optional[Tuple[str, str]]:
        """None when the client may connect, else (error code, message)."""
        origin = headers.get("origin")
        if origin is not None and "*" not in self.allowed_origins:
            own = {f"{scheme}://{headers.get('host', '')}" for scheme in ("http", "https")}
            if origin not in own and origin not in self.allowed_origins:
                return "forbidden_origin", f"Origin {origin!r} may not use this server (allowed: its own origin{''.join(', ' + o for o in self.allowed_origins)})"
        if self.token is not None:
            auth = headers.get("authorization", "")
            given = auth[7:] if auth.lower().startswith("bearer ") else query.get("token", "")
            if not given or not hmac.compare_digest(given.encode(), self.token.encode()):
                return "unauthorized", "a valid token is required (Authorization: Bearer <token> or ?token=<token>)"
        return None


class Metrics:
    """Prometheus metrics of one app (its own registry): sessions, errors by code, engine time per
    chunk, real-time factor per session, first-output and finish latency."""

    def __init__(self):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = r = CollectorRegistry()
        self.connections = Gauge("echostream_connections_open", "open WebSocket connections", registry=r)
        self.sessions = Gauge("echostream_sessions_open", "started streaming sessions", registry=r)
        self.served = Counter("echostream_sessions_served_total", "sessions that reached 'done'", registry=r)
        self.errors = Counter("echostream_errors_total", "error messages sent, by code", ["code"], registry=r)
        self.chunk = Histogram("echostream_chunk_seconds", "engine time per step (one segment of source)", registry=r,
                               buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5))
        self.rtf = Histogram("echostream_realtime_factor", "engine time over source time, per finished session", registry=r,
                             buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 5))
        self.first_output = Histogram("echostream_first_output_seconds", "wall time from a session's first audio to its first output",
                                      registry=r, buckets=(0.1, 0.25, 0.5, 1, 1.5, 2, 3, 5, 10))
        self.finish = Histogram("echostream_finish_seconds", "wall time from 'end' to 'done'", registry=r,
                                buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10))
        self.throttled = Counter("echostream_frames_throttled_total",
                                 "binary frames held back: their connection sent more than max_frames_per_second", registry=r)
        self.requests_held = Counter("echostream_requests_held_total", "HTTP requests and WebSocket handshakes held "
                                     "back: their client address sent more than max_requests_per_second", registry=r)
        self.batch = Histogram("echostream_batch_sessions", "sessions stepped together per engine batch", registry=r,
                               buckets=(1, 2, 4, 8, 16, 32, 64))

    def render(self) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


class FrameRate:
    """A token bucket over one connection's frames: ``wait()`` is how long to hold the next
    frame back so that the connection stays within ``rate`` frames per second (bursts of up to
    ``rate`` frames pass at once)."""

    def __init__(self, rate: float, clock=time.monotonic):
        self.rate, self.clock = rate, clock
        self.tokens, self.t = rate, clock()

    def _refilled(self, now: float) -> float:
        """The tokens the bucket holds at ``now``, before any is taken (uncapped)."""
        return self.tokens + (now - self.t) * self.rate

    def wait(self) -> float:
        now = self.clock()
        self.tokens = min(self.rate, self._refilled(now)) - 1
        self.t = now
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate

    def full(self) -> bool:
        """Refilled to a whole burst: the same as a new bucket."""
        return self._refilled(self.clock()) >= self.rate


class RequestRate:
    """ASGI middleware: HTTP requests and WebSocket handshakes per client address
    (``scope["client"]``, the one named by X-Forwarded-For behind a trusted proxy), a
    :class:`FrameRate` bucket each. One beyond the rate waits its turn before the app sees it;
    uvicorn reads a connection's next request only once this one is answered, so a client flooding
    requests (or opening and closing WebSockets) over all the sockets it may hold gets ``rate``
    answers a second, and what it costs the server stays bounded."""

    PRUNE_AT = 1024  # buckets kept before the full ones (each the same as a new one) are dropped

    def __init__(self, app, rate: float, on_hold=None, clock=time.monotonic):
        self.app, self.rate, self.on_hold, self.clock = app, rate, on_hold, clock
        self.buckets: Dict[str, FrameRate] = {}
        self._prune_at = self.PRUNE_AT

    def hold(self, host: str) -> float:
        """Seconds the next request of ``host`` must wait (0: none)."""
        bucket = self.buckets.get(host)
        if bucket is None:
            if len(self.buckets) >= self._prune_at:
                self.buckets = {h: b for h, b in self.buckets.items() if not b.full()}
                self._prune_at = max(self.PRUNE_AT, 2 * len(self.buckets))  # (amortised: not on every new address)
            bucket = self.buckets[host] = FrameRate(self.rate, self.clock)
        return bucket.wait()

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket"):
            wait = self.hold(scope["client"][0] if scope.get("client") else "?")
            if wait > 0:
                if self.on_hold is not None:
                    self.on_hold()
                await asyncio.sleep(wait)
        await self.app(scope, receive, send)


# the limits that close a started session which is then first finished as at 'end'
FINISHED_AT_LIMIT = ("idle_timeout", "session_timeout", "session_too_long")


class _Connection:
    """One client: protocol state, resampler, its engine session, pending source samples."""

    def __init__(self, app_state, ws):
        self.st, self.ws = app_state, ws
        self.start = None
        self.session: Optional[StreamingSession] = None
        self.resampler = None
        self.feeder: Optional[SegmentFeeder] = None
        self.received = 0  # 16 kHz samples received
        self.consumed = 0  # of which the engine has read
        self.record: Optional[Replay] = None
        self.spent_ms = 0.0
        self.first_audio: Optional[float] = None  # wall time of the first audio frame
        self.first_output_seen = False
        self.too_long = False  # session_too_long was raised: later source (the final flush's) is cut to the limit

    async def _send(self, sending):
        """Await one send; a client that takes none of it within max_send_wait_s is not reading."""
        wait = self.st.limits.max_send_wait_s
        try:
            await asyncio.wait_for(sending, wait)
        except asyncio.TimeoutError:
            raise ProtocolError("slow_reader", f"the client took none of its output for {wait:g} s") from None

    async def send_json(self, obj):
        await self._send(self.ws.send_text(dumps(obj)))

    async def fail(self, err: ProtocolError):
        """The one way a connection ends in an error: counted, an ``error`` message, its close code
        (not to a client that has stopped reading: nothing more reaches it)."""
        self.st.metrics.errors.labels(err.code).inc()
        if err.code == "slow_reader":
            logger.warning("session %s: %s; dropped", getattr(self, "id", "-"), err.message)
            return
        try:
            await self.send_json({"type": "error", "code": err.code, "message": err.message})
            await self._send(self.ws.close(err.close_code))
        except Exception:  # the client is already gone, or not reading
            pass

    async def on_start(self, msg):
        if self.start is not None:
            raise ProtocolError("already_started", "'start' was already received on this connection")
        lim = self.st.limits
        start = parse_start(msg, lim.default_segment_ms, lim.max_segment_ms, list(self.st.pairs))
        if self.st.active >= lim.max_sessions:
            raise ProtocolError("busy", f"the server is running its maximum of {lim.max_sessions} sessions", close_code=1013)
        self.st.active += 1
        self.st.metrics.sessions.inc()
        self.start = start
        pair = self.st.pairs[start.pair]
        self.session = StreamingSession(pair.res, pair.policy, speech="speech" in start.outputs and pair.res.vocoder is not None)
        self.resampler = features.StreamingResampler(start.sample_rate)
        self.feeder = SegmentFeeder(start.segment_ms)
        self.record = Replay(source_ms=0.0)
        self.id = next(self.st.ids)
        await self.send_json({"type": "ready", "session": self.id, "segment_ms": start.segment_ms, "pair": start.pair,
                              "output_audio": {"sample_rate": features.SAMPLE_RATE, "format": "s16le", "channels": 1}})

    async def on_audio(self, data: bytes):
        if len(data) > self.st.limits.max_frame_bytes:
            raise ProtocolError("frame_too_large", f"frame of {len(data)} bytes is over the limit of {self.st.limits.max_frame_bytes}")
        x = decode_frame(data, self.start)
        if self.first_audio is None:
            self.first_audio = time.monotonic()
        await self.feed(self.resampler.accept(x))

    async def feed(self, x: np.ndarray, final: bool = False):
        # source past the session's limit is refused; what came before it is translated
        allowed = max(0, int(self.st.limits.max_session_seconds * features.SAMPLE_RATE) - self.received)
        over = x.size > allowed
        x = x[:allowed] if over else x
        self.received += x.size
        for chunk in self.feeder.push(x) + (self.feeder.flush() if final else []):
            self.consumed += chunk.size
            await self.run(self.st.scheduler.step(self.session, chunk))
        if over and not self.too_long:
            self.too_long = True
            raise ProtocolError("session_too_long", f"more than {self.st.limits.max_session_seconds:g} s of source")

    async def on_end(self):
        if self.start is None:
            raise ProtocolError("not_started", "'end' before 'start'")
        t_end = time.monotonic()
        await self.feed(self.resampler.accept(np.zeros(0, dtype=np.float32), final=True), final=True)
        await self.run(self.st.scheduler.finish(self.session))
        lat, lat_ca = self.record.latency(), self.record.latency(computation_aware=True)
        src, tgt = self.session.recomposed()
        await self.send_json({"type": "done", "transcript": self.session.transcript, "translation": self.session.translation,
                              "display": {"transcript": src, "translation": tgt},
                              "latency": {**lat, "AL_CA": lat_ca["AL"], "StartOffset_CA": lat_ca["StartOffset"],
                                          "EndOffset_CA": lat_ca["EndOffset"]}})
        m = self.st.metrics
        m.finish.observe(time.monotonic() - t_end)
        if self.consumed:
            m.rtf.observe(self.spent_ms / (1000 * self.consumed / features.SAMPLE_RATE))

    async def run(self, request):
        """Await one engine request (a chunk or the end) and send what it produced."""
        t0 = time.perf_counter()
        try:
            out: StepOutput = await request
        except Exception as e:  # the engine failed on this session's batch
            logger.exception("session %s: engine error", getattr(self, "id", "?"))
            raise ProtocolError("internal", f"engine error: {e}", close_code=1011) from e
        spent = time.perf_counter() - t0
        self.spent_ms += 1000 * spent
        self.st.metrics.chunk.observe(spent)
        source_ms = 1000 * self.consumed / features.SAMPLE_RATE
        self.record.source_ms = source_ms
        if out.empty:
            return
        if not self.first_output_seen and self.first_audio is not None:
            self.first_output_seen = True
            self.st.metrics.first_output.observe(time.monotonic() - self.first_audio)
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
            await self._send(self.ws.send_bytes(to_s16le(out.pcm)))
        await self.send_json({"type": "latency", "source_ms": source_ms, "compute_ms": self.spent_ms})

    def close(self):
        if self.start is not None:
            self.st.active -= 1
            self.st.metrics.sessions.dec()
            self.start = None


LANGUAGES = {"es": "Spanish", "ko": "Korean", "de": "German", "fr": "French", "en": "English"}


def example_set(rows) -> dict:
    """What the page shows a newcomer: the languages (from the corpus ids, ``{src}-{tgt}-...``)
    and the shipped example sentences with their audio."""
    import re

    m = re.match(r"^([a-z]{2})-([a-z]{2})-", rows[0]["id"]) if rows else None
    src, tgt = (m.group(1), m.group(2)) if m else (None, None)
    return {"source_language": LANGUAGES.get(src, src), "target_language": LANGUAGES.get(tgt, tgt),
            "examples": [{"id": r["id"], "text": r["src_text"], "translation": r["tgt_text"], "audio": f"/examples/{r['id']}.wav",
                          "path": r["src_audio"]} for r in rows]}


@dataclass
class Pair:
    """A language pair the server translates: its model, its example sentences (corpus list rows
    with audio paths) and what /config says about it."""

    name: str
    res: Resources
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    examples: list = field(default_factory=list)
    describe: dict = field(default_factory=dict)


def create_app(pairs: Sequence[Pair], limits: Optional[ServerLimits] = None, describe: Optional[dict] = None,
               access: Optional[Access] = None):
    """The app over ``pairs`` (the first is what a 'start' without a 'pair' gets)."""
    if not pairs or len({p.name for p in pairs}) != len(pairs):
        raise ValueError(f"a server needs one or more pairs with distinct names, got {[p.name for p in pairs]}")
    app = FastAPI(title="EchoStream", docs_url=None, redoc_url=None)
    st = app.state
    st.pairs = {p.name: p for p in pairs}
    st.limits, st.access = limits or ServerLimits(), access or Access()
    st.active, st.served, st.ids = 0, 0, itertools.count(1)
    st.open, st.per_client = 0, {}
    st.metrics = Metrics()
    st.examples = {p.name: example_set(p.examples) for p in pairs}
    st.draining = False  # set on shutdown: new connections are refused, those in flight may finish
    st.connections = set()
    # batched: by default one worker steps the waiting sessions together; --max-batch 1: each
    # session alone, by default as many in parallel threads as there may be sessions
    workers = st.limits.engine_workers or (1 if st.limits.max_batch > 1 else st.limits.max_sessions)
    st.scheduler = BatchScheduler(st.limits.max_batch, workers,
                                  on_batch=lambda n, secs: st.metrics.batch.observe(n))
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(RequestRate, rate=st.limits.max_requests_per_second, on_hold=st.metrics.requests_held.inc)

    @app.get("/")
    def index():
        return FileResponse(STATIC / "index.html")

    @app.get("/health")
    def health():
        return {"status": "ok", "ready": True, "sessions": st.active, "max_sessions": st.limits.max_sessions, "served": st.served}

    @app.get("/config")
    def config():
        first = next(iter(st.pairs.values()))
        return JSONResponse({"model": describe or {}, "policy": asdict(first.policy), "limits": asdict(st.limits),
                             "pairs": {name: {**p.describe, "policy": asdict(p.policy), "source_language": st.examples[name]["source_language"],
                                              "target_language": st.examples[name]["target_language"],
                                              "speech_output": p.res.vocoder is not None} for name, p in st.pairs.items()},
                             "default_pair": next(iter(st.pairs)),
                             "access": {"allowed_origins": list(st.access.allowed_origins) or ["(its own origin)"],
                                        "token_required": st.access.token is not None},
                             "speech_output": all(p.res.vocoder is not None for p in st.pairs.values()),
                             "output_audio": {"sample_rate": features.SAMPLE_RATE, "format": "s16le", "channels": 1}})

    @app.get("/examples")
    def examples_list(pair: Optional[str] = None):
        name = pair or next(iter(st.pairs))
        if name not in st.examples:
            return JSONResponse({"error": f"no pair {name!r}; pairs: {', '.join(st.pairs)}"}, status_code=404)
        return {"pair": name, "pairs": list(st.pairs),
                **{k: ([{x: e[x] for x in ("id", "text", "translation", "audio")} for e in v] if k == "examples" else v)
                   for k, v in st.examples[name].items()}}

    @app.get("/examples/{name}.wav")
    def example_audio(name: str):
        listed = (e for s in st.examples.values() for e in s["examples"])
        ex = next((e for e in listed if e["id"] == name), None)  # only the listed files
        if ex is None:
            return JSONResponse({"error": f"no example {name!r}"}, status_code=404)
        return FileResponse(ex["path"], media_type="audio/wav")

    @app.get("/metrics")
    def metrics():
        return st.metrics.render()

    @app.get("/protocol")
    def protocol():
        return PROTOCOL

    def admit(ws: WebSocket, client: str) -> Optional[ProtocolError]:
        """Refusals decided before 'ready': shutdown, origin, token, connection caps."""
        if st.draining:
            return ProtocolError("shutdown", "the server is shutting down", close_code=1001)
        refused = st.access.check(ws.headers, ws.query_params)
        if refused:
            return ProtocolError(*refused, close_code=1008)
        lim = st.limits
        if st.open >= lim.max_connections:
            return ProtocolError("too_many_connections", f"the server holds its maximum of {lim.max_connections} connections", close_code=1013)
        if st.per_client.get(client, 0) >= lim.max_connections_per_client:
            return ProtocolError("too_many_connections",
                                 f"{client} already holds {lim.max_connections_per_client} connections, the most one client may", close_code=1013)
        return None

    def wall_clock_limit() -> ProtocolError:
        return ProtocolError("session_timeout", f"the connection passed the server's wall-clock limit of {st.limits.max_session_wall_s:g} s")

    async def receive(ws: WebSocket, conn: _Connection, opened: float) -> dict:
        """The next message, or an error once the connection has been idle or open too long."""
        lim = st.limits
        idle = lim.idle_before_start_s if conn.start is None else lim.idle_between_frames_s
        left = lim.max_session_wall_s - (time.monotonic() - opened)
        if left <= 0:
            raise wall_clock_limit()
        try:
            return await asyncio.wait_for(ws.receive(), timeout=min(idle, left))
        except asyncio.TimeoutError:
            if left <= idle:
                raise wall_clock_limit() from None
            what = "'start'" if conn.start is None else "audio or 'end'"
            raise ProtocolError("idle_timeout", f"no {what} for {idle:g} s") from None

    @app.websocket("/ws")
    async def ws_endpoint(ws: WebSocket):
        await ws.accept()
        conn = _Connection(st, ws)
        client = ws.client.host if ws.client else "?"
        refusal = admit(ws, client)
        if refusal is not None:
            await conn.fail(refusal)
            return
        st.open += 1
        st.connections.add(conn)
        st.metrics.connections.inc()
        st.per_client[client] = st.per_client.get(client, 0) + 1
        opened = time.monotonic()
        frames = FrameRate(st.limits.max_frames_per_second)
        try:
            while True:
                msg = await receive(ws, conn, opened)
                if msg["type"] == "websocket.disconnect":
                    return
                if msg.get("bytes") is not None:
                    hold = frames.wait()
                    if hold:
                        st.metrics.throttled.inc()
                        await asyncio.sleep(hold)
                    await conn.on_audio(msg["bytes"])
                    continue
                try:
                    obj = json.loads(msg.get("text") or "")
                except (ValueError, RecursionError):  # deep nesting overflows the parser
                    raise ProtocolError("bad_json", "text messages must be JSON objects") from None
                if not isinstance(obj, dict):
                    raise ProtocolError("bad_json", "text messages must be JSON objects")
                kind = obj.get("type")
                if kind == "start":
                    await conn.on_start(obj)
                elif kind == "end":
                    await conn.on_end()
                    st.served += 1
                    st.metrics.served.inc()
                    await conn._send(ws.close(1000))
                    return
                else:
                    raise ProtocolError("unknown_type", f"unknown message type {kind!r} (expected 'start' or 'end')")
        except ProtocolError as e:
            if e.code in FINISHED_AT_LIMIT and conn.first_audio is not None:
                # a session closed by a limit still gets what the audio it sent said (e.g. push-to-talk
                # released without 'end'): the last words and speech and 'done', as at 'end', then the error
                try:
                    await conn.on_end()
                except ProtocolError as flush_error:  # (the client stopped reading, or the engine failed)
                    e = flush_error
                except (WebSocketDisconnect, RuntimeError):
                    pass  # the client vanished meanwhile: the error below reaches no one
            await conn.fail(e)
        except (WebSocketDisconnect, RuntimeError):
            pass  # the client vanished mid-stream
        finally:
            conn.close()
            st.connections.discard(conn)
            st.open -= 1
            st.metrics.connections.dec()
            st.per_client[client] -= 1
            if not st.per_client[client]:
                del st.per_client[client]

    async def drain(grace_s: float) -> int:
        """Shutdown: refuse new connections, give those in flight ``grace_s`` to finish, then
        close the rest with a ``shutdown`` error. Returns how many were closed that way."""
        st.draining = True
        deadline = time.monotonic() + grace_s
        while st.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        left = list(st.connections)
        err = ProtocolError("shutdown", f"the server shut down ({grace_s:g} s grace period over)", close_code=1001)
        await asyncio.gather(*(conn.fail(err) for conn in left))  # at once: a client that is not reading holds up no other
        return len(left)

    app.state.drain = drain
    return app
