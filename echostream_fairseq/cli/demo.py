"""echostream-demo: the main job on the bundled default.

Streams the bundled example source wavs of every shipped language pair (held-out toy test
sentences: Spanish, and Korean where its pair ships; --pair picks one) through the streaming
engine with the shipped models and vocoder (assets/), in 320 ms segments as if they were live. For each: the transcript and translation as they grow, with the source time read
and compute time spent, the latency figures (plain and computation-aware), and the translated
English speech written to --out. Ends with the corpus BLEU against the references.
"""
import argparse
import sys
import time
from pathlib import Path


def main(argv=None):
    from .translate import add_model_args, load, show

    p = argparse.ArgumentParser(prog="echostream-demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="where translated wavs go (default runs/demo)")
    add_model_args(p)
    from ..config import parse_args

    args = parse_args(p, argv, sections=("model", "policy"))  # the server section is echostream-serve's
    if args.checkpoint:
        p.error("the demo runs the shipped model; use echostream-translate for another checkpoint")
    t0 = time.time()
    import sacrebleu

    from .. import assets
    from ..streaming.replay import load_source

    from .translate import shipped

    pairs = shipped(args, p)
    if args.pair is not None:
        if args.pair not in pairs:
            p.error(f"--pair {args.pair}: not shipped here; pairs: {', '.join(pairs)}")
        pairs = {args.pair: pairs[args.pair]}
    for name, root in pairs.items():
        res, policy = load(args, p, root=root)
        examples = assets.read_examples(root)
        print(f"=== {name}: shipped model {root / 'model'} (checksums verified); {len(examples)} examples; "
              f"{args.segment_ms:g} ms segments\n")
        hyps, refs, als = [], [], []
        for ex in examples:
            wav = load_source(ex["src_audio"])
            print(f"== {ex['id']} ({len(wav) / 16000:.2f} s)\n  source     : {ex['src_text']}\n  reference  : {ex['tgt_text']}")
            r = show(res, wav, args.segment_ms, policy, args.out / f"{ex['id']}.wav")
            hyps.append(r.translation)
            refs.append(ex["tgt_text"])
            als.append(r.latency()["AL"])
            print()
        bleu = sacrebleu.corpus_bleu(hyps, [refs], lowercase=True, tokenize="13a")
        print(f"{name}: {len(examples)} examples: BLEU {bleu.score:.1f} (lowercased, 13a), mean AL {sum(als) / len(als):.0f} ms; "
              f"wavs in {args.out}\n")
    print(f"{len(pairs)} pair(s) in {time.time() - t0:.0f} s")

if __name__ == "__main__":
    sys.exit(main())
