"""``echostream_multitask``: unit CTC + w_mt * MT label-smoothed CE + w_asr * ASR-CTC + w_st * ST-CTC.

The multitask weights come from the multitask YAML's ``loss_weight``; a zero weight removes
the term (it is neither computed nor logged). Every term is logged on its own.
"""

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from fairseq import metrics, utils
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.criterions.label_smoothed_cross_entropy import label_smoothed_nll_loss
from fairseq.dataclass import FairseqDataclass

from ..models.echostream import ASR_TASK, MT_TASK, ST_TASK, ctc_blank

TERMS = ("unit", "mt", "asr", "st")


@dataclass
class EchoStreamMultitaskConfig(FairseqDataclass):
    unit_loss_weight: float = field(default=1.0, metadata={"help": "weight of the unit CTC loss"})
    label_smoothing: float = field(default=0.1, metadata={"help": "label smoothing of the MT loss"})


class MissingTargetError(ValueError):
    pass


@register_criterion("echostream_multitask", dataclass=EchoStreamMultitaskConfig)
class EchoStreamMultitaskCriterion(FairseqCriterion):
    def __init__(self, task, unit_loss_weight=1.0, label_smoothing=0.1):
        super().__init__(task)
        self.eps = label_smoothing
        self.weights = {
            "unit": unit_loss_weight,
            "mt": task.loss_weight(MT_TASK),
            "asr": task.loss_weight(ASR_TASK),
            "st": task.loss_weight(ST_TASK),
        }

    def _target(self, sample, name: str, term: str):
        mt = sample.get("multitask") or {}
        if name not in mt or mt[name].get("target") is None:
            raise MissingTargetError(
                f"loss term '{term}' is enabled (weight {self.weights[term]}) but the batch has no "
                f"'{name}' target: add it to the multitask YAML and its data folder, or set its loss_weight to 0"
            )
        return mt[name]

    @staticmethod
    def _ctc(lprobs_tbv, input_lengths, target, target_lengths, pad, blank):
        mask = target != pad
        return F.ctc_loss(
            lprobs_tbv,
            target[mask],
            input_lengths,
            target_lengths,
            blank=blank,
            reduction="sum",
            zero_infinity=True,
        )

    def forward(self, model, sample, reduce=True):
        mt_t = self._target(sample, MT_TASK, "mt")
        mt_target = mt_t["target"]  # y1..yn eos
        mt_prev = mt_t["net_input"]["prev_output_tokens"]  # eos y1..yn
        mt_dict = model.mt_dict
        text_lengths = mt_t["target_lengths"] - 1  # without eos
        net_input = sample["net_input"]
        out = model(net_input["src_tokens"], net_input["src_lengths"], mt_prev, text_lengths)
        encoder_out = out["encoder_out"]
        enc_lengths = encoder_out["src_lengths"][0]
        bsz = mt_target.size(0)
        losses = {}

        # unit CTC: targets are the reduced units without eos
        if self.weights["unit"] > 0:
            if sample.get("target") is None:
                raise MissingTargetError("loss term 'unit' is enabled but the batch has no unit target")
            udict = self.task.target_dictionary
            units = sample["target"].masked_fill(sample["target"] == udict.eos(), udict.pad())
            ulens = sample["target_lengths"] - 1
            lp = F.log_softmax(out["unit_logits"].float(), -1).transpose(0, 1)
            losses["unit"] = self._ctc(lp, out["unit_lengths"], units, ulens, udict.pad(), ctc_blank(udict))

        if self.weights["mt"] > 0:
            lprobs = utils.log_softmax(out["mt_logits"].float(), dim=-1)
            losses["mt"], nll = label_smoothed_nll_loss(
                lprobs.view(-1, lprobs.size(-1)), mt_target.view(-1), self.eps, ignore_index=mt_dict.pad()
            )
            mt_nll = nll

        for term, name, proj, d in (
            ("asr", ASR_TASK, model.asr_ctc_proj, model.asr_dict),
            ("st", ST_TASK, model.st_ctc_proj, model.st_dict),
        ):
            if self.weights[term] > 0:
                t = self._target(sample, name, term)
                if proj is None:
                    raise MissingTargetError(f"loss term '{term}' is enabled but the model has no '{name}' head")
                lp = model.ctc_log_probs(proj, encoder_out)
                losses[term] = self._ctc(lp, enc_lengths, t["target"], t["target_lengths"], d.pad(), ctc_blank(d))

        loss = sum(self.weights[k] * v for k, v in losses.items())
        logging_output = {
            "loss": utils.item(loss.data),
            "ntokens": sample["ntokens"],
            "nsentences": bsz,
            "sample_size": bsz,
        }
        for k, v in losses.items():
            logging_output[f"{k}_loss"] = utils.item(v.data)
        if "mt" in losses:
            logging_output["mt_nll_loss"] = utils.item(mt_nll.data)
            logging_output["mt_ntokens"] = int(mt_t["ntokens"])
        return loss, bsz, logging_output

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        nsent = sum(log.get("nsentences", 0) for log in logging_outputs)
        loss = sum(log.get("loss", 0) for log in logging_outputs)
        metrics.log_scalar("loss", loss / max(nsent, 1), nsent, round=3)
        for term in TERMS:
            key = f"{term}_loss"
            if any(key in log for log in logging_outputs):
                v = sum(log.get(key, 0) for log in logging_outputs)
                metrics.log_scalar(key, v / max(nsent, 1), nsent, round=3)
        if any("mt_nll_loss" in log for log in logging_outputs):
            ntok = sum(log.get("mt_ntokens", 0) for log in logging_outputs)
            nll = sum(log.get("mt_nll_loss", 0) for log in logging_outputs)
            metrics.log_scalar("mt_nll_loss", nll / max(ntok, 1), ntok, round=3)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True
