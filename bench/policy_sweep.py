"""Latency-quality of the streaming policy on a dev set: one row per (lag k, stride n, whole-word).

Every utterance of the list is replayed through the engine (text only) in --segment-ms pieces;
the table gives lower-cased BLEU (13a), invented repeats per 100 output words (the recipe's
figure) and mean AL / StartOffset in ms (SimulEval's AL on the words' source times,
non-computation-aware). This is how PolicyConfig's defaults were chosen:
the knee of the curve, past which one more step of lag buys less than --min-gain BLEU per
100 ms of AL.

    python bench/policy_sweep.py --checkpoint CKPT --data-dir DATA --list data/toy/es-en/dev.tsv
"""
from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
from tqdm import tqdm

from echostream_fairseq import features
from echostream_fairseq.evaluation.recipe import bleu, invented_repeats
from echostream_fairseq.prep.corpus import read_list
from echostream_fairseq.streaming.engine import PolicyConfig, load_resources
from echostream_fairseq.streaming.replay import replay


WHOLE = {"both": (True, False), "yes": (True,), "no": (False,)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--data-dir", type=Path, required=True)
    p.add_argument("--list", type=Path, required=True, help="corpus list (src_audio, tgt_text)")
    p.add_argument("--limit", type=int, default=100, help="first N utterances of the list (default 100)")
    p.add_argument("--segment-ms", type=float, default=320)
    p.add_argument("--lags", type=int, nargs="+", default=[0, 1, 2, 3])
    p.add_argument("--strides", type=int, nargs="+", default=[1])
    p.add_argument("--support-lags", type=int, nargs="+", default=[-1],
                   help="CTC support lags to run with each lag k (-1: off; those >= k are skipped; default: off)")
    p.add_argument("--whole-word", choices=["both", "yes", "no"], default="both", help="whole-word settings to run")
    p.add_argument("--min-gain", type=float, default=1.0, help="BLEU per 100 ms of AL worth paying (default 1.0)")
    p.add_argument("--target-ratio", type=float, default=0.9,
                   help="also name the lowest-latency setting whose BLEU reaches this share of the offline BLEU "
                        "(the same engine deciding at the end of each utterance; default 0.9)")
    p.add_argument("--write-policy", type=Path, metavar="FILE",
                   help="write the pick as a model policy file (PolicyConfig.MODEL_FILE; echostream-export-assets --policy "
                        "ships it): the lowest-latency setting within --target-ratio of offline, else the knee")
    p.add_argument("--speech-hold-ms", type=float, default=0.0,
                   help="the playout hold to write into the policy file beside the pick (PolicyConfig.speech_hold_ms; "
                        "this sweep decodes text only, so the hold is chosen elsewhere, e.g. on dev ASR-BLEU; default 0: none)")
    args = p.parse_args(argv)
    try:
        PolicyConfig(speech_hold_ms=args.speech_hold_ms)  # a bad hold is an error before the sweep, not after it
    except ValueError as e:
        p.error(str(e))

    res = load_resources(args.checkpoint, args.data_dir, vocoder=False)
    rows = read_list(args.list)[: args.limit]
    wavs = [features.read_audio(args.list.parent / r["src_audio"]) for r in rows]
    refs = [r["tgt_text"] for r in rows]
    def run(pol, desc):
        hyps, al, so = [], [], []
        for w in tqdm(wavs, desc=desc, leave=False):
            r = replay(res, w, args.segment_ms, pol, speech=False)
            lat = r.latency()
            hyps.append(r.translation)
            al.append(lat["AL"])
            so.append(lat["StartOffset"])
        return bleu(hyps, refs), invented_repeats(hyps, refs), float(np.nanmean(al)), float(np.nanmean(so))

    offline = run(PolicyConfig(wait_until_end=True), "offline")
    table = []
    for lag, stride, whole, sup in itertools.product(args.lags, args.strides, WHOLE[args.whole_word], args.support_lags):
        if sup >= lag:
            continue
        sup = None if sup < 0 else sup
        pol = PolicyConfig(lag_k=lag, stride_n=stride, whole_word=whole, support_lag=sup)
        table.append((lag, stride, whole) + run(pol, f"k={lag} n={stride} whole_word={whole} support={sup}") + (sup,))
    print(f"{len(rows)} utterances of {args.list}, {args.segment_ms:g} ms segments\n")
    print("| lag k | stride n | whole-word | support lag | BLEU | repeats /100 w | AL ms | StartOffset ms |\n"
          "|---|---|---|---|---|---|---|---|")
    for lag, stride, whole, b, rep, a, s, sup in table:
        print(f"| {lag} | {stride} | {'yes' if whole else 'no'} | {'off' if sup is None else sup} | "
              f"{b:.1f} ({b / max(offline[0], 1e-9):.2f} x) | {rep:.2f} | {a:.0f} | {s:.0f} |")
    print(f"| offline (decided at the end) | | | | {offline[0]:.1f} | {offline[1]:.2f} | {offline[2]:.0f} | {offline[3]:.0f} |")
    # the knee: walking up the AL axis, stop where the next setting buys < --min-gain BLEU per 100 ms
    rows = sorted(table, key=lambda t: (t[5], not t[2]))
    pick = rows[0]
    for nxt in rows[1:]:
        if nxt[5] <= pick[5]:
            continue  # same latency: the whole-word setting was preferred
        if (nxt[3] - pick[3]) / ((nxt[5] - pick[5]) / 100) < args.min_gain:
            break
        pick = nxt
    def name(t, sep="=", join=" "):
        sup = [] if t[7] is None else [f"support_lag{sep}{t[7]}"]
        return join.join([f"lag_k{sep}{t[0]}", f"stride_n{sep}{t[1]}", f"whole_word{sep}{t[2]}"] + sup)

    print(f"\nknee (each further step buys < {args.min_gain} BLEU per 100 ms AL): {name(pick)}")
    near = [t for t in rows if t[3] >= args.target_ratio * offline[0]]
    if near:
        print(f"lowest AL within {args.target_ratio:g} x offline BLEU ({offline[0]:.1f}): {name(near[0])} "
              f"(BLEU {near[0][3]:.1f}, AL {near[0][5]:.0f} ms)")
    else:
        print(f"no setting reaches {args.target_ratio:g} x offline BLEU ({offline[0]:.1f})")
    if args.write_policy:
        chosen = near[0] if near else pick
        lines = [f"# the streaming policy of this model, measured by bench/policy_sweep.py on {len(refs)} utterances of",
                 f"# {args.list} ({args.segment_ms:g} ms segments; offline BLEU {offline[0]:.1f}): "
                 + (f"the lowest AL within {args.target_ratio:g} x offline" if near else "the knee (none within "
                    f"{args.target_ratio:g} x offline)")]
        lines += [f"#   {name(t, ' ')}: BLEU {t[3]:.1f}, AL {t[5]:.0f} ms" for t in table]
        lines += ["policy:"] + [f"  {x.lower()}" for x in name(chosen, ": ", "\n").split("\n")]
        if args.speech_hold_ms:
            lines += [f"  speech_hold_ms: {args.speech_hold_ms:g}  # chosen by hand (--speech-hold-ms), not by this sweep"]
        args.write_policy.parent.mkdir(parents=True, exist_ok=True)
        args.write_policy.write_text("\n".join(lines) + "\n")
        print(f"wrote {args.write_policy}")

if __name__ == "__main__":
    main()
