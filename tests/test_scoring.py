"""``echostream-score offline``, the recipe's offline scorer, through its real CLI on a
fairseq-generate results folder with real speech: text BLEU, ASR-CTC WER, ASR-BLEU with the real
Whisper, and the transcripts file that lets a reader see what the ASR heard in each wav."""
import csv
import json
import shutil
import subprocess

import pytest
import sacrebleu

from conftest import cli
from echostream_fairseq.evaluation.asr_bleu import normalise
from echostream_fairseq.prep import tts
from echostream_fairseq.prep.corpus import TARGET_VOICE, grammar_sentences, write_tsv


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """A corpus list of three test sentences and a results folder as fairseq-generate writes it:
    the first two translated right, the third wrong; the wavs are the target voice's speech of
    what the model said."""
    d = tmp_path_factory.mktemp("scoring")
    pairs = grammar_sentences("es", {"train": 30, "dev": 5, "test": 5}, seed=3)["test"][:3]
    said = [en for _, en in pairs[:2]] + ["The green monkey sleeps by the river."]
    gen = d / "gen" / "test"
    (gen / "wav").mkdir(parents=True)
    rows = []
    for i, ((es, en), text) in enumerate(zip(pairs, said)):
        uid = f"es-en-test-{i:05d}"
        tts.flite(text, TARGET_VOICE, gen / "wav" / f"{uid}.wav")
        shutil.copy(gen / "wav" / f"{uid}.wav", d / f"{uid}_tgt.wav")
        rows.append({"id": uid, "src_audio": f"{uid}_tgt.wav", "tgt_audio": f"{uid}_tgt.wav", "src_text": es, "tgt_text": en})
    write_tsv(d / "test.tsv", list(rows[0]), [list(r.values()) for r in rows])
    (gen / "mt.txt").write_text("".join(f"{r['id']}\t{t}\n" for r, t in zip(rows, said)))
    (gen / "asr.txt").write_text("".join(f"{r['id']}\t{r['src_text']}\n" for r in rows))
    return d, gen, rows, said


def _score(gen, lst, out, *extra):
    return subprocess.run([cli("echostream-score"), "offline", "--generate-dir", gen, "--list", lst, "--out", out, *map(str, extra)],
                          capture_output=True, text=True)


def test_offline_scores_and_says_what_the_asr_heard(generated, tmp_path):
    d, gen, rows, said = generated
    p = _score(gen, d / "test.tsv", tmp_path / "offline.json")
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads((tmp_path / "offline.json").read_text())
    refs = [r["tgt_text"] for r in rows]
    assert res["asr_ctc_wer"] == 0.0
    assert res["offline_bleu"] == pytest.approx(sacrebleu.corpus_bleu(said, [refs], lowercase=True).score)
    assert 0 < res["offline_bleu"] < 100
    # default path: beside --out; a header and one row per utterance, in the list's order
    table = list(csv.reader((tmp_path / "offline.asr.tsv").open(), delimiter="\t", quoting=csv.QUOTE_NONE))
    assert table[0] == ["id", "reference", "text", "heard"]
    assert [t[0] for t in table[1:]] == [r["id"] for r in rows]
    assert [t[1] for t in table[1:]] == refs and [t[2] for t in table[1:]] == said
    heard = [t[3] for t in table[1:]]
    # the file holds exactly what was scored, and Whisper heard the target voice's speech
    assert res["offline_asr_bleu"] == pytest.approx(
        sacrebleu.corpus_bleu([normalise(h) for h in heard], [[normalise(r) for r in refs]], tokenize="13a").score)
    assert sacrebleu.corpus_bleu([normalise(h) for h in heard], [[normalise(s) for s in said]]).score > 50, heard
    # --transcripts puts it elsewhere
    p = _score(gen, d / "test.tsv", tmp_path / "o2.json", "--transcripts", tmp_path / "t" / "heard.tsv")
    assert p.returncode == 0 and (tmp_path / "t" / "heard.tsv").read_text() == (tmp_path / "offline.asr.tsv").read_text()


def test_a_results_folder_missing_a_wav_is_named_not_scored(generated, tmp_path):
    d, gen, rows, _ = generated
    broken = tmp_path / "test"
    shutil.copytree(gen, broken)
    (broken / "wav" / f"{rows[1]['id']}.wav").unlink()
    p = _score(broken, d / "test.tsv", tmp_path / "offline.json")
    assert p.returncode == 2 and "no wav for 1 utterances" in p.stderr and rows[1]["id"] in p.stderr, p.stderr
    assert not (tmp_path / "offline.json").exists() and not (tmp_path / "offline.asr.tsv").exists()
    # a text-only folder (no vocoder) is scored without ASR-BLEU
    shutil.rmtree(broken / "wav")
    p = _score(broken, d / "test.tsv", tmp_path / "offline.json")
    assert p.returncode == 0, p.stderr[-3000:]
    assert "offline_asr_bleu" not in json.loads((tmp_path / "offline.json").read_text())
    assert not (tmp_path / "offline.asr.tsv").exists()


@pytest.mark.slow
def test_resynthesis_scores_the_shipped_vocoder_and_says_what_the_asr_heard(generated, tmp_path):
    """``echostream-score resynth``: the reference speech quantised by the shipped k-means
    (``echostream-extract-units``), spoken again by the shipped vocoder; its WER, the original
    speech's WER, and both transcripts per utterance."""
    from conftest import REPO
    from echostream_fairseq.evaluation.recipe import wer

    d, _, rows, _ = generated
    voc = REPO / "assets" / "model" / "vocoder"
    p = subprocess.run([cli("echostream-extract-units"), "--lists", d / "test.tsv", "--out", tmp_path / "units",
                        "--kmeans", REPO / "assets" / "units" / "kmeans.npy"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-3000:]
    base = ["resynth", "--vocoder", next(voc.glob("g_*")), "--vocoder-config", voc / "config.json", "--list", d / "test.tsv",
            "--units", tmp_path / "units" / "reduced.tsv", "--wav-dir", tmp_path / "wav"]
    p = subprocess.run([cli("echostream-score"), *map(str, base), "--out", str(tmp_path / "resynth.json")], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads((tmp_path / "resynth.json").read_text())
    table = list(csv.reader((tmp_path / "resynth.asr.tsv").open(), delimiter="\t", quoting=csv.QUOTE_NONE))
    assert table[0] == ["id", "reference", "heard", "heard_original"] and [t[0] for t in table[1:]] == [r["id"] for r in rows]
    refs = [normalise(t[1]).split() for t in table[1:]]
    assert res["resynth_wer"] == pytest.approx(wer([normalise(t[2]).split() for t in table[1:]], refs))
    assert res["original_wer"] == pytest.approx(wer([normalise(t[3]).split() for t in table[1:]], refs))
    assert all((tmp_path / "wav" / f"{r['id']}.wav").is_file() for r in rows)
    assert res["utterances"] == 3 and res["resynth_wer"] < 50, table
    # --no-original: no original column; --limit: the first N utterances
    p = subprocess.run([cli("echostream-score"), *map(str, base), "--out", str(tmp_path / "r2.json"), "--no-original", "--limit", "2"],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-3000:]
    table2 = list(csv.reader((tmp_path / "r2.asr.tsv").open(), delimiter="\t", quoting=csv.QUOTE_NONE))
    assert table2[0] == ["id", "reference", "heard"] and [t[0] for t in table2[1:]] == [r["id"] for r in rows[:2]]
