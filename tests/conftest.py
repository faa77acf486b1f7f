import os
import shutil
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def cli(name: str) -> str:
    path = BIN / name
    assert path.exists(), f"{name} is not installed in {BIN}; run `make setup`"
    return str(path)


def run(cmd, **kw):
    """Run a real CLI; on failure show its output."""
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="2")
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env, **kw)
    if p.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} exited {p.returncode}\n--- stdout\n{p.stdout[-4000:]}\n--- stderr\n{p.stderr[-6000:]}")
    return p


@pytest.fixture(scope="session")
def micro_data(tmp_path_factory):
    """A real micro data folder (espeak-ng/flite speech, k-means units, spm, gcmvn) with an
    untrained CodeHiFiGAN in fairseq's on-disk format."""
    from echostream_fairseq.prep.micro import make_micro_dataset

    return make_micro_dataset(tmp_path_factory.mktemp("micro") / "data", n_train=16, n_dev=4, with_vocoder=True)


@pytest.fixture
def data_copy(micro_data, tmp_path):
    """A private copy of the micro data folder that a test may break."""
    dst = tmp_path / "data"
    shutil.copytree(micro_data, dst)
    return dst


TRAIN_ARGS = [
    "--user-dir", str(REPO / "echostream_fairseq"),
    "--task", "echostream_s2st",
    "--arch", "echostream_mini",
    "--criterion", "echostream_multitask",
    "--config-yaml", "config.yaml",
    "--multitask-config-yaml", "config_mtl.yaml",
]


def build(data, *extra):
    """task, model, criterion and args exactly as fairseq-train builds them."""
    from fairseq import options, tasks

    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, input_args=[str(data), *TRAIN_ARGS, *map(str, extra)])
    task = tasks.setup_task(args)
    model = task.build_model(args)
    criterion = task.build_criterion(args)
    return task, model, criterion, args


def encoder_args(**kw) -> Namespace:
    base = dict(
        input_feat_per_channel=80,
        encoder_embed_dim=64,
        encoder_ffn_embed_dim=128,
        encoder_layers=2,
        encoder_attention_heads=4,
        segment_length=4,
        right_context_length=1,
        left_context_length=8,
        max_memory_size=0,
        dropout=0.0,
    )
    base.update(kw)
    return Namespace(**base)


@pytest.fixture(scope="session")
def trained_micro(micro_data, tmp_path_factory):
    """A checkpoint that fairseq-train wrote after 150 updates on the micro set (vocoder in the
    data config), shared by the streaming, agent and decoding tests. Its unit decoder looks ahead
    to the end of each word, as the recipes' models do."""
    save = tmp_path_factory.mktemp("trained")
    run([cli("fairseq-train"), micro_data, *TRAIN_ARGS, "--unit-word-lookahead", "--optimizer", "adam", "--lr", "3e-3",
         "--lr-scheduler", "inverse_sqrt", "--warmup-updates", "30", "--clip-norm", "5", "--dropout", "0",
         "--max-tokens", "40000", "--max-update", "150", "--save-dir", save, "--train-subset", "train",
         "--valid-subset", "dev", "--required-batch-size-multiple", "1", "--num-workers", "0",
         "--no-epoch-checkpoints", "--disable-validation", "--seed", "1"])
    return save / "checkpoint_last.pt"


@pytest.fixture(scope="session")
def served_pairs(tmp_path_factory, trained_micro, micro_data):
    """A real server with every shipped language pair (es-en first, then assets/pairs/*) and the
    micro model as 'xx-en' (tests/test_pairs.py, tests/test_web.py): (http base, ws url)."""
    from test_server import start_server

    p, base, url, _ = start_server(tmp_path_factory.mktemp("pairs") / "serve.log", "--add-pair", "xx-en", trained_micro,
                                   micro_data, "--max-sessions", "4", "--log-level", "warning")
    yield base, url
    p.terminate()
    p.wait(timeout=30)
