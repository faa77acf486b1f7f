"""echostream-train-vocoder: train a unit CodeHiFiGAN (fairseq's generator, HiFi-GAN
discriminators and losses, duration predictor) on target speech and its frame-level units.

Input: corpus lists (``id`` and an audio column, paths relative to the list) and the folder of
``{id}.npy`` frame-level units written by ``echostream-extract-units``. Output in --save-dir:
``config.json`` + ``g_XXXXXXXX`` (fairseq's format, loadable by ``CodeHiFiGANVocoder``) and
``state_last.pt``; running the same command again resumes from ``state_last.pt``.

The first --gan-start steps learn by regression alone (log-mel L1 + multi-resolution STFT, no
discriminator: several times cheaper per step); the HiFi-GAN discriminators join after them.
"""
import argparse
import logging
import sys
from pathlib import Path

from . import add_run_args, start_run


def main(argv=None):
    p = argparse.ArgumentParser(prog="echostream-train-vocoder", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lists", type=Path, nargs="+", required=True, help="training list files")
    p.add_argument("--valid-list", type=Path, help="list whose utterances are used for the validation mel loss")
    p.add_argument("--units-dir", type=Path, nargs="+", required=True,
                   help="folder(s) with {id}.npy frame-level units; with several, every utterance is used once with the units of "
                        "each folder that holds its list: the quantiser's units and a model's (echostream-model-units) for "
                        "the same speech, or one folder per corpus (e.g. the target speech of two pairs)")
    p.add_argument("--audio-column", default="tgt_audio", help="column of the speech the units came from (default tgt_audio)")
    p.add_argument("--num-units", type=int, required=True, help="size of the unit vocabulary (K)")
    p.add_argument("--save-dir", type=Path, required=True)
    g = p.add_argument_group("generator size")
    g.add_argument("--channels", type=int, default=128, help="upsample_initial_channel (default 128)")
    g.add_argument("--embedding-dim", type=int, default=64, help="unit embedding size (default 64)")
    g.add_argument("--resblock-kernels", type=int, nargs="+", default=[3, 7, 11], help="resblock kernel sizes (default 3 7 11)")
    g.add_argument("--upsample-rates", type=int, nargs="+", default=[5, 4, 4, 2, 2],
                   help="their product is the hop in samples per unit frame (default 5 4 4 2 2 = 320, 20 ms at 16 kHz)")
    d = p.add_argument_group("discriminators")
    d.add_argument("--disc-period-width", type=int, default=8, help="first-layer channels of each period discriminator (HiFi-GAN: 32)")
    d.add_argument("--disc-scale-width", type=int, default=16, help="first-layer channels of each scale discriminator (HiFi-GAN: 128)")
    t = p.add_argument_group("training")
    t.add_argument("--max-steps", type=int, default=20000)
    t.add_argument("--init-from", type=Path, metavar="G",
                   help="start the generator from this checkpoint (fairseq's g_* file, same size flags) when --save-dir holds no state "
                        "to resume; steps count from 0")
    t.add_argument("--batch-size", type=int, default=8)
    t.add_argument("--segment-frames", type=int, default=32, help="unit frames per training segment (default 32)")
    t.add_argument("--lr", type=float, default=2e-4)
    t.add_argument("--lr-decay", type=float, default=0.9999, help="per-step learning-rate decay")
    t.add_argument("--mel-weight", type=float, default=45.0)
    t.add_argument("--stft-weight", type=float, default=0.0, help="weight of the multi-resolution STFT loss (default 0: off)")
    t.add_argument("--gan-start", type=int, default=0,
                   help="steps of regression alone (mel + STFT losses) before the discriminators join (default 0)")
    t.add_argument("--bf16", nargs="?", const="on", default="off", choices=["on", "off", "auto"],
                   help="bf16 autocast for the networks, losses in fp32 (--bf16 alone: on; auto: on where the CPU runs bf16 "
                        "natively, AVX-512 or AMX, and off on CPUs without it, where it is emulated and many times slower, "
                        "and on CUDA; default off)")
    t.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"], help="where to train (auto: CUDA when available)")
    t.add_argument("--log-interval", type=int, default=50)
    t.add_argument("--save-interval", type=int, default=1000)
    t.add_argument("--keep-last", type=int, default=2, help="generator checkpoints to keep")
    add_run_args(t)
    args = p.parse_args(argv)

    start_run(args)
    from .. import vocoder_train as vt

    config = vt.vocoder_config(args.num_units, args.channels, args.embedding_dim, args.resblock_kernels, args.upsample_rates)
    hop = config["code_hop_size"]
    try:
        def data(lists):
            utts = vt.utterances_from_lists(lists, args.units_dir, args.audio_column)
            return vt.UnitSpeechData(utts, hop, args.num_units, args.segment_frames)

        train = data(args.lists)
        valid = data([args.valid_list]) if args.valid_list else None
    except (OSError, ValueError) as e:
        p.error(str(e))
    try:
        device = vt.resolve_device(args.device)
    except ValueError as e:
        p.error(str(e))
    bf16 = vt.resolve_bf16(args.bf16, device)
    if bf16 and device.type == "cpu" and not vt.cpu_native_bf16():
        logging.warning("--bf16 on: this CPU has no native bf16 (AVX-512 or AMX), so autocast emulates it, many times slower; "
                        "use --bf16 auto")
    opts = vt.TrainOptions(
        max_steps=args.max_steps, batch_size=args.batch_size, segment_frames=args.segment_frames, lr=args.lr,
        lr_decay=args.lr_decay, mel_weight=args.mel_weight, stft_weight=args.stft_weight, gan_start=args.gan_start, bf16=bf16,
        disc_period_width=args.disc_period_width,
        disc_scale_width=args.disc_scale_width, log_interval=args.log_interval, save_interval=args.save_interval,
        keep_last=args.keep_last, seed=args.seed,
    )
    try:
        trainer = vt.VocoderTrainer(args.save_dir, config, opts, train, valid, device=args.device)
        if not trainer.resume() and args.init_from is not None:
            trainer.init_generator(args.init_from)
    except (OSError, ValueError) as e:
        p.error(str(e))
    n = sum(x.numel() for x in trainer.gen.parameters())
    logging.info("generator: %d parameters, hop %d; %d training utterances; step %d of %d on %s, bf16 autocast %s (--bf16 %s)",
                 n, hop, len(train), trainer.step, opts.max_steps, trainer.device, "on" if bf16 else "off", args.bf16)
    ckpt = trainer.fit(progress=not args.no_progress_bar)
    print(f"vocoder: {ckpt} (config {args.save_dir / 'config.json'})")


if __name__ == "__main__":
    sys.exit(main())
