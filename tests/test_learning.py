"""The mini model overfits 16 utterances: all four losses fall by more than half and greedy
MT decoding reproduces the training targets."""
import pytest
import torch

from conftest import build
from echostream_fairseq.decoding import detok

pytestmark = pytest.mark.slow


def test_mini_model_overfits_16_utterances(micro_data):
    torch.manual_seed(0)
    task, model, crit, args = build(
        micro_data, "--dropout", 0, "--attention-dropout", 0, "--activation-dropout", 0, "--label-smoothing", 0.0
    )
    task.load_dataset("train")
    ds = task.datasets["train"]
    assert len(ds) == 16
    sample = ds.collater([ds[i] for i in range(len(ds))])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    # warm up over 40 steps, then decay linearly
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min((s + 1) / 40, max(0.05, 1 - s / 250)))
    model.train()
    first = None
    for step in range(250):
        loss, _, log = crit(model, sample)
        if first is None:
            first = log
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        sched.step()
    model.eval()
    with torch.no_grad():
        _, _, last = crit(model, sample)
    for term in ("unit", "mt", "asr", "st"):
        k = f"{term}_loss"
        assert last[k] < 0.5 * first[k], f"{k}: {first[k]:.2f} -> {last[k]:.2f}"

    gen = task.build_generator([model], args)
    hypos = gen.generate([model], sample)
    mt_refs = ds.multitask_data["target_unigram"]
    correct = 0
    for i, idx in enumerate(sample["id"].tolist()):
        uid = ds.ids[idx]
        ref = detok(model.mt_dict, model.mt_dict.encode_line(mt_refs.data[uid], add_if_not_exist=False, append_eos=False).tolist())
        correct += hypos[i][0]["mt_text"] == ref
        assert hypos[i][0]["units"], f"{uid}: no units decoded"
    assert correct == len(ds), f"greedy MT reproduced {correct}/{len(ds)} training targets"
