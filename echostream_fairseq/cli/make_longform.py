"""echostream-make-longform: long-form test streams from a corpus list.

Utterances (drawn without replacement, deterministic for --seed) are trimmed of their own
silence and laid end to end, with a pause drawn per gap from --pause-ms MIN MAX, or with none
(--no-pause). Writes {out}/{name}{n}.wav (or .flac) and {out}/sentences.tsv: for every sentence
its stream, order, id, start and end sample of its speech, source and target text -- the known
sentence ends that boundary F1 is scored against. Running it again with another --name adds
streams next to those already there.
"""
import argparse
import sys
from pathlib import Path


def main(argv=None):
    p = argparse.ArgumentParser(prog="echostream-make-longform", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--list", type=Path, required=True, help="corpus list (id, src_audio, src_text, tgt_text), e.g. data/toy/es-en/test.tsv")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--streams", type=int, default=1)
    p.add_argument("--sentences", type=int, default=12, help="sentences per stream (default 12)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--pause-ms", type=float, nargs=2, metavar=("MIN", "MAX"), help="pause between sentences, drawn uniformly")
    g.add_argument("--no-pause", action="store_true", help="sentences follow each other with no pause")
    p.add_argument("--name", help="stream name prefix (default 'pauses' or 'nopause')")
    p.add_argument("--noise-db", type=float, default=-60.0, help="white-noise floor under the stream, dBFS (default -60)")
    p.add_argument("--format", choices=["wav", "flac"], default="wav")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    from ..features import AudioError
    from ..prep.longform import make_longform

    name = args.name or ("nopause" if args.no_pause else "pauses")
    try:
        paths = make_longform(args.list, args.out, args.streams, args.sentences, None if args.no_pause else tuple(args.pause_ms),
                              args.seed, name, args.noise_db, args.format)
    except (OSError, ValueError, AudioError) as e:
        sys.exit(f"echostream-make-longform: {e}")
    for path in paths:
        print(path)


if __name__ == "__main__":
    main()
