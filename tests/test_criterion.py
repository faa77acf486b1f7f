import pytest
import torch
import yaml
from fairseq import metrics

from conftest import build
from echostream_fairseq.criterions.echostream_multitask import MissingTargetError


def _batch(task, split="train", n=4):
    task.load_dataset(split)
    ds = task.datasets[split]
    return ds.collater([ds[i] for i in range(n)])


def _set_weight(data, name, w):
    p = data / "config_mtl.yaml"
    cfg = yaml.safe_load(p.read_text())
    cfg[name]["loss_weight"] = w
    p.write_text(yaml.safe_dump(cfg))


def test_every_term_computed_weighted_and_logged(data_copy):
    _set_weight(data_copy, "source_unigram", 0.3)
    _set_weight(data_copy, "ctc_target_unigram", 0.5)
    _set_weight(data_copy, "target_unigram", 2.0)
    task, model, crit, _ = build(data_copy, "--unit-loss-weight", 0.7)
    sample = _batch(task)
    loss, sample_size, log = crit(model, sample)
    for k in ("unit_loss", "mt_loss", "asr_loss", "st_loss", "mt_nll_loss"):
        assert k in log and log[k] > 0, k
    expected = 0.7 * log["unit_loss"] + 2.0 * log["mt_loss"] + 0.3 * log["asr_loss"] + 0.5 * log["st_loss"]
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert sample_size == 4
    loss.backward()
    # every part of the model receives gradient from some term
    for name, p in model.named_parameters():
        assert p.grad is not None, name
    with metrics.aggregate() as agg:
        crit.reduce_metrics([log])
        values = agg.get_smoothed_values()
    for k in ("loss", "unit_loss", "mt_loss", "asr_loss", "st_loss"):
        assert k in values


@pytest.mark.parametrize("name,term", [("source_unigram", "asr"), ("ctc_target_unigram", "st"), ("target_unigram", "mt")])
def test_zero_weight_removes_term(data_copy, name, term):
    _set_weight(data_copy, name, 0)
    task, model, crit, _ = build(data_copy)
    loss, _, log = crit(model, _batch(task))
    assert f"{term}_loss" not in log
    others = sum(log[f"{t}_loss"] for t in ("unit", "mt", "asr", "st") if t != term)
    assert loss.item() == pytest.approx(others, rel=1e-5)


def test_zero_unit_weight(micro_data):
    task, model, crit, _ = build(micro_data, "--unit-loss-weight", 0)
    _, _, log = crit(model, _batch(task))
    assert "unit_loss" not in log and "mt_loss" in log


@pytest.mark.parametrize("name", ["source_unigram", "ctc_target_unigram", "target_unigram"])
def test_enabled_term_without_target_raises(micro_data, name):
    task, model, crit, _ = build(micro_data)
    sample = _batch(task)
    del sample["multitask"][name]
    with pytest.raises(MissingTargetError, match=name):
        crit(model, sample)


def test_missing_unit_target_raises(micro_data):
    task, model, crit, _ = build(micro_data)
    sample = _batch(task)
    sample["target"] = None
    with pytest.raises(MissingTargetError, match="unit"):
        crit(model, sample)
