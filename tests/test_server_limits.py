"""Limits and refusals of a real `echostream-serve` against hostile clients: idle connections
before and after 'start', the wall-clock limit, connection caps (total and per client address),
foreign Origins, missing or wrong tokens, deeply nested JSON. Loopback only, short limits."""
import asyncio
import json
import socket
import threading
import time

import numpy as np
import pytest
import websockets

from echostream_fairseq import assets, features
from echostream_fairseq.features import to_s16le
from echostream_fairseq.streaming.replay import replay
from test_server import ROOT, _policy, get, read_metrics, res, start_server, wait_sessions  # noqa: F401 (res: a fixture)

pytestmark = pytest.mark.slow
TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
START = json.dumps({"type": "start", "sample_rate": 16000, "format": "s16le"})


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    p, base, url, port = start_server(tmp_path_factory.mktemp("serve") / "serve.log", "--log-level", "warning",
                                      "--idle-before-start", "1", "--idle-between-frames", "1.5", "--max-session-wall", "4",
                                      "--max-connections", "3", "--max-connections-per-client", "2", "--max-frames-per-second", "100",
                                      "--max-requests-per-second", "10",
                                      "--allow-origin", "https://friend.example", "--token", TOKEN)
    yield base, url, port
    p.terminate()
    p.wait(timeout=30)


async def _first(url, *send, headers=AUTH, origin=None, wait=10.0, **kw):
    """Connect, send, and return (first message, close code) the server answers with."""
    async with websockets.connect(url, additional_headers=headers, origin=origin, **kw) as ws:
        try:
            for m in send:
                await ws.send(m)
        except websockets.ConnectionClosed:
            pass  # refused before we finished: the error message is still in the buffer
        msg = json.loads(await asyncio.wait_for(ws.recv(), wait))
        try:
            while True:  # until the server closes
                await asyncio.wait_for(ws.recv(), wait)
        except websockets.ConnectionClosed:
            pass
        return msg, ws.close_code


def test_config_shows_the_limits_and_access(server):
    base, _, _ = server
    cfg = get(base + "/config")
    assert cfg["limits"]["idle_before_start_s"] == 1 and cfg["limits"]["max_connections_per_client"] == 2
    assert cfg["limits"]["max_session_wall_s"] == 4 and cfg["limits"]["max_connections"] == 3
    assert cfg["access"] == {"allowed_origins": ["https://friend.example"], "token_required": True}


def test_idle_before_start_is_closed(server):
    _, url, _ = server
    t0 = time.monotonic()
    msg, code = asyncio.run(_first(url))
    assert msg["code"] == "idle_timeout" and "'start'" in msg["message"] and code == 1008
    assert time.monotonic() - t0 < 5


def test_idle_started_session_is_closed_and_frees_its_slot(server):
    base, url, _ = server
    msg, code = asyncio.run(_first(url, START))
    assert msg["type"] == "ready"
    assert code == 1008  # then the idle error closed it

    async def go():
        async with websockets.connect(url, additional_headers=AUTH) as ws:
            await ws.send(START)
            assert json.loads(await ws.recv())["type"] == "ready"
            err = json.loads(await asyncio.wait_for(ws.recv(), 10))
            return err

    err = asyncio.run(go())
    assert err["code"] == "idle_timeout" and "audio or 'end'" in err["message"]
    for _ in range(20):
        if get(base + "/health")["sessions"] == 0:
            break
        time.sleep(0.2)
    assert get(base + "/health")["sessions"] == 0


