"""A trained model's unit output layer fitted to other units (another target voice, another
quantiser) before the speech side is trained on them.

The units of a new target voice are a new vocabulary: unit 17 of one quantiser has nothing to do
with unit 17 of another. A model continued on them (``--init-from``, ``--train-only t2u
unit_decoder``) starts with an output layer that names the wrong sounds, and most of its first
thousand updates go into relearning that one linear layer through the whole network (es-en,
flite slt -> rms: dev unit CTC loss 2,032 at the start, 471 after 310 updates, 6 s each here).
The text side and the unit decoder's body do not depend on which quantiser numbered the sounds,
so the inputs of the output layer are computed once (eval mode, teacher-forced on the reference
text) and the layer alone is fitted to the new units by CTC: minutes, not hours. Training of the
speech side then starts from the fitted layer."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F

State = Tuple[torch.Tensor, torch.Tensor]  # (unit slots x D) head inputs, (n,) target unit indices


def load_for_fitting(checkpoint: Path, data_dir: Path, config_yaml: str = "config.yaml"):
    """(model in eval mode, task) of ``checkpoint`` over the prepared folder ``data_dir``."""
    from .model_units import load_model

    if not (Path(data_dir) / config_yaml).is_file():
        raise FileNotFoundError(f"{data_dir}: no {config_yaml} (a folder written by echostream-prep-s2st)")
    model, task = load_model(checkpoint, data_dir, config_yaml)
    head = model.unit_decoder.out
    if head.out_features != len(task.target_dictionary):
        raise ValueError(f"{checkpoint}: its unit output layer has {head.out_features} outputs, the unit dictionary of "
                         f"{data_dir} {len(task.target_dictionary)}: the same K is needed")
    return model, task


def head_inputs(model, task, split: str, max_utterances: Optional[int] = None, max_tokens: int = 40000,
                progress: Optional[Callable[[int], None]] = None) -> List[State]:
    """The output layer's input at every unit slot and the reference units, per utterance of
    ``split`` (in the order of its batches; at most ``max_utterances``), kept in fp16."""
    from ..models.echostream import MT_TASK
    from .model_units import clean_split

    ds = clean_split(task, split)
    captured: Dict[str, torch.Tensor] = {}
    hook = model.unit_decoder.out.register_forward_hook(lambda m, i, o: captured.__setitem__("x", i[0]))
    udict = task.target_dictionary
    out: List[State] = []
    try:
        it = task.get_batch_iterator(ds, max_tokens=max_tokens, max_positions=None, ignore_invalid_inputs=False,
                                     seed=1, num_workers=0).next_epoch_itr(shuffle=False)
        with torch.no_grad():
            for sample in it:
                net, mt = sample["net_input"], sample["multitask"][MT_TASK]
                res = model(net["src_tokens"], net["src_lengths"], mt["net_input"]["prev_output_tokens"], mt["target_lengths"] - 1)
                x, lengths = captured["x"], res["unit_lengths"]
                for b in range(x.size(0)):  # the unit target ends with eos, which CTC does not spell
                    y = sample["target"][b, : sample["target_lengths"][b] - 1]
                    if (y == udict.eos()).any() or (y == udict.pad()).any():
                        raise AssertionError(f"{split}: utterance {sample['id'][b].item()} has eos or pad inside its units")
                    out.append((x[b, : lengths[b]].half().clone(), y.clone()))
                    if progress:
                        progress(1)
                    if max_utterances and len(out) >= max_utterances:
                        return out
    finally:
        hook.remove()
    return out


def ctc_loss_sum(head: torch.nn.Linear, items: List[State], blank: int) -> torch.Tensor:
    """The summed unit CTC loss of ``items`` through ``head`` (as the training criterion sums it)."""
    x = torch.nn.utils.rnn.pad_sequence([s.float() for s, _ in items])  # T x B x D
    lengths = torch.tensor([s.size(0) for s, _ in items])
    targets = torch.cat([y for _, y in items])
    target_lengths = torch.tensor([y.numel() for _, y in items])
    lp = F.log_softmax(head(x), dim=-1)
    return F.ctc_loss(lp, targets, lengths, target_lengths, blank=blank, reduction="sum", zero_infinity=True)


def mean_loss(head: torch.nn.Linear, items: List[State], blank: int, batch: int = 100) -> float:
    """Unit CTC loss per utterance (fairseq-validate's ``unit_loss``)."""
    with torch.no_grad():
        return sum(ctc_loss_sum(head, items[i : i + batch], blank).item() for i in range(0, len(items), batch)) / max(len(items), 1)


def fit_head(head: torch.nn.Linear, train: List[State], valid: List[State], blank: int, epochs: int, lr: float,
             batch_size: int = 64, seed: int = 1, log: Callable[[str], None] = print) -> List[dict]:
    """Adam on the per-utterance CTC loss, ``epochs`` passes over ``train``; the head ends at the
    epoch with the lowest validation loss. Returns one record per epoch (epoch 0: the start)."""
    if not train:
        raise ValueError("no training utterances to fit the unit output layer on")
    opt = torch.optim.Adam(head.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    history = [{"epoch": 0, "valid_unit_loss": mean_loss(head, valid, blank)}]
    log(f"epoch 0: valid unit loss {history[0]['valid_unit_loss']:.2f}")
    best = (history[0]["valid_unit_loss"], {k: v.clone() for k, v in head.state_dict().items()})
    for epoch in range(1, epochs + 1):
        order = torch.randperm(len(train), generator=g).tolist()
        total = 0.0
        for i in range(0, len(order), batch_size):
            items = [train[j] for j in order[i : i + batch_size]]
            loss = ctc_loss_sum(head, items, blank) / len(items)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(items)
        rec = {"epoch": epoch, "train_unit_loss": total / len(train), "valid_unit_loss": mean_loss(head, valid, blank)}
        history.append(rec)
        log(f"epoch {epoch}: train unit loss {rec['train_unit_loss']:.2f}, valid {rec['valid_unit_loss']:.2f}")
        if rec["valid_unit_loss"] < best[0]:
            best = (rec["valid_unit_loss"], {k: v.clone() for k, v in head.state_dict().items()})
    head.load_state_dict(best[1])
    return history


def save_with_head(checkpoint: Path, head: torch.nn.Linear, out: Path) -> None:
    """``checkpoint`` with the unit output layer replaced and no optimiser state (a start for
    fairseq-train ``--init-from``); every other tensor as it was."""
    st = torch.load(checkpoint, map_location="cpu", weights_only=False)
    for name in ("weight", "bias"):
        key = f"unit_decoder.out.{name}"
        old = st["model"][key]
        new = getattr(head, name).detach()
        if new.shape != old.shape:
            raise AssertionError(f"{key}: fitted {tuple(new.shape)}, checkpoint {tuple(old.shape)}")
        st["model"][key] = new.to(old.dtype).clone()
    st["last_optimizer_state"] = None
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    torch.save(st, tmp)
    tmp.replace(out)
