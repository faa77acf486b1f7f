"""Build a prepared S2ST data folder (DESIGN §6) from utterance records.

Layout written under ``out``::

    {split}.tsv                  id src_audio src_n_frames tgt_audio tgt_n_frames src_text tgt_text
    gcmvn.npz                    global CMVN of the train split's fbank
    spm_src.model, dict_src.txt  source unigram sentencepiece + fairseq dictionary
    spm_tgt.model, dict_tgt.txt  target unigram sentencepiece + fairseq dictionary
    src_text/{split}.tsv         id tgt_text (source pieces: the ASR-CTC target)
    tgt_text/{split}.tsv         id tgt_text (target pieces: the ST-CTC and MT target)
    config.yaml                  data config, paths relative to this folder
    config_mtl.yaml              multitask config, paths relative to this folder
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import sentencepiece as spm
import yaml
from tqdm import tqdm

from .. import features


@dataclass
class Record:
    id: str
    split: str
    src_audio: str  # path to a 16 kHz wav
    src_text: str
    tgt_text: str
    units: List[int]  # reduced unit sequence


@dataclass
class PrepOptions:
    src_vocab: int = 64
    tgt_vocab: int = 64
    num_units: int = 100
    loss_weights: Dict[str, float] = field(
        default_factory=lambda: {"source_unigram": 1.0, "ctc_target_unigram": 1.0, "target_unigram": 1.0}
    )
    specaugment: bool = False
    vocoder_checkpoint: Optional[str] = None
    vocoder_config: Optional[str] = None


def _train_spm(texts: Sequence[str], prefix: Path, vocab: int, dict_path: Path) -> spm.SentencePieceProcessor:
    txt = prefix.with_suffix(".txt")
    txt.write_text("\n".join(texts) + "\n")
    spm.SentencePieceTrainer.train(
        input=str(txt),
        model_prefix=str(prefix),
        vocab_size=vocab,
        model_type="unigram",
        character_coverage=1.0,
        hard_vocab_limit=False,
        bos_id=0,
        pad_id=1,
        eos_id=2,
        unk_id=3,
        minloglevel=2,
    )
    txt.unlink()
    sp = spm.SentencePieceProcessor(model_file=str(prefix) + ".model")
    # fairseq dictionary: every normal piece (fairseq adds its own <s> <pad> </s> <unk>)
    with open(dict_path, "w") as f:
        for i in range(sp.get_piece_size()):
            if not (sp.is_control(i) or sp.is_unknown(i)):
                f.write(f"{sp.id_to_piece(i)} 1\n")
    return sp


def _write_tsv(path: Path, header: Sequence[str], rows: List[Sequence]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f, delimiter="\t", quotechar=None, quoting=csv.QUOTE_NONE, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


def build_data_folder(records: List[Record], out: Path, opts: PrepOptions) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if not any(r.split.startswith("train") for r in records):
        raise ValueError("no train split among the records")
    for r in records:
        if any(ch in (r.src_text + r.tgt_text) for ch in "\t\n"):
            raise ValueError(f"utterance {r.id}: texts must not contain tabs or newlines")
        bad = [u for u in r.units if not 0 <= u < opts.num_units]
        if bad:
            raise ValueError(f"utterance {r.id}: unit id {bad[0]} outside 0..{opts.num_units - 1}")

    n_frames, train_feats = {}, []
    for r in tqdm(records, desc="fbank", unit="utt"):
        f = features.fbank(features.read_audio(r.src_audio))
        n_frames[r.id] = f.shape[0]
        if r.split.startswith("train"):
            train_feats.append(f)
    features.GlobalCMVN.estimate(train_feats).save(out / "gcmvn.npz")

    train = [r for r in records if r.split.startswith("train")]
    sp_src = _train_spm([r.src_text for r in train], out / "spm_src", opts.src_vocab, out / "dict_src.txt")
    sp_tgt = _train_spm([r.tgt_text for r in train], out / "spm_tgt", opts.tgt_vocab, out / "dict_tgt.txt")

    for folder in ("src_text", "tgt_text"):
        (out / folder).mkdir(exist_ok=True)
    for split in sorted({r.split for r in records}):
        rs = [r for r in records if r.split == split]
        _write_tsv(
            out / f"{split}.tsv",
            ["id", "src_audio", "src_n_frames", "tgt_audio", "tgt_n_frames", "src_text", "tgt_text"],
            [
                [r.id, os.path.relpath(r.src_audio, out), n_frames[r.id], " ".join(map(str, r.units)), len(r.units), r.src_text, r.tgt_text]
                for r in rs
            ],
        )
        _write_tsv(out / "src_text" / f"{split}.tsv", ["id", "tgt_text"], [[r.id, " ".join(sp_src.encode(r.src_text, out_type=str))] for r in rs])
        _write_tsv(out / "tgt_text" / f"{split}.tsv", ["id", "tgt_text"], [[r.id, " ".join(sp_tgt.encode(r.tgt_text, out_type=str))] for r in rs])

    w = opts.loss_weights
    mtl = {
        "source_unigram": {"decoder_type": "ctc", "dict": "dict_src.txt", "data": "src_text", "loss_weight": w["source_unigram"]},
        "ctc_target_unigram": {"decoder_type": "ctc", "dict": "dict_tgt.txt", "data": "tgt_text", "loss_weight": w["ctc_target_unigram"]},
        "target_unigram": {"decoder_type": "transformer", "dict": "dict_tgt.txt", "data": "tgt_text", "loss_weight": w["target_unigram"]},
    }
    (out / "config_mtl.yaml").write_text(yaml.safe_dump(mtl, sort_keys=False))

    cfg = {
        "input_feat_per_channel": features.NUM_MEL_BINS,
        "input_channels": 1,
        "global_cmvn": {"stats_npz_path": "gcmvn.npz"},
        "transforms": {"*": ["global_cmvn"], "_train": ["global_cmvn"] + (["specaugment"] if opts.specaugment else [])},
        "source_bpe": {"bpe": "sentencepiece", "sentencepiece_model": "spm_src.model"},
        "target_bpe": {"bpe": "sentencepiece", "sentencepiece_model": "spm_tgt.model"},
        "num_units": opts.num_units,
    }
    if opts.specaugment:
        cfg["specaugment"] = {"freq_mask_F": 27, "freq_mask_N": 1, "time_mask_N": 1, "time_mask_T": 20, "time_mask_p": 0.2, "time_wrap_W": 0}
    if opts.vocoder_checkpoint:
        cfg["vocoder"] = {
            "type": "code_hifigan",
            "checkpoint": os.path.relpath(opts.vocoder_checkpoint, out),
            "config": os.path.relpath(opts.vocoder_config, out),
        }
    (out / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return out
