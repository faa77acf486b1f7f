"""The shipped default (``assets/``): export from a training run, verify, locate.

Layout::

    assets/
      model/        checkpoint.pt (weights only, no optimiser state), config.yaml,
                    config_mtl.yaml, dictionaries, sentencepiece models, gcmvn.npz,
                    punct.pt (the streaming punctuation / sentence-boundary model)
        vocoder/    config.json + g_XXXXXXXX (fairseq's CodeHiFiGAN format, fp16)
      units/        kmeans.npy (the quantiser that made the target units), target_voice.txt (the
                    flite voice whose speech it was fitted on; absent: slt)
      examples/     a few held-out test utterances (source wav + examples.tsv with references)
      longform/     held-out long-form streams (sentences with and without pauses) + sentences.tsv
      BUILD.md          the commands that rebuilt them
      MANIFEST.sha256   sha256sum-format checksums of every file above and BUILD.md
      results.json      quality and latency measured on them by the recipe

``model/`` is a complete data folder for inference: ``load_resources(assets/model/checkpoint.pt,
assets/model)`` loads model, CMVN and vocoder.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Dict, List, Optional

import torch
import yaml

REPO_ASSETS = Path(__file__).resolve().parents[1] / "assets"
MANIFEST = "MANIFEST.sha256"
RESULTS = "results.json"  # the recipe's measurements of these assets; not part of the manifest
MODEL_FILES = ("dict_src.txt", "dict_tgt.txt", "gcmvn.npz", "spm_src.model", "spm_tgt.model")


def default_assets() -> Path:
    if not (REPO_ASSETS / MANIFEST).is_file():
        raise FileNotFoundError(f"shipped assets not found at {REPO_ASSETS} (a source checkout carries them); pass --assets DIR")
    return REPO_ASSETS


PAIRS_DIR = "pairs"  # further language pairs: pairs/<src>-<tgt>/ (model/, examples/), sharing the vocoder
SHARED_VOCODER = "../../../model/vocoder"  # the shared vocoder, relative to pairs/<pair>/model


def pair_name(root: Path) -> str:
    """The language pair of an assets folder, from its example ids (``{src}-{tgt}-...``)."""
    import re

    lst = root / "examples" / "examples.tsv"
    first = lst.read_text(encoding="utf-8").splitlines()[1:2] if lst.is_file() else []
    m = re.match(r"^([a-z]{2,3}-[a-z]{2,3})-", first[0]) if first else None
    return m.group(1) if m else root.name


def shipped_pairs(root: Path) -> Dict[str, Path]:
    """{pair: its assets folder}: ``root`` itself first (the default pair), then ``root/pairs/*``."""
    out = {pair_name(root): root}
    extra = root / PAIRS_DIR
    if extra.is_dir():
        for d in sorted(extra.iterdir()):
            if (d / "model" / "checkpoint.pt").is_file():
                out[d.name] = d
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def half_state(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """The state dict with its floating-point tensors in fp16 (how shipped weights are stored)."""
    return {k: v.half() if torch.is_floating_point(v) else v for k, v in state.items()}


def export_model(checkpoint: Path, data_dir: Path, out: Path, vocoder_dir: Optional[str] = None, fp16: bool = False,
                 unit_blank_penalty: Optional[float] = None) -> Path:
    """A fairseq-train checkpoint without optimiser state (fp16 weights with ``fp16``) + the
    inference part of its data folder, with YAMLs rewritten to relative paths; ``unit_blank_penalty``
    (None: the data folder's) goes into the data config."""
    out.mkdir(parents=True, exist_ok=True)
    st = torch.load(checkpoint, map_location="cpu", weights_only=False)
    slim = {k: st[k] for k in ("args", "cfg", "task_state") if k in st}
    for part in ("task", "model"):  # where training started and what it froze are history, not inference
        sub = (slim.get("cfg") or {}).get(part)
        for key in ("init_from", "train_only") if sub is not None else ():
            if getattr(sub, key, None):
                setattr(sub, key, None)
    slim["model"] = half_state(st["model"]) if fp16 else st["model"]
    slim["extra_state"] = {"train_iterator": {"epoch": st.get("extra_state", {}).get("train_iterator", {}).get("epoch", 1)}}
    slim["optimizer_history"] = st.get("optimizer_history", [])[-1:]
    slim["last_optimizer_state"] = None
    torch.save(slim, out / "checkpoint.pt")
    for name in MODEL_FILES:
        shutil.copyfile(data_dir / name, out / name)
    cfg = yaml.safe_load((data_dir / "config.yaml").read_text())
    cfg["global_cmvn"] = {"stats_npz_path": "gcmvn.npz"}
    cfg["source_bpe"]["sentencepiece_model"] = "spm_src.model"
    cfg["target_bpe"]["sentencepiece_model"] = "spm_tgt.model"
    cfg.pop("audio_root", None)
    if vocoder_dir is not None:
        cfg["vocoder"] = _vocoder_entry(out, vocoder_dir)
    if unit_blank_penalty is not None:
        cfg["unit_blank_penalty"] = float(unit_blank_penalty)
    (out / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    mtl = yaml.safe_load((data_dir / "config_mtl.yaml").read_text())
    for entry in mtl.values():
        entry["dict"] = Path(entry["dict"]).name
        entry["data"] = "."  # inference reads no multitask targets
    (out / "config_mtl.yaml").write_text(yaml.safe_dump(mtl, sort_keys=False))
    return out / "checkpoint.pt"


def vocoder_generator(folder: Path) -> Path:
    """The generator a vocoder folder ships: its newest ``g_*`` checkpoint."""
    gens = sorted(Path(folder).glob("g_*"))
    if not gens:
        raise FileNotFoundError(f"{folder}: no vocoder generator (g_*)")
    return gens[-1]


def _vocoder_entry(model_dir: Path, vocoder_dir: str) -> dict:
    """A model config's ``vocoder`` entry: the generator in ``model_dir/vocoder_dir`` (a relative path)."""
    gen = vocoder_generator(model_dir / vocoder_dir)
    return {"type": "code_hifigan", "checkpoint": f"{vocoder_dir}/{gen.name}", "config": f"{vocoder_dir}/config.json"}


def repoint_pairs(root: Path) -> List[str]:
    """Point every further pair's model config at ``root``'s vocoder (after a new one is exported);
    the pairs whose config changed."""
    changed = []
    for pair, folder in shipped_pairs(root).items():
        if folder == root:
            continue
        path = folder / "model" / "config.yaml"
        cfg = yaml.safe_load(path.read_text())
        entry = _vocoder_entry(folder / "model", SHARED_VOCODER)
        if cfg.get("vocoder") != entry:
            cfg["vocoder"] = entry
            path.write_text(yaml.safe_dump(cfg, sort_keys=False))
            changed.append(pair)
    return changed


def export_vocoder(vocoder_checkpoint: Path, vocoder_config: Path, out: Path) -> Path:
    """fp16 generator in fairseq's format (``generator`` key) + its config.json."""
    out.mkdir(parents=True, exist_ok=True)
    st = torch.load(vocoder_checkpoint, map_location="cpu", weights_only=False)
    torch.save({"generator": half_state(st["generator"])}, out / Path(vocoder_checkpoint).name)
    shutil.copyfile(vocoder_config, out / "config.json")
    return out / Path(vocoder_checkpoint).name


def write_manifest(root: Path) -> Path:
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name not in (MANIFEST, RESULTS) and not p.name.startswith("."))
    lines = [f"{_sha256(p)}  {p.relative_to(root).as_posix()}" for p in files]
    (root / MANIFEST).write_text("\n".join(lines) + "\n")
    return root / MANIFEST


def verify(root: Path) -> List[str]:
    """Problems with the assets under ``root`` (missing file, checksum mismatch); empty when sound."""
    manifest = root / MANIFEST
    if not manifest.is_file():
        return [f"{manifest}: missing"]
    problems = []
    for i, line in enumerate(manifest.read_text().splitlines(), 1):
        try:
            digest, rel = line.split("  ", 1)
        except ValueError:
            problems.append(f"{manifest}: line {i}: expected '<sha256>  <path>'")
            continue
        p = root / rel
        if not p.is_file():
            problems.append(f"{p}: missing")
        elif _sha256(p) != digest:
            problems.append(f"{p}: checksum mismatch")
    return problems


def read_examples(root: Path) -> List[Dict[str, str]]:
    from .prep.corpus import read_list

    lst = root / "examples" / "examples.tsv"
    rows = read_list(lst)
    for r in rows:
        r["src_audio"] = str(lst.parent / r["src_audio"])
    return rows


def total_size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def read_results(path: Path) -> dict:
    """A results.json ({} when there is none); one that is not JSON is an error naming it."""
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not JSON ({e}); move it away first") from None


def results_kept(root: Path, pair: Optional[str], default: bool) -> Optional[dict]:
    """``root``'s results.json less the figures of what an export replaces: the default pair's own
    (``default``, a re-export of ``root``) and any entry of ``pair`` under ``pairs``. None when
    nothing is left."""
    res = read_results(root / RESULTS)
    pairs = {k: v for k, v in res.get("pairs", {}).items() if k != pair}
    res = {k: v for k, v in res.items() if k != "pairs" and not default}
    if pairs:
        res["pairs"] = pairs
    return res or None


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2) + "\n")
