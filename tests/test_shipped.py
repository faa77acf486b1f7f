"""The shipped default under assets/: checksums, size, translation quality floor, the demo and
echostream-translate as users run them."""
import json
import subprocess

import numpy as np
import pytest
import sacrebleu
import soundfile as sf
import torch

from conftest import REPO, cli, run
from echostream_fairseq import assets, features
from echostream_fairseq.streaming.engine import load_resources
from echostream_fairseq.streaming.replay import replay

ROOT = assets.REPO_ASSETS
PAIRS = assets.shipped_pairs(ROOT)  # es-en (ROOT itself), then assets/pairs/*
FLOOR = 20.0  # mean sentence BLEU on the bundled examples
KEYS = ("offline_bleu", "asr_ctc_wer", "offline_asr_bleu", "stream320_bleu", "stream320_asr_bleu",
        "stream320_al_ms", "stream320_al_ca_ms", "resynth_wer", "original_wer", "offline_repeats_per_100w",
        "stream320_repeats_per_100w", "unseen_offline_bleu", "unseen_offline_asr_bleu", "offline_uer", "stream320_uer",
        "offline_over_length_bound", "unseen_offline_over_length_bound", "stream320_over_length_bound")


def test_shipped_checksums_match_and_size_is_bounded():
    assert assets.verify(ROOT) == []
    listed = {l.split("  ", 1)[1] for l in (ROOT / assets.MANIFEST).read_text().splitlines()}
    on_disk = {p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*") if p.is_file()} - {assets.MANIFEST, assets.RESULTS}
    assert listed == on_disk
    assert assets.total_size(ROOT) <= 25 * 2**20
    results = json.loads((ROOT / assets.RESULTS).read_text())
    # every shipped pair measured by the recipe: the default pair's figures, then each further pair's
    per_pair = {"es-en": results["results"], **{k: v["results"] for k, v in results.get("pairs", {}).items()}}
    assert set(per_pair) == set(PAIRS)
    for pair, figures in per_pair.items():
        for k in KEYS:
            assert k in figures, (pair, k)


def test_a_damaged_asset_is_reported(tmp_path):
    import shutil

    copy = tmp_path / "assets"
    shutil.copytree(ROOT, copy)
    dict_tgt = copy / "model" / "dict_tgt.txt"
    dict_tgt.write_text(dict_tgt.read_text() + "extra 1\n")
    (copy / "units" / "kmeans.npy").unlink()
    problems = assets.verify(copy)
    assert any(str(dict_tgt) in p and "checksum" in p for p in problems)
    assert any("kmeans.npy" in p and "missing" in p for p in problems)
    p = subprocess.run([cli("echostream-translate"), assets.read_examples(ROOT)[0]["src_audio"], tmp_path / "o.wav",
                        "--assets", copy], capture_output=True, text=True)
    assert p.returncode == 2 and "damaged" in p.stderr and not (tmp_path / "o.wav").exists()


def _mean_sentence_bleu(res, examples):
    scores = []
    for ex in examples:
        r = replay(res, features.read_audio(ex["src_audio"]), 320, speech=False)
        scores.append(sacrebleu.sentence_bleu(r.translation, [ex["tgt_text"]], lowercase=True).score)
    return float(np.mean(scores))


@pytest.mark.parametrize("pair", list(PAIRS))
def test_shipped_model_translates_the_examples_above_a_random_floor(pair):
    root = PAIRS[pair]
    examples = assets.read_examples(root)
    assert len(examples) >= 3
    res = load_resources(root / "model" / "checkpoint.pt", root / "model", vocoder=False)
    shipped = _mean_sentence_bleu(res, examples)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in res.model.parameters():  # same architecture and dictionaries, random weights
            p.copy_(torch.randn_like(p) * p.float().std().clamp(min=1e-3))
    random = _mean_sentence_bleu(res, examples)
    assert random < FLOOR < shipped, (random, shipped)


def test_raising_the_lag_never_lowers_al_on_the_examples():
    from echostream_fairseq.streaming.engine import PolicyConfig

    res = load_resources(ROOT / "model" / "checkpoint.pt", ROOT / "model", vocoder=False)
    wavs = [features.read_audio(ex["src_audio"]) for ex in assets.read_examples(ROOT)]
    al = {k: float(np.mean([replay(res, w, 320, PolicyConfig(lag_k=k), speech=False).latency()["AL"] for w in wavs]))
          for k in (0, 1, 2, 4)}
    assert all(al[a] <= al[b] for a, b in zip(sorted(al), sorted(al)[1:])), al
    assert al[4] > al[0], al


def test_ctc_support_commits_early_only_what_the_st_ctc_heard():
    """With a lag no sentence reaches, only CTC support lets tokens out before the end: every
    token past the first (the whole-word look-ahead) is one the ST-CTC has counted, as often."""
    from collections import Counter

    from echostream_fairseq.streaming.engine import PolicyConfig, StreamingSession

    res = load_resources(ROOT / "model" / "checkpoint.pt", ROOT / "model", vocoder=False)
    examples = assets.read_examples(ROOT)
    early = {}
    for support in (None, 0):
        early[support] = 0
        for ex in examples:
            wav = features.read_audio(ex["src_audio"])
            s = StreamingSession(res, PolicyConfig(lag_k=50, support_lag=support), speech=False)
            for i in range(0, len(wav), 5120):
                s.step(wav[i : i + 5120])
                st = [s._st_as_mt[t] for t in s.st] if s._st_as_mt else list(s.st)
                assert not Counter(s.committed[1:]) - Counter(st), (ex["id"], s.committed, st)
            early[support] += len(s.committed)  # before the end of the source
            s.finish()
            assert s.translation, ex["id"]
    assert early[None] <= len(examples) < early[0], early  # lag 50 alone: at most one token per example


@pytest.mark.slow
def test_make_demo_streams_the_examples(tmp_path):
    out = tmp_path / "demo"
    p = run(["make", "-s", "-C", REPO, "demo", f"DEMO_OUT={out}"])
    examples = [ex for root in PAIRS.values() for ex in assets.read_examples(root)]  # every shipped pair's
    for ex in examples:
        assert f"== {ex['id']}" in p.stdout
        wav, sr = sf.read(out / f"{ex['id']}.wav", dtype="float32")
        assert sr == 16000 and len(wav) > 8000 and np.abs(wav).max() > 0.05, ex["id"]
    assert p.stdout.count("translation:") == len(examples)
    assert p.stdout.count("latency (computation-aware): AL") == len(examples)
    assert "ms read" in p.stdout  # the translation as it grows, with timestamps


def test_translate_cli_takes_any_rate_and_channels(tmp_path):
    wav = features.read_audio(assets.read_examples(ROOT)[0]["src_audio"])
    stereo = np.stack([features.resample(wav, 16000, 44100)] * 2, axis=1)
    sf.write(tmp_path / "in.wav", stereo, 44100)
    p = run([cli("echostream-translate"), tmp_path / "in.wav", tmp_path / "out.wav", "--segment-ms", 160])
    assert "44100" not in p.stderr and "translation:" in p.stdout
    out, sr = sf.read(tmp_path / "out.wav", dtype="float32")
    assert sr == 16000 and np.abs(out).max() > 0.05


def test_translate_cli_on_silence_says_nothing_and_says_so(tmp_path):
    sf.write(tmp_path / "quiet.wav", np.zeros(32000, dtype=np.float32), 16000)
    p = run([cli("echostream-translate"), tmp_path / "quiet.wav", tmp_path / "out.wav"])
    assert "latency (plain): none (no output)" in p.stdout and "nan" not in p.stdout
    assert sf.read(tmp_path / "out.wav")[0].size == 0


def test_translate_cli_names_a_bad_input(tmp_path):
    bad = tmp_path / "notes.wav"
    bad.write_text("not audio")
    p = subprocess.run([cli("echostream-translate"), bad, tmp_path / "out.wav"], capture_output=True, text=True)
    assert p.returncode == 2 and str(bad) in p.stderr and not (tmp_path / "out.wav").exists()


@pytest.mark.slow
def test_shipped_vocoder_resynthesises_held_out_speech_intelligibly(tmp_path):
    """20 held-out test sentences of the toy corpus (its test split: the same sampling as the
    recipe's), spoken by the target voice, quantised by the shipped k-means, resynthesised by the
    shipped vocoder with predicted durations: Whisper's WER within 10 points of the original
    speech. (The whole test set's figure is in results.json.)"""
    from echostream_fairseq.evaluation.asr_bleu import WhisperASR, normalise
    from echostream_fairseq.evaluation.recipe import wer
    from echostream_fairseq.prep import tts
    from echostream_fairseq.prep.corpus import TARGET_VOICE, grammar_sentences
    from echostream_fairseq.prep.units import assign, load_quantiser, reduce_units, unit_features
    from echostream_fairseq.vocoder import UnitVocoder

    test = grammar_sentences("es", {"train": 3600, "dev": 200, "test": 200}, seed=0)["test"][:20]
    centroids = load_quantiser(ROOT / "units" / "kmeans.npy")
    cfg = ROOT / "model" / "vocoder" / "config.json"
    voc = UnitVocoder(next((ROOT / "model" / "vocoder").glob("g_*")), cfg)
    assert voc.num_units == centroids.shape[0]
    asr = WhisperASR()
    hyp_orig, hyp_re, refs = [], [], []
    for i, (_, en) in enumerate(test):
        wav_path = tmp_path / f"{i}.wav"
        tts.flite(en, TARGET_VOICE, wav_path)
        wav = features.read_audio(wav_path)
        units, _ = reduce_units(assign(unit_features(wav), centroids))
        re_wav = voc(torch.tensor(units)).numpy()
        hyp_orig.append(normalise(asr(wav)).split())
        hyp_re.append(normalise(asr(re_wav)).split())
        refs.append(normalise(en).split())
    w_orig, w_re = wer(hyp_orig, refs), wer(hyp_re, refs)
    assert w_re <= w_orig + 10, (w_re, w_orig)


@pytest.mark.slow
def test_a_further_pair_exports_beside_the_shipped_one_and_shares_its_vocoder(tmp_path):
    """--pair-of: a second pair goes to assets/pairs/<pair>/ with its own model and examples and
    the shipped vocoder; the manifest covers it, the size bound holds for the whole folder, and
    the CLIs pick it with --pair. (The shipped es-en model stands in for the second model.)"""
    import shutil

    from echostream_fairseq.prep.corpus import read_list, write_tsv

    copy = tmp_path / "assets"
    shutil.copytree(ROOT, copy)
    rows = read_list(ROOT / "examples" / "examples.tsv")
    lst = tmp_path / "xx" / "test.tsv"
    lst.parent.mkdir()
    for r in rows:
        shutil.copyfile(ROOT / "examples" / r["src_audio"], lst.parent / r["src_audio"])
    write_tsv(lst, ["id", "src_audio", "src_text", "tgt_text"],
              [[r["id"].replace("es-en", "xx-en"), r["src_audio"], r["src_text"], r["tgt_text"]] for r in rows])
    # figures of an earlier xx-en (replaced: dropped) and of another pair (kept) in results.json
    res = json.loads((copy / assets.RESULTS).read_text())
    assets.write_json(copy / assets.RESULTS, {**res, "pairs": {**res.get("pairs", {}), "xx-en": {"results": {"offline_bleu": 1.0}},
                                                               "yy-en": {"results": {"offline_bleu": 2.0}}}})
    export = [cli("echostream-export-assets"), "--pair-of", copy, "--checkpoint", ROOT / "model" / "checkpoint.pt",
              "--data-dir", ROOT / "model", "--punct", ROOT / "model" / "punct.pt", "--policy", ROOT / "model" / "policy.yaml",
              "--examples-list", lst, "--num-examples", "2"]
    tight = f"{assets.total_size(copy) / 2**20 + 0.5:.1f}"  # less room than a model takes
    p = subprocess.run([*export, "--max-mb", tight], capture_output=True, text=True)
    assert p.returncode == 2 and f"more than --max-mb {tight}" in p.stderr and not (copy / "pairs" / "xx-en").exists()
    p = subprocess.run([*export, "--max-mb", "40", "--unit-blank-penalty", "-1"], capture_output=True, text=True)
    assert p.returncode == 2 and "--unit-blank-penalty: must be a finite number >= 0, got -1" in p.stderr
    p = subprocess.run([*export, "--max-mb", "40", "--unit-blank-penalty", "1.5"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    import yaml

    assert yaml.safe_load((copy / "pairs" / "xx-en" / "model" / "config.yaml").read_text())["unit_blank_penalty"] == 1.5
    assert assets.verify(copy) == [] and list(assets.shipped_pairs(copy)) == list(PAIRS) + ["xx-en"]
    assert not (copy / "pairs" / "xx-en" / "model" / "vocoder").exists()  # the vocoder is shared
    after = json.loads((copy / assets.RESULTS).read_text())
    assert after["results"] == res["results"] and "xx-en" not in after["pairs"] and after["pairs"]["yy-en"]["results"] == {"offline_bleu": 2.0}
    outs = {}
    for pair in ("es-en", "xx-en"):
        r = subprocess.run([cli("echostream-translate"), ROOT / "examples" / rows[0]["src_audio"],
                            tmp_path / f"{pair}.wav", "--assets", copy, "--pair", pair], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        outs[pair] = [l for l in r.stdout.splitlines() if "translation:" in l][-1]
    assert outs["es-en"] == outs["xx-en"]  # the same model and policy behind both pairs, through the shared vocoder
    assert sf.info(str(tmp_path / "xx-en.wav")).frames > 0


@pytest.mark.slow
def test_a_new_vocoder_reaches_the_further_pairs(tmp_path):
    """Exporting the default pair again with another vocoder points every further pair's model
    config at it (the old generator is gone) and drops their figures, which that vocoder did not
    speak; the same vocoder again keeps them."""
    import shutil

    import yaml

    copy = tmp_path / "assets"
    shutil.copytree(ROOT, copy)
    further = [p for p in PAIRS if p != "es-en"]
    assert further, "no further pair is shipped"
    figures = {p: {"results": {"offline_bleu": 1.0}} for p in further}
    assets.write_json(copy / assets.RESULTS, {"results": {"offline_bleu": 2.0}, "pairs": figures})
    voc = tmp_path / "voc"
    voc.mkdir()
    shutil.copyfile(ROOT / "model" / "vocoder" / "config.json", voc / "config.json")
    shutil.copyfile(next((ROOT / "model" / "vocoder").glob("g_*")), voc / "g_00000007")
    quantiser = tmp_path / "units"  # as the data kit leaves it: the voice it was fitted on beside it
    quantiser.mkdir()
    shutil.copyfile(ROOT / "units" / "kmeans.npy", quantiser / "kmeans.npy")
    (quantiser / "target_voice.txt").write_text("rms\n")
    export = [cli("echostream-export-assets"), "--out", copy, "--checkpoint", ROOT / "model" / "checkpoint.pt", "--data-dir", ROOT / "model",
              "--vocoder", voc / "g_00000007", "--kmeans", quantiser / "kmeans.npy",
              "--examples-list", ROOT / "examples" / "examples.tsv", "--num-examples", "2", "--model-fp16",
              "--punct", ROOT / "model" / "punct.pt"]
    p = run(export)
    assert f"the figures of {', '.join(further)} are dropped" in p.stdout, p.stdout
    punct = torch.load(copy / "model" / "punct.pt", weights_only=True)["model"]  # --model-fp16 halves it too
    assert {v.dtype for v in punct.values()} == {torch.float16}
    assert [g.name for g in (copy / "model" / "vocoder").glob("g_*")] == ["g_00000007"]
    assert (copy / "units" / "target_voice.txt").read_text() == "rms\n"
    for pair in further:
        model = copy / "pairs" / pair / "model"
        cfg = yaml.safe_load((model / "config.yaml").read_text())["vocoder"]
        assert cfg["checkpoint"] == "../../../model/vocoder/g_00000007", cfg
        assert (model / cfg["checkpoint"]).resolve() == (copy / "model" / "vocoder" / "g_00000007").resolve()
    assert assets.verify(copy) == [] and not (copy / assets.RESULTS).exists()  # nothing in it is valid any more
    assets.write_json(copy / assets.RESULTS, {"pairs": figures})
    p = run(export)
    assert "dropped" not in p.stdout and json.loads((copy / assets.RESULTS).read_text()) == {"pairs": figures}


def test_translate_cli_runs_each_pair_with_its_own_policy(tmp_path, capsys):
    """A shipped model folder's policy.yaml (ko-en's) sets that pair's gating; a flag overrides it."""
    from echostream_fairseq.cli import translate
    from echostream_fairseq.streaming.policy import PolicyConfig

    lags = {pair: PolicyConfig.read_model_file(root / "model").get("lag_k", PolicyConfig.lag_k) for pair, root in PAIRS.items()}
    assert len(set(lags.values())) > 1, lags  # the shipped pairs do not all run the default
    sf.write(tmp_path / "quiet.wav", np.zeros(8000, dtype=np.float32), 16000)
    runs = [([p], lag) for p, lag in lags.items()] + [(["ko-en", "--lag-k", "5"], 5)]
    for (pair, *flags), lag in runs:
        translate.main([str(tmp_path / "quiet.wav"), str(tmp_path / "out.wav"), "--pair", pair, *flags])
        assert f"policy: lag_k={lag} " in capsys.readouterr().out, (pair, flags)
