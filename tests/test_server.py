"""A real `echostream-serve` (uvicorn) on a free localhost port, real websockets clients."""
import asyncio
import json
import re
import socket
import subprocess
import time
import urllib.request

import numpy as np
import pytest
import soundfile as sf
import websockets

from conftest import cli
from echostream_fairseq import assets, features
from echostream_fairseq.cli.client import stream
from echostream_fairseq.features import to_s16le
from echostream_fairseq.streaming.engine import PolicyConfig, load_resources
from echostream_fairseq.streaming.replay import load_source, replay

pytestmark = pytest.mark.slow
ROOT = assets.REPO_ASSETS
MAX_FRAME = 65536


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_metrics(base) -> dict:
    """The server's /metrics as {(sample name, sorted labels): value}, parsed by prometheus_client."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(base + "/metrics", timeout=10) as r:
        text = r.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in text_string_to_metric_families(text) for s in f.samples}


def get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def start_server(log_path, *args, stdout_to_log: bool = True):
    """A real `echostream-serve ARGS` on a free loopback port, waited for until /health answers:
    (process, http base, ws url, port). Its stderr goes to ``log_path`` (stdout too, unless
    ``stdout_to_log`` is off, e.g. to keep a JSON log pure)."""
    port = free_port()
    log = open(log_path, "w")
    p = subprocess.Popen([cli("echostream-serve"), "--port", str(port), *map(str, args)],
                         stdout=log if stdout_to_log else subprocess.DEVNULL, stderr=log)
    base = f"http://127.0.0.1:{port}"
    wait_healthy(base, p, log_path)
    return p, base, f"ws://127.0.0.1:{port}/ws", port


def wait_healthy(base, proc, log_path, tries: int = 120, pause: float = 0.5) -> None:
    """Wait until ``base``/health answers ok while ``proc`` lives (else fail with its log's end)."""
    for _ in range(tries):
        try:
            if get(base + "/health")["status"] == "ok":
                return
        except OSError:
            time.sleep(pause)
        assert proc.poll() is None, open(log_path).read()[-3000:]
    raise AssertionError(f"{base}/health did not answer ok")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    p, base, url, _ = start_server(tmp_path_factory.mktemp("serve") / "serve.log", "--max-sessions", "4", "--max-frame-bytes",
                                   MAX_FRAME, "--max-session-seconds", "30", "--log-level", "warning")
    yield base, url
    p.terminate()
    p.wait(timeout=30)


@pytest.fixture(scope="module")
def res():
    return load_resources(ROOT / "model" / "checkpoint.pt", ROOT / "model", punct_model=ROOT / "model" / "punct.pt")


@pytest.fixture(scope="module")
def examples():
    return assets.read_examples(ROOT)


def wait_sessions(base, n=0):
    for _ in range(100):
        h = get(base + "/health")
        if h["sessions"] == n:
            return h
        time.sleep(0.1)
    raise AssertionError(f"sessions stayed at {h['sessions']}, expected {n}")


def _pcm(pcm_bytes):
    return np.frombuffer(pcm_bytes, dtype="<i2").astype(np.float32) / 32768


def test_health_config_protocol_and_page(server):
    base, _ = server
    h = get(base + "/health")
    assert h["status"] == "ok" and h["ready"] is True and h["sessions"] == 0
    cfg = get(base + "/config")
    assert cfg["limits"]["max_sessions"] == 4 and cfg["output_audio"]["sample_rate"] == 16000
    proto = get(base + "/protocol")
    assert {"start", "end"} <= set(proto["client_to_server"]) and "busy" in proto["error_codes"]
    page = urllib.request.urlopen(base + "/", timeout=10).read().decode()
    assert 'id="record"' in page and "/static/app.js" in page
    for path in ("/", "/static/app.js", "/static/recorder-worklet.js", "/static/style.css"):
        text = urllib.request.urlopen(base + path, timeout=10).read().decode()
        assert not re.search(r"https?://", text), path  # nothing fetched from elsewhere


def _policy(base):
    return PolicyConfig(**get(base + "/config")["policy"])  # what the server runs


def test_stream_equals_the_engine_on_the_same_audio(server, res, examples):
    base, url = server
    ex = examples[0]
    wav = features.read_audio(ex["src_audio"])
    events, pcm, done = asyncio.run(stream(url, wav, 16000, 320))
    ref = replay(res, wav, 320, _policy(base))
    assert done["translation"] == ref.translation and done["transcript"] == ref.transcript
    assert (done["display"]["transcript"], done["display"]["translation"]) == ref.display
    assert [w for e in events if e["type"] == "translation" for w in e["words"]] == [w for e in ref.events for w in e.out.words]
    got = _pcm(pcm)
    assert len(got) == len(ref.pcm) and np.abs(got - np.clip(ref.pcm, -1, 1)).max() < 2e-3
    assert done["latency"]["AL"] == pytest.approx(ref.latency()["AL"])


def test_a_long_talk_arrives_sentence_by_sentence(server, res):
    """The held-out long-form stream (sentences with pauses; its first 28 s, under the test
    server's 30 s limit): the server's learned and pause boundaries close sentences as the
    engine's do, each sent punctuated as it closes."""
    from echostream_fairseq.prep import longform

    base, url = server
    wav = features.read_audio(longform.stream_audio(ROOT / "longform", "pauses0"))[: 28 * 16000]
    events, _, done = asyncio.run(stream(url, wav, 16000, 320, outputs=("asr", "translation")))
    ref = replay(res, wav, 320, _policy(base), speech=False)
    sentences = [e for e in events if e["type"] == "sentence"]
    assert len(sentences) == sum(len(e.out.sentences) for e in ref.events) >= 5
    assert [(e["transcript"], e["translation"]) for e in sentences] == [x for e in ref.events for x in e.out.sentences]
    assert all(e["translation"][-1] in ".?!" for e in sentences if e["translation"])
    assert (done["display"]["transcript"], done["display"]["translation"]) == ref.display


def test_any_rate_and_channels_are_resampled(server, res, examples, tmp_path):
    base, url = server
    wav16 = features.read_audio(examples[1]["src_audio"])
    f = tmp_path / "stereo44k.wav"
    sf.write(f, np.stack([features.resample(wav16, 16000, 44100)] * 2, 1), 44100, subtype="FLOAT")
    x, sr = sf.read(f, dtype="float32")

    async def go():
        async with websockets.connect(url, max_size=None) as ws:
            await ws.send(json.dumps({"type": "start", "sample_rate": sr, "format": "f32le", "channels": 2}))
            assert json.loads(await ws.recv())["type"] == "ready"
            for i in range(0, len(x), 4410):
                await ws.send(x[i : i + 4410].astype("<f4").tobytes())
            await ws.send(json.dumps({"type": "end"}))
            return [json.loads(m) for m in [m async for m in ws] if isinstance(m, str)][-1]

    done = asyncio.run(go())
    assert done["type"] == "done"
    assert done["translation"] == replay(res, load_source(f), 320, _policy(base), speech=False).translation


def test_four_clients_at_once_get_their_own_results(server, examples):
    base, url = server
    wavs = [features.read_audio(ex["src_audio"]) for ex in examples[:4]]
    single = [asyncio.run(stream(url, w, 16000, 320))[2] for w in wavs]

    async def timed(w):
        t0 = time.perf_counter()
        ev, pcm, done = await stream(url, w, 16000, 320, realtime=True)
        return t0, time.perf_counter(), done

    async def all_four():
        return await asyncio.gather(*(timed(w) for w in wavs))

    before = read_metrics(base)
    t0 = time.perf_counter()
    runs = asyncio.run(all_four())
    wall = time.perf_counter() - t0
    after = read_metrics(base)
    for (_, _, done), ref in zip(runs, single):
        assert done["translation"] == ref["translation"] and done["transcript"] == ref["transcript"]
    audio_s = sum(len(w) for w in wavs) / 16000
    assert max(r[0] for r in runs) < min(r[1] for r in runs)  # all four sessions were open at one time
    assert wall < 0.75 * audio_s, (wall, audio_s)  # paced at real time, run one after another they take audio_s
    # the sessions were stepped together: some engine batches held more than one of them
    batches = {k: after[("echostream_batch_sessions_" + k, ())] - before.get(("echostream_batch_sessions_" + k, ()), 0)
               for k in ("count", "sum")}
    assert batches["sum"] > batches["count"] > 0, batches
    wait_sessions(base, 0)


async def _expect_error(url, *messages, code):
    async with websockets.connect(url, max_size=None) as ws:
        for m in messages:
            await ws.send(m)
        replies = []
        try:
            while True:
                replies.append(await ws.recv())
        except websockets.ConnectionClosed:
            pass
        err = json.loads(replies[-1])
        assert err["type"] == "error" and err["code"] == code, replies
        assert ws.close_code in (1008, 1013)
        return err


START = json.dumps({"type": "start", "sample_rate": 16000, "format": "s16le"})
START_F32 = json.dumps({"type": "start", "sample_rate": 16000, "format": "f32le"})


@pytest.mark.parametrize("messages,code", [
    ([b"\x00\x01" * 100], "not_started"),
    (["{not json"], "bad_json"),
    (["[1, 2]"], "bad_json"),
    ([json.dumps({"type": "pause"})], "unknown_type"),
    ([json.dumps({"type": "end"})], "not_started"),
    ([START, b"\x00\x01\x02"], "bad_frame"),
    ([START_F32, np.full(160, 12345.0, dtype="<f4").tobytes()], "bad_frame"),  # int16 values sent as float
    ([START_F32, np.full(160, np.nan, dtype="<f4").tobytes()], "bad_frame"),
    ([json.dumps({"type": "start", "sample_rate": 0, "format": "s16le"})], "bad_start"),
    ([json.dumps({"type": "start", "sample_rate": 1, "format": "s16le"})], "bad_start"),  # would take the memory
    ([json.dumps({"type": "start", "sample_rate": 10_000_000, "format": "s16le"})], "bad_start"),
    ([json.dumps({"type": "start", "sample_rate": 16000, "format": "mp3"})], "bad_start"),
    ([START, START], "already_started"),
    ([START, b"\x00" * (MAX_FRAME + 2)], "frame_too_large"),
])
def test_faults_get_a_clear_error_and_the_server_keeps_serving(server, examples, messages, code):
    base, url = server
    err = asyncio.run(_expect_error(url, *messages, code=code))
    assert err["message"]
    assert wait_sessions(base, 0)["status"] == "ok"
    wav = features.read_audio(examples[0]["src_audio"])[:16000]
    assert asyncio.run(stream(url, wav, 16000, 320))[2]["type"] == "done"


def _strict(text: str):
    def no_constant(name):
        raise AssertionError(f"{name} in a server message is not JSON: {text[:200]}")
    return json.loads(text, parse_constant=no_constant)


@pytest.mark.parametrize("audio", [b"", np.zeros(32000, dtype="<i2").tobytes()], ids=["no_audio", "silence"])
def test_a_session_that_translates_nothing_is_answered_in_strict_json(server, audio, tmp_path):
    """No words, no latency: 'done' carries null latencies (NaN is not JSON; a browser's
    JSON.parse rejects it), and every message parses strictly; the CLI client says so too."""
    base, url = server

    async def go():
        async with websockets.connect(url) as ws:
            await ws.send(START)
            if audio:
                await ws.send(audio)
            await ws.send(json.dumps({"type": "end"}))
            out = []
            try:
                while True:
                    m = await ws.recv()
                    if isinstance(m, str):
                        out.append(_strict(m))
            except websockets.ConnectionClosed:
                return out, ws.close_code

    msgs, code = asyncio.run(go())
    done = msgs[-1]
    assert code == 1000 and done["type"] == "done" and done["translation"] == "", msgs
    assert set(done["latency"]) >= {"AL", "StartOffset", "EndOffset", "AL_CA"}
    assert all(v is None for v in done["latency"].values()), done
    wav = tmp_path / "silence.wav"
    sf.write(str(wav), np.frombuffer(audio or bytes(2), dtype="<i2"), 16000)
    r = subprocess.run([cli("echostream-client"), "--url", url, "--wav", str(wav)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "latency: none (no translation)" in r.stdout, r.stdout + r.stderr


@pytest.mark.parametrize("rate", [16000, 48000])
def test_too_long_a_session_is_refused_after_what_came_before_the_limit(server, res, examples, rate):
    """A sentence, then silence past the 30 s limit: the source up to the limit is translated and
    finished ('done', the same translation as the engine gives those 30 s), then the error; at
    48 kHz too, where the resampler's final flush holds more source past the limit."""
    base, url = server
    wav = features.read_audio(examples[0]["src_audio"])
    wav = np.concatenate([wav, np.zeros(31 * 16000 - len(wav), dtype=np.float32)])
    sent = wav if rate == 16000 else features.resample(wav, 16000, rate)
    pcm = to_s16le(sent)
    frames = [pcm[i : i + rate] for i in range(0, len(pcm), rate)]  # 0.5 s each
    got = {}

    async def go():
        async with websockets.connect(url, max_size=None) as ws:
            await ws.send(json.dumps({"type": "start", "sample_rate": rate, "format": "s16le"}))
            assert json.loads(await ws.recv())["type"] == "ready"
            for f in frames:
                try:
                    await ws.send(f)
                except websockets.ConnectionClosed:
                    break
            try:
                while True:
                    m = await ws.recv()
                    if isinstance(m, str):
                        got.setdefault("messages", []).append(json.loads(m))
            except websockets.ConnectionClosed:
                got["code"] = ws.close_code

    asyncio.run(go())
    msgs = got["messages"]
    assert [m["type"] for m in msgs[-2:]] == ["done", "error"] and msgs[-1]["code"] == "session_too_long" and got["code"] == 1008
    if rate == 16000:  # (at 48 kHz the server's streaming resampler makes the 16 kHz source)
        ref = replay(res, wav[: 30 * 16000], 320, _policy(base), speech=False)
        assert msgs[-2]["translation"] == ref.translation
    assert msgs[-2]["translation"].split()
    wait_sessions(base, 0)


def test_more_sessions_than_the_limit_are_busy_and_vanishing_clients_leak_nothing(server, examples):
    base, url = server
    wav = features.read_audio(examples[0]["src_audio"])

    async def go():
        held = []
        for _ in range(4):
            ws = await websockets.connect(url, max_size=None)
            await ws.send(START)
            assert json.loads(await ws.recv())["type"] == "ready"
            await ws.send(to_s16le(wav[:8000]))
            held.append(ws)
        assert get(base + "/health")["sessions"] == 4
        await _expect_error(url, START, code="busy")
        for ws in held:  # vanish mid-stream: no 'end', the TCP connection just drops
            ws.transport.abort()
        await asyncio.to_thread(wait_sessions, base, 0)
        return await stream(url, wav, 16000, 320)

    assert asyncio.run(go())[2]["type"] == "done"
