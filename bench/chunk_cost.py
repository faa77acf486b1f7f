"""Per-chunk cost of streaming: our incremental engine vs re-computing the prefix.

One continuous stream (toy-corpus source utterances laid end to end) is fed in 320 ms chunks
to a ``StreamingSession`` with sentence boundaries on (learned, from the shipped punctuation
model, and at pauses; ``--no-boundaries``: one sentence for the whole stream). At 1 s, 10 s,
60 s and 300 s into the stream the wall time of the chunks that follow is recorded
(``--window`` chunks for the engine, whose cost depends on where in a sentence a chunk falls;
``--repeats`` for the baseline) for

* the encoder alone: online fbank + Emformer ``infer`` (ours) vs fbank + Emformer ``forward``
  over the whole prefix (the baseline);
* the whole pipeline: our engine's ``step`` vs the baseline, which at every chunk recomputes
  fbank, encoder, both CTC heads, the MT decoder over all committed tokens (no incremental
  state), T2U + unit decoder over all text and the vocoder over all units (what StreamSpeech's
  agent does), for as many tokens as the engine has committed in the talk at that point.

Prints a table, the ratios cost(300 s) / cost(1 s), the engine's real-time factor (compute
time / audio time, whole stream) and, last, ``chunk_cost_ratio engine=.. baseline=.. rtf=..``.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from echostream_fairseq import features
from echostream_fairseq.decoding import ctc_collapse, unit_ids
from echostream_fairseq.models.echostream import ctc_blank
from echostream_fairseq.prep.corpus import read_list
from echostream_fairseq.streaming.engine import PolicyConfig, StreamingSession, load_resources
from echostream_fairseq.streaming.feeder import segment_samples

CHUNK_MS = 320
POINTS_S = (1, 10, 60, 300)


def long_stream(corpus: Path, seconds: float):
    """Source utterances of a list file (or of a corpus folder's test/dev/train lists), end to
    end and repeated if need be; returns the audio and the length (s) of one pass over the list."""
    wavs, total = [], 0
    lists = [corpus] if corpus.is_file() else [corpus / f"{s}.tsv" for s in ("test", "dev", "train") if (corpus / f"{s}.tsv").is_file()]
    rows = [(lst.parent, r) for lst in lists for r in read_list(lst)]
    if not rows:
        raise FileNotFoundError(f"no list files in {corpus}")
    i = 0
    one_pass = None
    while total < seconds * features.SAMPLE_RATE:
        root, row = rows[i % len(rows)]
        w = features.read_audio(root / row["src_audio"])
        wavs.append(w)
        total += len(w)
        i += 1
        if i == len(rows):
            one_pass = total / features.SAMPLE_RATE
    return np.concatenate(wavs)[: int(seconds * features.SAMPLE_RATE)], one_pass


@torch.no_grad()
def baseline_chunk(res, prefix: np.ndarray, committed, encoder_only: bool) -> float:
    """One chunk of the re-compute-everything baseline; returns seconds."""
    m = res.model
    t0 = time.perf_counter()
    feats = torch.from_numpy(res.cmvn(features.fbank(prefix)))
    enc = m.encoder(feats[None], torch.tensor([feats.size(0)]))
    if encoder_only:
        return time.perf_counter() - t0
    for proj in (m.asr_ctc_proj, m.st_ctc_proj):
        m.ctc_log_probs(proj, enc).argmax(-1)
    tokens = torch.tensor([[m.mt_dict.eos()] + list(committed)])
    _, states = m.mt_forward(tokens, enc)
    n = len(committed)
    if n:
        logits, lengths = m.units_forward(states[:, 1:], torch.tensor([n]), tokens[:, 1:])
        units = unit_ids(res.unit_dict, ctc_collapse(logits[0].argmax(-1).tolist(), ctc_blank(res.unit_dict)))
        if res.vocoder is not None and units:
            res.vocoder(torch.tensor(units))
    return time.perf_counter() - t0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, default=Path("assets/model/checkpoint.pt"), help="default: the shipped model")
    p.add_argument("--data-dir", type=Path, default=Path("assets/model"))
    p.add_argument("--corpus", type=Path, default=Path("assets/examples/examples.tsv"),
                   help="a list file, or a corpus folder with {test,dev,train}.tsv (default: the shipped examples)")
    p.add_argument("--seconds", type=float, help="stream length (default: enough for the last point and its window)")
    p.add_argument("--repeats", type=int, default=3, help="baseline chunks timed at each point (median)")
    p.add_argument("--window", type=int, help="engine chunks averaged at each point (default: one pass over the list when the "
                                               "stream repeats it, so every point averages the same sentences; else 25)")
    p.add_argument("--vocoder-checkpoint", type=Path, help="default: the data config's vocoder")
    p.add_argument("--vocoder-config", type=Path)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--punct", type=Path, default=Path("assets/model/punct.pt"), help="punctuation / sentence-boundary model")
    p.add_argument("--no-boundaries", action="store_true", help="one sentence for the whole stream")
    PolicyConfig.add_args(p)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    for path, hint in ((args.checkpoint, "train a model (examples/toy_es_en) or pass --checkpoint"), (args.data_dir, "pass --data-dir")):
        if not path.exists():
            raise SystemExit(f"{path} not found: {hint}")
    import yaml

    voc_ckpt, voc_cfg = args.vocoder_checkpoint, args.vocoder_config
    if voc_ckpt is None and "vocoder" not in (yaml.safe_load((args.data_dir / "config.yaml").read_text()) or {}):
        import tempfile

        from echostream_fairseq.prep.micro import write_untrained_vocoder

        k = int(yaml.safe_load((args.data_dir / "config.yaml").read_text())["num_units"])
        voc_ckpt, voc_cfg = write_untrained_vocoder(Path(tempfile.mkdtemp()), k)
        print(f"note: {args.data_dir} names no vocoder; timing an untrained small CodeHiFiGAN ({voc_cfg}); cost does not depend on its weights")
    res = load_resources(args.checkpoint, args.data_dir, vocoder_checkpoint=voc_ckpt, vocoder_config=voc_cfg,
                         punct_model=None if args.no_boundaries else args.punct)
    if args.seconds is None:
        args.seconds = max(POINTS_S) + 61
    audio, one_pass = long_stream(args.corpus, args.seconds)
    if args.window is None:
        args.window = int(np.ceil(one_pass * 1000 / CHUNK_MS)) if one_pass and one_pass <= 60 else 25
    chunk = segment_samples(CHUNK_MS)
    n_chunks = len(audio) // chunk
    marks = {int(round(s * 1000 / CHUNK_MS)): s for s in POINTS_S if s * 1000 / CHUNK_MS + max(args.window, args.repeats) <= n_chunks}

    # the engine streams the whole audio; at each mark a few chunks are timed
    policy = PolicyConfig() if args.no_boundaries else PolicyConfig.from_args(args, punct_model=True)
    session = StreamingSession(res, policy)
    enc_only = StreamingSession(res, policy, speech=False, translate=False)
    timed = {s: {"engine": [], "enc": [], "committed": None} for s in marks.values()}
    total = 0.0
    for i in range(n_chunks):
        piece = audio[i * chunk : (i + 1) * chunk]
        t0 = time.perf_counter()
        session.step(piece)
        dt = time.perf_counter() - t0
        total += dt
        t0 = time.perf_counter()
        enc_only.step(piece)
        dt_enc = time.perf_counter() - t0
        for start, s in marks.items():
            if start <= i < start + args.window:
                timed[s]["engine"].append(dt)
                timed[s]["enc"].append(dt_enc)
            if i == start:
                # the baseline has no sentences: it re-decodes every token of the talk so far (its
                # cost depends on how many, not which)
                n_talk = session.count.closed_tokens + len(session.committed)
                ids = session.committed or [res.model.mt_dict.unk()]
                timed[s]["committed"] = [ids[j % len(ids)] for j in range(n_talk)]
                timed[s]["end"] = (i + 1) * chunk
    rtf = total / (n_chunks * CHUNK_MS / 1000)

    rows = []
    for s, t in timed.items():
        prefix = audio[: t["end"]]
        base_enc = [baseline_chunk(res, prefix, t["committed"], True) for _ in range(args.repeats)]
        base = [baseline_chunk(res, prefix, t["committed"], False) for _ in range(args.repeats)]
        rows.append((s, 1000 * np.mean(t["enc"]), 1000 * np.median(base_enc), 1000 * np.mean(t["engine"]), 1000 * np.median(base), len(t["committed"])))

    print(f"per-chunk wall time of {CHUNK_MS} ms chunks (ours: mean of {args.window} chunks; prefix: median of {args.repeats}), "
          f"{args.threads} threads, {args.checkpoint}, sentence boundaries: "
          + ("off" if args.no_boundaries else f"learned (delay {policy.punct_delay}) and {'no' if policy.pause_ms is None else f'{policy.pause_ms:g} ms'} pauses, "
             f"{session.count.sentences} closed"))
    print(f"{'position':>9} | {'encoder ours':>12} | {'encoder prefix':>14} | {'engine ours':>11} | {'prefix baseline':>15} | tokens committed")
    for s, e, be, g, b, n in rows:
        print(f"{s:>8}s | {e:>9.1f} ms | {be:>11.1f} ms | {g:>8.1f} ms | {b:>12.1f} ms | {n}")
    first, last = rows[0], rows[-1]
    span = f"{last[0]}s/{first[0]}s"
    print(f"encoder cost ratio {span}: ours {last[1] / first[1]:.2f}, prefix {last[2] / first[2]:.2f}")
    print(f"pipeline cost ratio {span}: engine {last[3] / first[3]:.2f}, prefix baseline {last[4] / first[4]:.2f}")
    print(f"engine real-time factor (compute / audio, {n_chunks * CHUNK_MS / 1000:.0f} s stream): {rtf:.3f}")
    print(f"chunk_cost_ratio engine={last[3] / first[3]:.2f} baseline={last[4] / first[4]:.2f} rtf={rtf:.2f}")


if __name__ == "__main__":
    main()
