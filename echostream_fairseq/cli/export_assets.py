"""echostream-export-assets: write the shipped default (assets/) from a training run.

Copies the model (weights without optimiser state; fp32 unless --model-fp16) with the inference part of its data folder,
the vocoder (fp16 generator, fairseq's format), the unit quantiser and a few example source wavs,
then writes MANIFEST.sha256 and BUILD.md (the commands that built them). Refuses to write more
than --max-mb in all. ``--verify DIR`` only checks an existing folder against its manifest.

``--pair-of DIR`` exports a further language pair into DIR/pairs/<pair>/ (the pair named by the
example ids, e.g. ko-en): its model, punctuation model and examples, sharing DIR's vocoder and
unit quantiser; DIR's manifest is rewritten and --max-mb holds for DIR in all. Re-exporting DIR
itself keeps the pairs it holds and points their model configs at the vocoder it exports.
results.json keeps the figures the export leaves valid: a re-export of DIR drops the default
pair's own, and those under ``pairs`` too when the vocoder changed; a pair's export drops that
pair's entry (the recipe's stage 8 measures it again).
"""
import argparse
import shlex
import shutil
import sys
import time
from pathlib import Path

from ..config import finite_nonnegative


def _penalty(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        x = float("nan")
    if not finite_nonnegative(x):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return x


def main(argv=None):
    p = argparse.ArgumentParser(prog="echostream-export-assets", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--verify", type=Path, metavar="DIR", help="check DIR against its MANIFEST.sha256 and exit")
    p.add_argument("--checkpoint", type=Path, help="fairseq-train checkpoint")
    p.add_argument("--data-dir", type=Path, help="its prepared data folder")
    p.add_argument("--vocoder", type=Path, help="vocoder generator checkpoint (g_XXXXXXXX)")
    p.add_argument("--vocoder-config", type=Path, help="its config.json (default: beside it)")
    p.add_argument("--kmeans", type=Path, help="the unit quantiser (.npy centroids)")
    p.add_argument("--examples-list", type=Path, help="corpus list to take example source wavs from (held-out test set)")
    p.add_argument("--num-examples", type=int, default=5)
    p.add_argument("--punct", type=Path, help="punctuation / sentence-boundary model (echostream-train-punct) -> model/punct.pt")
    p.add_argument("--policy", type=Path, metavar="FILE",
                   help="the model's streaming policy (bench/policy_sweep.py --write-policy) -> model/policy.yaml: "
                        "it replaces the policy flags' defaults for this model; --config and flags override it")
    p.add_argument("--longform", type=Path, help="long-form test streams (echostream-make-longform output) -> longform/")
    p.add_argument("--built-by", action="append", default=[], help="a command that produced the inputs (repeatable; recorded in BUILD.md)")
    p.add_argument("--out", type=Path, default=Path("assets"))
    p.add_argument("--pair-of", type=Path, metavar="DIR",
                   help="export a further language pair into DIR/pairs/<pair>/, sharing DIR's vocoder (no --vocoder, --kmeans)")
    p.add_argument("--max-mb", type=float, default=25.0)
    p.add_argument("--unit-blank-penalty", type=_penalty, metavar="X",
                   help="lower the blank's score by X when the model's unit CTC is decoded (written to "
                        "model/config.yaml as unit_blank_penalty; default: the data folder's, else 0)")
    p.add_argument("--model-fp16", action="store_true",
                   help="store the model's and the punctuation model's weights in fp16 (half the size; they are "
                        "computed in fp32 once loaded). The "
                        "recipe ships fp16: on the trained toy es-en model it changed none of the 200 greedy test "
                        "translations (an early, barely trained one changed 162). The vocoder is always fp16.")
    args = p.parse_args(argv)

    from .. import assets

    if args.verify:
        problems = assets.verify(args.verify)
        print("\n".join(problems) if problems else f"{args.verify}: all checksums match")
        return 1 if problems else 0
    if args.pair_of:
        return export_pair(args, p, argv)
    for name in ("checkpoint", "data_dir", "vocoder", "kmeans", "examples_list"):
        if getattr(args, name) is None:
            p.error(f"--{name.replace('_', '-')} is required")
    for f in (args.checkpoint, args.vocoder, args.kmeans, args.examples_list) + ((args.punct,) if args.punct else ()):
        if not f.is_file():
            p.error(f"not found: {f}")
    _check_policy(args, p)
    if args.longform and not (args.longform / "sentences.tsv").is_file():
        p.error(f"{args.longform}: no sentences.tsv (make it with echostream-make-longform)")
    voc_cfg = args.vocoder_config or args.vocoder.parent / "config.json"
    picked = _pick_examples(args, p)
    kept = _results_kept(args, p, args.out, None, default=True)
    tmp = args.out.with_name(f".{args.out.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    assets.export_vocoder(args.vocoder, voc_cfg, tmp / "model" / "vocoder")
    assets.export_model(args.checkpoint, args.data_dir, tmp / "model", vocoder_dir="vocoder", fp16=args.model_fp16,
                        unit_blank_penalty=args.unit_blank_penalty)
    _copy_punct(args, tmp / "model")
    _copy_policy(args, tmp / "model")
    if args.longform:
        shutil.copytree(args.longform, tmp / "longform")
    (tmp / "units").mkdir(parents=True)
    shutil.copyfile(args.kmeans, tmp / "units" / "kmeans.npy")
    from ..prep.corpus import TARGET_VOICE_FILE

    voice = args.kmeans.parent / TARGET_VOICE_FILE  # the voice the quantiser was fitted on, where the data kit recorded it
    if voice.is_file():
        shutil.copyfile(voice, tmp / "units" / TARGET_VOICE_FILE)
    _write_examples(args, picked, tmp / "examples")
    lines = ["# How these assets were built", "", *_build_lines(args, argv),
             "`examples/toy_es_en/run.sh` runs all of it, stage by stage; `echostream-export-assets --verify assets` checks the files.", ""]
    (tmp / "BUILD.md").write_text("\n".join(lines))
    if (args.out / assets.PAIRS_DIR).is_dir():  # further pairs stay, and speak through the vocoder exported now
        shutil.copytree(args.out / assets.PAIRS_DIR, tmp / assets.PAIRS_DIR)
        assets.repoint_pairs(tmp)
        if kept and kept.get("pairs") and _vocoder_changed(args.out, tmp):
            print(f"the shared vocoder changed: the figures of {', '.join(kept['pairs'])} are dropped from {assets.RESULTS} "
                  "(measure them again: PAIR=<pair> examples/toy_es_en/run.sh 5 8)")
            kept.pop("pairs")
    if kept:
        assets.write_json(tmp / assets.RESULTS, kept)
    assets.write_manifest(tmp)
    size = assets.total_size(tmp) / 2**20
    if size > args.max_mb:
        shutil.rmtree(tmp)
        p.error(f"the assets would take {size:.1f} MB, more than --max-mb {args.max_mb}")
    if args.out.exists():
        shutil.rmtree(args.out)
    tmp.rename(args.out)
    print(f"{args.out}: {size:.1f} MB, {len(picked)} examples; manifest {args.out / assets.MANIFEST}")
    return 0


def _vocoder_changed(old: Path, new: Path) -> bool:
    """Whether the generator in ``new``/model/vocoder differs from ``old``'s (name or bytes)."""
    from .. import assets

    def gen(root):
        try:
            g = assets.vocoder_generator(root / "model" / "vocoder")
        except FileNotFoundError:
            return None
        return g.name, g.read_bytes()

    return gen(old) != gen(new)


def _results_kept(args, p, root: Path, pair: str, default: bool):
    """The figures in ``root``'s results.json that this export leaves valid (see assets.results_kept)."""
    from .. import assets

    try:
        return assets.results_kept(root, pair, default)
    except ValueError as e:
        p.error(str(e))


def _pick_examples(args, p):
    from ..prep.corpus import read_list

    if args.examples_list is None or not args.examples_list.is_file():
        p.error(f"--examples-list: not found: {args.examples_list}")
    rows = read_list(args.examples_list)
    if len(rows) < args.num_examples:
        p.error(f"{args.examples_list}: {len(rows)} rows, fewer than --num-examples {args.num_examples}")
    step = len(rows) // args.num_examples
    return rows[::step][: args.num_examples]


def _write_examples(args, picked, ex: Path) -> None:
    from ..prep.corpus import write_tsv

    ex.mkdir(parents=True)
    for r in picked:
        shutil.copyfile(args.examples_list.parent / r["src_audio"], ex / f"{r['id']}.wav")
    write_tsv(ex / "examples.tsv", ["id", "src_audio", "src_text", "tgt_text"],
              [[r["id"], f"{r['id']}.wav", r["src_text"], r["tgt_text"]] for r in picked])


def _check_policy(args, p) -> None:
    """--policy must be a model policy file (before anything is written)."""
    if args.policy:
        from ..config import ConfigError
        from ..streaming.policy import PolicyConfig

        try:
            PolicyConfig.read_file(args.policy)
        except ConfigError as e:
            p.error(f"--policy: {e}")


def _copy_policy(args, model_dir: Path) -> None:
    if args.policy:
        from ..streaming.policy import PolicyConfig

        shutil.copyfile(args.policy, model_dir / PolicyConfig.MODEL_FILE)


def _copy_punct(args, model_dir: Path) -> None:
    if args.punct:
        from fairseq.data import Dictionary

        from ..punct import PunctModel

        model = PunctModel.load(args.punct)
        model.check_dictionary(Dictionary.load(str(model_dir / "dict_src.txt")), "the model's dict_src.txt")
        if args.model_fp16:
            model.save(model_dir / "punct.pt", fp16=True)
        else:
            shutil.copyfile(args.punct, model_dir / "punct.pt")


def _build_lines(args, argv) -> list:
    cmd = " ".join(shlex.quote(a) for a in ["echostream-export-assets", *(argv if argv is not None else sys.argv[1:])])
    lines = [f"Exported {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by:", "", "```bash", cmd, "```", ""]
    if args.built_by:
        lines += ["from inputs made by:", "", "```bash", *args.built_by, "```", ""]
    return lines


def export_pair(args, p, argv) -> int:
    """A further pair into ``args.pair_of``/pairs/<pair>/, sharing its vocoder."""
    import re

    from .. import assets

    root = args.pair_of
    problems = assets.verify(root)
    if problems:
        p.error(f"--pair-of {root}: " + "; ".join(problems))
    for name in ("checkpoint", "data_dir"):
        if getattr(args, name) is None:
            p.error(f"--{name.replace('_', '-')} is required")
    for f in (args.checkpoint,) + ((args.punct,) if args.punct else ()):
        if not f.is_file():
            p.error(f"not found: {f}")
    _check_policy(args, p)
    if args.vocoder or args.kmeans or args.longform:
        p.error("--pair-of shares the vocoder and quantiser of its assets folder: no --vocoder, --kmeans or --longform")
    picked = _pick_examples(args, p)
    m = re.match(r"^([a-z]{2,3}-[a-z]{2,3})-", picked[0]["id"])
    if m is None:
        p.error(f"{args.examples_list}: ids like ko-en-test-00000 name the pair; got {picked[0]['id']!r}")
    pair = m.group(1)
    if pair == assets.pair_name(root):
        p.error(f"{root} is the {pair} pair itself; export it without --pair-of")
    try:
        assets.vocoder_generator(root / "model" / "vocoder")
    except FileNotFoundError as e:
        p.error(str(e))
    dest = root / assets.PAIRS_DIR / pair
    kept = _results_kept(args, p, root, pair, default=False)
    tmp = dest.with_name(f".{pair}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "model").mkdir(parents=True)
    assets.export_model(args.checkpoint, args.data_dir, tmp / "model", vocoder_dir=assets.SHARED_VOCODER, fp16=args.model_fp16,
                        unit_blank_penalty=args.unit_blank_penalty)
    _copy_punct(args, tmp / "model")
    _copy_policy(args, tmp / "model")
    _write_examples(args, picked, tmp / "examples")
    (tmp / "BUILD.md").write_text("\n".join([f"# How the {pair} pair was built", "", *_build_lines(args, argv)]))
    size = (assets.total_size(root) - (assets.total_size(dest) if dest.exists() else 0)) / 2**20  # tmp is under root
    if size > args.max_mb:
        shutil.rmtree(tmp)
        p.error(f"with {pair} the assets would take {size:.1f} MB, more than --max-mb {args.max_mb}")
    if dest.exists():
        shutil.rmtree(dest)
    tmp.rename(dest)
    if kept:
        assets.write_json(root / assets.RESULTS, kept)
    else:
        (root / assets.RESULTS).unlink(missing_ok=True)
    assets.write_manifest(root)
    print(f"{dest}: pair {pair}; {root}: {size:.1f} MB in all; manifest {root / assets.MANIFEST}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
