"""echostream-score: the measurements of a recipe, written as JSON and gathered into a report.

Subcommands (each writes one JSON file; ``report`` merges them):

* ``offline``: a ``fairseq-generate`` results folder ({mt,asr}.txt, wav/) against a corpus list:
  MT BLEU (lower-cased, 13a), ASR-CTC WER (lower-cased, punctuation removed) and ASR-BLEU;
* ``resynth``: the vocoder on ground-truth target units vs. the original target speech, both
  transcribed by the independent ASR: WER of each;
* ``unit-bound``: speech rebuilt without a learned vocoder (Griffin-Lim) from the original fbank
  frames and from the ground-truth units' k-means centroids: the ceiling the units put on any
  vocoder;
* ``uer``: unit error rate of the model's unit decoder against the ground-truth units, offline
  (``units.txt`` of fairseq-generate) or streaming (the engine replays each source);
* ``compare``: two or more of the transcript TSVs the commands above write (``*.asr.tsv``: what
  the ASR heard in each utterance), scored on the same utterances: each ASR-BLEU (or text BLEU)
  with its 95 % interval, and its difference from the first with that difference's own interval
  and p-value (paired bootstrap resampling of the utterances), to tell a change from the noise
  of a 200-utterance test;
* ``report``: SimulEval output folders + the JSON files above -> ``results.json`` (the keys the
  project publishes), a markdown table and a latency-quality plot (PNG).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np

PUNCT = re.compile(r"[^\w\s']", re.UNICODE)


def plain_words(text: str) -> List[str]:
    """Lower-cased words without punctuation (any language)."""
    return PUNCT.sub(" ", text.lower()).split()


def wer(hyps: Sequence[List[str]], refs: Sequence[List[str]]) -> float:
    """Corpus word error rate in % (edit distance over reference words)."""
    import editdistance

    errors = sum(editdistance.eval(h, r) for h, r in zip(hyps, refs))
    return 100.0 * errors / max(1, sum(len(r) for r in refs))


def invented_repeats(hyps: Sequence[str], refs: Sequence[str]) -> float:
    """Words repeated immediately in the output where the reference has no such repeat, per 100
    output words. A word the reference itself says twice in a row may be repeated as often."""
    from collections import Counter

    invented, words = 0, 0
    for h, r in zip(hyps, refs):
        hw, rw = plain_words(h), plain_words(r)
        words += len(hw)
        allowed = Counter(b for a, b in zip(rw, rw[1:]) if a == b)
        for a, b in zip(hw, hw[1:]):
            if a == b:
                if allowed[b] > 0:
                    allowed[b] -= 1
                else:
                    invented += 1
    return 100.0 * invented / max(1, words)


def bleu(hyps: Sequence[str], refs: Sequence[str]) -> float:
    import sacrebleu

    return sacrebleu.corpus_bleu(list(hyps), [list(refs)], lowercase=True, tokenize="13a").score


def _read_id_text(path: Path) -> Dict[str, str]:
    out = {}
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if "\t" not in line:
            raise ValueError(f"{path}: line {i}: expected 'id<TAB>text'")
        uid, text = line.split("\t", 1)
        out[uid] = text
    return out


def _list_rows(path: Path):
    from ..prep.corpus import read_list

    return read_list(path)


def _sources(corpus_list: Path, rows) -> List[Path]:
    return [corpus_list.parent / r["src_audio"] for r in rows]


def length_bound_check(texts: Sequence[str], sources: Sequence[Path], data_dir: Path) -> dict:
    """Outputs against the model's length bound (the target subwords its data config allows for
    a source's duration): how many are over it, and the largest output / bound ratio. Outputs
    are counted in the model's target sentencepiece pieces."""
    import sentencepiece as spm
    import soundfile as sf

    from ..tasks.echostream_s2st import EchoStreamDataConfig

    cfg = EchoStreamDataConfig(data_dir / "config.yaml")
    bound = cfg.length_bound
    sp = spm.SentencePieceProcessor(model_file=str(data_dir / cfg.config.get("target_bpe", {}).get("sentencepiece_model", "spm_tgt.model")))
    ratios = [len(sp.encode(t)) / bound.max_tokens(sf.info(str(src)).duration) for t, src in zip(texts, sources)]
    return {"over_length_bound": int(sum(r > 1 for r in ratios)), "max_length_ratio": max(ratios, default=0.0)}


