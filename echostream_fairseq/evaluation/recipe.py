"""echostream-score: the measurements of a recipe, written as JSON and gathered into a report.

Subcommands (each writes one JSON file; ``report`` merges them):

* ``offline``: a ``fairseq-generate`` results folder ({mt,asr}.txt, wav/) against a corpus list:
  MT BLEU (lower-cased, 13a), ASR-CTC WER (lower-cased, punctuation removed) and ASR-BLEU;
* ``resynth``: the vocoder on ground-truth target units vs. the original target speech, both
  transcribed by the independent ASR: WER of each;
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


def offline(generate_dir: Path, corpus_list: Path, asr=None) -> dict:
    from .asr_bleu import asr_bleu

    rows = _list_rows(corpus_list)
    mt, ctc = _read_id_text(generate_dir / "mt.txt"), _read_id_text(generate_dir / "asr.txt")
    missing = [r["id"] for r in rows if r["id"] not in mt]
    if missing:
        raise ValueError(f"{generate_dir}/mt.txt: no output for {len(missing)} utterances of {corpus_list} (first: {missing[0]})")
    res = {
        "offline_bleu": bleu([mt[r["id"]] for r in rows], [r["tgt_text"] for r in rows]),
        "asr_ctc_wer": wer([plain_words(ctc.get(r["id"], "")) for r in rows], [plain_words(r["src_text"]) for r in rows]),
    }
    wavs = [generate_dir / "wav" / f"{r['id']}.wav" for r in rows]
    if all(w.is_file() for w in wavs):
        res["offline_asr_bleu"] = asr_bleu(wavs, [r["tgt_text"] for r in rows], asr)["bleu"]
    return res


def resynth(vocoder_checkpoint: Path, vocoder_config: Path, corpus_list: Path, reduced_units: Path, out_dir: Path, asr=None) -> dict:
    """Transcription WER of the vocoder's speech from ground-truth units and of the original speech."""
    import soundfile as sf
    import torch

    from .. import features
    from ..vocoder import UnitVocoder
    from .asr_bleu import WhisperASR, normalise

    rows = _list_rows(corpus_list)
    units = {}
    for i, line in enumerate(reduced_units.read_text().splitlines(), 1):
        parts = line.split("\t")
        if len(parts) < 2:
            raise ValueError(f"{reduced_units}: line {i}: expected 'id<TAB>units[<TAB>durations]'")
        units[parts[0]] = [int(u) for u in parts[1].split()]
    voc = UnitVocoder(vocoder_checkpoint, vocoder_config)
    asr = asr or WhisperASR()
    out_dir.mkdir(parents=True, exist_ok=True)
    hyp_re, hyp_or, refs = [], [], []
    from tqdm import tqdm

    for r in tqdm(rows, desc="resynthesis", unit="utt"):
        if r["id"] not in units:
            raise ValueError(f"{reduced_units}: no units for {r['id']} of {corpus_list}")
        wav = voc(torch.tensor(units[r["id"]])).numpy()
        sf.write(str(out_dir / f"{r['id']}.wav"), wav, voc.sample_rate, subtype="PCM_16")
        hyp_re.append(normalise(asr(wav, voc.sample_rate)).split())
        hyp_or.append(normalise(asr(features.read_audio(corpus_list.parent / r["tgt_audio"]))).split())
        refs.append(normalise(r["tgt_text"]).split())
    return {"resynth_wer": wer(hyp_re, refs), "original_wer": wer(hyp_or, refs)}


def _simuleval_dir(path: Path) -> dict:
    """scores.tsv of one SimulEval run (+ lower-cased BLEU recomputed from instances.log when text)."""
    lines = (path / "scores.tsv").read_text().splitlines()
    scores = dict(zip(lines[0].split("\t"), map(float, lines[1].split("\t"))))
    return scores


def _text_bleu(path: Path, refs: List[str]) -> float:
    preds = [json.loads(l)["prediction"] for l in (path / "instances.log").read_text().splitlines()]
    if len(preds) != len(refs):
        raise ValueError(f"{path}/instances.log: {len(preds)} instances but {len(refs)} references")
    return bleu(preds, refs)


def report(eval_dir: Path, corpus_list: Path, segments: Sequence[int], out_json: Path, command: str) -> dict:
    """Merge offline.json, resynth.json and s2tt_<seg>/ + s2st_<seg>/ SimulEval runs."""
    refs = [r["tgt_text"] for r in _list_rows(corpus_list)]
    results: Dict[str, float] = {}
    for name in ("offline.json", "resynth.json"):
        p = eval_dir / name
        if p.is_file():
            results.update(json.loads(p.read_text()))
    rows = []
    for seg in segments:
        row = {"segment_ms": seg}
        t, s = eval_dir / f"s2tt_{seg}", eval_dir / f"s2st_{seg}"
        if (t / "scores.tsv").is_file():
            sc = _simuleval_dir(t)
            row.update({"bleu": _text_bleu(t, refs), "text_al": sc["AL"], "text_al_ca": sc.get("AL_CA", float("nan"))})
        if (s / "scores.tsv").is_file():
            sc = _simuleval_dir(s)
            row.update({"asr_bleu": sc.get("ASR_BLEU_LOCAL", float("nan")), "asr_bleu_rm_sil": sc.get("ASR_BLEU_LOCAL_RM_SIL", float("nan")),
                        **{k.lower(): v for k, v in sc.items() if k.startswith(("AL", "StartOffset", "EndOffset", "ATD", "LAAL"))}})
        rows.append(row)
        if seg == 320:
            results["stream320_bleu"] = row.get("bleu", float("nan"))
            results["stream320_asr_bleu"] = row.get("asr_bleu", float("nan"))
            results["stream320_al_ms"] = row.get("al", row.get("text_al", float("nan")))
            results["stream320_al_ca_ms"] = row.get("al_ca", row.get("text_al_ca", float("nan")))
    out = {"results": {k: round(float(v), 2) for k, v in results.items()}, "streaming": rows, "command": command}
    out_json.write_text(json.dumps(out, indent=2, allow_nan=True) + "\n")
    (eval_dir / "results.md").write_text(markdown(out))
    plot(rows, eval_dir / "latency_quality.png")
    return out


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
    r = sub.add_parser("resynth", help="vocoder resynthesis of ground-truth units vs the original speech (ASR WER)")
    r.add_argument("--vocoder", type=Path, required=True)
    r.add_argument("--vocoder-config", type=Path, required=True)
    r.add_argument("--list", type=Path, required=True)
    r.add_argument("--units", type=Path, required=True, help="reduced.tsv of echostream-extract-units")
    r.add_argument("--wav-dir", type=Path, required=True, help="where the resynthesised wavs go")
    r.add_argument("--out", type=Path, required=True)
    g = sub.add_parser("report", help="merge the measurements into results.json, a table and a plot")
    g.add_argument("--eval-dir", type=Path, required=True)
    g.add_argument("--list", type=Path, required=True)
    g.add_argument("--segments", type=int, nargs="+", default=[160, 320, 640])
    g.add_argument("--out", type=Path, required=True, help="results.json to write")
    g.add_argument("--command", required=True, help="the command that produced the figures (recorded)")
    args = p.parse_args(argv)
    try:
        if args.cmd == "offline":
            res = offline(args.generate_dir, args.list)
        elif args.cmd == "resynth":
            res = resynth(args.vocoder, args.vocoder_config, args.list, args.units, args.wav_dir)
        else:
            report(args.eval_dir, args.list, args.segments, args.out, args.command)
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
