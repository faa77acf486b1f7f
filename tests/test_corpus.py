"""The toy corpus: determinism, disjoint splits, held-out combinations, real German set."""
import filecmp
import re

import pytest
import soundfile as sf

from conftest import cli, run
from echostream_fairseq.prep import lexicon as L
from echostream_fairseq.prep.corpus import SPLITS, freedict_sentences, grammar_sentences, make_corpus, read_list
from echostream_fairseq.prep.grammar import Grammar

SIZES = {"train": 12, "dev": 3, "test": 4}


@pytest.fixture(scope="module")
def two_es_corpora(tmp_path_factory):
    a = make_corpus(tmp_path_factory.mktemp("a"), "es-en", SIZES, seed=5)
    b = make_corpus(tmp_path_factory.mktemp("b"), "es-en", SIZES, seed=5)
    return a, b


def test_same_seed_gives_identical_text_and_lists(two_es_corpora):
    a, b = two_es_corpora
    for split in SPLITS:
        for name in (f"{split}.tsv", f"{split}.es", f"{split}.en"):
            assert filecmp.cmp(a / name, b / name, shallow=False), name
    rows = read_list(a / "train.tsv")
    assert len(rows) == 12
    for r in rows[:4]:  # and the same audio, byte for byte (sox's dither is repeatable)
        for side in ("src_audio", "tgt_audio"):
            assert filecmp.cmp(a / r[side], b / r[side], shallow=False), r[side]
    for r in rows[:3]:
        for side in ("src", "tgt"):
            info = sf.info(str(a / r[f"{side}_audio"]))
            assert info.samplerate == 16000 and info.channels == 1 and info.duration > 0.3


def test_different_seed_gives_a_different_corpus():
    a = grammar_sentences("es", SIZES, seed=1)
    b = grammar_sentences("es", SIZES, seed=2)
    assert a["train"] != b["train"]


@pytest.mark.parametrize("lang", ["es", "ko"])
def test_splits_disjoint_and_test_has_unseen_combinations(lang):
    sizes = {"train": 300, "dev": 40, "test": 40}
    s = grammar_sentences(lang, sizes, seed=0)
    srcs = {split: {src for src, _ in s[split]} for split in SPLITS}
    assert all(len(srcs[k]) == sizes[k] for k in SPLITS)
    assert not (srcs["train"] & srcs["dev"]) and not (srcs["train"] & srcs["test"]) and not (srcs["dev"] & srcs["test"])
    heldout = Grammar(lang, seed=0).heldout
    nouns = {n.en_sg: n for n in L.NOUNS}

    def combos(en):
        words = re.findall(r"[a-z]+", en.lower())
        found = set()
        for (adj, noun) in heldout:
            n = nouns[noun]
            for form in {n.en_sg, n.en_pl}:
                if re.search(rf"\b{adj} {form}\b", " ".join(words)):
                    found.add((adj, noun))
        return found

    assert not any(combos(en) for _, en in s["train"] + s["dev"])
    with_unseen = sum(bool(combos(en)) for _, en in s["test"])
    assert with_unseen == 20  # half of the test set, by construction
    for split in SPLITS:
        for src, en in s[split]:
            assert 3 <= len(re.findall(r"[^\s¿?.!,]+", src)) <= 15


def test_korean_and_german_pairs(tmp_path):
    ko = make_corpus(tmp_path, "ko-en", {"train": 4, "dev": 2, "test": 2}, seed=0)
    rows = read_list(ko / "test.tsv")
    assert all(re.search(r"[가-힣]", r["src_text"]) for r in rows)
    assert all(r["src_voice"].startswith("ko") for r in rows)
    de = freedict_sentences({"train": 4000, "dev": 100, "test": 100}, seed=0)
    pairs = [p for split in SPLITS for p in de[split]]
    assert len({src for src, _ in pairs}) == 4200
    assert all(src[0].isupper() and en[0].isupper() for src, en in pairs)
    assert freedict_sentences({"train": 10, "dev": 2, "test": 2}, seed=0) == freedict_sentences({"train": 10, "dev": 2, "test": 2}, seed=0)


