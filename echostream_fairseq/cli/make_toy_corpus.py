"""echostream-make-toy-corpus: synthesise the toy speech translation corpus.

Pairs: es-en and ko-en from the bilingual toy grammars (aligned derivations, held-out
adjective-noun combinations in the test set), de-en from the real example sentences of
Debian's dict-freedict-deu-eng (GPL: built here, never committed). Source speech by espeak-ng
(voice variant, rate and pitch drawn per utterance), target by one flite voice (slt unless
--target-voice says otherwise), 16 kHz mono.
--unseen-voices adds a test_unseen split (the test sentences; voices, rates and pitches that no
other split uses) for measuring robustness to voices never heard in training.
Writes {out}/{pair}/{split}.tsv list files, text files, wavs and stats.json.
"""
import argparse
import json
import sys
import time
from pathlib import Path

from ..prep.corpus import PAIRS, TARGET_VOICE, make_corpus


def main(argv=None):
    p = argparse.ArgumentParser(prog="echostream-make-toy-corpus", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("data/toy"), help="output folder (default data/toy, git-ignored)")
    p.add_argument("--pairs", nargs="+", default=["es-en"], choices=PAIRS, help="language pairs (default es-en)")
    p.add_argument("--train", type=int, default=3600, help="training utterances per pair (default 3600)")
    p.add_argument("--dev", type=int, default=200, help="dev utterances per pair (default 200)")
    p.add_argument("--test", type=int, default=200, help="test utterances per pair (default 200)")
    p.add_argument("--seed", type=int, default=0, help="the corpus is a function of the seed (default 0)")
    p.add_argument("--unseen-voices", action="store_true",
                   help="also write the test_unseen split: the test sentences spoken by espeak-ng voice variants, rates and "
                        "pitches that no other split uses")
    p.add_argument("--target-voice", default=TARGET_VOICE,
                   help=f"flite voice of the target speech (default {TARGET_VOICE}; `flite -lv` lists them). Target wavs of "
                        "another voice in the folder are spoken again; a pair that shares es-en's units needs es-en's voice")
    p.add_argument("--jobs", type=int, default=2, help="parallel synthesis processes (default 2)")
    args = p.parse_args(argv)
    for n, name in ((args.train, "--train"), (args.dev, "--dev"), (args.test, "--test")):
        if n < 0:
            p.error(f"{name} must be >= 0")
    sizes = {"train": args.train, "dev": args.dev, "test": args.test}
    for pair in args.pairs:
        t0 = time.time()
        try:
            root = make_corpus(args.out, pair, sizes, seed=args.seed, jobs=args.jobs, unseen_voices=args.unseen_voices,
                               target_voice=args.target_voice)
        except ValueError as e:
            p.error(str(e))
        stats = json.loads((root / "stats.json").read_text())
        print(f"{pair}: {root} in {time.time() - t0:.0f} s")
        print(json.dumps(stats, indent=2))


if __name__ == "__main__":
    sys.exit(main())
