"""echostream-demo: the main job on the bundled default.

Until the shipped demo model exists, this is the micro recipe: build the micro es->en data
folder, train ``echostream_mini`` with fairseq-train, decode the dev set with fairseq-generate
and print where everything went. Every stage resumes: a second run reuses the data and the
checkpoint.
"""
import argparse
import subprocess
import sys
import time
from pathlib import Path

PLUGIN = Path(__file__).resolve().parents[1]


def _run(cmd, log: Path):
    print(f"$ {' '.join(map(str, cmd))}\n  (log: {log})", flush=True)
    with open(log, "w") as f:
        p = subprocess.run([str(c) for c in cmd], stdout=f, stderr=subprocess.STDOUT)
    if p.returncode != 0:
        tail = log.read_text().splitlines()[-25:]
        sys.exit(f"command failed (exit {p.returncode}); last lines of {log}:\n" + "\n".join(tail))


def main(argv=None):
    p = argparse.ArgumentParser(prog="echostream-demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", type=Path, default=Path("runs/demo"), help="where data, checkpoints and outputs go (default runs/demo)")
    p.add_argument("--max-update", type=int, default=300, help="training updates (default 300)")
    args = p.parse_args(argv)
    work = args.workdir
    data, ckpt, gen = work / "data", work / "checkpoints", work / "generate"
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()

    if not (data / "config.yaml").is_file():
        from ..prep.micro import make_micro_dataset

        print("[1/3] building the micro es->en data folder (espeak-ng / flite speech, k-means units)", flush=True)
        make_micro_dataset(data, n_train=16, n_dev=4)
    else:
        print(f"[1/3] data folder exists: {data}")

    common = ["--user-dir", PLUGIN, "--task", "echostream_s2st", "--config-yaml", "config.yaml",
              "--multitask-config-yaml", "config_mtl.yaml"]
    print(f"[2/3] fairseq-train echostream_mini, {args.max_update} updates (resumes from checkpoint_last.pt)", flush=True)
    _run([sys.executable, "-m", "fairseq_cli.train", data, *common, "--arch", "echostream_mini",
          "--criterion", "echostream_multitask", "--optimizer", "adam", "--lr", "3e-3",
          "--lr-scheduler", "inverse_sqrt", "--warmup-updates", "40", "--clip-norm", "5",
          "--max-tokens", "40000", "--max-update", args.max_update, "--dropout", "0.0",
          "--train-subset", "train", "--valid-subset", "dev", "--required-batch-size-multiple", "1",
          "--num-workers", "0", "--no-epoch-checkpoints", "--save-dir", ckpt, "--log-format", "simple",
          "--log-interval", "50"], work / "train.log")

    print("[3/3] fairseq-generate on the train and dev sets", flush=True)
    for split in ("train", "dev"):
        _run([sys.executable, "-m", "fairseq_cli.generate", data, *common, "--path", ckpt / "checkpoint_last.pt",
              "--gen-subset", split, "--beam", "1", "--max-tokens", "40000", "--results-path", gen], work / f"generate-{split}.log")

    print(f"\ndone in {time.time() - t0:.0f} s. Outputs:")
    print(f"  data folder      {data}")
    print(f"  checkpoints      {ckpt}")
    for split in ("train", "dev"):
        print(f"  {split:5s} decoding  {gen / split}/{{mt,asr,st_ctc,units}}.txt  (fairseq's own: {gen}/generate-{split}.txt)")
    refs = {line.split('\t')[0]: line.split('\t')[-1] for line in (data / "dev.tsv").read_text().splitlines()[1:]}
    print("\ndev translations (held-out sentences; the micro model has seen 16 sentences):")
    for line in (gen / "dev" / "mt.txt").read_text().splitlines():
        uid, hyp = line.split("\t")
        print(f"  {uid}  ref: {refs[uid]:30s} hyp: {hyp}")


if __name__ == "__main__":
    main()
