"""echostream-fit-unit-head: fit a trained model's unit output layer to the units of a prepared
folder (a new target voice or quantiser), as the start of training its speech side on them.

The model is run once, in eval mode and teacher-forced on the reference text, over the training
split (the first --max-utterances of it) and the validation split; the input of the unit output
layer at every unit slot is kept, and that layer alone is fitted by the training criterion's unit
CTC loss. The output is the checkpoint with the new layer (every other tensor as it was, no
optimiser state), for fairseq-train --init-from OUT --train-only t2u unit_decoder, and OUT.json
with the validation loss per epoch (fairseq-validate's unit_loss). The layer kept is the one of
the epoch with the lowest validation loss.
"""
import argparse
import json
import sys
from pathlib import Path


def main(argv=None):
    p = argparse.ArgumentParser(prog="echostream-fit-unit-head", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, required=True, help="model checkpoint written by fairseq-train")
    p.add_argument("--data", type=Path, required=True, help="prepared data folder with the new units (config.yaml, {split}.tsv)")
    p.add_argument("--out", type=Path, required=True, help="checkpoint to write (OUT.json: the fitting record)")
    p.add_argument("--train-split", default="train", help="split the layer is fitted on (default train)")
    p.add_argument("--valid-split", default="dev", help="split the epochs are judged on (default dev)")
    p.add_argument("--max-utterances", type=int, default=6000,
                   help="training utterances kept (default 6000; their states take ~60 KB each in fp16)")
    p.add_argument("--epochs", type=int, default=12, help="passes over the kept utterances (default 12)")
    p.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate (default 3e-3)")
    p.add_argument("--batch-size", type=int, default=64, help="utterances per step (default 64)")
    p.add_argument("--max-tokens", type=int, default=40000, help="source frames per batch of the model's pass (default 40000)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--no-progress-bar", action="store_true")
    args = p.parse_args(argv)
    for name in ("max_utterances", "epochs", "batch_size", "max_tokens"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if not args.lr > 0:
        p.error(f"--lr must be positive, got {args.lr}")
    import torch
    from tqdm import tqdm

    from ..models.echostream import ctc_blank
    from ..prep.unit_head import fit_head, head_inputs, load_for_fitting, save_with_head

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    try:
        model, task = load_for_fitting(args.checkpoint, args.data)
    except (FileNotFoundError, ValueError) as e:
        p.error(str(e))
    blank = ctc_blank(task.target_dictionary)
    bar = dict(disable=args.no_progress_bar, unit="utt")
    try:  # (an augmenting data config, a split the folder lacks)
        with tqdm(desc=f"states {args.valid_split}", **bar) as t:
            valid = head_inputs(model, task, args.valid_split, max_tokens=args.max_tokens, progress=t.update)
        with tqdm(desc=f"states {args.train_split}", total=args.max_utterances, **bar) as t:
            train = head_inputs(model, task, args.train_split, args.max_utterances, args.max_tokens, progress=t.update)
    except (FileNotFoundError, ValueError) as e:
        p.error(f"{args.data}: {e}")
    head = torch.nn.Linear(model.unit_decoder.out.in_features, model.unit_decoder.out.out_features)
    head.load_state_dict(model.unit_decoder.out.state_dict())
    history = fit_head(head, train, valid, blank, args.epochs, args.lr, args.batch_size, args.seed,
                       log=lambda s: print(s, flush=True))
    save_with_head(args.checkpoint, head, args.out)
    best = min(history, key=lambda r: r["valid_unit_loss"])
    record = {"checkpoint": str(args.checkpoint), "data": str(args.data), "train_utterances": len(train),
              "valid_utterances": len(valid), "epochs": history, "kept_epoch": best["epoch"]}
    Path(str(args.out) + ".json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"unit output layer fitted on {len(train)} utterances: valid unit loss {history[0]['valid_unit_loss']:.2f} -> "
          f"{best['valid_unit_loss']:.2f} (epoch {best['epoch']}) -> {args.out}")


if __name__ == "__main__":
    sys.exit(main())