def offline(generate_dir: Path, corpus_list: Path, asr=None, data_dir: Path = None, transcripts: Path = None) -> dict:
    """Offline figures; with ``data_dir`` (the model's data folder) also the length-bound check.
    ASR-BLEU is measured when ``generate_dir`` has a ``wav`` folder (fairseq-generate with a
    vocoder), which must then hold every utterance's wav; ``transcripts`` (a TSV path) receives
    what the ASR heard in each, beside the reference and the model's text."""
    from .asr_bleu import asr_bleu, write_transcripts

    rows = _list_rows(corpus_list)
    mt, ctc = _read_id_text(generate_dir / "mt.txt"), _read_id_text(generate_dir / "asr.txt")
    missing = [r["id"] for r in rows if r["id"] not in mt]
    if missing:
        raise ValueError(f"{generate_dir}/mt.txt: no output for {len(missing)} utterances of {corpus_list} (first: {missing[0]})")
    hyps, refs = [mt[r["id"]] for r in rows], [r["tgt_text"] for r in rows]
    res = {
        "offline_bleu": bleu(hyps, refs),
        "offline_repeats_per_100w": invented_repeats(hyps, refs),
        "asr_ctc_wer": wer([plain_words(ctc.get(r["id"], "")) for r in rows], [plain_words(r["src_text"]) for r in rows]),
    }
    if data_dir is not None:
        check = length_bound_check(hyps, _sources(corpus_list, rows), data_dir)
        res.update({f"offline_{k}": v for k, v in check.items()})
    if (generate_dir / "wav").is_dir():
        wavs = [generate_dir / "wav" / f"{r['id']}.wav" for r in rows]
        lost = [w for w in wavs if not w.is_file()]
        if lost:
            raise ValueError(f"{generate_dir / 'wav'}: no wav for {len(lost)} utterances of {corpus_list} (first: {lost[0].name})")
        scored = asr_bleu(wavs, refs, asr)
        res["offline_asr_bleu"] = scored["bleu"]
        if transcripts is not None:
            write_transcripts(transcripts, [r["id"] for r in rows], refs, text=hyps, heard=scored["transcripts"])
    return res


