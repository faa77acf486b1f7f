"""Units a trained model predicts, laid on the speech they should sound like: training data that
fits a vocoder to the units it will really be given.

For each utterance the model is teacher-forced on its reference text (the MT decoder on the
target subwords, then T2U and the CTC unit decoder) and its greedy unit sequence is collapsed as
in inference. That sequence is then aligned to the reference target speech: a monotonic
alignment (each frame to one predicted unit, each unit at least one frame, in order) that
minimises the squared distance between each 20 ms frame's features and its unit's k-means
centroid. The result is one unit per frame, the format the vocoder trainer reads."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch


def align_to_frames(units: Sequence[int], frames: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """The frame-level unit sequence (len(frames),) that spells ``units`` in order, each for at
    least one frame, with the least sum of ``||frames[t] - centroids[unit]||²``. More units than
    frames is an error (the speech cannot hold them)."""
    n, T = len(units), len(frames)
    if n == 0:
        raise ValueError("no units to align")
    if n > T:
        raise ValueError(f"{n} units cannot be aligned to {T} frames")
    c = centroids[np.asarray(units)].astype(np.float64)
    x = frames.astype(np.float64)
    cost = (x**2).sum(1)[None, :] - 2 * c @ x.T + (c**2).sum(1)[:, None]  # n x T
    acc = np.full((n, T), np.inf)
    came_from_prev = np.zeros((n, T), dtype=bool)  # unit i starts at frame t
    acc[0, 0] = cost[0, 0]
    for t in range(1, T):
        stay = acc[:, t - 1]
        move = np.concatenate([[np.inf], acc[:-1, t - 1]])
        came_from_prev[:, t] = move < stay
        acc[:, t] = np.minimum(stay, move) + cost[:, t]
    out = np.empty(T, dtype=np.int64)
    i = n - 1
    for t in range(T - 1, -1, -1):
        out[t] = units[i]
        if t > 0 and came_from_prev[i, t]:
            i -= 1
    if i != 0:
        raise AssertionError("alignment did not reach the first unit")
    return out


def teacher_forced_units(model, sample, blank_penalty: float = 0.0) -> List[List[int]]:
    """The unit ids (0..K-1) the model predicts for each utterance of a fairseq batch, with the
    MT decoder fed the reference target subwords; decoded as in inference (``blank_penalty``: the
    data config's ``unit_blank_penalty``)."""
    from ..decoding import ctc_collapse, unit_frames, unit_ids
    from ..models.echostream import MT_TASK, ctc_blank

    net, mt = sample["net_input"], sample["multitask"][MT_TASK]
    with torch.no_grad():  # prev_output_tokens: eos y1..yn; target_lengths count the final eos
        out = model(net["src_tokens"], net["src_lengths"], mt["net_input"]["prev_output_tokens"], mt["target_lengths"] - 1)
    logits, lengths = out["unit_logits"], out["unit_lengths"]
    blank = ctc_blank(model.unit_dict)
    best = unit_frames(logits, blank, blank_penalty)
    return [unit_ids(model.unit_dict, ctc_collapse(best[i, : lengths[i]].tolist(), blank)) for i in range(len(lengths))]


def load_model(checkpoint: Path, data_dir: Path, config_yaml: str = "config.yaml"):
    """(model in eval mode, task) of a fairseq-train checkpoint over the prepared folder ``data_dir``."""
    from fairseq import checkpoint_utils

    import echostream_fairseq  # noqa: F401  (registrations, checkpoint allow-list)

    if not Path(checkpoint).is_file():
        raise FileNotFoundError(f"checkpoint not found: {checkpoint}")
    overrides = {"data": str(data_dir), "config_yaml": config_yaml}
    models, _, task = checkpoint_utils.load_model_ensemble_and_task([str(checkpoint)], arg_overrides=overrides)
    return models[0].eval(), task


def clean_split(task, split: str):
    """The loaded dataset of ``split``; a split the task's data config augments is refused (a
    model's units are taken on clean speech)."""
    task.load_dataset(split)
    ds = task.dataset(split)
    if ds.is_train_split and (ds.cfg.voice_augment is not None or ds.cfg.silence_augment is not None):
        config = f"{task.args.data}/{task.args.config_yaml}"
        raise ValueError(f"{config} augments split '{split}'; use clean speech (config.yaml)")
    return ds


def predicted_units(checkpoint: Path, data_dir: Path, split: str, max_tokens: int = 20000,
                    config_yaml: str = "config.yaml") -> Iterator[Tuple[str, List[int]]]:
    """(utterance id, predicted units) for every utterance of ``split`` of a prepared folder."""
    model, task = load_model(checkpoint, data_dir, config_yaml)
    ds = clean_split(task, split)
    itr = task.get_batch_iterator(ds, max_tokens=max_tokens, required_batch_size_multiple=1).next_epoch_itr(shuffle=False)
    for sample in itr:
        for idx, units in zip(sample["id"].tolist(), teacher_forced_units(model, sample, task.data_cfg.unit_blank_penalty)):
            yield ds.ids[idx], units


def align_split(pred: Dict[str, List[int]], audio: Dict[str, Path], centroids: np.ndarray, featurise
                ) -> Iterator[Tuple[str, Optional[np.ndarray], str]]:
    """(id, frame-level predicted units, "") per utterance of ``pred`` (speech from ``audio``), or
    (id, None, why) for one whose units cannot be laid on its speech (none, or more than frames)."""
    from ..features import read_audio

    for uid, units in pred.items():
        if uid not in audio:
            raise KeyError(f"utterance {uid}: no target speech in the lists")
        frames = featurise(read_audio(audio[uid]))
        if not units:
            yield uid, None, "the model predicts no units"
        elif len(units) > len(frames):
            yield uid, None, f"{len(units)} units for {len(frames)} frames of {audio[uid]}"
        else:
            yield uid, align_to_frames(units, frames, centroids), ""
