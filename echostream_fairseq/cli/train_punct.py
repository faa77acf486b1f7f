"""echostream-train-punct: train the streaming punctuation / sentence-boundary model (a
controllable time-delay Transformer) over the ASR-CTC vocabulary of a prepared data folder.

Training text: punctuated source-language text, one sentence (or paragraph) per line -- the toy
corpus's own source sentences ({pair}/train.es), or for real data the source transcripts of the
training set (for CoVoST 2 / CVSS-C: the `sentence` column of the source-language train TSV).
The sentencepiece model and dictionary must be those of the ASR-CTC head (the data folder's
spm_src.model and dict_src.txt), so the model reads the head's output ids directly.
"""
import argparse
import logging
import sys
from pathlib import Path

from . import add_run_args, start_run


def read_text(path: Path, column: str = None):
    """Non-empty lines, or the non-empty cells of one column of a headered list file."""
    from ..prep.corpus import read_list

    if not path.is_file():
        raise FileNotFoundError(f"text file not found: {path}")
    if column is None:
        return [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    rows = read_list(path)
    if rows and column not in rows[0]:
        raise ValueError(f"{path}: no column {column!r} (header: {', '.join(rows[0])})")
    return [r[column] for r in rows if r[column].strip()]


def main(argv=None):
    p = argparse.ArgumentParser(prog="echostream-train-punct", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train-text", type=Path, nargs="+", required=True, help="punctuated source text files (one sentence per line)")
    p.add_argument("--valid-text", type=Path, nargs="*", default=[], help="held-out text for the boundary F1 reported at the end")
    p.add_argument("--column", help="read this column of TSV files with a header instead of whole lines (e.g. src_text)")
    p.add_argument("--spm", type=Path, required=True, help="sentencepiece model of the ASR-CTC head (spm_src.model)")
    p.add_argument("--dict", type=Path, required=True, help="fairseq dictionary of the ASR-CTC head (dict_src.txt)")
    p.add_argument("--out", type=Path, required=True, help="output checkpoint (e.g. assets/model/punct.pt)")
    p.add_argument("--no-line-end", action="store_true", help="lines are paragraphs: a line end is not a sentence end")
    m = p.add_argument_group("model")
    m.add_argument("--dim", type=int, default=128)
    m.add_argument("--layers", type=int, default=2)
    m.add_argument("--heads", type=int, default=4)
    m.add_argument("--ffn", type=int, default=256)
    m.add_argument("--window", type=int, default=64, help="tokens of context (default 64)")
    m.add_argument("--max-delay", type=int, default=4, help="largest look-ahead (tokens) the model is trained for (default 4)")
    t = p.add_argument_group("training")
    t.add_argument("--steps", type=int, default=1500)
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--degrade", type=float, default=0.5,
                   help="share of training sentences whose start marks (capital, opening ¿) are removed and "
                        "tokens dropped, as a transcript of speech without pauses has them (default 0.5; 0: clean text)")
    add_run_args(t)
    args = p.parse_args(argv)

    start_run(args)
    import sentencepiece as spm
    from fairseq.data import Dictionary

    from .. import punct

    try:
        for f in (args.spm, args.dict):
            if not f.is_file():
                raise FileNotFoundError(f"not found: {f}")
        sp = spm.SentencePieceProcessor(model_file=str(args.spm))
        d = Dictionary.load(str(args.dict))
        train_lines = [ln for f in args.train_text for ln in read_text(f, args.column)]
        valid_lines = [ln for f in args.valid_text for ln in read_text(f, args.column)]
        train_sents = punct.encode_lines(train_lines, sp, d, not args.no_line_end)
        valid_sents = punct.encode_lines(valid_lines, sp, d, not args.no_line_end)
        if not train_sents:
            raise ValueError(f"no training text in {', '.join(map(str, args.train_text))}")
    except (OSError, ValueError) as e:
        sys.exit(f"echostream-train-punct: {e}")
    cfg = punct.PunctConfig(dim=args.dim, layers=args.layers, heads=args.heads, ffn=args.ffn, window=args.window, max_delay=args.max_delay)
    logging.info("%d training sentences (%d tokens), %d held out", len(train_sents), sum(len(s[0]) for s in train_sents), len(valid_sents))
    model = punct.train(train_sents, valid_sents, [d[i] for i in range(len(d))], punct.openers_of(train_lines), cfg, d.pad(),
                        steps=args.steps, batch=args.batch_size, lr=args.lr, seed=args.seed, progress=not args.no_progress_bar,
                        degrade=args.degrade)
    model.save(args.out)
    logging.info("wrote %s", args.out)


if __name__ == "__main__":
    main()
