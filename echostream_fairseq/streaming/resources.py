"""What the sessions of one model share, and its loading: the model (eval mode, on its device),
CMVN and input level normalisation, the vocoder, the unit dictionary, the punctuation model and
the target length bound."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from .. import features, punct
from ..tasks.echostream_s2st import DEFAULT_LENGTH_BOUND, LengthBound
from ..vocoder import UnitVocoder


@dataclass
class Resources:
    """What sessions share: the model (eval mode), CMVN and the vocoder."""

    model: torch.nn.Module
    cmvn: features.GlobalCMVN
    vocoder: Optional[UnitVocoder]
    unit_dict: object
    punct: Optional[punct.PunctModel] = None  # sentence boundaries and punctuation of the transcript
    length_bound: LengthBound = DEFAULT_LENGTH_BOUND  # target tokens per second of a sentence's source
    unit_blank_penalty: float = 0.0  # the data config's, for the unit decoder's CTC (decoding.unit_frames)
    input_level: Optional[features.InputLevel] = None  # the data config's input level normalisation (None: off)

    @property
    def device(self) -> torch.device:
        """Where the model (and the vocoder) run; the front end and the policy stay on the CPU."""
        return next(self.model.parameters()).device


def check_device(device) -> torch.device:
    """A torch device this machine has, or a ValueError that says what it has."""
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise ValueError(f"unknown device {device!r}: use cpu, cuda or cuda:N") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r}: this machine has no CUDA device (torch {torch.__version__}); use --device cpu")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device {device!r}: only cpu and cuda are supported")
    return dev


def use_exact_fp32() -> None:
    """Full fp32 matmuls and convolutions on CUDA (for the whole process). cuDNN convolutions
    default to TF32, which keeps 10 mantissa bits: enough to move a greedy choice of the model or
    the vocoder's samples away from what the same session gives on the CPU."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


def load_resources(checkpoint, data_dir=None, config_yaml="config.yaml", multitask_yaml="config_mtl.yaml", vocoder=True,
                   vocoder_checkpoint=None, vocoder_config=None, punct_model=None, device="cpu") -> Resources:
    """Load a checkpoint written by fairseq-train with the data folder's config, CMVN and
    vocoder (or the vocoder given explicitly), and optionally a punctuation model trained by
    echostream-train-punct on the model's source dictionary. The model and the vocoder go to
    ``device`` (cpu or cuda)."""
    device = check_device(device)
    if device.type == "cuda":
        use_exact_fp32()
    from fairseq import checkpoint_utils

    import echostream_fairseq  # noqa: F401  (registrations, checkpoint allow-list)

    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise FileNotFoundError(f"checkpoint not found: {checkpoint}")
    overrides = {"config_yaml": config_yaml, "multitask_config_yaml": multitask_yaml}
    if data_dir is not None:
        overrides["data"] = str(data_dir)
    models, _, task = checkpoint_utils.load_model_ensemble_and_task([str(checkpoint)], arg_overrides=overrides)
    model = models[0].eval().to(device)
    cmvn_path = task.data_cfg.global_cmvn_stats_npz
    if cmvn_path is None:
        raise ValueError(f"{task.args.data}/{config_yaml} has no global_cmvn.stats_npz_path")
    voc = None
    if vocoder_checkpoint is not None:
        voc = UnitVocoder(vocoder_checkpoint, vocoder_config, device)
    elif vocoder:
        vc = task.data_cfg.config.get("vocoder")
        if vc is None:
            raise ValueError(f"{task.args.data}/{config_yaml} names no vocoder; speech output needs one")
        voc = UnitVocoder(vc["checkpoint"], vc["config"], device)
    if voc is not None and voc.num_units != len(task.target_dictionary) - task.target_dictionary.nspecial:
        raise ValueError(f"the vocoder has {voc.num_units} units, the model {len(task.target_dictionary) - task.target_dictionary.nspecial}")
    pm = None
    if punct_model is not None:
        if model.asr_dict is None:
            raise ValueError(f"{checkpoint} has no ASR-CTC head: a punctuation model has nothing to read")
        pm = punct.PunctModel.load(punct_model)
        pm.check_dictionary(model.asr_dict, f"the ASR-CTC dictionary of {checkpoint}")
    return Resources(model, features.GlobalCMVN.load(cmvn_path), voc, task.target_dictionary, pm, task.data_cfg.length_bound,
                     task.data_cfg.unit_blank_penalty, task.data_cfg.input_level)
