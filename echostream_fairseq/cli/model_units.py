"""echostream-model-units: the units a trained model predicts for a split, each laid on the
frames of the reference target speech, written as vocoder training data.

The model is teacher-forced on the reference text, its greedy CTC units collapsed as in
inference, and the sequence aligned monotonically to the target speech's 20 ms frames by the
distance of each frame's features to its unit's k-means centroid (the quantiser that made the
training units). echostream-train-vocoder --units-dir OUT --init-from G then fits a vocoder to the
units it will be given in inference.
Writes {out}/{id}.npy (per-frame units) and {out}/report.json (counts; utterances skipped because
the model predicts no units or more units than the speech has frames, each with the reason).
"""
import argparse
import json
import sys
from pathlib import Path


def main(argv=None):
    p = argparse.ArgumentParser(prog="echostream-model-units", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, required=True, help="model checkpoint written by fairseq-train")
    p.add_argument("--data", type=Path, required=True, help="prepared data folder (config.yaml, {split}.tsv)")
    p.add_argument("--split", default="train", help="split of the prepared folder (default train)")
    p.add_argument("--lists", type=Path, nargs="+", required=True, help="corpus lists with the target speech (id, tgt_audio)")
    p.add_argument("--kmeans", type=Path, required=True, help="the quantiser of the model's units (.npy centroids)")
    p.add_argument("--out", type=Path, required=True, help="output folder for the unit files")
    p.add_argument("--max-tokens", type=int, default=20000, help="source frames per batch (default 20000)")
    p.add_argument("--no-progress-bar", action="store_true")
    args = p.parse_args(argv)
    from tqdm import tqdm

    import numpy as np

    from ..prep import units
    from ..prep.corpus import read_list
    from ..prep.model_units import align_split, predicted_units

    for lst in args.lists:
        if not lst.is_file():
            p.error(f"list not found: {lst}")
    audio = {r["id"]: lst.parent / r["tgt_audio"] for lst in args.lists for r in read_list(lst)}
    centroids = units.load_quantiser(args.kmeans)
    bar = dict(disable=args.no_progress_bar, unit="utt")
    pred = dict(tqdm(predicted_units(args.checkpoint, args.data, args.split, args.max_tokens), desc="predict", **bar))
    args.out.mkdir(parents=True, exist_ok=True)
    n_units = n_frames = 0
    skipped = {}
    for uid, frames, why in tqdm(align_split(pred, audio, centroids, units.unit_features), total=len(pred), desc="align", **bar):
        if frames is None:
            skipped[uid] = why
            continue
        np.save(args.out / f"{uid}.npy", frames)
        n_units += len(pred[uid])
        n_frames += len(frames)
    report = {"checkpoint": str(args.checkpoint), "split": args.split, "utterances": len(pred) - len(skipped),
              "units": n_units, "frames": n_frames, "skipped": skipped}
    (args.out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    for uid, why in skipped.items():
        print(f"skipped {uid}: {why}", file=sys.stderr)
    print(f"model units: {report['utterances']} utterances ({len(skipped)} skipped, listed in report.json), {n_units} units over {n_frames} frames -> {args.out}/{{id}}.npy")


if __name__ == "__main__":
    sys.exit(main())