def test_cli_help_and_stats(tmp_path):
    p = run([cli("echostream-make-toy-corpus"), "--help"])
    assert "--pairs" in p.stdout and "de-en" in p.stdout
    run([cli("echostream-make-toy-corpus"), "--out", tmp_path, "--pairs", "es-en", "--train", 4, "--dev", 1, "--test", 2])
    import json

    stats = json.loads((tmp_path / "es-en" / "stats.json").read_text())
    assert stats["splits"]["train"]["utterances"] == 4 and stats["splits"]["test"]["hours_src"] > 0
    assert stats["vocab_src"] > 5


def test_rerun_skips_finished_wavs_and_list_marks_completion(tmp_path):
    root = make_corpus(tmp_path, "es-en", {"train": 3, "dev": 1, "test": 1}, seed=0)
    wav = root / "wav" / "es-en-train-00000_src.wav"
    before = wav.stat().st_mtime_ns
    make_corpus(tmp_path, "es-en", {"train": 3, "dev": 1, "test": 1}, seed=0)
    assert wav.stat().st_mtime_ns == before
    assert not list(root.glob(".*tmp*")) and not list((root / "wav").glob(".*tmp*"))


def _voice_settings(rows):
    """(variant, rate, pitch) of each row's src_voice column ('es+m1 r150 p40')."""
    out = []
    for r in rows:
        voice, rate, pitch = r["src_voice"].split()
        out.append((voice.split("+", 1)[1] if "+" in voice else "", int(rate[1:]), int(pitch[1:])))
    return out


def test_unseen_voice_split_is_disjoint_from_training_voices(tmp_path):
    """--unseen-voices: the test sentences again, spoken by variants, rates and pitches that no
    other split of the corpus uses (checked against the list files the corpus wrote)."""
    run([cli("echostream-make-toy-corpus"), "--out", tmp_path, "--pairs", "es-en", "--train", 30, "--dev", 4,
         "--test", 12, "--unseen-voices", "--seed", 3])
    root = tmp_path / "es-en"
    seen = [v for split in SPLITS for v in _voice_settings(read_list(root / f"{split}.tsv"))]
    unseen_rows = read_list(root / "test_unseen.tsv")
    unseen = _voice_settings(unseen_rows)
    assert [r["src_text"] for r in unseen_rows] == [r["src_text"] for r in read_list(root / "test.tsv")]
    assert {v for v, _, _ in unseen}.isdisjoint({v for v, _, _ in seen})
    assert {r for _, r, _ in unseen}.isdisjoint({r for _, r, _ in seen})
    assert {p for _, _, p in unseen}.isdisjoint({p for _, _, p in seen})
    # and from everything training could ever draw
    from echostream_fairseq.prep.corpus import TRAIN_PITCHES, TRAIN_RATES, TRAIN_VARIANTS

    assert not {f"+{v}" for v, _, _ in unseen} & set(TRAIN_VARIANTS)
    assert all(not TRAIN_RATES[0] <= r <= TRAIN_RATES[1] and not TRAIN_PITCHES[0] <= p <= TRAIN_PITCHES[1] for _, r, p in unseen)
    assert sf.info(str(root / unseen_rows[0]["src_audio"])).duration > 0.3


