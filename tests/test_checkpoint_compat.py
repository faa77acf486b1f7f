"""fairseq checkpoints (argparse / omegaconf config inside) load through fairseq's loader under
torch 2.9's weights-only torch.load once the plugin is imported."""
import argparse
import subprocess
import sys

import torch
from omegaconf import OmegaConf


def _write(path):
    cfg = OmegaConf.create({"model": {"_name": "hubert", "layers": 2, "x": [1, 2.5, "a", None, True]}, "task": {"labels": ["km"]}})
    # the shape fairseq itself writes: config objects beside weights and training state
    torch.save(
        {
            "args": argparse.Namespace(arch="echostream_mini", lr=[0.1]),
            "cfg": cfg,
            "model": {"w": torch.ones(2)},
            "optimizer_history": [
                {"criterion_name": "X", "optimizer_name": "Adam", "lr_scheduler_state": {"best": 1.0}, "num_updates": 3}
            ],
            "extra_state": {"train_iterator": {"epoch": 1}},
            "last_optimizer_state": None,
        },
        path,
    )


LOAD = (
    "import sys\n"
    "{imp}\n"
    "from fairseq import checkpoint_utils\n"
    "st = checkpoint_utils.load_checkpoint_to_cpu(sys.argv[1])\n"
    "assert float(st['model']['w'].sum()) == 2.0\n"
    "print('loaded')\n"
)


def test_fairseq_loader_reads_config_objects_with_plugin(tmp_path):
    _write(tmp_path / "c.pt")
    p = subprocess.run([sys.executable, "-c", LOAD.format(imp="import echostream_fairseq"), tmp_path / "c.pt"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "loaded" in p.stdout


def test_without_plugin_the_same_file_is_refused(tmp_path):
    # the control: proves the allow-list is what makes the difference under this torch
    _write(tmp_path / "c.pt")
    p = subprocess.run([sys.executable, "-c", LOAD.format(imp=""), tmp_path / "c.pt"], capture_output=True, text=True)
    assert p.returncode != 0
    assert "Weights only load failed" in p.stderr or "Unsupported global" in p.stderr