def test_a_session_that_falls_silent_without_end_still_gets_its_last_words(server, res):
    """A push-to-talk client: one sentence, then nothing, and no 'end'. At the idle limit the
    session is finished as at 'end' (the same translation, words and speech the engine gives the
    whole sentence), then closed with the idle error."""
    base, url, _ = server
    ex = assets.read_examples(ROOT)[1]  # "Diego will close a new box." (1.9 s: well inside the 4 s wall limit)
    wav = features.read_audio(ex["src_audio"])

    async def go():
        msgs, pcm = [], bytearray()
        async with websockets.connect(url, additional_headers=AUTH, max_size=None) as ws:
            await ws.send(START)
            assert json.loads(await ws.recv())["type"] == "ready"
            await ws.send(to_s16le(wav))
            try:
                while True:
                    m = await asyncio.wait_for(ws.recv(), 10)
                    if isinstance(m, bytes):
                        pcm.extend(m)
                    else:
                        msgs.append(json.loads(m))
            except websockets.ConnectionClosed:
                pass
            return msgs, bytes(pcm), ws.close_code

    msgs, pcm, code = asyncio.run(go())
    assert [m["type"] for m in msgs[-2:]] == ["done", "error"] and code == 1008
    assert msgs[-1]["code"] == "idle_timeout"
    ref = replay(res, wav, 320, _policy(base))
    final_words = ref.events[-1].out.words  # what only the end of the session says
    assert final_words, "the sentence's last words come at its end: the flush is what this test checks"
    assert msgs[-2]["translation"] == ref.translation and ref.translation.split()
    assert [w for m in msgs if m["type"] == "translation" for w in m["words"]] == [w for e in ref.events for w in e.out.words]
    got = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768
    assert len(got) == len(ref.pcm) and np.abs(got - np.clip(ref.pcm, -1, 1)).max() < 2e-3
    wait_sessions(base, 0)


def test_wall_clock_limit_holds_for_a_client_that_keeps_sending(server):
    _, url, _ = server
    frame = np.zeros(160, dtype="<i2").tobytes()  # 10 ms of silence, sent every 0.5 s: never idle, never long

    async def go():
        async with websockets.connect(url, additional_headers=AUTH) as ws:
            await ws.send(START)
            assert json.loads(await ws.recv())["type"] == "ready"
            t0, kinds = time.monotonic(), []
            while time.monotonic() - t0 < 15:
                try:
                    msg = json.loads(await asyncio.wait_for(ws.recv(), 0.5))
                    kinds.append(msg["type"])
                    if msg["type"] == "error":
                        return msg, time.monotonic() - t0, kinds
                except asyncio.TimeoutError:
                    await ws.send(frame)
            return None, None, kinds

    err, after, kinds = asyncio.run(go())
    assert err is not None and err["code"] == "session_timeout", err
    assert 2.5 < after < 8
    assert kinds[-2:] == ["done", "error"]  # what it had sent was finished first


def test_a_flood_of_tiny_frames_is_slowed_not_dropped(server):
    """300 two-byte frames sent at once: the first 100 (the burst) pass, the other 200 are read at
    100 per second; the session still ends with 'done' and the metric counts the frames held."""
    base, url, _ = server
    before = read_metrics(base).get(("echostream_frames_throttled_total", ()), 0)

    async def go():
        async with websockets.connect(url, additional_headers=AUTH) as ws:
            await ws.send(START)
            assert json.loads(await ws.recv())["type"] == "ready"
            t0 = time.monotonic()
            for _ in range(300):
                await ws.send(b"\x00\x00")
            await ws.send(json.dumps({"type": "end"}))
            while True:
                msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if msg["type"] in ("done", "error"):
                    return msg, time.monotonic() - t0

    msg, took = asyncio.run(go())
    assert msg["type"] == "done", msg
    assert took > 1.5, took
    assert read_metrics(base)[("echostream_frames_throttled_total", ())] - before >= 150


def test_frame_rate_bucket():
    from echostream_fairseq.server.app import FrameRate

    now = [0.0]
    fr = FrameRate(10, clock=lambda: now[0])
    assert [fr.wait() for _ in range(10)] == [0.0] * 10  # the burst
    assert fr.wait() == pytest.approx(0.1) and fr.wait() == pytest.approx(0.2)  # then 10 a second
    now[0] = 10.0  # a quiet while refills the bucket, up to one burst
    assert [fr.wait() for _ in range(10)] == [0.0] * 10 and fr.wait() > 0


def test_request_rate_buckets_per_address_and_drops_full_ones():
    from echostream_fairseq.server.app import RequestRate

    class Small(RequestRate):
        PRUNE_AT = 2

    now = [0.0]
    rr = Small(None, 10, clock=lambda: now[0])
    assert [rr.hold("a") for _ in range(10)] == [0.0] * 10 and rr.hold("a") == pytest.approx(0.1)
    assert rr.hold("b") == 0.0  # another address has its own bucket
    now[0] = 0.2  # "b" is full again (it took one of ten), "a" is not
    rr.hold("c")  # the third bucket: the full ones go first (each the same as a new one)
    assert set(rr.buckets) == {"a", "c"}
    assert [rr.hold("a") for _ in range(2)] == [0.0, pytest.approx(0.1)]  # "a" kept what it owes (new: 0, 0)


