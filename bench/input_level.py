"""A quiet speaker: offline BLEU and ASR-CTC WER of a model on a split played quieter, with and
without its data config's input level normalisation (``input_level``).

The first --limit utterances of --split are written again at each --gains level (dB against the
corpus), and once more at --noisy-gain dB after half a second of silence, under pink noise
--noisy-snr dB below the speech. Each version is decoded by ``fairseq-generate`` (greedy), as
the recipe's stage 5 does, once with the model's data config and once with that config less its
``input_level``. The table gives BLEU (lower-cased 13a) and ASR-CTC WER per version and config;
the last line the lowest BLEU over the versions, without and with it.

    python bench/input_level.py --model-dir assets/model --data data/toy_evalset/es-en/prepared --split test
"""
from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import yaml

from echostream_fairseq import features
from echostream_fairseq.evaluation.recipe import _read_id_text, bleu, plain_words, wer


def _pink(n: int, rng: np.random.Generator) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n)) / np.sqrt(np.arange(n // 2 + 1) + 1.0)
    y = np.fft.irfft(spec, n)
    return y / np.sqrt(np.mean(y ** 2))


def _versions(gains, noisy_gain, noisy_snr):
    out = [(f"{g:+g} dB", g, None) for g in gains]
    if noisy_gain is not None:
        out.append((f"{noisy_gain:+g} dB, pink noise {noisy_snr:g} dB under", noisy_gain, noisy_snr))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-dir", type=Path, default=Path("assets/model"), help="checkpoint.pt + config.yaml (with input_level)")
    p.add_argument("--data", type=Path, required=True, help="a prepared data folder holding --split (its manifests and multitask lists)")
    p.add_argument("--split", default="test")
    p.add_argument("--limit", type=int, default=100, help="first N utterances (default 100)")
    p.add_argument("--gains", type=float, nargs="+", default=[0.0, -20.0, -30.0, -40.0])
    p.add_argument("--noisy-gain", type=float, default=-30.0)
    p.add_argument("--noisy-snr", type=float, default=25.0)
    p.add_argument("--work", type=Path, default=Path("runs/input_level"), help="scratch folder (replaced)")
    a = p.parse_args(argv)

    cfg_path = a.model_dir / "config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    if "input_level" not in cfg:
        sys.exit(f"{cfg_path} has no input_level: nothing to compare")
    if a.work.exists():
        shutil.rmtree(a.work)
    data = a.work / "data"
    shutil.copytree(a.data, data, ignore=shutil.ignore_patterns("*.wav"))
    # the model's config, and the same less input_level, beside its files (paths made absolute)
    model = a.model_dir.resolve()
    configs = {}
    for name, level in (("with", True), ("without", False)):
        c = yaml.safe_load(cfg_path.read_text())
        c["global_cmvn"]["stats_npz_path"] = str(model / c["global_cmvn"]["stats_npz_path"])
        for side in ("source_bpe", "target_bpe"):
            c[side]["sentencepiece_model"] = str(model / c[side]["sentencepiece_model"])
        c.pop("vocoder", None)  # text only
        if not level:
            c.pop("input_level")
        configs[name] = a.work / f"config_{name}.yaml"
        configs[name].write_text(yaml.safe_dump(c, sort_keys=False))

    with open(a.data / f"{a.split}.tsv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[: a.limit]
    if not rows:
        sys.exit(f"{a.data / a.split}.tsv has no utterances")
    rng = np.random.default_rng(0)
    wav_dir = a.work / "wav"
    wav_dir.mkdir()
    table = []
    for i, (label, gain, snr) in enumerate(_versions(a.gains, a.noisy_gain, a.noisy_snr)):
        split = f"{a.split}_v{i}"
        with open(data / f"{split}.tsv", "w", encoding="utf-8", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter="\t", quoting=csv.QUOTE_NONE, lineterminator="\n")
            w.writeheader()
            for r in rows:
                x = features.read_audio(a.data / r["src_audio"]) * np.float32(10 ** (gain / 20))
                if snr is not None:
                    x = np.concatenate([np.zeros(features.SAMPLE_RATE // 2, np.float32), x])
                    speech_rms = np.sqrt(np.mean(x[x != 0] ** 2))
                    x = x + (_pink(x.size, rng) * speech_rms * 10 ** (-snr / 20)).astype(np.float32)
                out = wav_dir / f"{r['id']}_v{i}.wav"
                sf.write(out, np.clip(x, -1, 1), features.SAMPLE_RATE)
                w.writerow({**r, "src_audio": str(out.resolve()), "src_n_frames": features.num_frames(x.size)})
        for side in ("src_text", "tgt_text"):
            lines = (a.data / side / f"{a.split}.tsv").read_text(encoding="utf-8").splitlines()[: len(rows) + 1]
            (data / side / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
        row = [label]
        for name, yaml_path in configs.items():
            res = a.work / f"gen_{name}"
            subprocess.run([str(Path(sys.executable).parent / "fairseq-generate"), str(data), "--user-dir", "echostream_fairseq",
                            "--task", "echostream_s2st", "--config-yaml", str(yaml_path.resolve()),
                            "--multitask-config-yaml", "config_mtl.yaml", "--path", str(model / "checkpoint.pt"),
                            "--gen-subset", split, "--beam", "1", "--max-tokens", "40000", "--results-path", str(res)],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            mt, ctc = _read_id_text(res / split / "mt.txt"), _read_id_text(res / split / "asr.txt")
            row.append((bleu([mt.get(r["id"], "") for r in rows], [r["tgt_text"] for r in rows]),
                        wer([plain_words(ctc.get(r["id"], "")) for r in rows], [plain_words(r["src_text"]) for r in rows])))
        table.append(row)
        print(f"{label}: " + ", ".join(f"{n} BLEU {b:.1f} WER {e:.1f}" for n, (b, e) in zip(configs, row[1:])), flush=True)
    print(f"\n{len(rows)} utterances of {a.data / a.split}.tsv, model {a.model_dir}\n")
    print("| source | BLEU without / with input_level | ASR-CTC WER without / with |")
    print("|---|---|---|")
    for label, (b0, e0), (b1, e1) in ((r[0], r[2], r[1]) for r in table):
        print(f"| {label} | {b0:.1f} / {b1:.1f} | {e0:.1f} / {e1:.1f} % |")
    print(f"\ninput_level worst_bleu without={min(r[2][0] for r in table):.2f} with={min(r[1][0] for r in table):.2f}")


if __name__ == "__main__":
    main()
