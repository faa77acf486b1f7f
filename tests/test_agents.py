"""Real `simuleval` subprocesses over the agents, with a checkpoint fairseq-train wrote."""
import json

import numpy as np
import pytest
import sacrebleu
import soundfile as sf

from conftest import REPO, cli, run
from echostream_fairseq import features
from echostream_fairseq.evaluation.asr_bleu import normalise

pytestmark = pytest.mark.slow

LATENCY = ["AL", "LAAL", "AP", "DAL", "StartOffset", "EndOffset", "ATD", "NumChunks", "RTF"]
SPEECH = ["SpeechDiscontinuitySum", "SpeechDiscontinuityAve", "SpeechDiscontinuityNum"]


@pytest.fixture(scope="module")
def sources(micro_data, tmp_path_factory):
    d = tmp_path_factory.mktemp("se")
    rows = [l.split("\t") for l in (micro_data / "dev.tsv").read_text().splitlines()[1:4]]
    wavs = [micro_data / r[1] for r in rows]
    # the last source at 22.05 kHz: the agents read the rate from the source and resample
    wav = features.read_audio(wavs[-1])
    sf.write(d / "resampled.wav", features.resample(wav, 16000, 22050), 22050)
    wavs[-1] = d / "resampled.wav"
    (d / "src.txt").write_text("".join(f"{w}\n" for w in wavs))
    (d / "tgt.txt").write_text("".join(f"{r[6]}\n" for r in rows))
    (d / "src_text.txt").write_text("".join(f"{r[5]}\n" for r in rows))
    return d


def _simuleval(agent, trained_micro, micro_data, sources, out, *extra, target="tgt.txt"):
    return run([cli("simuleval"), "--user-dir", REPO / "echostream_fairseq",
                "--agent-class", f"echostream_fairseq.agents.{agent}", "--checkpoint", trained_micro,
                "--data-dir", micro_data, "--source", sources / "src.txt", "--target", sources / target,
                "--source-segment-size", 320, "--output", out, *extra])


def _scores(out):
    lines = (out / "scores.tsv").read_text().splitlines()
    return dict(zip(lines[0].split("\t"), map(float, lines[1].split("\t"))))


def test_s2st_agent_writes_scores_and_wavs(trained_micro, micro_data, sources, tmp_path):
    for ca in (False, True):
        out = tmp_path / f"s2st{int(ca)}"
        _simuleval("EchoStreamS2STAgent", trained_micro, micro_data, sources, out,
                   "--latency-metrics", *LATENCY, *SPEECH, "--quality-metrics", "ASR_BLEU_LOCAL", "ASR_BLEU_LOCAL_RM_SIL",
                   *(["--computation-aware"] if ca else []))
        scores = _scores(out)
        for k in ["ASR_BLEU_LOCAL", "ASR_BLEU_LOCAL_RM_SIL", *LATENCY, *SPEECH]:
            assert k in scores, k
        assert scores["AL"] > 0 and scores["StartOffset"] >= 0
        if ca:
            # plain columns exclude computation time, *_CA columns include it
            assert scores["AL_CA"] > scores["AL"] and scores["StartOffset_CA"] > scores["StartOffset"]
            assert scores["AL"] == pytest.approx(plain["AL"], abs=1e-6)
        else:
            plain = scores
        for i in range(3):
            wav, sr = sf.read(out / "wavs" / f"{i}_pred.wav")
            assert sr == 16000 and len(wav) > 0 and np.abs(wav).max() > 0
        text = (out / "echostream_text.tsv").read_text().splitlines()
        assert len(text) == 4 and all(len(l.split("\t")) == 3 for l in text)
        # what the ASR heard in each wav, beside the reference: the rows that were scored
        refs = (sources / "tgt.txt").read_text().splitlines()
        for name, key in (("asr_bleu_local.tsv", "ASR_BLEU_LOCAL"), ("asr_bleu_local_rm_sil.tsv", "ASR_BLEU_LOCAL_RM_SIL")):
            table = [l.split("\t") for l in (out / name).read_text().splitlines()]
            assert table[0] == ["id", "reference", "heard"] and [t[:2] for t in table[1:]] == [[str(i), r] for i, r in enumerate(refs)]
            heard = [normalise(t[2]) for t in table[1:]]
            assert scores[key] == pytest.approx(sacrebleu.corpus_bleu(heard, [[normalise(r) for r in refs]], tokenize="13a").score, abs=0.01)


def _delays(out):
    return [json.loads(l)["delays"] for l in (out / "instances.log").read_text().splitlines()]


def test_s2tt_and_asr_agents(trained_micro, micro_data, data_copy, sources, tmp_path):
    out = tmp_path / "s2tt"
    _simuleval("EchoStreamS2TTAgent", trained_micro, micro_data, sources, out, "--latency-metrics", *LATENCY, "--quality-metrics", "BLEU")
    scores = _scores(out)
    assert "BLEU" in scores and scores["AL"] > 0
    preds = [json.loads(l)["prediction"] for l in (out / "instances.log").read_text().splitlines()]
    assert len(preds) == 3 and all(p.strip() for p in preds)
    # a policy.yaml in --data-dir replaces the flags' defaults: lag 4 there waits longer than lag 1
    (data_copy / "policy.yaml").write_text("policy:\n  lag_k: 4\n")
    _simuleval("EchoStreamS2TTAgent", trained_micro, data_copy, sources, tmp_path / "lag4", "--latency-metrics", "AL",
               "--quality-metrics", "BLEU")
    assert _delays(tmp_path / "lag4") != _delays(out) and _scores(tmp_path / "lag4")["AL"] >= scores["AL"]
    out = tmp_path / "asr"
    _simuleval("EchoStreamASRAgent", trained_micro, micro_data, sources, out, "--latency-metrics", "AL",
               "--quality-metrics", "WER", target="src_text.txt")
    assert "WER" in _scores(out)

