"""The toy speech translation corpus: sentences from the toy grammars (es-en, ko-en) or real
German-English example sentences (Debian's dict-freedict-deu-eng), spoken by espeak-ng
(source, a voice variant with rate and pitch jitter per utterance) and flite (target, one
fixed voice), 16 kHz mono.

Layout of ``{out}/{pair}/``::

    wav/{id}_src.wav wav/{id}_tgt.wav
    {split}.tsv          id src_audio tgt_audio src_text tgt_text src_voice  (the list file)
    {split}.{src_lang}   source sentences, one per line
    {split}.en           target sentences
    stats.json           hours of audio per side, vocabulary sizes, mean sentence length

A list file is written last, atomically, once every wav of its split exists: a split without
its list file is not complete. Wavs are written under a temporary name and renamed, so a
second run skips finished utterances and redoes none of them.
"""
from __future__ import annotations

import csv
import gzip
import json
import os
import random
import re
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import soundfile as sf
from tqdm import tqdm

from . import tts
from .grammar import Grammar

PAIRS = ("es-en", "ko-en", "de-en")
SPLITS = ("train", "dev", "test")
TARGET_VOICE = "slt"  # flite's voice for the target side (the default; --target-voice)
TARGET_VOICE_FILE = "target_voice.txt"  # the flite voice of a folder: in wav/, that of its *_tgt.wav; in units/, that of its quantiser
# dev and test voices: the language's voice alone or with one of these espeak-ng variants
ESPEAK_VARIANTS = ["", "+m1", "+m2", "+m3", "+m4", "+f1", "+f2", "+f3", "+f4", "+klatt", "+klatt2"]
# training voices: those and every other variant espeak-ng 1.51 installs, except the unseen-voice
# split's, the numbered siblings of its named voices (edward2, Gene2, iven2-4, steph2-3) and
# "Mr serious" (a space in its name)
TRAIN_VARIANTS = ESPEAK_VARIANTS + [
    "+Alex", "+Andrea", "+Andy", "+Annie", "+AnxiousAndy", "+Demonic", "+Diogo", "+Henrique", "+Hugo", "+Jacky",
    "+Lee", "+Marco", "+Mario", "+Michael", "+Mike", "+Nguyen", "+RicishayMax", "+RicishayMax2", "+RicishayMax3",
    "+Storm", "+Tweaky", "+UniRobot", "+anika", "+anikaRobot", "+announcer", "+antonio", "+aunty", "+belinda",
    "+boris", "+croak", "+david", "+ed", "+fast", "+grandpa", "+gustave", "+john", "+kaukovalta", "+klatt3",
    "+klatt5", "+klatt6", "+m5", "+m6", "+m8", "+marcelo", "+max", "+miguel", "+norbert", "+paul", "+pedro",
    "+quincy", "+rob", "+robert", "+robosoft", "+robosoft2", "+robosoft3", "+robosoft4", "+robosoft5",
    "+robosoft6", "+robosoft7", "+robosoft8", "+sandro", "+shelby", "+whisper", "+whisperf", "+zac",
]
TRAIN_RATES, TRAIN_PITCHES = (135, 185), (30, 70)  # drawn per utterance, inclusive
# The unseen-voice test split (--unseen-voices): espeak-ng variants, rates and pitches that no
# other split uses, for the same sentences as the test split.
UNSEEN_VARIANTS = ["+adam", "+Alicia", "+benjamin", "+caleb", "+Denis", "+edward", "+Gene", "+iven", "+linda",
                   "+michel", "+pablo", "+steph", "+travis", "+victor", "+grandma", "+f5", "+m7", "+klatt4"]
UNSEEN_RATES = ((110, 128), (192, 210))
UNSEEN_PITCHES = ((12, 26), (74, 88))
UNSEEN_SPLIT = "test_unseen"
SOURCE_VOICES = {"es": ["es", "es-419"], "ko": ["ko"], "de": ["de"]}
FREEDICT = Path("/usr/share/dictd/freedict-deu-eng.dict.dz")
LIST_COLUMNS = ["id", "src_audio", "tgt_audio", "src_text", "tgt_text", "src_voice"]


@dataclass
class Utterance:
    id: str
    split: str
    src_text: str
    tgt_text: str
    voice: str = ""
    rate: int = 160
    pitch: int = 50


def _n_words(text: str) -> int:
    return len(re.findall(r"[^\s¿?.!,]+", text))