def compare(transcripts: Sequence[Path], column: str = "heard", n_samples: int = 1000, seed: int = 12345) -> dict:
    """Paired bootstrap resampling of BLEU over ``column`` of transcript TSVs (``heard``: ASR-BLEU,
    normalised as the scorer does; ``text``: the model's text, lower-cased 13a as ``offline``),
    each against the first: the same resampled utterances score both, so the interval is that of
    the difference itself. The files must hold the same utterances, in the same order, with the
    same references. Seeded: the same answer each run."""
    import sacrebleu

    from .asr_bleu import normalise

    if len(transcripts) < 2:
        raise ValueError("compare needs at least two transcript files (the first is the baseline)")
    if n_samples < 100:
        raise ValueError(f"--samples {n_samples}: at least 100 bootstrap resamples are needed for a 95 % interval")
    systems, first = [], None
    for path in transcripts:
        rows = _list_rows(path)
        if not rows:
            raise ValueError(f"{path}: no utterances")
        for need in ("id", "reference", column):
            if need not in rows[0]:
                raise ValueError(f"{path}: no '{need}' column (has: {', '.join(rows[0])})")
        if first is None:
            first = (path, rows)
        else:
            if len(rows) != len(first[1]):
                raise ValueError(f"{path}: {len(rows)} utterances, {first[0]} has {len(first[1])}")
            for i, (x, y) in enumerate(zip(first[1], rows)):
                if (x["id"], x["reference"]) != (y["id"], y["reference"]):
                    raise ValueError(f"{path}: line {i + 2}: utterance {y['id']!r} where {first[0]} has {x['id']!r} "
                                     "(or another reference): compare the same utterances in the same order")
        systems.append((str(path), [r[column] for r in rows]))
    refs = [r["reference"] for r in first[1]]
    if column == "heard":  # as asr_bleu scores it
        metric = sacrebleu.metrics.BLEU(tokenize="13a")
        systems = [(name, [normalise(h) for h in hyps]) for name, hyps in systems]
        refs = [normalise(r) for r in refs]
    else:
        metric = sacrebleu.metrics.BLEU(lowercase=True, tokenize="13a")
    # per-utterance sufficient statistics, summed over each resample (as sacrebleu's own
    # significance tests do): 1,000 resamples of 200 utterances take a fraction of a second
    stats = [np.asarray(metric._extract_corpus_statistics(hyps, [refs]), dtype=np.float64) for _, hyps in systems]
    score = lambda st: metric._compute_score_from_stats(list(st)).score
    idx = np.random.default_rng(seed).integers(0, len(refs), size=(n_samples, len(refs)))
    resampled = [np.array([score(st[k].sum(0)) for k in idx]) for st in stats]
    out = []
    for (name, _), st, res in zip(systems, stats, resampled):
        d = res - resampled[0]
        row = {"file": name, "bleu": score(st.sum(0)), "ci95": [float(np.percentile(res, 2.5)), float(np.percentile(res, 97.5))]}
        if out:
            row["difference"] = row["bleu"] - out[0]["bleu"]
            row["difference_ci95"] = [float(np.percentile(d, 2.5)), float(np.percentile(d, 97.5))]
            # two-sided: how often the resampled difference falls on the other side of zero
            row["p_value"] = float(min(1.0, 2 * min(np.mean(d <= 0), np.mean(d >= 0))))
        out.append(row)
    return {"column": column, "utterances": len(refs), "bootstrap_samples": n_samples, "seed": seed, "systems": out}


def read_reduced_units(path: Path) -> Dict[str, tuple]:
    """``reduced.tsv`` of echostream-extract-units: id -> (units, durations or None)."""
    out = {}
    for i, line in enumerate(Path(path).read_text().splitlines(), 1):
        parts = line.split("\t")
        if len(parts) < 2:
            raise ValueError(f"{path}: line {i}: expected 'id<TAB>units[<TAB>durations]'")
        try:
            units = [int(u) for u in parts[1].split()]
            durs = [int(d) for d in parts[2].split()] if len(parts) > 2 else None
        except ValueError:
            raise ValueError(f"{path}: line {i}: units and durations must be integers") from None
        if durs is not None and len(durs) != len(units):
            raise ValueError(f"{path}: line {i}: {len(units)} units but {len(durs)} durations")
        out[parts[0]] = (units, durs)
    return out


def _rows_with_units(corpus_list: Path, reduced_units: Path, limit: int = 0):
    rows = _list_rows(corpus_list)
    rows = rows[:limit] if limit else rows
    units = read_reduced_units(reduced_units)
    for r in rows:
        if r["id"] not in units:
            raise ValueError(f"{reduced_units}: no units for {r['id']} of {corpus_list}")
    return rows, units


