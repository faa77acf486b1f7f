"""echostream-make-micro: build the micro es->en data folder (speech, units, manifests, dictionaries)."""
import argparse
import sys
from pathlib import Path


def main(argv=None):
    p = argparse.ArgumentParser(prog="echostream-make-micro", description=__doc__)
    p.add_argument("out", type=Path, help="data folder to write")
    p.add_argument("--n-train", type=int, default=16, help="training utterances (default 16)")
    p.add_argument("--n-dev", type=int, default=4, help="dev utterances (default 4)")
    p.add_argument("--num-units", type=int, default=50, help="k-means units K (default 50)")
    p.add_argument("--vocab", type=int, default=40, help="sentencepiece vocabulary size (default 40)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--untrained-vocoder", action="store_true",
                   help="also write a randomly initialised CodeHiFiGAN (fairseq format) and name it in config.yaml "
                        "(exercises the wav path; it does not produce intelligible speech)")
    args = p.parse_args(argv)
    from ..prep.micro import make_micro_dataset

    out = make_micro_dataset(args.out, args.n_train, args.n_dev, args.num_units, args.seed, args.untrained_vocoder, args.vocab)
    print(f"data folder: {out}")


if __name__ == "__main__":
    sys.exit(main())
