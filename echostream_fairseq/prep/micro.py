"""A micro Spanish->English speech translation set for smoke runs and tests.

Sentences "el perro grande come" -> "the big dog eats" (noun-adjective reordering), source
spoken by espeak-ng (Spanish voices with rate/pitch jitter), target by flite's slt voice, units
from a k-means quantiser fitted on the target speech. The full corpus kit (larger grammar,
more pairs, held-out combinations) builds on the same pieces.
"""
from __future__ import annotations

import itertools
import json
import random
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
import torch
from tqdm import tqdm

from .. import features
from . import tts, units
from .s2st import PrepOptions, Record, build_data_folder

NOUNS = [("perro", "dog"), ("gato", "cat"), ("caballo", "horse"), ("pájaro", "bird"), ("niño", "boy")]
ADJS = [("grande", "big"), ("pequeño", "small"), ("negro", "black"), ("blanco", "white")]
VERBS = [("come", "eats"), ("duerme", "sleeps"), ("corre", "runs")]
SRC_VOICES = ["es", "es+m3", "es+f3", "es+f2"]


def sentence_pairs() -> List[Tuple[str, str]]:
    return [
        (f"el {n} {a} {v}", f"the {ae} {ne} {ve}")
        for (n, ne), (a, ae), (v, ve) in itertools.product(NOUNS, ADJS, VERBS)
    ]


def small_vocoder_config(num_units: int) -> dict:
    """A CodeHiFiGAN config in fairseq's format, small enough for CPU tests (hop 320)."""
    from ..vocoder_train import vocoder_config

    return vocoder_config(num_units, channels=64, embedding_dim=32, resblock_kernels=(3, 7))


def write_untrained_vocoder(out: Path, num_units: int, seed: int = 0) -> Tuple[Path, Path]:
    """A randomly initialised CodeHiFiGAN saved exactly as fairseq's released vocoders are:
    ``config.json`` + a checkpoint whose ``generator`` key holds the state dict."""
    from fairseq.models.text_to_speech.codehifigan import CodeGenerator

    out.mkdir(parents=True, exist_ok=True)
    cfg = small_vocoder_config(num_units)
    torch.manual_seed(seed)
    gen = CodeGenerator(cfg)
    (out / "config.json").write_text(json.dumps(cfg, indent=2))
    torch.save({"generator": gen.state_dict()}, out / "g_00000000")
    return out / "g_00000000", out / "config.json"


def make_micro_dataset(
    out: Path,
    n_train: int = 16,
    n_dev: int = 4,
    num_units: int = 50,
    seed: int = 0,
    with_vocoder: bool = False,
    vocab: int = 40,
) -> Path:
    out = Path(out)
    pairs = sentence_pairs()
    if n_train + n_dev > len(pairs):
        raise ValueError(f"the micro grammar has {len(pairs)} sentences; asked for {n_train + n_dev}")
    rng = random.Random(seed)
    rng.shuffle(pairs)
    audio = out / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    items = []
    for i, (src, tgt) in enumerate(tqdm(pairs[: n_train + n_dev], desc="synthesise", unit="utt")):
        uid = f"micro{i:03d}"
        split = "train" if i < n_train else "dev"
        src_wav, tgt_wav = audio / f"{uid}_src.wav", audio / f"{uid}_tgt.wav"
        tts.espeak(src, rng.choice(SRC_VOICES), src_wav, rate=rng.randint(140, 180), pitch=rng.randint(35, 65))
        tts.flite(tgt, "slt", tgt_wav)
        items.append((uid, split, src, tgt, src_wav, tgt_wav))

    unit_feats = [units.unit_features(features.read_audio(it[5])) for it in items]
    centroids = units.fit_kmeans([f for f, it in zip(unit_feats, items) if it[1] == "train"], num_units, seed=seed)
    np.save(out / "kmeans.npy", centroids)
    records = [
        Record(uid, split, str(sw), src, tgt, units.reduce_units(units.assign(f, centroids))[0])
        for (uid, split, src, tgt, sw, _), f in zip(items, unit_feats)
    ]
    opts = PrepOptions(src_vocab=vocab, tgt_vocab=vocab, num_units=num_units)
    if with_vocoder:
        ckpt, cfg = write_untrained_vocoder(out / "vocoder", num_units, seed)
        opts.vocoder_checkpoint, opts.vocoder_config = str(ckpt), str(cfg)
    return build_data_folder(records, out, opts)
