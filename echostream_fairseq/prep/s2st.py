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
import math
import os
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import sentencepiece as spm
import yaml
from tqdm import tqdm

from .. import features
from .corpus import write_tsv


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
    # an existing target sentencepiece model (another pair's spm_tgt.model): pairs with the same
    # target language then share the target dictionary (and a model can start from another's
    # decoder); None: trained on this folder's target texts
    tgt_spm: Optional[str] = None
    # an existing data folder whose model this folder's data continues to train (e.g. on more
    # sentences): its source and target sentencepiece models, dictionaries and global CMVN are
    # kept, so a checkpoint trained on it reads this folder's inputs and labels the same way
    continue_from: Optional[str] = None


def _write_dictionary(sp: spm.SentencePieceProcessor, dict_path: Path) -> None:
    """fairseq dictionary: every normal piece (fairseq adds its own <s> <pad> </s> <unk>)."""
    with open(dict_path, "w") as f:
        for i in range(sp.get_piece_size()):
            if not (sp.is_control(i) or sp.is_unknown(i)):
                f.write(f"{sp.id_to_piece(i)} 1\n")


def _reuse_spm(model: Path, prefix: Path, dict_path: Path) -> spm.SentencePieceProcessor:
    model = Path(model)
    if not model.is_file():
        raise FileNotFoundError(f"sentencepiece model not found: {model}")
    shutil.copyfile(model, str(prefix) + ".model")
    sp = spm.SentencePieceProcessor(model_file=str(prefix) + ".model")
    _write_dictionary(sp, dict_path)
    return sp


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
    _write_dictionary(sp, dict_path)
    return sp


def _warn_unknown_pieces(records: Sequence[Record], sp_src: spm.SentencePieceProcessor, sp_tgt: spm.SentencePieceProcessor) -> None:
    """Texts that a kept sentencepiece model can only spell with <unk> (characters it never saw)."""
    for side, sp in (("src_text", sp_src), ("tgt_text", sp_tgt)):
        unk = [r.id for r in records if sp.unk_id() in sp.encode(getattr(r, side))]
        if unk:
            print(f"warning: {len(unk)} {side} of {len(records)} hold characters the kept sentencepiece model "
                  f"spells as <unk> (first: {unk[0]})", file=sys.stderr)


def _continued_folder(opts: PrepOptions) -> Optional[Path]:
    """The folder ``opts.continue_from`` names, checked to hold what it hands on; None without one."""
    if not opts.continue_from:
        return None
    base = Path(opts.continue_from)
    if opts.tgt_spm:
        raise ValueError("--continue-from keeps that folder's target sentencepiece model: drop --tgt-spm")
    for name in CONTINUED_FILES:
        if not (base / name).is_file():
            raise FileNotFoundError(f"{base} is not a prepared data folder to continue from: no {name}")
    return base


