"""The WebSocket protocol of ``WS /ws`` (also served as JSON at ``GET /protocol``)."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import List, Optional, Sequence

from ..features import MAX_SOURCE_RATE, MIN_SOURCE_RATE, AudioError, check_samples, check_source_rate

FORMATS = {"s16le": 2, "f32le": 4}  # bytes per sample
OUTPUTS = ("asr", "translation", "speech")

PROTOCOL = {
    "endpoint": "/ws",
    "client_to_server": {
        "start": {
            "type": "start",
            "sample_rate": f"int, Hz of the PCM you send ({MIN_SOURCE_RATE}..{MAX_SOURCE_RATE}); resampled to 16 kHz by the server",
            "format": "'s16le' (little-endian int16) or 'f32le' (little-endian float32 in [-1, 1])",
            "channels": "int, interleaved channels (averaged to mono); default 1",
            "segment_ms": "int, source per engine step (latency/cost trade-off); default 320",
            "outputs": "list of 'asr', 'translation', 'speech'; default all",
            "pair": "the language pair to translate, one of GET /config's 'pairs' (e.g. 'es-en', 'ko-en'); default the "
                    "server's first",
        },
        "binary frames": "raw PCM in the declared format, whole samples of all channels per frame, after 'start'",
        "end": {"type": "end"},
    },
    "server_to_client": {
        "ready": {"type": "ready", "session": "id", "output_audio": {"sample_rate": 16000, "format": "s16le", "channels": 1},
                  "segment_ms": "effective segment"},
        "asr": {"type": "asr", "text": "new transcript text", "transcript": "the transcript so far",
                "display": "the transcript so far as shown: closed sentences capitalised and punctuated"},
        "translation": {"type": "translation", "words": "newly complete target words", "text": "the translation so far",
                        "display": "the translation so far as shown"},
        "sentence": {"type": "sentence", "transcript": "a sentence just closed (boundary or pause), punctuated",
                     "translation": "its translation, punctuated"},
        "binary frames": "translated speech, in the 'output_audio' format of 'ready'",
        "latency": {"type": "latency", "source_ms": "source received when this output was produced",
                    "compute_ms": "engine time spent on this session so far"},
        "done": {"type": "done", "transcript": "...", "translation": "...", "display": {"transcript": "...", "translation": "..."},
                 "latency": {"AL": "ms", "StartOffset": "ms", "EndOffset": "ms", "AL_CA": "ms (computation-aware)",
                             "null": "every latency is null when the session translated nothing (no audio, silence)"}},
        "error": {"type": "error", "code": "one of the codes below", "message": "what was wrong",
                  "finished_first": "a started session that sent audio and is closed by idle_timeout, session_timeout or "
                                    "session_too_long is first finished as at 'end' (its last outputs and 'done', from the "
                                    "source accepted up to the limit), then gets this error"},
    },
    "error_codes": {
        "bad_json": "a text message that is not a JSON object (malformed, too deeply nested, or another JSON value)",
        "unknown_type": "a JSON message whose 'type' is not start/end",
        "not_started": "binary or 'end' before 'start'",
        "already_started": "a second 'start'",
        "bad_start": "a 'start' field out of range (sample_rate, format, channels, segment_ms, outputs, pair)",
        "bad_frame": "a binary frame that is not whole samples of the declared format and channels",
        "frame_too_large": "a binary frame over the server's max_frame_bytes",
        "session_too_long": "more source than the server's max_session_seconds",
        "busy": "the server already runs max_sessions sessions; try later",
        "internal": "the engine failed on this session (the server keeps serving others)",
        "idle_timeout": "no 'start' within idle_before_start_s, or nothing within idle_between_frames_s of a started session",
        "session_timeout": "the connection was open longer than max_session_wall_s (wall clock)",
        "slow_reader": "the client took none of the server's output for max_send_wait_s: the session is dropped and the "
                       "connection cut (this error cannot reach such a client; it is logged and counted)",
        "too_many_connections": "the server holds max_connections connections, or this client address max_connections_per_client",
        "forbidden_origin": "a browser page from an Origin that is not the server's own nor in its allowed origins",
        "shutdown": "the server is shutting down (SIGTERM): new connections are refused, sessions in flight that do not finish within its grace period are closed",
        "unauthorized": "the server requires a token and none or a wrong one was sent (Authorization: Bearer, or ?token=)",
    },
    "close_codes": {"1000": "done", "1001": "server shutting down", "1008": "protocol error, refusal or timeout (after an 'error' message)",
                    "1013": "busy / too many connections", "1011": "internal"},
}


def dumps(obj) -> str:
    """A server message as strict JSON: a float that is not finite (the latency of a session that
    translated nothing) is sent as null, since NaN is not JSON and browsers' JSON.parse rejects it."""
    def strict(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: strict(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [strict(x) for x in v]
        return v

    return json.dumps(strict(obj), allow_nan=False)


class ProtocolError(Exception):
    def __init__(self, code: str, message: str, close_code: int = 1008):
        super().__init__(message)
        self.code, self.message, self.close_code = code, message, close_code


@dataclass
class Start:
    sample_rate: int
    format: str
    channels: int
    segment_ms: int
    outputs: List[str]
    pair: str

    @property
    def frame_bytes(self) -> int:
        return FORMATS[self.format] * self.channels


def _shown(v, n: int = 60) -> str:
    """A client's value in an error message, cut short (the message must not echo megabytes)."""
    r = repr(v)
    return r if len(r) <= n else r[: n - 3] + "..."


def parse_start(msg: dict, default_segment_ms: int, max_segment_ms: int, pairs: Sequence[str] = ("es-en",)) -> Start:
    """A validated 'start' message; ``pairs``: the language pairs the server serves, the first
    being the default."""
    def field(name, kind, default=None):
        v = msg.get(name, default)
        if v is None:
            raise ProtocolError("bad_start", f"'start' needs '{name}'")
        if kind is int and (isinstance(v, bool) or not isinstance(v, int)):
            raise ProtocolError("bad_start", f"'{name}' must be an integer, got {_shown(v)}")
        return v

    sr = field("sample_rate", int)
    try:
        check_source_rate(sr, "'sample_rate'")
    except AudioError as e:
        raise ProtocolError("bad_start", str(e)) from None
    fmt = field("format", str, "s16le")
    if fmt not in FORMATS:
        raise ProtocolError("bad_start", f"format {_shown(fmt)} is not one of {sorted(FORMATS)}")
    ch = field("channels", int, 1)
    if not 1 <= ch <= 8:
        raise ProtocolError("bad_start", f"channels {ch} is outside 1..8")
    seg = field("segment_ms", int, default_segment_ms)
    if not 20 <= seg <= max_segment_ms:
        raise ProtocolError("bad_start", f"segment_ms {seg} is outside 20..{max_segment_ms}")
    outs = msg.get("outputs", list(OUTPUTS))
    if not isinstance(outs, list) or not outs or any(o not in OUTPUTS for o in outs):
        raise ProtocolError("bad_start", f"outputs must be a non-empty list drawn from {list(OUTPUTS)}, got {_shown(outs)}")
    pair = msg.get("pair", pairs[0])
    if not isinstance(pair, str) or pair not in pairs:
        raise ProtocolError("bad_start", f"pair {_shown(pair)} is not served here; pairs: {', '.join(pairs)}")
    return Start(sr, fmt, ch, seg, outs, pair)


def decode_frame(data: bytes, start: Optional[Start]):
    """PCM bytes -> float32 mono samples at the declared rate."""
    import numpy as np

    if start is None:
        raise ProtocolError("not_started", "binary frame before 'start'")
    if len(data) % start.frame_bytes:
        raise ProtocolError("bad_frame", f"{len(data)} bytes is not a whole number of {start.format} samples x {start.channels} channels "
                                         f"({start.frame_bytes} bytes each)")
    if start.format == "s16le":
        x = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
    else:
        x = np.frombuffer(data, dtype="<f4").astype(np.float32)
        try:
            check_samples(x, "f32le frame")
        except AudioError as e:
            raise ProtocolError("bad_frame", str(e)) from None
    return x.reshape(-1, start.channels).mean(axis=1) if start.channels > 1 else x
