"""Two real `echostream-serve` replicas behind HAProxy with the shipped deploy/haproxy.cfg, on
loopback: 8 clients spread over both and each gets its single-client result; a replica killed
mid-run fails only its own sessions, each with a closed connection, and the balancer then sends
new sessions to the replica left."""
import asyncio
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import websockets

from echostream_fairseq import assets, features
from echostream_fairseq.cli.client import stream
from test_server import free_port, get, start_server, wait_healthy

pytestmark = pytest.mark.slow
CFG = Path(__file__).resolve().parents[1] / "deploy" / "haproxy.cfg"


def served(base) -> int:
    text = urllib.request.urlopen(base + "/metrics", timeout=10).read().decode()
    m = re.search(r"^echostream_sessions_served_total (\S+)$", text, re.M)
    return int(float(m.group(1)))


@pytest.fixture()
def cluster(tmp_path):
    assert shutil.which("haproxy"), "haproxy is not installed: `make setup` installs it (scripts/setup_env.sh)"
    replicas = [start_server(tmp_path / f"r{i}.log", "--max-sessions", "4", "--log-level", "warning") for i in (1, 2)]
    lb_port = free_port()
    env = dict(os.environ, ECHOSTREAM_LB_BIND=f"127.0.0.1:{lb_port}",
               ECHOSTREAM_R1=f"127.0.0.1:{replicas[0][3]}", ECHOSTREAM_R2=f"127.0.0.1:{replicas[1][3]}")
    lb = subprocess.Popen(["haproxy", "-db", "-f", str(CFG)], env=env, stdout=open(tmp_path / "haproxy.log", "w"),
                          stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{lb_port}"
    wait_healthy(base, lb, tmp_path / "haproxy.log", tries=100, pause=0.1)
    time.sleep(2.5)  # both replicas pass their first health checks (rise 2, inter 1 s)
    yield replicas, base, f"ws://127.0.0.1:{lb_port}/ws"
    lb.terminate()
    lb.wait(timeout=10)
    for p, *_ in replicas:
        if p.poll() is None:
            p.terminate()
            p.wait(timeout=30)


async def outcome(url, wav, realtime=False):
    """('done', done message) or ('closed', exception name) for one client."""
    try:
        _, _, done = await asyncio.wait_for(stream(url, wav, 16000, 320, realtime=realtime), 120)
    except (websockets.ConnectionClosed, OSError, RuntimeError) as e:
        return "closed", type(e).__name__
    return ("done", done) if done is not None else ("closed", "no done")


def test_eight_clients_over_two_replicas_and_one_replica_killed(cluster):
    replicas, base, url = cluster
    examples = assets.read_examples(assets.REPO_ASSETS)
    wavs = [features.read_audio(examples[i % len(examples)]["src_audio"]) for i in range(8)]
    direct = replicas[0][2]
    single = [asyncio.run(stream(direct, w, 16000, 320))[2]["translation"] for w in wavs]
    before = [served(r[1]) for r in replicas]

    async def eight(realtime):
        return await asyncio.gather(*(outcome(url, w, realtime) for w in wavs))

    runs = asyncio.run(eight(False))
    assert [r[0] for r in runs] == ["done"] * 8, runs
    assert [r[1]["translation"] for r in runs] == single
    spread = [served(r[1]) - b for r, b in zip(replicas, before)]
    assert sum(spread) == 8 and min(spread) >= 2, spread  # both replicas took sessions

    # now paced at real time; replica 1 dies while every session is in flight
    async def with_a_kill():
        task = asyncio.ensure_future(eight(True))
        for _ in range(100):
            await asyncio.sleep(0.05)
            if sum(get(r[1] + "/health")["sessions"] for r in replicas) == 8:
                break
        on_r1 = get(replicas[0][1] + "/health")["sessions"]
        replicas[0][0].send_signal(signal.SIGKILL)
        return on_r1, await task

    t0 = time.perf_counter()
    on_r1, runs = asyncio.run(with_a_kill())
    assert time.perf_counter() - t0 < 60
    assert 1 <= on_r1 <= 4
    closed = [r for r in runs if r[0] == "closed"]
    assert len(closed) == on_r1, runs  # exactly the killed replica's sessions failed, each with a close
    for r, ref in zip(runs, single):
        if r[0] == "done":
            assert r[1]["translation"] == ref
    # the balancer takes the dead replica out; new sessions go to the one left
    time.sleep(2.5)
    after = asyncio.run(eight(False))
    assert sum(r[0] == "done" for r in after) >= 4  # the survivor serves its 4 slots ...
    assert all(r[0] == "done" or r[1] == "RuntimeError" for r in after), after  # ... and refuses the rest as busy
    assert [r[1]["translation"] for r, ref in zip(after, single) if r[0] == "done"] == \
        [ref for r, ref in zip(after, single) if r[0] == "done"]
