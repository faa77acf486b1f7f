"""fairseq's distributed training with the plugin's task, model and criterion: two CPU processes
under torchrun (gloo) give the losses of one process with --update-freq 2 (same effective
batch, same batches in the same order), and a launch that does not tell fairseq the world size
is refused instead of training twice into one folder."""
import re

import pytest

from conftest import TRAIN_ARGS, cli, run

pytestmark = pytest.mark.slow

# plain SGD: an update is linear in the gradient, so the float-order differences of an all-reduce
# stay float-sized (Adam's first steps are sign(g) * lr and flip on gradients that are ~0)
COMMON = ["--optimizer", "sgd", "--momentum", "0", "--lr", "1e-4", "--lr-scheduler", "fixed", "--batch-size", "4", "--max-update", "8",
          "--train-subset", "train", "--valid-subset", "dev", "--required-batch-size-multiple", "1", "--num-workers", "0",
          "--disable-validation", "--no-epoch-checkpoints", "--log-format", "simple", "--log-interval", "1",
          # no dropout anywhere: fairseq seeds dropout per micro-batch, which differs between the two layouts
          "--dropout", "0", "--attention-dropout", "0", "--activation-dropout", "0",
          "--seed", "1", "--cpu", "--clip-norm", "0"]
# on CPU: gloo, torchrun's env:// rendezvous, rank read from the launcher (-1), no spawn, and the
# DDP wrapper that does not pass CUDA device ids
DDP = ["--distributed-backend", "gloo", "--distributed-world-size", "2", "--distributed-init-method", "env://",
       "--distributed-rank", "-1", "--distributed-no-spawn", "--ddp-backend", "legacy_ddp"]


def _losses(log: str):
    """num_updates -> loss of fairseq's per-update train_inner lines."""
    return {int(m.group(2)): float(m.group(1)) for m in re.finditer(r"loss=([0-9.]+),.*?num_updates=(\d+)", log)}


def _torchrun(*args):
    from test_server import free_port

    return [cli("torchrun"), "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
            cli("fairseq-train"), *map(str, args)]


def test_two_processes_match_one_with_update_freq_2(micro_data, tmp_path):
    single = run([cli("fairseq-train"), micro_data, *TRAIN_ARGS, *COMMON, "--update-freq", "2", "--save-dir", tmp_path / "one"])
    ddp = run(_torchrun(micro_data, *TRAIN_ARGS, *COMMON, *DDP, "--save-dir", tmp_path / "two"))
    one, two = _losses(single.stdout + single.stderr), _losses(ddp.stdout + ddp.stderr)
    assert sorted(one) == list(range(1, 9)) and sorted(two) == list(range(1, 9)), (one, two)
    for u in one:
        assert two[u] == pytest.approx(one[u], rel=1e-4), (u, one[u], two[u])
    assert "training on 2 devices" in ddp.stdout + ddp.stderr


def test_a_launch_without_the_world_size_is_refused(micro_data, tmp_path):
    with pytest.raises(AssertionError, match="--distributed-world-size is 1: each process would train alone"):
        run(_torchrun(micro_data, *TRAIN_ARGS, *COMMON, "--distributed-backend", "gloo", "--distributed-init-method", "env://",
                      "--distributed-rank", "-1", "--distributed-no-spawn", "--ddp-backend", "legacy_ddp", "--save-dir", tmp_path / "bad"))
    assert not (tmp_path / "bad" / "checkpoint_last.pt").exists()
