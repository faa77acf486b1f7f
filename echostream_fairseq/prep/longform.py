"""Long-form streams: utterances of a corpus list laid end to end, with pauses or without.

Each utterance's own leading and trailing silence is trimmed (10 ms blocks under ``silence_db``),
then the utterances are joined with a pause drawn per gap from ``pause_ms`` (or none), over a
low noise floor so that "silence" is not digital zero. Written per stream: ``{name}.wav`` (or
``.flac``) and, for all streams, ``sentences.tsv`` with where every sentence lies in its stream:

    stream  index  id  start  end  src_text  tgt_text

``start``/``end`` are sample offsets of the sentence's speech; the true boundary between
sentence i and i + 1 is anywhere in [end_i, start_{i+1}].
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
import soundfile as sf

from .. import features
from .corpus import read_list, write_tsv

HEADER = ["stream", "index", "id", "start", "end", "src_text", "tgt_text"]


def trim(wav: np.ndarray, silence_db: float = features.SILENCE_DB, where: str = "") -> np.ndarray:
    db = features.block_db(wav)
    loud = np.nonzero(db >= silence_db)[0]
    if loud.size == 0:
        raise ValueError(f"{where}: no block above {silence_db} dBFS (silent audio)")
    return wav[loud[0] * features.HOP: (loud[-1] + 1) * features.HOP]


def build_stream(wavs: Sequence[np.ndarray], pauses_ms: Sequence[float], noise_db: float, rng: np.random.Generator):
    """Join trimmed utterances with the given pauses (one per gap, plus lead-in and tail)."""
    sr = features.SAMPLE_RATE
    lead = int(0.3 * sr)
    parts, spans, pos = [np.zeros(lead, np.float32)], [], lead
    for n, w in enumerate(wavs):
        spans.append((pos, pos + w.size))
        parts.append(w.astype(np.float32))
        pos += w.size
        gap = int(sr * (pauses_ms[n] if n < len(pauses_ms) else 500) / 1000)
        parts.append(np.zeros(gap, np.float32))
        pos += gap
    audio = np.concatenate(parts)
    if noise_db is not None:
        audio += (rng.standard_normal(audio.size) * 10 ** (noise_db / 20)).astype(np.float32)
    return np.clip(audio, -1, 1), spans


def make_longform(list_path: Path, out: Path, streams: int, sentences: int, pause_ms: Optional[Tuple[float, float]],
                  seed: int = 0, name: str = "pauses", noise_db: Optional[float] = -60.0, ext: str = "wav",
                  silence_db: float = features.SILENCE_DB, audio_column: str = "src_audio") -> List[Path]:
    """Append ``streams`` streams of ``sentences`` utterances each to ``out`` (sentences.tsv
    grows); utterances are drawn without replacement from the list."""
    list_path, out = Path(list_path), Path(out)
    rows = read_list(list_path)
    need = {"id", audio_column, "src_text", "tgt_text"} - set(rows[0] if rows else {})
    if need:
        raise ValueError(f"{list_path}: missing column(s) {sorted(need)}")
    if streams * sentences > len(rows):
        raise ValueError(f"{list_path}: {len(rows)} utterances, {streams * sentences} asked for")
    rng = random.Random(seed)
    noise = np.random.default_rng(seed)
    chosen = rng.sample(rows, streams * sentences)
    out.mkdir(parents=True, exist_ok=True)
    table = out / "sentences.tsv"
    old = [[r[h] for h in HEADER] for r in read_list(table)] if table.is_file() else []
    written, new_rows = [], []
    for s in range(streams):
        stream = f"{name}{s}"
        utts = chosen[s * sentences:(s + 1) * sentences]
        wavs = [trim(features.read_audio(list_path.parent / r[audio_column]), silence_db, f"{list_path}, {r['id']}") for r in utts]
        pauses = [rng.uniform(*pause_ms) if pause_ms else 0.0 for _ in utts]
        audio, spans = build_stream(wavs, pauses, noise_db, noise)
        path = out / f"{stream}.{ext}"
        sf.write(str(path), audio, features.SAMPLE_RATE, subtype="PCM_16")
        written.append(path)
        new_rows += [[stream, str(i), r["id"], str(a), str(b), r["src_text"], r["tgt_text"]] for i, (r, (a, b)) in enumerate(zip(utts, spans))]
    streams_new = {r[0] for r in new_rows}
    write_tsv(table, HEADER, [r for r in old if r[0] not in streams_new] + new_rows)
    return written


def read_sentences(out: Path):
    """sentences.tsv -> {stream: [row, ...]} in order, with start/end as ints."""
    table = Path(out) / "sentences.tsv"
    if not table.is_file():
        raise FileNotFoundError(f"no sentences.tsv in {out}")
    streams = {}
    for n, r in enumerate(read_list(table), start=2):
        try:
            r["start"], r["end"], r["index"] = int(r["start"]), int(r["end"]), int(r["index"])
        except ValueError as e:
            raise ValueError(f"{table}, row {n}: {e}") from e
        streams.setdefault(r["stream"], []).append(r)
    for rows in streams.values():
        rows.sort(key=lambda r: r["index"])
    return streams


def stream_audio(out: Path, stream: str) -> Path:
    for ext in ("wav", "flac"):
        p = Path(out) / f"{stream}.{ext}"
        if p.is_file():
            return p
    raise FileNotFoundError(f"no audio for stream {stream} in {out}")


def boundary_scores(truth: Sequence[Tuple[int, int]], cuts_ms: Sequence[float], tolerance_ms: float = 400.0) -> dict:
    """Match predicted boundaries (ms) to true ones: sentence i's boundary is matched by a cut in
    [end_i - tol, start_{i+1} + tol] (one cut per boundary). truth: (start, end) samples per sentence."""
    sr = features.SAMPLE_RATE / 1000
    gold = [(truth[i][1] / sr - tolerance_ms, truth[i + 1][0] / sr + tolerance_ms) for i in range(len(truth) - 1)]
    used, tp = set(), 0
    for lo, hi in gold:
        hit = next((j for j, c in enumerate(cuts_ms) if j not in used and lo <= c <= hi), None)
        if hit is not None:
            used.add(hit)
            tp += 1
    prec = tp / len(cuts_ms) if cuts_ms else 0.0
    rec = tp / len(gold) if gold else 0.0
    return {"precision": prec, "recall": rec, "f1": 2 * prec * rec / (prec + rec) if tp else 0.0, "boundaries": len(gold), "cuts": len(cuts_ms)}
