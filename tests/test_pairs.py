"""One server, several language pairs: the 'start' message picks one, clients on different pairs
at once each get exactly what they get alone, and an unknown pair is a clear error."""
import asyncio
import json

import pytest
import websockets

from conftest import cli
from echostream_fairseq import assets, features
from echostream_fairseq.cli.client import stream
from test_server import get

pytestmark = pytest.mark.slow


def _source(micro_data):
    uid = (micro_data / "dev.tsv").read_text().splitlines()[1].split("\t")[0]
    return features.read_audio(micro_data / "audio" / f"{uid}_src.wav")


def test_config_lists_the_pairs(two_pairs):
    base, _ = two_pairs
    cfg = get(base + "/config")
    assert list(cfg["pairs"]) == ["es-en", "xx-en"] and cfg["default_pair"] == "es-en"
    assert cfg["pairs"]["es-en"]["source_language"] == "Spanish" and cfg["pairs"]["es-en"]["policy"]["punct_delay"] == 2
    assert cfg["pairs"]["xx-en"]["policy"]["punct_delay"] is None  # no punctuation model for that one
    assert get(base + "/examples?pair=es-en")["pair"] == "es-en"


def test_two_clients_on_two_pairs_each_get_their_own_result(two_pairs, micro_data):
    base, url = two_pairs
    es = features.read_audio(assets.read_examples(assets.REPO_ASSETS)[0]["src_audio"])
    xx = _source(micro_data)
    alone_es = asyncio.run(stream(url, es, 16000, 320))[2]
    alone_xx = asyncio.run(stream(url, xx, 16000, 320, pair="xx-en"))[2]
    assert alone_es["translation"] != alone_xx["translation"]  # two different models

    async def both():
        return await asyncio.gather(stream(url, es, 16000, 320, realtime=True, pair="es-en"),
                                    stream(url, xx, 16000, 320, realtime=True, pair="xx-en"))

    (_, _, done_es), (_, _, done_xx) = asyncio.run(both())
    assert (done_es["translation"], done_es["transcript"]) == (alone_es["translation"], alone_es["transcript"])
    assert (done_xx["translation"], done_xx["transcript"]) == (alone_xx["translation"], alone_xx["transcript"])


def test_an_unknown_pair_is_a_bad_start(two_pairs):
    _, url = two_pairs

    async def go():
        async with websockets.connect(url) as ws:
            await ws.send(json.dumps({"type": "start", "sample_rate": 16000, "format": "s16le", "pair": "fr-en"}))
            msg = json.loads(await ws.recv())
            with pytest.raises(websockets.ConnectionClosed):
                await ws.recv()
            return msg, ws.close_code

    msg, code = asyncio.run(go())
    assert msg["code"] == "bad_start" and "fr-en" in msg["message"] and "es-en, xx-en" in msg["message"] and code == 1008


def test_serve_and_translate_refuse_a_pair_that_is_not_shipped(tmp_path):
    import subprocess

    r = subprocess.run([cli("echostream-serve"), "--pairs", "fr-en", "--port", "1"], capture_output=True, text=True)
    assert r.returncode == 2 and "--pairs fr-en: not shipped" in r.stderr and "es-en" in r.stderr
    r = subprocess.run([cli("echostream-translate"), assets.read_examples(assets.REPO_ASSETS)[0]["src_audio"], tmp_path / "o.wav",
                        "--pair", "fr-en"], capture_output=True, text=True)
    assert r.returncode == 2 and "--pair fr-en: not shipped here; pairs: es-en" in r.stderr