def test_a_request_flood_is_slowed_per_address_and_others_are_answered_at_once(server):
    """An address that pipelines 20 GETs on each of 3 kept-alive sockets (source 127.0.0.3) gets
    every answer, none refused, but at --max-requests-per-second (10 here, bursts of 10): about
    5 s for the 60. Another address (127.0.0.1) is answered at once meanwhile. Without the limit
    the 60 took well under a second, and a flood of about 1,200 requests a second made another
    client's 3.8 s sentence 2.4 x slower to 'done'."""
    base, _, port = server
    key = ("echostream_requests_held_total", ())
    before = read_metrics(base).get(key, 0)
    n_sock, n_req = 3, 20
    socks = [socket.create_connection(("127.0.0.1", port), source_address=("127.0.0.3", 0), timeout=20) for _ in range(n_sock)]
    answers, done = [0] * n_sock, [0.0] * n_sock

    def flood(i):
        socks[i].sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n" * n_req)
        got = b""
        while got.count(b"HTTP/1.1 ") < n_req:
            chunk = socks[i].recv(65536)
            if not chunk:
                break
            got += chunk
        answers[i] = got.count(b"HTTP/1.1 200 OK")
        done[i] = time.monotonic()

    try:
        t0 = time.monotonic()
        threads = [threading.Thread(target=flood, args=(i,)) for i in range(n_sock)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        assert get(base + "/health")["status"] == "ok"  # from 127.0.0.1, while 127.0.0.3's requests wait
        other = time.monotonic()
        for t in threads:
            t.join(30)
    finally:
        for s in socks:
            s.close()
    assert answers == [n_req] * n_sock
    took = max(done) - t0
    assert 3.5 < took < 15, took  # (60 - 10 of the burst) / 10 a second = 5 s
    assert other - t0 < 2.5 and max(done) - other > 1.5  # the other address did not queue behind the flood
    assert read_metrics(base)[key] - before >= 40


def test_websocket_handshakes_count_against_the_same_rate(server):
    """25 WebSockets opened and closed one after the other from one address: the first 10 (the
    burst) at once, the rest at 10 a second. Unlimited, a client opening and closing about 770 a
    second made another client's sentence 2 to 2.7 x slower to 'done'."""
    _, url, _ = server

    async def go():
        t0 = time.monotonic()
        for _ in range(25):
            async with websockets.connect(url, additional_headers=AUTH, local_addr=("127.0.0.4", 0)):
                pass
        return time.monotonic() - t0

    took = asyncio.run(go())
    assert took > 1.2, took  # (25 - 10) / 10 a second = 1.5 s


def test_connection_caps_total_and_per_client(server):
    _, url, _ = server

    async def go():
        held = [await websockets.connect(url, additional_headers=AUTH) for _ in range(2)]
        per_client = await _first(url)  # a third from 127.0.0.1
        # another loopback address is another client: one more fits under the total cap of 3 ...
        held.append(await websockets.connect(url, additional_headers=AUTH, local_addr=("127.0.0.2", 0)))
        total = await _first(url, local_addr=("127.0.0.3", 0))  # ... and a fourth connection is over it
        for ws in held:
            await ws.close()
        return per_client, total

    (m1, c1), (m2, c2) = asyncio.run(go())
    assert m1["code"] == "too_many_connections" and "127.0.0.1" in m1["message"] and c1 == 1013
    assert m2["code"] == "too_many_connections" and "maximum of 3" in m2["message"] and c2 == 1013


@pytest.mark.parametrize("origin, ok", [(None, True), ("http://127.0.0.1:{port}", True), ("https://friend.example", True),
                                        ("http://evil.example", False), ("null", False)])
def test_origins(server, origin, ok):
    _, url, port = server
    msg, code = asyncio.run(_first(url, START, origin=origin.format(port=port) if origin else None))
    if ok:
        assert msg["type"] == "ready"
    else:
        assert msg["code"] == "forbidden_origin" and code == 1008


@pytest.mark.parametrize("how, ok", [("header", True), ("query", True), ("none", False), ("wrong header", False),
                                     ("wrong query", False)])
def test_token(server, how, ok):
    _, url, _ = server
    headers = {"header": AUTH, "wrong header": {"Authorization": "Bearer nope"}}.get(how, {})
    target = url + {"query": f"?token={TOKEN}", "wrong query": "?token=nope"}.get(how, "")
    msg, code = asyncio.run(_first(target, START, headers=headers))
    if ok:
        assert msg["type"] == "ready"
    else:
        assert msg["code"] == "unauthorized" and code == 1008


def test_deeply_nested_json_is_bad_json(server):
    _, url, _ = server
    for text in ("[" * 100_000 + "]" * 100_000, '{"a":' * 50_000 + "1" + "}" * 50_000):
        msg, code = asyncio.run(_first(url, text, max_size=None))
        assert msg["code"] == "bad_json" and code == 1008


def test_metrics_parse_and_move(server):
    from echostream_fairseq import assets, features
    from echostream_fairseq.cli.client import stream
    from echostream_fairseq.prep.corpus import read_list

    base, url, _ = server
    before = read_metrics(base)
    asyncio.run(_first(url, START, headers={}))  # unauthorized
    ex = read_list(assets.REPO_ASSETS / "examples" / "examples.tsv")[0]
    wav = features.read_audio(assets.REPO_ASSETS / "examples" / ex["src_audio"])
    assert asyncio.run(stream(url + f"?token={TOKEN}", wav, 16000, 320))[2]["type"] == "done"
    after = read_metrics(base)
    key = ("echostream_errors_total", (("code", "unauthorized"),))
    assert after[key] == before.get(key, 0) + 1
    served = ("echostream_sessions_served_total", ())
    assert after[served] == before.get(served, 0) + 1
    chunks = ("echostream_chunk_seconds_count", ())
    assert after[chunks] >= before.get(chunks, 0) + len(wav) // 5120
    assert after[("echostream_realtime_factor_count", ())] >= 1 and after[("echostream_finish_seconds_count", ())] >= 1
    assert after[("echostream_first_output_seconds_count", ())] >= 1
    assert after[("echostream_sessions_open", ())] == 0


def test_sigterm_lets_sessions_in_flight_finish_then_exits_0(tmp_path):
    """SIGTERM: new connections get 'shutdown'; a session that ends within the grace period gets
    'done'; one that does not is closed with 'shutdown'; the process exits 0."""
    import signal

    from echostream_fairseq import assets, features
    from echostream_fairseq.features import to_s16le
    from echostream_fairseq.prep.corpus import read_list

    log = tmp_path / "serve.log"  # the JSON log alone: fairseq prints to stdout
    p, base, url, _ = start_server(log, "--log-level", "info", "--shutdown-grace", "4", "--log-json", stdout_to_log=False)
    ex = read_list(assets.REPO_ASSETS / "examples" / "examples.tsv")[1]
    wav = features.read_audio(assets.REPO_ASSETS / "examples" / ex["src_audio"])

    async def go():
        finisher = await websockets.connect(url, max_size=None)
        stuck = await websockets.connect(url, max_size=None)
        for ws in (finisher, stuck):
            await ws.send(START)
            assert json.loads(await ws.recv())["type"] == "ready"
            await ws.send(to_s16le(wav[:8000]))
        p.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.5)
        refused = await _first(url, START, headers={})
        await finisher.send(to_s16le(wav[8000:]))
        await finisher.send(json.dumps({"type": "end"}))
        kinds = []
        async for m in finisher:
            if isinstance(m, str):
                kinds.append(json.loads(m)["type"])
        stuck_msgs = [json.loads(m) for m in [m async for m in stuck] if isinstance(m, str)]
        return refused, kinds, stuck_msgs, stuck.close_code

    (refused, _), kinds, stuck_msgs, stuck_code = asyncio.run(go())
    assert refused["code"] == "shutdown"
    assert kinds[-1] == "done", kinds
    assert stuck_msgs[-1]["code"] == "shutdown" and stuck_code == 1001
    assert p.wait(timeout=30) == 0, open(log).read()[-2000:]
    # --log-json: every line the server logged is one JSON object; the drain is among them
    records = [json.loads(line) for line in open(log).read().splitlines() if line.strip()]
    assert {"time", "level", "logger", "message"} <= set(records[0])
    assert any("draining sessions" in r["message"] for r in records)
    assert any("1 connection(s) closed with 'shutdown'" in r["message"] for r in records)


