"""echostream-prep-s2st: build a data folder for fairseq-train / fairseq-generate.

From list files ({split}.tsv: id, src_audio, src_text, tgt_text; audio relative to the list)
and one unit file per id (--units-dir, as echostream-extract-units writes them), writes the
manifests, gcmvn.npz, source/target unigram sentencepiece models and fairseq dictionaries,
the multitask folders and YAML, and the data config with relative paths.

CVSS-C / CoVoST 2: --cvss-c-root, --covost-root and --src-lang turn the released layouts into
list files (--lists-out) first; see examples/cvss_c_fr_en/README.md.
"""
import argparse
import sys
from pathlib import Path


def main(argv=None):
    p = argparse.ArgumentParser(prog="echostream-prep-s2st", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lists", type=Path, nargs="+", help="list files; the split is the file name without .tsv")
    p.add_argument("--units-dir", type=Path, help="folder of {id}.npy / {id}.txt unit files")
    p.add_argument("--out", type=Path, help="data folder to create")
    p.add_argument("--num-units", type=int, help="K, the number of discrete units")
    p.add_argument("--src-vocab", type=int, default=256, help="source sentencepiece vocabulary (default 256)")
    p.add_argument("--tgt-vocab", type=int, default=256, help="target sentencepiece vocabulary (default 256)")
    p.add_argument("--tgt-spm", type=Path, metavar="MODEL",
                   help="reuse this target sentencepiece model (another pair's spm_tgt.model) instead of training one: "
                        "pairs with the same target language share the target dictionary")
    p.add_argument("--continue-from", type=Path, metavar="FOLDER",
                   help="a data folder whose trained model continues on this one (e.g. on more sentences): keep its "
                        "source and target sentencepiece models, dictionaries and global CMVN instead of fitting new ones")
    p.add_argument("--asr-weight", type=float, default=1.0, help="loss_weight of source_unigram (ASR-CTC)")
    p.add_argument("--st-weight", type=float, default=1.0, help="loss_weight of ctc_target_unigram (ST-CTC)")
    p.add_argument("--mt-weight", type=float, default=1.0, help="loss_weight of target_unigram (MT)")
    p.add_argument("--specaugment", action="store_true", help="add SpecAugment to the train transforms")
    p.add_argument("--vocoder-checkpoint", type=Path, help="CodeHiFiGAN generator checkpoint to name in config.yaml")
    p.add_argument("--vocoder-config", type=Path, help="its config.json")
    p.add_argument("--resample-source", action="store_true", help="convert source audio that is not 16 kHz (e.g. CoVoST mp3) to 16 kHz wavs in the folder")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    p.add_argument("--add-to", type=Path, metavar="FOLDER",
                   help="add the --lists as evaluation splits to this existing data folder (its own sentencepiece "
                        "models; nothing else changes), e.g. the test_unseen split of echostream-make-toy-corpus --unseen-voices")
    g = p.add_argument_group("CVSS-C / CoVoST 2 input adapter")
    g.add_argument("--cvss-c-root", type=Path, help="CVSS-C folder of one pair (train.tsv, train/*.wav, ...)")
    g.add_argument("--covost-root", type=Path, help="CoVoST 2 folder (covost_v2.{src}_en.{split}.tsv, clips/)")
    g.add_argument("--src-lang", help="CoVoST source language code, e.g. fr")
    g.add_argument("--lists-out", type=Path, help="where to write the list files made from CVSS-C + CoVoST 2")
    args = p.parse_args(argv)

    from ..prep.s2st import PrepOptions, add_splits, cvss_c_lists, prepare_from_lists

    if args.add_to:
        if not (args.lists and args.units_dir):
            p.error("--add-to needs --lists and --units-dir")
        try:
            added = add_splits(args.add_to, args.lists, args.units_dir)
        except (OSError, ValueError) as e:
            p.error(str(e))
        print(f"{args.add_to}: added split(s) {', '.join(added)}")
        return

    if args.cvss_c_root or args.covost_root:
        if not (args.cvss_c_root and args.covost_root and args.src_lang and args.lists_out):
            p.error("the CVSS-C adapter needs --cvss-c-root, --covost-root, --src-lang and --lists-out")
        written = cvss_c_lists(args.cvss_c_root, args.covost_root, args.src_lang, args.lists_out)
        print("list files:", " ".join(map(str, written)))
        print("next: echostream-extract-units --lists ... (target speech), then echostream-prep-s2st --lists ... --resample-source")
        return
    for name in ("lists", "units_dir", "out", "num_units"):
        if getattr(args, name) is None:
            p.error(f"--{name.replace('_', '-')} is required")
    if bool(args.vocoder_checkpoint) != bool(args.vocoder_config):
        p.error("--vocoder-checkpoint and --vocoder-config go together")
    opts = PrepOptions(
        src_vocab=args.src_vocab,
        tgt_vocab=args.tgt_vocab,
        num_units=args.num_units,
        loss_weights={"source_unigram": args.asr_weight, "ctc_target_unigram": args.st_weight, "target_unigram": args.mt_weight},
        specaugment=args.specaugment,
        vocoder_checkpoint=str(args.vocoder_checkpoint.resolve()) if args.vocoder_checkpoint else None,
        vocoder_config=str(args.vocoder_config.resolve()) if args.vocoder_config else None,
        tgt_spm=str(args.tgt_spm) if args.tgt_spm else None,
        continue_from=str(args.continue_from) if args.continue_from else None,
    )
    if args.tgt_spm and not args.tgt_spm.is_file():
        p.error(f"--tgt-spm {args.tgt_spm}: target sentencepiece model not found")
    try:
        out = prepare_from_lists(args.lists, args.units_dir, args.out, opts, args.resample_source, args.overwrite)
    except (OSError, ValueError) as e:
        p.error(str(e))
    print(f"data folder: {out}")
    print(f"train with: fairseq-train {out} --user-dir echostream_fairseq --task echostream_s2st --arch echostream_mini "
          "--criterion echostream_multitask --config-yaml config.yaml --multitask-config-yaml config_mtl.yaml ...")


if __name__ == "__main__":
    sys.exit(main())
