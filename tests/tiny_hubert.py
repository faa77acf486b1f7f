"""A tiny HuBERT checkpoint in fairseq's on-disk format (what mHuBERT releases look like:
model + cfg + task_state with the label dictionaries), built and saved by the tests."""
from pathlib import Path

import torch
from fairseq.data import Dictionary
from fairseq.dataclass.configs import FairseqConfig
from fairseq.models.hubert.hubert import HubertConfig, HubertModel
from fairseq.tasks.hubert_pretraining import HubertPretrainingConfig, HubertPretrainingTask
from omegaconf import OmegaConf


def write_tiny_hubert(path: Path, label_dir: Path, dim: int = 32, layers: int = 2) -> Path:
    label_dir.mkdir(parents=True, exist_ok=True)
    (label_dir / "dict.km.txt").write_text("".join(f"{i} 1\n" for i in range(20)))
    task_cfg = HubertPretrainingConfig(data=str(label_dir), labels=["km"], label_rate=50.0, sample_rate=16000)
    task = HubertPretrainingTask(task_cfg)
    model_cfg = HubertConfig(
        conv_feature_layers=f"[({dim}, 10, 5)] + [({dim}, 3, 2)] * 4 + [({dim}, 2, 2)] * 2",
        encoder_layers=layers, encoder_embed_dim=dim, encoder_ffn_embed_dim=2 * dim,
        encoder_attention_heads=2, final_dim=16, conv_pos=16, conv_pos_groups=4, label_rate=50.0,
    )
    torch.manual_seed(0)
    model = HubertModel(model_cfg, task_cfg, task.dictionaries)
    cfg = OmegaConf.structured(FairseqConfig())
    cfg.model = OmegaConf.merge(OmegaConf.structured(model_cfg), {"_name": "hubert"})
    cfg.task = OmegaConf.merge(OmegaConf.structured(task_cfg), {"_name": "hubert_pretraining"})
    state = {
        "cfg": OmegaConf.to_container(cfg, resolve=True, enum_to_str=True),  # as fairseq saves it
        "model": model.state_dict(),
        "task_state": task.state_dict(),
        "optimizer_history": [{"criterion_name": "HubertCriterion", "optimizer_name": "Adam", "lr_scheduler_state": {}, "num_updates": 0}],
        "extra_state": {},
        "last_optimizer_state": None,
    }
    torch.save(state, path)
    return path
