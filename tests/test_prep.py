"""echostream-prep-s2st: from list files + unit files to a data folder fairseq trains on."""
import csv
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from conftest import build, cli, run
from echostream_fairseq import features
from echostream_fairseq.prep import tts
from echostream_fairseq.prep.corpus import make_corpus
from echostream_fairseq.prep.s2st import CONTINUED_FILES, PrepOptions, prepare_from_lists


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = make_corpus(tmp_path_factory.mktemp("c"), "es-en", {"train": 14, "dev": 3, "test": 3}, seed=1)
    lists = [root / f"{s}.tsv" for s in ("train", "dev", "test")]
    run([cli("echostream-extract-units"), "--lists", *lists, "--out", root / "units", "--num-units", 20])
    return root


def _lists(root):
    return [root / f"{s}.tsv" for s in ("train", "dev", "test")]


def _copy(corpus, tmp_path):
    dst = tmp_path / "corpus"
    shutil.copytree(corpus, dst)
    return dst


def _edit(lst, line, col, value):
    rows = list(csv.reader(open(lst, encoding="utf-8"), delimiter="\t", quoting=csv.QUOTE_NONE))
    rows[line - 1][rows[0].index(col)] = value
    with open(lst, "w", newline="", encoding="utf-8") as f:
        csv.writer(f, delimiter="\t", quoting=csv.QUOTE_NONE, lineterminator="\n").writerows(rows)
    return rows[line - 1][0]


def test_prepared_folder_trains_one_step(corpus, tmp_path):
    out = tmp_path / "prepared"
    run([cli("echostream-prep-s2st"), "--lists", *_lists(corpus), "--units-dir", corpus / "units", "--num-units", 20,
         "--out", out, "--src-vocab", 60, "--tgt-vocab", 60])
    for name in ("train.tsv", "dev.tsv", "test.tsv", "gcmvn.npz", "spm_src.model", "spm_tgt.model", "dict_src.txt",
                 "dict_tgt.txt", "config.yaml", "config_mtl.yaml", "src_text/test.tsv", "tgt_text/train.tsv"):
        assert (out / name).exists(), name
    task, model, crit, _ = build(out)
    task.load_dataset("train")
    ds = task.datasets["train"]
    assert len(ds) == 14
    sample = ds.collater([ds[i] for i in range(4)])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss, _, log = crit(model, sample)
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert torch.isfinite(loss) and {"unit_loss", "mt_loss", "asr_loss", "st_loss"} <= set(log)
    # manifests reuse the corpus audio through relative paths and carry the reduced units
    row = (out / "train.tsv").read_text().splitlines()[1].split("\t")
    assert (out / row[1]).resolve().is_file()
    red = (corpus / "units" / "reduced.tsv").read_text().splitlines()
    assert row[3] in {l.split("\t")[1] for l in red}
    # the input level normalisation is set from the training speech's level
    train = [l.split("\t")[1] for l in (out / "train.tsv").read_text().splitlines()[1:]]
    peaks = [features.peak_level_db(features.fbank(features.read_audio(out / a))) for a in train]
    assert task.data_cfg.input_level == features.input_level_for(peaks)


def _expect_failure(corpus_dir, out, exc, *fragments, **kw):
    with pytest.raises(exc) as e:
        prepare_from_lists(_lists(corpus_dir), corpus_dir / "units", out, PrepOptions(num_units=20, src_vocab=60, tgt_vocab=60), **kw)
    for f in fragments:
        assert f in str(e.value), (f, str(e.value))
    assert not out.exists(), "a failed prep must not leave a folder that looks complete"
    assert not list(out.parent.glob(f".{out.name}.partial"))


def test_missing_wav(corpus, tmp_path):
    c = _copy(corpus, tmp_path)
    uid = _edit(c / "dev.tsv", 3, "src_audio", "wav/missing.wav")
    _expect_failure(c, tmp_path / "out", FileNotFoundError, "dev.tsv", "line 3", uid, "missing.wav")