def test_training_voices_are_every_installed_variant_but_the_unseen_ones():
    """Training draws from (almost) every espeak-ng variant; dev and test keep their eleven; none
    is an unseen-voice variant or a numbered sibling of one (iven -> iven2)."""
    import subprocess

    from echostream_fairseq.prep.corpus import ESPEAK_VARIANTS, TRAIN_VARIANTS, UNSEEN_VARIANTS, _voice

    listing = subprocess.run(["espeak-ng", "--voices=variant"], check=True, capture_output=True, text=True).stdout
    installed = {line.split()[4].split("/", 1)[1] for line in listing.splitlines()[1:] if line.split()}
    assert {v[1:] for v in TRAIN_VARIANTS + UNSEEN_VARIANTS if v} <= installed
    assert len(set(TRAIN_VARIANTS)) == len(TRAIN_VARIANTS) > 70
    unseen_names = {v[1:] for v in UNSEEN_VARIANTS}
    for v in TRAIN_VARIANTS:
        base = re.sub(r"\d+$", "", v[1:])
        assert v[1:] not in unseen_names and (base not in unseen_names or v in ESPEAK_VARIANTS), v
    drawn = {split: {_voice(f"es-en-{split}-{i:05d}", 0, split, "es")[0].partition("+")[2] for i in range(400)}
             for split in SPLITS}
    assert {f"+{v}" if v else v for v in drawn["dev"] | drawn["test"]} <= set(ESPEAK_VARIANTS)
    assert len(drawn["train"]) > 50 and drawn["train"] - {v[1:] for v in ESPEAK_VARIANTS}


def test_rerun_speaks_again_a_wav_whose_voice_changed(tmp_path):
    """A corpus made by an earlier version of the kit (another voice in the list) is not reused
    silently: those wavs are spoken again, the others kept."""
    root = make_corpus(tmp_path, "es-en", {"train": 3, "dev": 1, "test": 1}, seed=0)
    lst = root / "train.tsv"
    lines = lst.read_text().splitlines()
    cols = lines[1].split("\t")
    cols[-1] = "es+m1 r100 p10"  # as an older kit would have written it
    lst.write_text("\n".join([lines[0], "\t".join(cols)] + lines[2:]) + "\n")
    changed, kept = root / "wav" / f"{cols[0]}_src.wav", root / "wav" / "es-en-train-00001_src.wav"
    stamps = changed.stat().st_mtime_ns, kept.stat().st_mtime_ns
    make_corpus(tmp_path, "es-en", {"train": 3, "dev": 1, "test": 1}, seed=0)
    assert changed.stat().st_mtime_ns != stamps[0] and kept.stat().st_mtime_ns == stamps[1]
    assert read_list(lst)[0]["src_voice"] != "es+m1 r100 p10"


def test_target_voice_is_chosen_recorded_and_a_change_speaks_the_targets_again(tmp_path):
    """--target-voice: another flite voice speaks the target side; a folder made with one voice
    and made again with another has every target wav spoken again (the source wavs kept), and
    says which voice in stats.json and wav/target_voice.txt. An unknown voice is an error naming
    the ones flite has."""
    import json

    sizes = {"train": 2, "dev": 1, "test": 1}
    root = make_corpus(tmp_path, "es-en", sizes, seed=0)
    assert json.loads((root / "stats.json").read_text())["target_voice"] == "slt"
    src, tgt = root / "wav" / "es-en-train-00000_src.wav", root / "wav" / "es-en-train-00000_tgt.wav"
    src_bytes, slt_bytes = src.read_bytes(), tgt.read_bytes()
    make_corpus(tmp_path, "es-en", sizes, seed=0, target_voice="rms")
    assert src.read_bytes() == src_bytes and tgt.read_bytes() != slt_bytes
    assert (root / "wav" / "target_voice.txt").read_text().strip() == "rms"
    assert json.loads((root / "stats.json").read_text())["target_voice"] == "rms"
    assert all(r["tgt_text"] for r in read_list(root / "train.tsv")) and sf.info(str(tgt)).duration > 0.3
    make_corpus(tmp_path, "es-en", sizes, seed=0)  # and back: slt's bytes again (sox's dither is repeatable)
    assert tgt.read_bytes() == slt_bytes
    import subprocess

    p = subprocess.run([str(c) for c in (cli("echostream-make-toy-corpus"), "--out", tmp_path, "--train", 1, "--dev", 1,
                                         "--test", 1, "--target-voice", "nobody")], capture_output=True, text=True)
    assert p.returncode == 2 and "unknown target voice 'nobody'" in p.stderr and "slt" in p.stderr and "rms" in p.stderr