def resynth(vocoder_checkpoint: Path, vocoder_config: Path, corpus_list: Path, reduced_units: Path, out_dir: Path, asr=None,
            limit: int = 0, original: bool = True, transcripts: Path = None) -> dict:
    """Transcription WER of the vocoder's speech from ground-truth units (durations predicted)
    and, with ``original``, of the original speech; ``limit`` keeps the first N utterances.
    ``transcripts`` (a TSV path) receives what the ASR heard in each."""
    import soundfile as sf
    import torch
    from tqdm import tqdm

    from .. import features
    from ..vocoder import UnitVocoder
    from .asr_bleu import WhisperASR, normalise, write_transcripts

    rows, units = _rows_with_units(corpus_list, reduced_units, limit)
    voc = UnitVocoder(vocoder_checkpoint, vocoder_config)
    asr = asr or WhisperASR()
    out_dir.mkdir(parents=True, exist_ok=True)
    heard = {"heard": []} | ({"heard_original": []} if original else {})
    for r in tqdm(rows, desc="resynthesis", unit="utt"):
        wav = voc(torch.tensor(units[r["id"]][0])).numpy()
        sf.write(str(out_dir / f"{r['id']}.wav"), wav, voc.sample_rate, subtype="PCM_16")
        heard["heard"].append(asr(wav, voc.sample_rate))
        if original:
            heard["heard_original"].append(asr(features.read_audio(corpus_list.parent / r["tgt_audio"])))
    refs = [normalise(r["tgt_text"]).split() for r in rows]
    res = {"resynth_wer": wer([normalise(h).split() for h in heard["heard"]], refs), "utterances": len(rows)}
    if original:
        res["original_wer"] = wer([normalise(h).split() for h in heard["heard_original"]], refs)
    if transcripts is not None:
        write_transcripts(transcripts, [r["id"] for r in rows], [r["tgt_text"] for r in rows], **heard)
    return res


def unit_bound(corpus_list: Path, reduced_units: Path, kmeans: Path, out_dir: Path, asr=None, limit: int = 0,
               vocoder_checkpoint: Path = None, vocoder_config: Path = None) -> dict:
    """WER of speech rebuilt without a learned vocoder (Griffin-Lim through Kaldi's mel
    filterbank), from: the original 10 ms fbank frames, their 20 ms averages (the unit
    features), the centroids of the ground-truth units at their true durations and, with a
    vocoder, at the durations its predictor gives. The original speech is the reference row."""
    import soundfile as sf
    import torch
    from tqdm import tqdm

    from .. import features
    from ..prep.units import load_quantiser, unit_features
    from .asr_bleu import WhisperASR, normalise
    from .unit_bound import invert_fbank, unit_frames

    rows, units = _rows_with_units(corpus_list, reduced_units, limit)
    centroids = load_quantiser(kmeans)
    voc = None
    if vocoder_checkpoint:
        from ..vocoder import UnitVocoder

        voc = UnitVocoder(vocoder_checkpoint, vocoder_config)
    asr = asr or WhisperASR()
    kinds = ["original", "fbank_10ms_gl", "fbank_20ms_gl", "units_true_dur_gl"] + (["units_pred_dur_gl"] if voc else [])
    hyps: Dict[str, List[List[str]]] = {k: [] for k in kinds}
    refs = []
    for r in tqdm(rows, desc="unit bound", unit="utt"):
        if units[r["id"]][1] is None:
            raise ValueError(f"{reduced_units}: no durations for {r['id']}")
        wav = features.read_audio(corpus_list.parent / r["tgt_audio"])
        red, dur = units[r["id"]]
        signals = {
            "original": wav,
            "fbank_10ms_gl": invert_fbank(features.fbank(wav)),
            "fbank_20ms_gl": invert_fbank(unit_features(wav), frame_repeat=2),
            "units_true_dur_gl": invert_fbank(unit_frames(red, centroids, dur), frame_repeat=2),
        }
        if voc:
            pred = voc.durations(torch.tensor(red)).tolist()
            signals["units_pred_dur_gl"] = invert_fbank(unit_frames(red, centroids, pred), frame_repeat=2)
        for k in kinds:
            if k != "original":
                (out_dir / k).mkdir(parents=True, exist_ok=True)
                sf.write(str(out_dir / k / f"{r['id']}.wav"), signals[k], features.SAMPLE_RATE, subtype="PCM_16")
            hyps[k].append(normalise(asr(signals[k])).split())
        refs.append(normalise(r["tgt_text"]).split())
    return {**{f"{k}_wer": wer(hyps[k], refs) for k in kinds}, "utterances": len(rows)}