def grammar_sentences(src_lang: str, sizes: Dict[str, int], seed: int, heldout_share: float = 0.5) -> Dict[str, List[Tuple[str, str]]]:
    """Unique sentence pairs per split. Train and dev never contain a held-out
    adjective-noun combination; ``heldout_share`` of the test set contains one."""
    g = Grammar(src_lang, seed=seed)
    rng = random.Random(f"{src_lang}-{seed}")
    seen, out = set(), {s: [] for s in SPLITS}
    n_test_heldout = int(round(sizes["test"] * heldout_share))
    want = [("test", True, n_test_heldout), ("test", False, sizes["test"] - n_test_heldout),
            ("dev", False, sizes["dev"]), ("train", False, sizes["train"])]
    for split, heldout, n in want:
        tries, got = 0, 0
        while got < n:
            tries += 1
            if tries > 200 * (n + 10):
                raise RuntimeError(f"{src_lang}: could only sample {got} of {n} unique {split} sentences")
            d = g.sample(rng)
            if g.is_heldout(d) != heldout:
                continue
            p = g.pair(d)
            if not 3 <= _n_words(p.src.text) <= 15 or p.src.text in seen:
                continue
            seen.add(p.src.text)
            out[split].append((p.src.text, p.tgt.text))
            got += 1
    return out


def freedict_sentences(sizes: Dict[str, int], seed: int, path: Path = FREEDICT) -> Dict[str, List[Tuple[str, str]]]:
    """German-English example sentence pairs from the FreeDict dictionary, filtered to clean
    single sentences of 3-15 words with one English translation."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: install Debian's dict-freedict-deu-eng (`make setup` does)")
    pat = re.compile(r'^\s+"([^"]+)"\s+-\s+(.+)$')
    pairs: Dict[str, str] = {}
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
        for line in f:
            m = pat.match(line)
            if not m:
                continue
            de, en = m.group(1).strip(), m.group(2).strip()
            if not (re.match(r"^[A-ZÄÖÜ]", de) and re.match(r"^[A-Z]", en)):
                continue
            if not (re.search(r"[.?!]$", de) and re.search(r"[.?!]$", en)):
                continue
            if re.search(r'[/;()\[\]{}<>|=_*#"\d–—…]|bzw\.|etc\.|usw\.|z\.\s?B\.', de + " " + en):
                continue
            if not (3 <= _n_words(de) <= 15 and 3 <= _n_words(en) <= 20):
                continue
            pairs.setdefault(de, en)
    items = sorted(pairs.items())
    random.Random(f"de-{seed}").shuffle(items)
    total = sum(sizes.values())
    if total > len(items):
        raise ValueError(f"freedict has {len(items)} usable pairs; asked for {total}")
    out, i = {}, 0
    for split in SPLITS:
        out[split] = items[i : i + sizes[split]]
        i += sizes[split]
    return out


def _synthesise(job: Tuple[Utterance, str, str, str]) -> str:
    u, src_lang, wav_dir, target_voice = job
    wav_dir = Path(wav_dir)
    for side in ("src", "tgt"):
        final = wav_dir / f"{u.id}_{side}.wav"
        if final.is_file():
            continue
        tmp = wav_dir / f".{u.id}_{side}.tmp.wav"
        if side == "src":
            tts.espeak(u.src_text, u.voice, tmp, rate=u.rate, pitch=u.pitch)
        else:
            tts.flite(u.tgt_text, target_voice, tmp)
        os.replace(tmp, final)
    return u.id


def write_tsv(path: Path, header: Sequence[str], rows) -> None:
    """A headered TSV (the list and manifest format), written atomically."""

    def write(f):
        w = csv.writer(f, delimiter="\t", quotechar=None, quoting=csv.QUOTE_NONE, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)

    _write_atomic(Path(path), write)


def _write_atomic(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        write(f)
    os.replace(tmp, path)


def corpus_stats(out: Path, src_lang: str) -> dict:
    stats = {"pair": f"{src_lang}-en", "splits": {}}
    vocab = {"src": set(), "tgt": set()}
    for split in SPLITS + (UNSEEN_SPLIT,):
        lst = out / f"{split}.tsv"
        if not lst.is_file():
            continue
        rows = read_list(lst)
        secs = {"src": 0.0, "tgt": 0.0}
        words = {"src": 0, "tgt": 0}
        for r in rows:
            for side in ("src", "tgt"):
                secs[side] += sf.info(str(out / r[f"{side}_audio"])).duration
                toks = re.findall(r"[^\s¿?.!,]+", r[f"{side}_text"].lower())
                words[side] += len(toks)
                vocab[side].update(toks)
        stats["splits"][split] = {
            "utterances": len(rows),
            "hours_src": round(secs["src"] / 3600, 3),
            "hours_tgt": round(secs["tgt"] / 3600, 3),
            "mean_words_src": round(words["src"] / max(len(rows), 1), 2),
            "mean_words_tgt": round(words["tgt"] / max(len(rows), 1), 2),
        }
    stats["vocab_src"] = len(vocab["src"])
    stats["vocab_tgt"] = len(vocab["tgt"])
    return stats


def read_list(path: Path) -> List[Dict[str, str]]:
    """Read a list file (TSV with a header); every row must have every column."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        rows = []
        for i, row in enumerate(reader):
            if None in row or any(v is None for v in row.values()):
                raise ValueError(f"{path}: line {i + 2}: expected {len(reader.fieldnames)} tab-separated columns")
            rows.append(row)
    return rows


