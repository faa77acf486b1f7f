"""``echostream-score compare`` through its real CLI: the paired bootstrap that tells a change in
ASR-BLEU from the noise of a small test set, on transcript files written by the scorer's own
writer (what ``offline`` and ``resynth`` leave beside their JSON)."""
import json
import subprocess

import pytest
import sacrebleu

from conftest import cli
from echostream_fairseq.evaluation.asr_bleu import normalise, write_transcripts
from echostream_fairseq.prep.corpus import grammar_sentences

N = 80


@pytest.fixture(scope="module")
def refs():
    return [en for _, en in grammar_sentences("es", {"train": N, "dev": 5, "test": 5}, seed=4)["train"][:N]]


def _drop_words(text: str, every: int) -> str:
    words = text.split()
    return " ".join(w for i, w in enumerate(words) if i % every != 1)


def _write(path, refs, heard, ids=None):
    ids = ids or [f"es-en-test-{i:05d}" for i in range(len(refs))]
    return write_transcripts(path, ids, refs, text=refs, heard=heard)


def _compare(*args, ok=True):
    p = subprocess.run([cli("echostream-score"), "compare", *map(str, args)], capture_output=True, text=True)
    assert (p.returncode == 0) == ok, p.stderr
    return p


def test_scores_are_the_asr_bleu_and_a_clear_change_is_told_from_none(refs, tmp_path):
    perfect = _write(tmp_path / "a.asr.tsv", refs, [r.upper() + "!" for r in refs])  # the scorer normalises case and punctuation
    same = _write(tmp_path / "b.asr.tsv", refs, list(refs))
    # every utterance loses words: a change far beyond resampling noise
    worse = _write(tmp_path / "c.asr.tsv", refs, [_drop_words(r, 2) for r in refs])
    # one utterance in ten loses words: a small change
    slight = _write(tmp_path / "d.asr.tsv", refs, [_drop_words(r, 3) if i % 10 == 0 else r for i, r in enumerate(refs)])
    out = tmp_path / "cmp.json"
    p = _compare(perfect, same, worse, slight, "--out", out)
    res = json.loads(out.read_text())
    assert res["utterances"] == N and res["column"] == "heard"
    a, b, c, d = res["systems"]
    expect = lambda hyps: sacrebleu.corpus_bleu([normalise(h) for h in hyps], [[normalise(r) for r in refs]], tokenize="13a").score
    assert a["bleu"] == pytest.approx(100.0) and c["bleu"] == pytest.approx(expect([_drop_words(r, 2) for r in refs]))
    assert "difference" not in a and "p_value" not in a
    assert b["difference"] == 0 and b["difference_ci95"] == [0, 0] and b["p_value"] == 1.0
    assert c["difference"] < -20 and c["difference_ci95"][1] < 0 and c["p_value"] < 0.01
    assert c["difference"] < d["difference"] < 0 and d["difference_ci95"][0] < d["difference"] < d["difference_ci95"][1]
    assert c["ci95"][0] < c["bleu"] < c["ci95"][1]
    assert "p = 1.000" in p.stdout and str(worse) in p.stdout
    # seeded: the same figures again; the other order flips the sign
    again = _compare(perfect, same, worse, slight, "--out", out)
    assert json.loads(out.read_text()) == res and again.stdout == p.stdout
    _compare(worse, perfect, "--out", out)
    flipped = json.loads(out.read_text())["systems"][1]
    assert flipped["difference"] == pytest.approx(-c["difference"]) and flipped["p_value"] < 0.01


def test_text_column_is_the_offline_text_bleu(refs, tmp_path):
    texts = [_drop_words(r, 4) for r in refs]
    a = write_transcripts(tmp_path / "a.asr.tsv", [f"u{i}" for i in range(N)], refs, text=refs, heard=refs)
    b = write_transcripts(tmp_path / "b.asr.tsv", [f"u{i}" for i in range(N)], refs, text=texts, heard=refs)
    out = tmp_path / "t.json"
    _compare("--column", "text", a, b, "--out", out)
    got = json.loads(out.read_text())["systems"][1]["bleu"]
    assert got == pytest.approx(sacrebleu.corpus_bleu(texts, [refs], lowercase=True, tokenize="13a").score)


def test_files_of_other_utterances_or_columns_are_named(refs, tmp_path):
    a = _write(tmp_path / "a.asr.tsv", refs, refs)
    other = _write(tmp_path / "other.asr.tsv", refs, refs, ids=[f"es-en-dev-{i:05d}" for i in range(N)])
    p = _compare(a, other, ok=False)
    assert "other.asr.tsv: line 2" in p.stderr and "es-en-dev-00000" in p.stderr
    short = _write(tmp_path / "short.asr.tsv", refs[:10], refs[:10])
    assert "short.asr.tsv: 10 utterances" in _compare(a, short, ok=False).stderr
    no_heard = write_transcripts(tmp_path / "resynth_like.tsv", ["u0"], ["A cat."], text=["A cat."])
    assert "resynth_like.tsv: no 'heard' column" in _compare(no_heard, a, ok=False).stderr
    assert "at least two" in _compare(a, ok=False).stderr
    assert "at least 100" in _compare(a, a, "--samples", "5", ok=False).stderr
    assert "missing.tsv" in _compare(a, tmp_path / "missing.tsv", ok=False).stderr