def unit_error_rate(hyp_units: Dict[str, List[int]], ref_units: Dict[str, List[int]]) -> dict:
    """Edit distance of predicted vs ground-truth reduced unit sequences, in % of the reference
    length, over the utterances in ``hyp_units`` (each must have a reference)."""
    import editdistance

    missing = [u for u in hyp_units if u not in ref_units]
    if missing:
        raise ValueError(f"no ground-truth units for {len(missing)} utterances (first: {missing[0]})")
    err = sum(editdistance.eval(hyp_units[u], ref_units[u]) for u in hyp_units)
    n = sum(len(ref_units[u]) for u in hyp_units)
    lens = [len(hyp_units[u]) / max(1, len(ref_units[u])) for u in hyp_units]
    return {"uer": 100.0 * err / max(1, n), "length_ratio": float(np.mean(lens)) if lens else float("nan"), "utterances": len(hyp_units)}


def streamed_units(checkpoint: Path, data_dir: Path, corpus_list: Path, segment_ms: float = 320, limit: int = 0) -> Dict[str, List[int]]:
    """Units the streaming engine emits for each source of a corpus list (no speech synthesis),
    under the policy the agents run: the flags' defaults, or ``data_dir``'s policy file."""
    import argparse

    from tqdm import tqdm

    from .. import features
    from ..streaming.engine import PolicyConfig, load_resources
    from ..streaming.replay import replay

    res = load_resources(checkpoint, data_dir, vocoder=False)
    policy = PolicyConfig.from_args(argparse.Namespace(), punct_model=False, model_dir=data_dir)  # no flag given
    rows = _list_rows(corpus_list)
    rows = rows[:limit] if limit else rows
    out = {}
    for r in tqdm(rows, desc="streaming units", unit="utt"):
        rp = replay(res, features.read_audio(corpus_list.parent / r["src_audio"]), segment_ms, policy, speech=False)
        out[r["id"]] = [u for e in rp.events for u in e.out.units]
    return out


def _simuleval_dir(path: Path) -> dict:
    """scores.tsv of one SimulEval run (+ lower-cased BLEU recomputed from instances.log when text)."""
    lines = (path / "scores.tsv").read_text().splitlines()
    scores = dict(zip(lines[0].split("\t"), map(float, lines[1].split("\t"))))
    return scores


def _predictions(path: Path, refs: List[str]) -> List[str]:
    preds = [json.loads(l)["prediction"] for l in (path / "instances.log").read_text().splitlines()]
    if len(preds) != len(refs):
        raise ValueError(f"{path}/instances.log: {len(preds)} instances but {len(refs)} references")
    return preds