def test_empty_text(corpus, tmp_path):
    c = _copy(corpus, tmp_path)
    uid = _edit(c / "train.tsv", 5, "tgt_text", " ")
    _expect_failure(c, tmp_path / "out", ValueError, "train.tsv", uid, "empty tgt_text")


def test_ids_that_differ_between_lists_and_units(corpus, tmp_path):
    c = _copy(corpus, tmp_path)
    _edit(c / "test.tsv", 2, "id", "not-in-units")
    _expect_failure(c, tmp_path / "out", FileNotFoundError, "test.tsv", "not-in-units", "no unit file")


def test_duplicate_id_across_lists(corpus, tmp_path):
    c = _copy(corpus, tmp_path)
    first_train = (c / "train.tsv").read_text().splitlines()[1].split("\t")[0]
    _edit(c / "dev.tsv", 2, "id", first_train)
    _expect_failure(c, tmp_path / "out", ValueError, "dev.tsv", first_train, "already used")


def test_wrong_sample_rate(corpus, tmp_path):
    c = _copy(corpus, tmp_path)
    row = (c / "train.tsv").read_text().splitlines()[2].split("\t")
    wav, _ = sf.read(str(c / row[1]))
    sf.write(str(c / row[1]), wav, 22050)
    _expect_failure(c, tmp_path / "out", ValueError, row[0], "22050 Hz", "--resample-source")