def _ws_frame(payload: bytes, opcode: int) -> bytes:
    """One masked client frame (RFC 6455), written by hand: these clients must not read anything."""
    import os

    n, mask = len(payload), os.urandom(4)
    head = bytes([0x80 | opcode]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big"))
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def _raw_ws(port, headers=()):
    """A WebSocket opened by hand on a socket with a small receive buffer; the handshake's answer
    is the last thing read from it."""
    import base64
    import os
    import socket

    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers)
    s.sendall(f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n{extra}"
              f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += s.recv(1)
    assert answer.startswith(b"HTTP/1.1 101"), answer
    return s


def _is_open(s) -> bool:
    """A socket the server has not closed or reset (it has sent nothing on it)."""
    import socket

    s.settimeout(0.05)
    try:
        return s.recv(1) != b""
    except socket.timeout:
        return True
    except OSError:
        return False


def _raw_sockets(port, n, src, send=b""):
    import socket

    out = []
    for _ in range(n):
        s = socket.socket()
        s.bind((src, 0))
        s.connect(("127.0.0.1", port))
        if send:
            s.sendall(send)
        out.append(s)
    return out


def test_sockets_that_never_finish_a_request_are_cut_and_capped_per_client(server):
    """Below the app: a client holding sockets on which it never finishes (or never starts) an
    HTTP request. uvicorn used to keep them all, forever; a few hundred from one address took every
    file descriptor, and nobody else could connect. Now an address holds at most 4 x
    --max-connections-per-client sockets (8 here) and each is cut when its request head is not in
    within --idle-before-start (1 s here)."""
    base, url, port = server
    head = b"GET /health HTTP/1.1\r\nHost: x\r\n"  # the blank line that ends it never comes
    socks = _raw_sockets(port, 40, "127.0.0.4", head) + _raw_sockets(port, 10, "127.0.0.4")
    try:
        time.sleep(0.3)
        assert sum(map(_is_open, socks)) == 8  # the first 8; the others were cut as they came
        assert get(base + "/health")["status"] == "ok"  # others are served meanwhile
        time.sleep(1.5)
        assert sum(map(_is_open, socks)) == 0  # no head within 1 s: cut
        # a head that comes a byte at a time is cut too (it would take 10 s here)
        slow = _raw_sockets(port, 1, "127.0.0.4")[0]
        t0, cut_after = time.monotonic(), None
        for b in b"GET /health HTTP/1.1\r\nHost: x\r\nUser-Agent: slow\r\n\r\n":
            try:
                slow.sendall(bytes([b]))
            except OSError:
                pass
            time.sleep(0.2)
            if not _is_open(slow):
                cut_after = time.monotonic() - t0
                break
        socks.append(slow)
        assert cut_after is not None and cut_after < 2.5, cut_after
    finally:
        for s in socks:
            s.close()
    # the cut sockets were given back to the address's budget: it is served again, and a kept-alive
    # connection that sends its next request in time is not cut between requests
    s = _raw_sockets(port, 1, "127.0.0.4")[0]
    s.settimeout(5)
    for _ in range(2):
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        while b'"status"' not in answer:
            answer += s.recv(4096)
        assert answer.startswith(b"HTTP/1.1 200"), answer
        time.sleep(0.6)
    s.close()

    async def sessions_one_after_another():  # each WebSocket's socket is given back when it closes
        for _ in range(12):
            msg, _ = await _first(url, START, json.dumps({"type": "end"}), local_addr=("127.0.0.4", 0))
            assert msg["type"] == "ready", msg

    asyncio.run(sessions_one_after_another())


def test_a_client_that_pings_and_never_reads_is_not_read_either(server):
    """Pings as fast as they go, nothing read: uvicorn answers each with a pong, which used to pile
    up in the server's memory (about 24 MB/s). The server stops reading from a client that does
    not read, so the client can only fill the sockets' buffers."""
    import socket

    _, _, port = server
    s = _raw_ws(port, AUTH.items())
    pings = _ws_frame(b"x" * 125, 9) * 1000
    s.settimeout(0.2)
    sent, t0 = 0, time.monotonic()
    try:
        while time.monotonic() - t0 < 4:
            try:
                s.sendall(pings)
                sent += len(pings)
            except socket.timeout:
                pass
            except OSError:
                break  # cut
    finally:
        s.close()
    assert sent < 30e6, f"the server read {sent / 1e6:.0f} MB of pings from a client that reads nothing"


def _close_code(s, timeout=10.0):
    """Read server frames (unmasked) from a raw socket until its close frame: (code, reason);
    None: the connection ended without one."""
    s.settimeout(timeout)
    buf = b""

    def take(n):
        nonlocal buf
        while len(buf) < n:
            chunk = s.recv(65536)
            if not chunk:
                raise EOFError
            buf += chunk
        out, buf = buf[:n], buf[n:]
        return out

    try:
        while True:
            op, n = take(2)
            n &= 0x7F
            n = int.from_bytes(take(2 if n == 126 else 8), "big") if n >= 126 else n
            payload = take(n)
            if op & 0x0F == 0x8:
                return int.from_bytes(payload[:2], "big"), payload[2:].decode()
    except (EOFError, ConnectionResetError):
        return None


def test_a_ping_flood_is_closed_and_pings_within_the_budget_are_answered(server):
    """Pings beyond 10 a second (bursts of 10) close the connection with 1008: uvicorn answered
    any number at once in its read loop, and ~100,000 a second slowed another client's session
    6x. A few pings, as clients send, are answered with pongs as before."""
    _, _, port = server
    s = _raw_ws(port, AUTH.items())
    try:
        s.sendall(b"".join(_ws_frame(b"p%d" % i, 9) for i in range(5)))
        s.settimeout(10)
        pongs = b""
        while pongs.count(b"\x8a") < 5:
            pongs += s.recv(4096)
        assert all(b"p%d" % i in pongs for i in range(5))
        s.sendall(b"".join(_ws_frame(b"x" * 125, 9) for _ in range(200)))
        assert _close_code(s) == (1008, "too many pings")  # (not the idle limit's close, also 1008)
    finally:
        s.close()


def test_a_client_that_stops_reading_is_dropped_and_cut(tmp_path):
    """A client that sends speech as fast as it can and never reads a byte: once every buffer to
    it is full, the server waits --max-send-wait s, frees its session ('slow_reader', counted),
    cuts its socket (reset), keeps serving others, and still shuts down at once on SIGTERM."""
    import errno
    import os
    import signal
    import socket
    import threading

    from echostream_fairseq import assets, features
    from echostream_fairseq.features import to_s16le
    from echostream_fairseq.prep.corpus import read_list

    log = tmp_path / "serve.log"
    p, base, url, port = start_server(log, "--log-level", "warning", "--max-send-wait", "1", "--max-session-wall", "300",
                                      "--max-session-seconds", "100000", "--shutdown-grace", "2")
    ex = read_list(assets.REPO_ASSETS / "examples" / "examples.tsv")[1]
    wav = features.read_audio(assets.REPO_ASSETS / "examples" / ex["src_audio"])
    pcm = to_s16le(np.tile(wav, 8))
    s = _raw_ws(port)
    s.sendall(_ws_frame(START.encode(), 1))
    stop = threading.Event()

    def talk():  # speech as fast as the server takes it, until it stops taking it or the socket goes
        s.settimeout(0.2)
        pos = 0
        while not stop.is_set():
            try:
                s.sendall(_ws_frame(pcm[pos % len(pcm):][:6400], 2))
                pos += 6400
            except socket.timeout:
                pass
            except OSError:
                return

    talker = threading.Thread(target=talk, daemon=True)
    talker.start()
    try:
        wait_sessions(base, 1)  # started
        t0 = time.monotonic()
        while get(base + "/health")["sessions"] and time.monotonic() - t0 < 120:
            time.sleep(0.2)
        assert get(base + "/health")["sessions"] == 0, "the stalled client still holds its session"
        assert read_metrics(base).get(("echostream_errors_total", (("code", "slow_reader"),))) == 1
        stop.set()
        talker.join(5)
        # cut: a reset arrives although this client reads nothing (a plain close would wait for it to read)
        cut, t1 = 0, time.monotonic()
        while not cut and time.monotonic() - t1 < 15:
            cut = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            time.sleep(0.1)
        assert cut == errno.ECONNRESET, os.strerror(cut)
        # the others are served as before
        msg, code = asyncio.run(_first(url, START, to_s16le(wav), json.dumps({"type": "end"}), headers={}))
        assert msg["type"] == "ready" and code == 1000
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=20) == 0, open(log).read()[-2000:]
    finally:
        stop.set()
        s.close()
        if p.poll() is None:
            p.kill()