def report(eval_dir: Path, corpus_list: Path, segments: Sequence[int], out_json: Path, command: str,
           data_dir: Path = None, pair: str = None) -> dict:
    """Merge offline.json, resynth.json and s2tt_<seg>/ + s2st_<seg>/ SimulEval runs; with
    ``data_dir`` (the model's data folder) the streamed texts are checked against the length bound.
    The figures of a further language pair (``pair``) go under ``pairs`` -> pair in ``out_json``,
    beside the default pair's; the default pair's report keeps the ``pairs`` already there."""
    rows_in = _list_rows(corpus_list)
    refs = [r["tgt_text"] for r in rows_in]
    results: Dict[str, float] = {}
    for name in ("offline.json", "resynth.json"):
        p = eval_dir / name
        if p.is_file():
            results.update({k: v for k, v in json.loads(p.read_text()).items() if k != "utterances"})
    # the unseen-voice test split, offline, beside the normal test: the same keys prefixed
    p = eval_dir / "offline_unseen.json"
    if p.is_file():
        results.update({f"unseen_{k}": v for k, v in json.loads(p.read_text()).items()})
    # the unit decoder against the ground-truth units, offline and streaming (320 ms)
    for name, key in (("uer_offline.json", "offline_uer"), ("uer_stream320.json", "stream320_uer")):
        p = eval_dir / name
        if p.is_file():
            results[key] = json.loads(p.read_text())["uer"]
    rows = []
    for seg in segments:
        row = {"segment_ms": seg}
        t, s = eval_dir / f"s2tt_{seg}", eval_dir / f"s2st_{seg}"
        if (t / "scores.tsv").is_file():
            sc = _simuleval_dir(t)
            preds = _predictions(t, refs)
            row.update({"bleu": bleu(preds, refs), "repeats_per_100w": invented_repeats(preds, refs), "text_al": sc["AL"], "text_al_ca": sc.get("AL_CA", float("nan"))})
            if data_dir is not None:
                row.update(length_bound_check(preds, _sources(corpus_list, rows_in), data_dir))
        if (s / "scores.tsv").is_file():
            sc = _simuleval_dir(s)
            row.update({"asr_bleu": sc.get("ASR_BLEU_LOCAL", float("nan")), "asr_bleu_rm_sil": sc.get("ASR_BLEU_LOCAL_RM_SIL", float("nan")),
                        **{k.lower(): v for k, v in sc.items() if k.startswith(("AL", "StartOffset", "EndOffset", "ATD", "LAAL"))}})
        rows.append(row)
        if seg == 320:
            results["stream320_bleu"] = row.get("bleu", float("nan"))
            results["stream320_repeats_per_100w"] = row.get("repeats_per_100w", float("nan"))
            if "over_length_bound" in row:
                results["stream320_over_length_bound"] = row["over_length_bound"]
                results["stream320_max_length_ratio"] = row["max_length_ratio"]
            results["stream320_asr_bleu"] = row.get("asr_bleu", float("nan"))
            results["stream320_al_ms"] = row.get("al", row.get("text_al", float("nan")))
            results["stream320_al_ca_ms"] = row.get("al_ca", row.get("text_al_ca", float("nan")))
    out = {"results": {k: round(float(v), 2) for k, v in results.items()}, "streaming": rows, "command": command,
           "measured_on": machine()}
    from ..assets import read_results, write_json

    before = read_results(out_json)
    if pair:
        written = {**before, "pairs": {**before.get("pairs", {}), pair: out}}
    else:
        written = {**out, **({"pairs": before["pairs"]} if "pairs" in before else {})}
    write_json(out_json, written)
    (eval_dir / "results.md").write_text(markdown(out))
    plot(rows, eval_dir / "latency_quality.png")
    return out


def machine() -> dict:
    """The CPU the report was made on, and the instruction sets that change its kernels: the same
    units through the vocoder and Whisper-base scored es-en offline ASR-BLEU 59.27 on a 2-core
    AVX2 EPYC and 59.71 on a 2-core AVX-512 one (dev 62.54 and 63.66)."""
    import os
    import platform

    import torch

    cpu, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                cpu = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:
        pass  # not Linux: the processor name alone
    return {"cpu": cpu, "cores": os.cpu_count(), "isa": [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags],
            "torch": torch.__version__}


