"""One server, several language pairs: the 'start' message picks one, clients on different pairs
at once each get exactly what they get alone, and an unknown pair is a clear error."""
import asyncio
import json

import pytest
import websockets

from conftest import cli
from echostream_fairseq import assets, features
from echostream_fairseq.cli.client import stream
from test_server import _pcm, get

pytestmark = pytest.mark.slow


def _source(micro_data):
    uid = (micro_data / "dev.tsv").read_text().splitlines()[1].split("\t")[0]
    return features.read_audio(micro_data / "audio" / f"{uid}_src.wav")


def test_config_lists_the_pairs(served_pairs):
    base, _ = served_pairs
    cfg = get(base + "/config")
    assert list(cfg["pairs"]) == [*assets.shipped_pairs(assets.REPO_ASSETS), "xx-en"] and cfg["default_pair"] == "es-en"
    assert cfg["pairs"]["es-en"]["source_language"] == "Spanish" and cfg["pairs"]["es-en"]["policy"]["punct_delay"] == 2
    assert cfg["pairs"]["xx-en"]["policy"]["punct_delay"] is None  # no punctuation model for that one
    from echostream_fairseq.streaming.policy import PolicyConfig

    for name, root in assets.shipped_pairs(assets.REPO_ASSETS).items():  # each pair's own gating (its policy.yaml)
        own = PolicyConfig.read_model_file(root / "model")
        assert cfg["pairs"][name]["policy"]["lag_k"] == own.get("lag_k", PolicyConfig.lag_k), name
    assert get(base + "/examples?pair=es-en")["pair"] == "es-en"


def test_two_clients_on_served_pairs_each_get_their_own_result(served_pairs, micro_data):
    base, url = served_pairs
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


def test_an_unknown_pair_is_a_bad_start(served_pairs):
    _, url = served_pairs

    async def go():
        async with websockets.connect(url) as ws:
            await ws.send(json.dumps({"type": "start", "sample_rate": 16000, "format": "s16le", "pair": "fr-en"}))
            msg = json.loads(await ws.recv())
            with pytest.raises(websockets.ConnectionClosed):
                await ws.recv()
            return msg, ws.close_code

    msg, code = asyncio.run(go())
    served = ", ".join([*assets.shipped_pairs(assets.REPO_ASSETS), "xx-en"])
    assert msg["code"] == "bad_start" and "fr-en" in msg["message"] and served in msg["message"] and code == 1008


def test_serve_and_translate_refuse_a_pair_that_is_not_shipped(tmp_path):
    import subprocess

    r = subprocess.run([cli("echostream-serve"), "--pairs", "fr-en", "--port", "1"], capture_output=True, text=True)
    assert r.returncode == 2 and "--pairs fr-en: not shipped" in r.stderr and "es-en" in r.stderr
    r = subprocess.run([cli("echostream-translate"), assets.read_examples(assets.REPO_ASSETS)[0]["src_audio"], tmp_path / "o.wav",
                        "--pair", "fr-en"], capture_output=True, text=True)
    assert r.returncode == 2 and "--pair fr-en: not shipped here; pairs: es-en" in r.stderr


FURTHER = [p for p in assets.shipped_pairs(assets.REPO_ASSETS) if p != "es-en"]


@pytest.mark.parametrize("pair", FURTHER)
def test_a_shipped_further_pair_translates_through_the_server_as_the_engine_does(served_pairs, pair):
    """A further shipped pair (ko-en): its first bundled example streamed to the real server with
    that pair named gives exactly what the engine gives on the pair's model alone (text, its
    source transcript, and speech through the shared vocoder), and the texts are English."""
    import numpy as np

    from echostream_fairseq.streaming.engine import PolicyConfig, load_resources
    from echostream_fairseq.streaming.replay import replay

    base, url = served_pairs
    root = assets.shipped_pairs(assets.REPO_ASSETS)[pair]
    res = load_resources(root / "model" / "checkpoint.pt", root / "model", punct_model=root / "model" / "punct.pt")
    policy = PolicyConfig(**get(base + "/config")["pairs"][pair]["policy"])
    ex = assets.read_examples(root)[0]
    wav = features.read_audio(ex["src_audio"])
    _, pcm, done = asyncio.run(stream(url, wav, 16000, 320, pair=pair))
    ref = replay(res, wav, 320, policy)
    assert (done["translation"], done["transcript"]) == (ref.translation, ref.transcript), ex["id"]
    got = _pcm(bytes(pcm))
    assert len(got) == len(ref.pcm) > 0 and np.abs(got - np.clip(ref.pcm, -1, 1)).max() < 2e-3, ex["id"]
    assert ref.translation.isascii() and len(ref.translation.split()) >= 2, ref.translation
