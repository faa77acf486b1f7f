"""echostream-translate: simultaneous speech-to-speech translation of a recorded file.

The file is streamed through the engine in --segment-ms pieces as if it were live; the
transcript and the translation are printed as they grow (with the source time at which each
piece appeared), then the latency figures, and the translated speech is written to OUT.wav.
Any sample rate from 8 to 384 kHz and any channel count soundfile reads; the source is resampled to 16 kHz.
By default the shipped model (assets/) is used.
"""
import argparse
import math
import sys
from pathlib import Path


def add_model_args(p: argparse.ArgumentParser) -> None:
    from ..config import add_config_arg
    from ..streaming.engine import PolicyConfig

    add_config_arg(p)
    g = p.add_argument_group("model (default: the shipped assets)")
    g.add_argument("--assets", type=Path, help="a shipped-assets folder (default: the repository's assets/)")
    g.add_argument("--pair", help="which shipped language pair (e.g. es-en, ko-en; default: the assets folder's first)")
    g.add_argument("--checkpoint", type=Path, help="a fairseq-train checkpoint instead of the shipped model")
    g.add_argument("--data-dir", type=Path, help="its data folder (config.yaml names CMVN and vocoder)")
    g.add_argument("--punct", type=Path, help="punctuation / sentence-boundary model (echostream-train-punct; default: the "
                                               "shipped assets' model/punct.pt)")
    g.add_argument("--vocoder", type=Path, help="a CodeHiFiGAN generator checkpoint (g_*) instead of the one the model's "
                                                 "data config names; with --vocoder-config")
    g.add_argument("--vocoder-config", type=Path, help="its config.json")
    g.add_argument("--segment-ms", type=float, default=320, help="source segment per engine step (default 320)")
    g.add_argument("--device", default="cpu", help="where the model and the vocoder run: cpu (default), cuda or cuda:N")
    PolicyConfig.add_args(p)


def shipped(args, p: argparse.ArgumentParser) -> dict:
    """{pair: assets folder} of the shipped assets (checksums verified)."""
    from .. import assets

    try:
        root = args.assets or assets.default_assets()
    except FileNotFoundError as e:
        p.error(str(e))
    problems = assets.verify(root)
    if problems:
        p.error("shipped assets are damaged:\n  " + "\n  ".join(problems))
    return assets.shipped_pairs(root)


def pair_root(args, p: argparse.ArgumentParser):
    """The assets folder of ``--pair`` (default: the first shipped pair)."""
    pairs = shipped(args, p)
    if args.pair is None:
        return next(iter(pairs.values()))
    if args.pair not in pairs:
        p.error(f"--pair {args.pair}: not shipped here; pairs: {', '.join(pairs)}")
    return pairs[args.pair]


def load(args, p: argparse.ArgumentParser, root=None):
    """(Resources, PolicyConfig) from the model arguments (or the shipped assets folder ``root``);
    checks the shipped assets' checksums."""
    from ..streaming.engine import PolicyConfig, check_device, load_resources

    try:
        check_device(args.device)
    except ValueError as e:
        p.error(str(e))
    if bool(args.vocoder) != bool(args.vocoder_config):
        p.error("--vocoder and --vocoder-config go together")
    voc = {"vocoder_checkpoint": args.vocoder, "vocoder_config": args.vocoder_config}
    learned = not args.no_punct
    if root is None and (args.checkpoint or args.data_dir):
        if not (args.checkpoint and args.data_dir):
            p.error("--checkpoint and --data-dir go together")
        if args.pair:
            p.error("--pair picks a shipped pair; it does not go with --checkpoint")
        pm = args.punct if learned else None
        model_dir = args.data_dir
        res = load_resources(args.checkpoint, args.data_dir, punct_model=pm, device=args.device, **voc)
    else:
        root = root or pair_root(args, p)
        pm = (args.punct or root / "model" / "punct.pt") if learned else None
        if args.punct is None and pm is not None and not pm.is_file():
            pm = None  # this pair ships no punctuation model: no learned boundaries (logged by PolicyConfig)
        model_dir = root / "model"
        res = load_resources(model_dir / "checkpoint.pt", model_dir, punct_model=pm, device=args.device, **voc)
    try:  # the model folder's policy file (PolicyConfig.MODEL_FILE), overridden by --config and flags
        policy = PolicyConfig.from_args(args, punct_model=pm is not None, model_dir=model_dir)
    except ValueError as e:  # ConfigError too
        p.error(str(e))
    return res, policy


def show(res, wav, segment_ms, policy, out_wav: Path = None, indent: str = "  "):
    """Stream ``wav``; print growth, transcript, translation and latency; write ``out_wav``."""
    import soundfile as sf

    from ..streaming.replay import replay

    def on_event(ev):
        parts = []
        if ev.out.asr.strip():
            parts.append(f"asr +{ev.out.asr.strip()!r}")
        if ev.out.words:
            parts.append(f"translation +{' '.join(ev.out.words)!r}")
        if ev.out.pcm.size:
            parts.append(f"speech +{1000 * ev.out.pcm.size / res.vocoder.sample_rate:.0f} ms")
        parts += [f"sentence {src!r} -> {tgt!r}" for src, tgt in ev.out.sentences]
        if parts:
            print(f"{indent}[{ev.source_ms:7.0f} ms read, {ev.compute_ms:6.0f} ms compute] " + "; ".join(parts), flush=True)

    r = replay(res, wav, segment_ms, policy, on_event=on_event, speech=res.vocoder is not None)
    print(f"{indent}transcript : {r.display[0]}")
    print(f"{indent}translation: {r.display[1]}")
    for ca in (False, True):
        lat = r.latency(computation_aware=ca)
        name = "computation-aware" if ca else "plain"
        if all(math.isnan(lat[k]) for k in ("AL", "StartOffset", "EndOffset")):
            print(f"{indent}latency ({name}): none (no output)")
            continue
        print(f"{indent}latency ({name}): AL {lat['AL']:.0f} ms, StartOffset {lat['StartOffset']:.0f} ms, EndOffset {lat['EndOffset']:.0f} ms")
    if out_wav is not None and res.vocoder is not None:
        out_wav.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(out_wav), r.pcm, res.vocoder.sample_rate, subtype="PCM_16")
        print(f"{indent}speech     : {out_wav} ({len(r.pcm) / res.vocoder.sample_rate:.2f} s)")
    return r


def main(argv=None):
    p = argparse.ArgumentParser(prog="echostream-translate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", type=Path, help="source speech (8 to 384 kHz, any channels; resampled to 16 kHz)")
    p.add_argument("output", type=Path, help="where the translated speech goes (16-bit wav)")
    add_model_args(p)
    from ..config import parse_args

    args = parse_args(p, argv, sections=("model", "policy"))  # the server section is echostream-serve's
    from ..features import AudioError
    from ..streaming.replay import load_source

    try:
        wav = load_source(args.input)
    except AudioError as e:
        p.error(str(e))
    res, policy = load(args, p)
    if res.vocoder is None:
        p.error("the model's data config names no vocoder: no speech output")
    print(f"{args.input}: {len(wav) / 16000:.2f} s, {args.segment_ms:g} ms segments")
    print("policy: " + " ".join(f"{k}={v}" for k, v in vars(policy).items()))
    show(res, wav, args.segment_ms, policy, args.output)


if __name__ == "__main__":
    sys.exit(main())