def _voice(uid: str, seed: int, split: str, src_lang: str) -> Tuple[str, int, int]:
    """(espeak-ng voice, rate, pitch) of one utterance of a train, dev or test split."""
    r = random.Random(f"{uid}-{seed}")
    voice = r.choice(SOURCE_VOICES[src_lang]) + r.choice(TRAIN_VARIANTS if split == "train" else ESPEAK_VARIANTS)
    return voice, r.randint(*TRAIN_RATES), r.randint(*TRAIN_PITCHES)


def _unseen_voice(uid: str, seed: int, src_lang: str) -> Tuple[str, int, int]:
    r = random.Random(f"{uid}-{seed}-unseen")
    lo, hi = r.choice(UNSEEN_RATES)
    plo, phi = r.choice(UNSEEN_PITCHES)
    return r.choice(SOURCE_VOICES[src_lang]) + r.choice(UNSEEN_VARIANTS), r.randint(lo, hi), r.randint(plo, phi)


def _voice_column(u: Utterance) -> str:
    return f"{u.voice} r{u.rate} p{u.pitch}"


def _drop_revoiced(root: Path, split: str, utts: List[Utterance]) -> None:
    """A finished wav is kept on a rerun, unless the split's list says another voice spoke it
    (a corpus made by an earlier version of the kit): then it is spoken again."""
    lst = root / f"{split}.tsv"
    if not lst.is_file():
        return
    before = {r["id"]: r["src_voice"] for r in read_list(lst)}
    for u in utts:
        if u.split == split and before.get(u.id, _voice_column(u)) != _voice_column(u):
            (root / "wav" / f"{u.id}_src.wav").unlink(missing_ok=True)


def _drop_target_revoiced(wav_dir: Path, voice: str) -> None:
    """Target wavs spoken by another flite voice than ``voice`` are spoken again: the folder
    records its target voice (a folder from before the record: the default voice)."""
    mark = wav_dir / TARGET_VOICE_FILE
    before = mark.read_text().strip() if mark.is_file() else TARGET_VOICE
    if before != voice:
        for p in wav_dir.glob("*_tgt.wav"):
            p.unlink()
    mark.write_text(voice + "\n")


def make_corpus(out: Path, pair: str, sizes: Dict[str, int], seed: int = 0, jobs: int = 2, unseen_voices: bool = False,
                target_voice: str = TARGET_VOICE) -> Path:
    """The corpus of one pair; with ``unseen_voices`` also the ``test_unseen`` split: the test
    sentences spoken by voice variants, rates and pitches that no other split uses. The target
    side is spoken by flite's ``target_voice``."""
    if pair not in PAIRS:
        raise ValueError(f"unknown pair {pair!r} (choose from {', '.join(PAIRS)})")
    voices = tts.flite_voices()
    if target_voice not in voices:
        raise ValueError(f"unknown target voice {target_voice!r}: flite has {', '.join(voices)}")
    src_lang = pair.split("-")[0]
    root = Path(out) / pair
    wav_dir = root / "wav"
    wav_dir.mkdir(parents=True, exist_ok=True)
    sents = freedict_sentences(sizes, seed) if src_lang == "de" else grammar_sentences(src_lang, sizes, seed)
    utts: List[Utterance] = []
    for split in SPLITS:
        for i, (src, tgt) in enumerate(sents[split]):
            uid = f"{pair}-{split}-{i:05d}"
            utts.append(Utterance(uid, split, src, tgt, *_voice(uid, seed, split, src_lang)))
    splits = SPLITS
    if unseen_voices:
        splits = SPLITS + (UNSEEN_SPLIT,)
        for i, (src, tgt) in enumerate(sents["test"]):
            uid = f"{pair}-{UNSEEN_SPLIT}-{i:05d}"
            utts.append(Utterance(uid, UNSEEN_SPLIT, src, tgt, *_unseen_voice(uid, seed, src_lang)))
    for split in splits:  # a list file marks a complete split: drop stale ones first
        _drop_revoiced(root, split, utts)
        (root / f"{split}.tsv").unlink(missing_ok=True)
    _drop_target_revoiced(wav_dir, target_voice)
    jobs_list = [(u, src_lang, str(wav_dir), target_voice) for u in utts]
    with ProcessPoolExecutor(max_workers=max(1, jobs)) as ex:
        for _ in tqdm(ex.map(_synthesise, jobs_list, chunksize=8), total=len(utts), desc=f"synthesise {pair}", unit="utt"):
            pass
    for split in splits:
        us = [u for u in utts if u.split == split]
        _write_atomic(root / f"{split}.{src_lang}", lambda f: f.writelines(u.src_text + "\n" for u in us))
        _write_atomic(root / f"{split}.en", lambda f: f.writelines(u.tgt_text + "\n" for u in us))
        write_tsv(root / f"{split}.tsv", LIST_COLUMNS, [
            [u.id, f"wav/{u.id}_src.wav", f"wav/{u.id}_tgt.wav", u.src_text, u.tgt_text, _voice_column(u)]
            for u in us
        ])
    stats = {**corpus_stats(root, src_lang), "target_voice": target_voice}
    _write_atomic(root / "stats.json", lambda f: json.dump(stats, f, indent=2))
    return root