def markdown(out: dict) -> str:
    r = out["results"]
    f = lambda k: f"{r[k]:.1f}" if k in r and np.isfinite(r[k]) else "n/a"  # noqa: E731
    lines = ["| offline BLEU | ASR-CTC WER % | offline ASR-BLEU | resynth WER % | original WER % |", "|---|---|---|---|---|",
             f"| {f('offline_bleu')} | {f('asr_ctc_wer')} | {f('offline_asr_bleu')} | {f('resynth_wer')} | {f('original_wer')} |", "",
             "| segment | BLEU | ASR-BLEU | ASR-BLEU (silence removed) | AL | AL (CA) | StartOffset | StartOffset (CA) | EndOffset | EndOffset (CA) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    g = lambda row, k: f"{row[k]:.0f}" if k in row and np.isfinite(row[k]) else "n/a"  # noqa: E731
    b = lambda row, k: f"{row[k]:.1f}" if k in row and np.isfinite(row[k]) else "n/a"  # noqa: E731
    for row in out["streaming"]:
        lines.append(f"| {row['segment_ms']} ms | {b(row, 'bleu')} | {b(row, 'asr_bleu')} | {b(row, 'asr_bleu_rm_sil')} | {g(row, 'al')} | "
                     f"{g(row, 'al_ca')} | {g(row, 'startoffset')} | {g(row, 'startoffset_ca')} | {g(row, 'endoffset')} | {g(row, 'endoffset_ca')} |")
    return "\n".join(lines) + "\n"


def plot(rows: List[dict], path: Path) -> None:
    import logging

    import matplotlib

    logging.getLogger("matplotlib").setLevel(logging.WARNING)  # its font search logs hundreds of lines at DEBUG
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    series = [("bleu", "text_al", "BLEU vs AL", "o-"), ("bleu", "text_al_ca", "BLEU vs AL (CA)", "o--"),
              ("asr_bleu", "al", "ASR-BLEU vs AL", "s-"), ("asr_bleu", "al_ca", "ASR-BLEU vs AL (CA)", "s--")]
    for q, lat, label, style in series:
        pts = [(r[lat], r[q], r["segment_ms"]) for r in rows if q in r and lat in r]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=label)
            for x, y, seg in pts:
                ax.annotate(f"{seg}", (x, y), textcoords="offset points", xytext=(3, 3), fontsize=7)
    ax.set_xlabel("average lagging (ms)")
    ax.set_ylabel("BLEU / ASR-BLEU")
    ax.set_title("toy es→en test: quality vs latency (labels: segment ms)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(prog="echostream-score", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    o = sub.add_parser("offline", help="BLEU, ASR-CTC WER and ASR-BLEU of a fairseq-generate results folder")
    o.add_argument("--generate-dir", type=Path, required=True, help="{results-path}/{gen-subset} of fairseq-generate")
    o.add_argument("--list", type=Path, required=True, help="corpus list with src_text and tgt_text")
    o.add_argument("--out", type=Path, required=True)
    o.add_argument("--data-dir", type=Path, help="the model's data folder (config.yaml with length_bound, target "
                   "sentencepiece model): also count the outputs over the length bound")
    o.add_argument("--transcripts", type=Path, help="TSV of what the ASR heard in each wav, beside the reference and "
                   "the model's text (default: --out with the suffix .asr.tsv; written when there are wavs)")
    r = sub.add_parser("resynth", help="vocoder resynthesis of ground-truth units vs the original speech (ASR WER)")
    r.add_argument("--vocoder", type=Path, required=True)
    r.add_argument("--vocoder-config", type=Path, required=True)
    r.add_argument("--list", type=Path, required=True)
    r.add_argument("--units", type=Path, required=True, help="reduced.tsv of echostream-extract-units")
    r.add_argument("--wav-dir", type=Path, required=True, help="where the resynthesised wavs go")
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--limit", type=int, default=0, help="only the first N utterances of the list (default: all)")
    r.add_argument("--no-original", action="store_true", help="skip transcribing the original speech")
    r.add_argument("--transcripts", type=Path, help="TSV of what the ASR heard in each wav (default: --out with the "
                   "suffix .asr.tsv)")
    b = sub.add_parser("unit-bound", help="Griffin-Lim from original fbank frames and from unit centroids (ASR WER)")
    b.add_argument("--list", type=Path, required=True)
    b.add_argument("--units", type=Path, required=True, help="reduced.tsv (with durations) of echostream-extract-units")
    b.add_argument("--kmeans", type=Path, required=True, help="the built-in quantiser's centroids (.npy, K x 80 fbank)")
    b.add_argument("--vocoder", type=Path, help="also rebuild at the durations this vocoder predicts")
    b.add_argument("--vocoder-config", type=Path)
    b.add_argument("--wav-dir", type=Path, required=True)
    b.add_argument("--limit", type=int, default=0)
    b.add_argument("--out", type=Path, required=True)
    u = sub.add_parser("uer", help="unit error rate of predicted vs ground-truth units, offline or streaming")
    u.add_argument("--units", type=Path, required=True, help="ground-truth reduced.tsv")
    src = u.add_mutually_exclusive_group(required=True)
    src.add_argument("--hyp", type=Path, help="id<TAB>units file, e.g. units.txt of fairseq-generate --results-path")
    src.add_argument("--checkpoint", type=Path, help="stream each source of --list through the engine with this model")
    u.add_argument("--data-dir", type=Path, help="with --checkpoint: the data folder (config, dictionaries, CMVN)")
    u.add_argument("--list", type=Path, help="with --checkpoint: the corpus list whose sources are streamed")
    u.add_argument("--segment-ms", type=float, default=320)
    u.add_argument("--limit", type=int, default=0)
    u.add_argument("--out", type=Path, required=True)
    c = sub.add_parser("compare", help="paired bootstrap of ASR-BLEU (or text BLEU) between transcript TSVs (*.asr.tsv)")
    c.add_argument("transcripts", type=Path, nargs="+", help="*.asr.tsv files of the same utterances; the first is the baseline")
    c.add_argument("--column", choices=["heard", "text"], default="heard",
                   help="heard: ASR-BLEU of what the ASR heard (default); text: BLEU of the model's text")
    c.add_argument("--samples", type=int, default=1000, help="bootstrap resamples (default 1000)")
    c.add_argument("--out", type=Path, help="also write the figures as JSON here")
    g = sub.add_parser("report", help="merge the measurements into results.json, a table and a plot")
    g.add_argument("--eval-dir", type=Path, required=True)
    g.add_argument("--list", type=Path, required=True)
    g.add_argument("--segments", type=int, nargs="+", default=[160, 320, 640])
    g.add_argument("--out", type=Path, required=True, help="results.json to write")
    g.add_argument("--command", required=True, help="the command that produced the figures (recorded)")
    g.add_argument("--data-dir", type=Path, help="the model's data folder: also check the streamed texts against the length bound")
    g.add_argument("--pair", help="a further language pair (e.g. ko-en): its figures go under pairs -> PAIR in --out, "
                   "beside the default pair's")
    args = p.parse_args(argv)
    try:
        if args.cmd == "offline":
            res = offline(args.generate_dir, args.list, data_dir=args.data_dir,
                          transcripts=args.transcripts or args.out.with_suffix(".asr.tsv"))
        elif args.cmd == "resynth":
            res = resynth(args.vocoder, args.vocoder_config, args.list, args.units, args.wav_dir, limit=args.limit,
                          original=not args.no_original, transcripts=args.transcripts or args.out.with_suffix(".asr.tsv"))
        elif args.cmd == "unit-bound":
            if args.vocoder and not args.vocoder_config:
                p.error("--vocoder needs --vocoder-config")
            res = unit_bound(args.list, args.units, args.kmeans, args.wav_dir, limit=args.limit,
                             vocoder_checkpoint=args.vocoder, vocoder_config=args.vocoder_config)
        elif args.cmd == "uer":
            ref = {k: v[0] for k, v in read_reduced_units(args.units).items()}
            if args.hyp:
                hyp = {k: [int(x) for x in v.split()] for k, v in _read_id_text(args.hyp).items()}
            else:
                if not args.list:
                    p.error("--checkpoint needs --list")
                hyp = streamed_units(args.checkpoint, args.data_dir, args.list, args.segment_ms, args.limit)
            if args.limit:
                hyp = dict(list(hyp.items())[: args.limit])
            res = unit_error_rate(hyp, ref)
        elif args.cmd == "compare":
            res = compare(args.transcripts, args.column, args.samples)
            name = "ASR-BLEU" if args.column == "heard" else "BLEU"
            for r in res["systems"]:
                lo, hi = r["ci95"]
                vs = "baseline" if "difference" not in r else "{:+.2f} [{:+.2f}, {:+.2f}], p = {:.3f}".format(
                    r["difference"], *r["difference_ci95"], r["p_value"])
                print(f"{name} {r['bleu']:6.2f} [{lo:.2f}, {hi:.2f}]  {vs}  {r['file']}")
            print(f"({res['utterances']} utterances; [95 % intervals] over {res['bootstrap_samples']} paired bootstrap "
                  "resamples; the difference from the first file, its interval and two-sided p)")
            if args.out is None:
                return 0
        else:
            report(args.eval_dir, args.list, args.segments, args.out, args.command, data_dir=args.data_dir, pair=args.pair)
            print((args.eval_dir / "results.md").read_text())
            print(f"{args.out}; plot {args.eval_dir / 'latency_quality.png'}")
            return 0
    except (OSError, ValueError) as e:
        p.error(str(e))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