def test_existing_output_is_not_overwritten(corpus, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(FileExistsError, match="--overwrite"):
        prepare_from_lists(_lists(corpus), corpus / "units", out, PrepOptions(num_units=20))


def test_cvss_c_covost_adapter(tmp_path, micro_data):
    """A miniature of the released layouts: CoVoST 2 tsv + 48 kHz mp3 clips, CVSS-C tsv + wavs."""
    covost, cvss = tmp_path / "covost" / "fr", tmp_path / "cvss_c" / "fr-en"
    (covost / "clips").mkdir(parents=True)
    sentences = [("Le chat noir dort.", "The black cat sleeps."), ("Le chien mange une pomme.", "The dog eats an apple."),
                 ("La fille lit un livre.", "The girl reads a book."), ("Les oiseaux chantent.", "The birds sing.")]
    for split, idx in (("train", [0, 1, 2]), ("dev", [3]), ("test", [3])):
        (cvss / split).mkdir(parents=True)
        cv_rows, cvss_rows = [["path", "sentence", "translation", "client_id"]], []
        for i in idx:
            clip = f"common_voice_fr_{split}{i}.mp3"
            tmpwav = tmp_path / "tmp.wav"
            tts.espeak(sentences[i][0], "fr", tmpwav)
            wav, _ = sf.read(str(tmpwav))
            sf.write(str(covost / "clips" / clip), features.resample(wav.astype(np.float32), 16000, 48000), 48000, format="MP3")
            tts.flite(sentences[i][1], "slt", cvss / split / f"{clip}.wav")
            cv_rows.append([clip, sentences[i][0], sentences[i][1], "c1"])
            cvss_rows.append([clip, sentences[i][1]])
        for path, rows in ((covost / f"covost_v2.fr_en.{split}.tsv", cv_rows), (cvss / f"{split}.tsv", cvss_rows)):
            with open(path, "w", newline="") as f:
                csv.writer(f, delimiter="\t", lineterminator="\n").writerows(rows)
    lists = tmp_path / "lists"
    run([cli("echostream-prep-s2st"), "--cvss-c-root", cvss, "--covost-root", covost, "--src-lang", "fr", "--lists-out", lists])
    run([cli("echostream-extract-units"), "--lists", lists / "train.tsv", lists / "dev.tsv", lists / "test.tsv", "--out", tmp_path / "units", "--num-units", 10])
    out = tmp_path / "prepared"
    run([cli("echostream-prep-s2st"), "--lists", lists / "train.tsv", lists / "dev.tsv", lists / "test.tsv", "--units-dir", tmp_path / "units",
         "--num-units", 10, "--out", out, "--src-vocab", 30, "--tgt-vocab", 30, "--resample-source"])
    row = (out / "train.tsv").read_text().splitlines()[1].split("\t")
    assert row[0] == "common_voice_fr_train0" and row[1] == "src_audio/common_voice_fr_train0.wav"
    assert sf.info(str(out / row[1])).samplerate == 16000
    task, model, crit, _ = build(out)
    task.load_dataset("train")
    assert len(task.datasets["train"]) == 3
    # without --resample-source the 48 kHz source is refused, naming the clip
    with pytest.raises(ValueError, match="common_voice_fr_train0.mp3.*48000 Hz"):
        prepare_from_lists([lists / "train.tsv"], tmp_path / "units", tmp_path / "p2", PrepOptions(num_units=10))
    # an id in CVSS-C without a CoVoST row is named
    with open(cvss / "dev.tsv", "a") as f:
        f.write("common_voice_fr_ghost.mp3\tGhost.\n")
    p = __import__("subprocess").run([cli("echostream-prep-s2st"), "--cvss-c-root", str(cvss), "--covost-root", str(covost),
                                       "--src-lang", "fr", "--lists-out", str(tmp_path / "l2")], capture_output=True, text=True)
    assert p.returncode != 0 and "common_voice_fr_ghost.mp3" in p.stderr


def test_toy_recipe_script_runs_and_resumes(tmp_path):
    import os
    import subprocess

    from conftest import REPO

    env = dict(os.environ, N_TRAIN="10", N_DEV="2", N_TEST="2", K="12", SRC_VOCAB="60", TGT_VOCAB="60")
    script = REPO / "examples" / "toy_es_en" / "prepare_data.sh"
    p = subprocess.run(["bash", script, tmp_path / "toy"], capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    prepared = tmp_path / "toy" / "es-en" / "prepared"
    assert (prepared / "config.yaml").is_file() and len((prepared / "train.tsv").read_text().splitlines()) == 11
    # second run: every stage is complete and skipped
    p = subprocess.run(["bash", script, tmp_path / "toy"], capture_output=True, text=True, env=env)
    assert p.returncode == 0 and "took" not in p.stdout + p.stderr
    # more training sentences for the same model (CONTINUE_FROM): the same dev sentences, the first
    # folder's quantiser, sentencepiece models and CMVN
    more = dict(env, N_TRAIN="14", CONTINUE_FROM=str(prepared))
    p = subprocess.run(["bash", script, tmp_path / "more"], capture_output=True, text=True, env=more)
    assert p.returncode == 0, p.stderr[-3000:]
    grown = tmp_path / "more" / "es-en"
    assert len((grown / "prepared" / "train.tsv").read_text().splitlines()) == 15
    assert (grown / "dev.tsv").read_text() == (tmp_path / "toy" / "es-en" / "dev.tsv").read_text()
    assert "--kmeans" in p.stdout  # the first folder's quantiser, carried by the new units folder (not fitted again)
    assert (grown / "units" / "kmeans.npy").read_bytes() == (tmp_path / "toy" / "es-en" / "units" / "kmeans.npy").read_bytes()
    for name in CONTINUED_FILES:
        assert (grown / "prepared" / name).read_bytes() == (prepared / name).read_bytes(), name
    # a further pair continued from shipped assets alone: the quantiser in assets/units/, the pair's
    # model folder (sentencepiece models, CMVN) in assets/pairs/<pair>/model/, no prepared/ folder
    ko = dict(env, PAIR="ko-en", SRC_VOCAB="120")  # Hangul needs more pieces than its characters
    p = subprocess.run(["bash", script, tmp_path / "toy"], capture_output=True, text=True, env=ko)
    assert p.returncode == 0, p.stderr[-3000:]
    shipped = tmp_path / "assets"
    (shipped / "units").mkdir(parents=True)
    shutil.copy(tmp_path / "toy" / "es-en" / "units" / "kmeans.npy", shipped / "units")
    model = shipped / "pairs" / "ko-en" / "model"
    model.mkdir(parents=True)
    for name in CONTINUED_FILES:
        shutil.copy(tmp_path / "toy" / "ko-en" / "prepared" / name, model)
    p = subprocess.run(["bash", script, tmp_path / "again"], capture_output=True, text=True,
                       env=dict(ko, N_TRAIN="14", SHARED=str(shipped), CONTINUE_FROM=str(model)))
    assert p.returncode == 0, p.stderr[-3000:]
    again = tmp_path / "again" / "ko-en"
    assert (again / "units" / "kmeans.npy").read_bytes() == (shipped / "units" / "kmeans.npy").read_bytes()
    for name in CONTINUED_FILES:
        assert (again / "prepared" / name).read_bytes() == (model / name).read_bytes(), name
    # another target voice: a pair sharing es-en's units (spoken by slt) is refused; es-en continued
    # from a model whose quantiser was fitted on slt gets units of its own, and records the voice
    p = subprocess.run(["bash", script, tmp_path / "toy"], capture_output=True, text=True, env=dict(ko, TARGET_VOICE="rms"))
    assert p.returncode == 1 and "spoken by flite's slt, but TARGET_VOICE=rms" in p.stderr
    p = subprocess.run(["bash", script, tmp_path / "rms"], capture_output=True, text=True, env=dict(more, TARGET_VOICE="rms"))
    assert p.returncode == 0, p.stderr[-3000:]
    rms = tmp_path / "rms" / "es-en"
    assert "fitted on flite's slt; TARGET_VOICE=rms gets its own units" in p.stdout
    assert (rms / "units" / "target_voice.txt").read_text() == "rms\n" == (rms / "wav" / "target_voice.txt").read_text()
    assert (rms / "units" / "kmeans.npy").read_bytes() != (tmp_path / "toy" / "es-en" / "units" / "kmeans.npy").read_bytes()
    assert (rms / "dev.tsv").read_text() == (tmp_path / "toy" / "es-en" / "dev.tsv").read_text()  # the same sentences
    assert (rms / "wav" / "es-en-dev-00000_tgt.wav").read_bytes() != (tmp_path / "toy" / "es-en" / "wav" / "es-en-dev-00000_tgt.wav").read_bytes()
    for name in CONTINUED_FILES:  # the source side as the continued model learned it
        assert (rms / "prepared" / name).read_bytes() == (prepared / name).read_bytes(), name


def test_add_splits_to_an_existing_folder(corpus, tmp_path):
    """--add-to: an evaluation split joins a prepared folder with the folder's own sentencepiece
    models; nothing else in the folder changes, and the task loads the new split."""
    out = tmp_path / "prepared"
    prepare_from_lists(_lists(corpus)[:2], corpus / "units", out, PrepOptions(num_units=20, src_vocab=60, tgt_vocab=60))
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    run([cli("echostream-prep-s2st"), "--add-to", out, "--lists", corpus / "test.tsv", "--units-dir", corpus / "units"])
    for name, data in before.items():
        assert (out / name).read_bytes() == data, name
    task, _, _, _ = build(out)
    task.load_dataset("test")
    assert len(task.datasets["test"]) == 3
    row = (out / "test.tsv").read_text().splitlines()[1].split("\t")
    assert (out / row[1]).resolve().is_file() and int(row[2]) > 0
    # a split the folder has, or a training split, is refused with the file named
    with pytest.raises(AssertionError, match="already has the split test"):
        run([cli("echostream-prep-s2st"), "--add-to", out, "--lists", corpus / "test.tsv", "--units-dir", corpus / "units"])
    with pytest.raises(AssertionError, match="training splits belong"):
        run([cli("echostream-prep-s2st"), "--add-to", out, "--lists", corpus / "train.tsv", "--units-dir", corpus / "units"])


def test_a_second_pair_shares_the_target_sentencepiece_model(corpus, tmp_path):
    """--tgt-spm: a folder built with another folder's target model has the same target
    dictionary (so pairs into one language share the decoder's vocabulary), its own source side."""
    first = tmp_path / "first"
    prepare_from_lists(_lists(corpus)[:2], corpus / "units", first, PrepOptions(num_units=20, src_vocab=60, tgt_vocab=60))
    second = tmp_path / "second"
    run([cli("echostream-prep-s2st"), "--lists", *_lists(corpus)[:2], "--units-dir", corpus / "units", "--num-units", 20,
         "--out", second, "--src-vocab", 50, "--tgt-vocab", 30, "--tgt-spm", first / "spm_tgt.model"])
    assert (second / "spm_tgt.model").read_bytes() == (first / "spm_tgt.model").read_bytes()
    assert (second / "dict_tgt.txt").read_text() == (first / "dict_tgt.txt").read_text()
    task, _, _, _ = build(second)
    task.load_dataset("train")
    with pytest.raises(AssertionError, match="target sentencepiece model not found"):
        run([cli("echostream-prep-s2st"), "--lists", *_lists(corpus)[:2], "--units-dir", corpus / "units", "--num-units", 20,
             "--out", tmp_path / "third", "--tgt-spm", tmp_path / "nope.model"])


def test_more_training_data_continues_a_folders_model(corpus, tmp_path):
    """--continue-from: a folder built from more (here: other) training sentences keeps the first
    folder's sentencepiece models, dictionaries and CMVN, so the first folder's model reads it as
    it learned; fitted anew they would differ."""
    first = tmp_path / "first"
    prepare_from_lists(_lists(corpus)[:2], corpus / "units", first, PrepOptions(num_units=20, src_vocab=60, tgt_vocab=60))
    more = _copy(corpus, tmp_path)
    rows = (more / "train.tsv").read_text().splitlines()
    half = rows[: 1 + (len(rows) - 1) // 2]  # other training sentences: half of the first's
    (more / "train.tsv").write_text("\n".join(half) + "\n")
    lists = [more / "train.tsv", more / "dev.tsv"]
    fresh = tmp_path / "fresh"
    prepare_from_lists(lists, corpus / "units", fresh, PrepOptions(num_units=20, src_vocab=60, tgt_vocab=60))
    kept = tmp_path / "kept"
    cfg = yaml.safe_load((first / "config.yaml").read_text())
    cfg["input_level"]["target_db"] = -33.0  # the level the first folder's model learned at is kept too
    (first / "config.yaml").write_text(yaml.safe_dump(cfg))
    run([cli("echostream-prep-s2st"), "--lists", *lists, "--units-dir", corpus / "units", "--num-units", 20,
         "--out", kept, "--continue-from", first])
    assert yaml.safe_load((kept / "config.yaml").read_text())["input_level"] == cfg["input_level"]
    assert yaml.safe_load((fresh / "config.yaml").read_text())["input_level"]["target_db"] != -33.0
    for name in ("spm_src.model", "spm_tgt.model", "dict_src.txt", "dict_tgt.txt", "gcmvn.npz"):
        assert (kept / name).read_bytes() == (first / name).read_bytes(), name
    assert any((fresh / n).read_bytes() != (first / n).read_bytes() for n in ("spm_src.model", "gcmvn.npz"))
    # the same sentence is labelled as in the first folder; the manifest holds the new rows
    assert (kept / "src_text" / "dev.tsv").read_text() == (first / "src_text" / "dev.tsv").read_text()
    assert len((kept / "train.tsv").read_text().splitlines()) == len(half)
    task, _, _, _ = build(kept)
    task.load_dataset("train")
    # a folder without what it must keep, or a second target model beside it, is an error naming it
    with pytest.raises(AssertionError, match="no gcmvn.npz"):
        (tmp_path / "broken").mkdir()
        for name in ("spm_src.model", "spm_tgt.model"):
            shutil.copyfile(first / name, tmp_path / "broken" / name)
        run([cli("echostream-prep-s2st"), "--lists", *lists, "--units-dir", corpus / "units", "--num-units", 20,
             "--out", tmp_path / "x", "--continue-from", tmp_path / "broken"])
    with pytest.raises(AssertionError, match="drop --tgt-spm"):
        run([cli("echostream-prep-s2st"), "--lists", *lists, "--units-dir", corpus / "units", "--num-units", 20,
             "--out", tmp_path / "y", "--continue-from", first, "--tgt-spm", first / "spm_tgt.model"])