def build_data_folder(
    records: List[Record],
    out: Path,
    opts: PrepOptions,
    final_dir: Optional[Path] = None,
    audio_paths: Optional[Dict[str, Path]] = None,
) -> Path:
    """Write the data folder into ``out``. When it is built under a temporary name,
    ``final_dir`` is where it will live and ``audio_paths`` where each id's source audio will
    be then; relative paths in manifests and configs are computed against those."""
    out = Path(out)
    final_dir = Path(final_dir or out)
    base = _continued_folder(opts)
    final_audio = {r.id: Path((audio_paths or {}).get(r.id, r.src_audio)) for r in records}
    out.mkdir(parents=True, exist_ok=True)
    if not any(r.split.startswith("train") for r in records):
        raise ValueError("no train split among the records")
    for r in records:
        if any(ch in (r.src_text + r.tgt_text) for ch in "\t\n"):
            raise ValueError(f"utterance {r.id}: texts must not contain tabs or newlines")
        bad = [u for u in r.units if not 0 <= u < opts.num_units]
        if bad:
            raise ValueError(f"utterance {r.id}: unit id {bad[0]} outside 0..{opts.num_units - 1}")

    n_frames, train_feats, train_peaks = {}, [], []
    for r in tqdm(records, desc="fbank", unit="utt"):
        f = features.fbank(features.read_audio(r.src_audio))
        n_frames[r.id] = f.shape[0]
        if r.split.startswith("train"):
            train_peaks.append(features.peak_level_db(f))
            if base is None:
                train_feats.append(f)

    train = [r for r in records if r.split.startswith("train")]
    if base is not None:  # the model's inputs and labels stay as it learned them
        shutil.copyfile(base / "gcmvn.npz", out / "gcmvn.npz")
        sp_src = _reuse_spm(base / "spm_src.model", out / "spm_src", out / "dict_src.txt")
        sp_tgt = _reuse_spm(base / "spm_tgt.model", out / "spm_tgt", out / "dict_tgt.txt")
        _warn_unknown_pieces(records, sp_src, sp_tgt)
    else:
        features.GlobalCMVN.estimate(train_feats).save(out / "gcmvn.npz")
        sp_src = _train_spm([r.src_text for r in train], out / "spm_src", opts.src_vocab, out / "dict_src.txt")
        if opts.tgt_spm:
            sp_tgt = _reuse_spm(opts.tgt_spm, out / "spm_tgt", out / "dict_tgt.txt")
        else:
            sp_tgt = _train_spm([r.tgt_text for r in train], out / "spm_tgt", opts.tgt_vocab, out / "dict_tgt.txt")

    for folder in ("src_text", "tgt_text"):
        (out / folder).mkdir(exist_ok=True)
    for split in sorted({r.split for r in records}):
        rs = [r for r in records if r.split == split]
        write_tsv(
            out / f"{split}.tsv",
            ["id", "src_audio", "src_n_frames", "tgt_audio", "tgt_n_frames", "src_text", "tgt_text"],
            [
                [r.id, os.path.relpath(final_audio[r.id], final_dir), n_frames[r.id], " ".join(map(str, r.units)), len(r.units), r.src_text, r.tgt_text]
                for r in rs
            ],
        )
        write_tsv(out / "src_text" / f"{split}.tsv", ["id", "tgt_text"], [[r.id, " ".join(sp_src.encode(r.src_text, out_type=str))] for r in rs])
        write_tsv(out / "tgt_text" / f"{split}.tsv", ["id", "tgt_text"], [[r.id, " ".join(sp_tgt.encode(r.tgt_text, out_type=str))] for r in rs])

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
        "length_bound": length_bound(
            [(len(sp_tgt.encode(r.tgt_text, out_type=str)), n_frames[r.id] * features.FRAME_SHIFT_MS / 1000) for r in train]),
    }
    # the level the model learned its speech at: the continued folder's, else this training speech's
    kept = None
    if base is not None and (base / "config.yaml").is_file():
        kept = yaml.safe_load((base / "config.yaml").read_text()).get("input_level")
    cfg["input_level"] = kept if kept is not None else asdict(features.input_level_for(train_peaks))
    if opts.specaugment:
        cfg["specaugment"] = SPECAUGMENT
    if opts.vocoder_checkpoint:
        cfg["vocoder"] = {
            "type": "code_hifigan",
            "checkpoint": os.path.relpath(opts.vocoder_checkpoint, final_dir),
            "config": os.path.relpath(opts.vocoder_config, final_dir),
        }
    (out / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    write_augmented_config(out)
    return out


# what a folder built with PrepOptions.continue_from takes from the folder it continues
CONTINUED_FILES = ("spm_src.model", "spm_tgt.model", "gcmvn.npz")
SPECAUGMENT = {"freq_mask_F": 27, "freq_mask_N": 1, "time_mask_N": 1, "time_mask_T": 20, "time_mask_p": 0.2, "time_wrap_W": 0}
# config_aug.yaml: what training adds to a data folder's config.yaml (see the task's SilenceAugment
# and VoiceAugment): utterances inside streams, other voices and rooms, SpecAugment
TRAIN_AUGMENT = {
    "silence_augment": {"prob": 0.5, "max_ms": 1500, "noise_db": [-75, -50]},
    "voice_augment": {"speed": [0.85, 1.15], "vtlp": [0.9, 1.1], "reverb_prob": 0.3, "rt60": [0.1, 0.5],
                      "noise_prob": 0.5, "snr_db": [10, 40]},
}


def write_augmented_config(folder: Path) -> Path:
    """``config_aug.yaml`` beside ``config.yaml``: the same data with training augmentation."""
    folder = Path(folder)
    cfg = yaml.safe_load((folder / "config.yaml").read_text())
    cfg.update(TRAIN_AUGMENT)
    train = cfg.setdefault("transforms", {}).setdefault("_train", [])
    if "specaugment" not in train:
        train.append("specaugment")
    cfg.setdefault("specaugment", SPECAUGMENT)
    out = folder / "config_aug.yaml"
    out.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return out


def length_bound(pairs: Sequence[Tuple[int, float]], margin: float = 1.5, extra: int = 5) -> Dict[str, float]:
    """The data config's ``length_bound`` from (target subwords, source seconds) of the training
    utterances: ``margin`` x the highest rate, rounded up to 0.5 token/s, + ``extra`` tokens."""
    rates = [n / s for n, s in pairs if s > 0]
    if not rates:
        raise ValueError("no training utterance with source audio to set the length bound from")
    return {"tokens_per_second": math.ceil(2 * margin * max(rates)) / 2, "extra": extra}


LIST_REQUIRED = ("id", "src_audio", "src_text", "tgt_text")


def _check_lists(lists: Sequence[Path]) -> List[Tuple[str, Path, Dict[str, str], int]]:
    """(split, list file, row, line) for every row; raises naming file, line and id."""
    from .corpus import read_list

    out, seen = [], {}
    splits = [Path(p).stem for p in lists]
    if len(set(splits)) != len(splits):
        raise ValueError(f"two lists have the same split name: {', '.join(map(str, lists))}")
    for path, split in zip(map(Path, lists), splits):
        if not path.is_file():
            raise FileNotFoundError(f"list file not found: {path}")
        rows = read_list(path)
        if rows and any(k not in rows[0] for k in LIST_REQUIRED):
            raise ValueError(f"{path}: header must have the columns {' '.join(LIST_REQUIRED)}")
        if not rows:
            raise ValueError(f"{path}: no utterances")
        for i, row in enumerate(rows):
            where = f"{path}: line {i + 2} (id {row['id']})"
            if row["id"] in seen:
                raise ValueError(f"{where}: id already used in {seen[row['id']]}")
            seen[row["id"]] = path
            for col in ("src_text", "tgt_text"):
                if not row[col].strip():
                    raise ValueError(f"{where}: empty {col}")
            out.append((split, path, row, i + 2))
    return out


def _row_files(path: Path, row: Dict[str, str], line: int, units_dir: Path, resample_source: Optional[bool] = None):
    """(source audio, its soundfile info, unit file) of one list row; raises naming list, line and id.
    ``resample_source``: True accepts any sample rate; False names the flag that would; None
    (no resampling on offer) only refuses."""
    import soundfile as sf

    where = f"{path}: line {line} (id {row['id']})"
    src = Path(row["src_audio"])
    src = src if src.is_absolute() else path.parent / src
    if not src.is_file():
        raise FileNotFoundError(f"{where}: source audio not found: {src}")
    info = sf.info(str(src))
    if info.samplerate != features.SAMPLE_RATE and not resample_source:
        hint = " (use --resample-source)" if resample_source is False else ""
        raise ValueError(f"{where}: {src} is {info.samplerate} Hz; the front end needs {features.SAMPLE_RATE} Hz{hint}")
    unit_file = next((units_dir / f"{row['id']}{ext}" for ext in (".npy", ".txt") if (units_dir / f"{row['id']}{ext}").is_file()), None)
    if unit_file is None:
        raise FileNotFoundError(f"{where}: no unit file {units_dir / row['id']}.npy or .txt")
    return src, info, unit_file


def prepare_from_lists(
    lists: Sequence[Path],
    units_dir: Path,
    out: Path,
    opts: PrepOptions,
    resample_source: bool = False,
    overwrite: bool = False,
) -> Path:
    """Lists (id, src_audio, src_text, tgt_text; audio relative to the list's folder) plus one
    unit file per id in ``units_dir`` -> a complete data folder at ``out``.

    Everything is checked before anything is written; the folder is built under a temporary
    name and renamed at the end, so ``out`` exists only when it is complete.
    """
    import shutil

    import soundfile as sf

    from .units import read_unit_file, reduce_units

    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists (pass --overwrite to replace it)")
    _continued_folder(opts)  # before reading any unit file
    rows = _check_lists(lists)
    units_dir = Path(units_dir)
    plan = []
    for split, path, row, line in rows:
        src, _, unit_file = _row_files(path, row, line, units_dir, resample_source)
        plan.append((split, row, src, unit_file))

    tmp = out.with_name(f".{out.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        records = []
        for split, row, src, unit_file in tqdm(plan, desc="read units" + (" + resample" if resample_source else ""), unit="utt"):
            if resample_source and sf.info(str(src)).samplerate != features.SAMPLE_RATE:
                wav = features.read_audio(src, expected_sr=None)
                dst = tmp / "src_audio" / f"{row['id']}.wav"
                dst.parent.mkdir(exist_ok=True)
                sf.write(str(dst), features.resample(wav, sf.info(str(src)).samplerate), features.SAMPLE_RATE, subtype="PCM_16")
                # the manifest points at the final folder's copy
                src = out / "src_audio" / dst.name
                src_for_prep = dst
            else:
                src_for_prep = src
            units, _ = reduce_units(read_unit_file(unit_file))
            records.append((Record(row["id"], split, str(src_for_prep), row["src_text"], row["tgt_text"], units), src))
        build_data_folder([r for r, _ in records], tmp, opts, final_dir=out, audio_paths={r.id: final for r, final in records})
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def add_splits(folder: Path, lists: Sequence[Path], units_dir: Path) -> List[str]:
    """Add evaluation splits to an existing data folder with its own sentencepiece models (no
    statistic of the folder changes): ``{split}.tsv`` and the multitask ``src_text/`` and
    ``tgt_text/`` files of each list. A split the folder already has, or a train split, is an error."""
    from .units import read_unit_file, reduce_units

    folder, units_dir = Path(folder), Path(units_dir)
    for name in ("spm_src.model", "spm_tgt.model", "config.yaml"):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder} is not a prepared data folder: no {name}")
    rows = _check_lists(lists)
    for split in sorted({s for s, _, _, _ in rows}):
        if split.startswith("train"):
            raise ValueError(f"{split}: training splits belong in the folder's own build (echostream-prep-s2st --lists)")
        if (folder / f"{split}.tsv").exists():
            raise FileExistsError(f"{folder / split}.tsv exists: the folder already has the split {split}")
    sp_src = spm.SentencePieceProcessor(model_file=str(folder / "spm_src.model"))
    sp_tgt = spm.SentencePieceProcessor(model_file=str(folder / "spm_tgt.model"))
    by_split: Dict[str, list] = {}
    for split, path, row, line in rows:
        src, info, unit_file = _row_files(path, row, line, units_dir)
        units, _ = reduce_units(read_unit_file(unit_file))
        by_split.setdefault(split, []).append((row, os.path.relpath(src.resolve(), folder.resolve()), features.num_frames(info.frames), units))
    for split, items in by_split.items():
        write_tsv(folder / f"{split}.tsv", ["id", "src_audio", "src_n_frames", "tgt_audio", "tgt_n_frames", "src_text", "tgt_text"],
                  [[r["id"], a, n, " ".join(map(str, u)), len(u), r["src_text"], r["tgt_text"]] for r, a, n, u in items])
        write_tsv(folder / "src_text" / f"{split}.tsv", ["id", "tgt_text"], [[r["id"], " ".join(sp_src.encode(r["src_text"], out_type=str))] for r, *_ in items])
        write_tsv(folder / "tgt_text" / f"{split}.tsv", ["id", "tgt_text"], [[r["id"], " ".join(sp_tgt.encode(r["tgt_text"], out_type=str))] for r, *_ in items])
    return sorted(by_split)


def cvss_c_lists(cvss_root: Path, covost_root: Path, src_lang: str, out: Path, splits=("train", "dev", "test")) -> List[Path]:
    """List files from the CVSS-C + CoVoST 2 layouts.

    CoVoST 2: ``{covost_root}/covost_v2.{src}_en.{split}.tsv`` (columns path, sentence,
    translation, client_id) and the Common Voice clips in ``{covost_root}/clips/``.
    CVSS-C: ``{cvss_root}/{split}.tsv`` (no header: path, translation) and the target speech
    ``{cvss_root}/{split}/{path}.wav``. Ids are the clip names without ``.mp3``.
    """
    cvss_root, covost_root, out = Path(cvss_root), Path(covost_root), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for split in splits:
        cv_tsv = covost_root / f"covost_v2.{src_lang}_en.{split}.tsv"
        cvss_tsv = cvss_root / f"{split}.tsv"
        for p in (cv_tsv, cvss_tsv):
            if not p.is_file():
                raise FileNotFoundError(f"{p} not found (see examples/cvss_c_fr_en/README.md for the expected layout)")
        with open(cv_tsv, newline="", encoding="utf-8") as f:
            covost = {r["path"]: r for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)}
        rows = []
        with open(cvss_tsv, newline="", encoding="utf-8") as f:
            for i, cells in enumerate(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)):
                if len(cells) != 2:
                    raise ValueError(f"{cvss_tsv}: line {i + 1}: expected 2 columns (path, translation)")
                path, translation = cells
                if path not in covost:
                    raise ValueError(f"{cvss_tsv}: line {i + 1}: {path} has no row in {cv_tsv}")
                uid = path[:-4] if path.endswith(".mp3") else path
                src_audio = covost_root / "clips" / path
                tgt_audio = cvss_root / split / f"{path}.wav"
                for a in (src_audio, tgt_audio):
                    if not a.is_file():
                        raise FileNotFoundError(f"{cvss_tsv}: line {i + 1} (id {uid}): audio not found: {a}")
                rows.append([uid, str(src_audio.resolve()), str(tgt_audio.resolve()), covost[path]["sentence"].strip(), translation.strip()])
        dst = out / f"{split}.tsv"
        write_tsv(dst, ["id", "src_audio", "tgt_audio", "src_text", "tgt_text"], rows)
        written.append(dst)
    return written
