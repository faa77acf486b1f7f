"""echostream-extract-units: discrete units of target speech, one file per utterance.

Built-in path: fit a k-means quantiser (--num-units K) on 20 ms fbank frames of the target
speech of one list (--fit-list, default the first), save it (--kmeans-out), quantise all
lists. Real-asset path: --hubert CKPT --layer N --kmeans KM (a HuBERT/mHuBERT checkpoint in
fairseq's format and its k-means model). --kmeans KM alone quantises built-in features with an
existing quantiser.

Writes {out}/{id}.npy (per-frame units, for vocoder training) and {out}/reduced.tsv
(id, reduced units, durations; for manifests).
"""
import argparse
import sys
from pathlib import Path

import numpy as np


def main(argv=None):
    p = argparse.ArgumentParser(prog="echostream-extract-units", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lists", type=Path, nargs="+", required=True, help="list files (id and an audio column; paths relative to the list)")
    p.add_argument("--audio-column", default="tgt_audio", help="column holding the speech to quantise (default tgt_audio)")
    p.add_argument("--out", type=Path, required=True, help="output folder for the unit files")
    p.add_argument("--num-units", type=int, help="built-in path: K of the k-means quantiser to fit")
    p.add_argument("--fit-list", type=Path, help="built-in path: list whose speech fits the quantiser (default: the first list)")
    p.add_argument("--kmeans-out", type=Path, help="built-in path: where to save the fitted quantiser (.npy; default {out}/kmeans.npy)")
    p.add_argument("--kmeans", type=Path, help="an existing k-means model (.npy centroids or fairseq's joblib k-means)")
    p.add_argument("--hubert", type=Path, help="HuBERT/mHuBERT checkpoint in fairseq's format")
    p.add_argument("--layer", type=int, help="HuBERT layer whose output is quantised (1-based)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    from ..prep import units
    from ..prep.corpus import read_list

    if args.hubert and (args.layer is None or args.kmeans is None):
        p.error("--hubert needs --layer and --kmeans")
    if args.kmeans is None and args.num_units is None:
        p.error("give --num-units K (fit a quantiser) or --kmeans MODEL")
    if args.kmeans is not None and args.num_units is not None:
        p.error("--num-units fits a new quantiser; do not combine it with --kmeans")

    items = []
    for lst in args.lists:
        rows = read_list(lst)
        if rows and args.audio_column not in rows[0]:
            p.error(f"{lst}: no column '{args.audio_column}'")
        items += [(r["id"], (lst.parent / r[args.audio_column])) for r in rows]
    ids = [i for i, _ in items]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        p.error(f"id {dup} appears more than once in the lists")

    featurise = units.HubertFeatures(args.hubert, args.layer) if args.hubert else units.unit_features
    if args.kmeans is not None:
        centroids = units.load_quantiser(args.kmeans)
    else:
        fit = args.fit_list or args.lists[0]
        fit_ids = {r["id"] for r in read_list(fit)}
        from tqdm import tqdm

        from .. import features

        feats = [featurise(features.read_audio(w)) for uid, w in tqdm(items, desc="fit features", unit="utt") if uid in fit_ids]
        centroids = units.fit_kmeans(feats, args.num_units, seed=args.seed)
        km_out = args.kmeans_out or args.out / "kmeans.npy"
        km_out.parent.mkdir(parents=True, exist_ok=True)
        np.save(km_out, centroids)
        print(f"quantiser: {km_out} (K={args.num_units}, fitted on {len(feats)} utterances of {fit})")
    out = units.write_units(items, args.out, featurise, centroids)
    print(f"units: {len(items)} utterances -> {out}/{{id}}.npy and {out}/reduced.tsv")


if __name__ == "__main__":
    sys.exit(main())
