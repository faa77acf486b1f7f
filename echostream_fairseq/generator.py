"""Offline decoding for ``fairseq-generate``: MT beam search with fairseq's SequenceGenerator,
then T2U + CTC unit decoder, ASR-CTC and ST-CTC greedy transcripts."""
from __future__ import annotations

from typing import Dict, List, Optional

import torch
from fairseq.models import FairseqEncoder, FairseqEncoderDecoderModel
from fairseq.sequence_generator import SequenceGenerator

from . import features
from .decoding import OutputBounds, ctc_collapse, detok, heard_nothing, token_map, unit_frames, unit_ids
from .models.echostream import ctc_blank


class _Precomputed(FairseqEncoder):
    """Lets SequenceGenerator reuse encoder output that was already computed."""

    def __init__(self, encoder):
        super().__init__(None)
        self.inner = encoder
        self.out = None

    def forward(self, **kwargs):
        return self.out

    def reorder_encoder_out(self, encoder_out, new_order):
        return self.inner.reorder_encoder_out(encoder_out, new_order)


class EchoStreamGenerator:
    def __init__(self, models, task, args):
        if len(models) != 1:
            raise ValueError("echostream decoding supports a single model (no ensembles)")
        self.model = models[0]
        self.task = task
        self.unit_dict = task.target_dictionary
        self.symbols_to_strip_from_output = {self.unit_dict.eos(), self.unit_dict.bos()}
        self._encoder = _Precomputed(self.model.encoder)
        mt_model = FairseqEncoderDecoderModel(self._encoder, self.model.mt_decoder)
        self.mt_generator = SequenceGenerator(
            [mt_model],
            self.model.mt_dict,
            beam_size=getattr(args, "beam", 1),
            max_len_a=getattr(args, "max_len_a", 0),
            max_len_b=getattr(args, "max_len_b", 200),
            min_len=getattr(args, "min_len", 1),
            len_penalty=getattr(args, "lenpen", 1.0),
        )
        # output is bounded by input: the data config's length bound per sentence, and no loops
        self.bounds = OutputBounds(self.model.mt_dict)
        self.length_bound = task.data_cfg.length_bound
        self.mt_generator.repeat_ngram_blocker = self.bounds

    def _ctc_ids(self, proj, dictionary, encoder_out, lengths) -> Optional[List[List[int]]]:
        if proj is None:
            return None
        best = self.model.ctc_log_probs(proj, encoder_out).argmax(-1).t()  # B x T
        blank = ctc_blank(dictionary)
        return [ctc_collapse(best[i, : lengths[i]].tolist(), blank) for i in range(len(lengths))]

    @torch.no_grad()
    def generate(self, models, sample, **kwargs) -> List[List[Dict]]:
        model = self.model
        model.eval()
        net_input = sample["net_input"]
        encoder_out = model.encoder(net_input["src_tokens"], net_input["src_lengths"])
        enc_lengths = encoder_out["src_lengths"][0].tolist()
        asr_ids = self._ctc_ids(model.asr_ctc_proj, model.asr_dict, encoder_out, enc_lengths)
        st_ids = self._ctc_ids(model.st_ctc_proj, model.st_dict, encoder_out, enc_lengths)
        asr = [detok(model.asr_dict, t) for t in asr_ids] if asr_ids is not None else [""] * len(enc_lengths)
        st = [detok(model.st_dict, t) for t in st_ids] if st_ids is not None else [""] * len(enc_lengths)
        as_mt = token_map(model.st_dict, model.mt_dict)
        self.bounds.ctc_tokens = None if st_ids is None else [t if as_mt is None else [as_mt[x] for x in t] for t in st_ids]

        self._encoder.out = encoder_out
        fbank_frames = net_input["src_lengths"].tolist()
        self.bounds.max_tokens = [self.length_bound.max_tokens(n * features.FRAME_SHIFT_MS / 1000) for n in fbank_frames]
        mt_hypos = self.mt_generator.generate([], {"net_input": net_input})
        best = [h[0] for h in mt_hypos]
        # one state per target subword: decoder state at the position whose input is that token
        eos = model.mt_dict.eos()
        texts = [h["tokens"][:-1] if h["tokens"][-1] == eos else h["tokens"] for h in best]
        texts = [t[:0] if heard_nothing(a, s) else t for t, a, s in zip(texts, asr, st)]
        n = torch.tensor([len(t) for t in texts])
        prev = torch.full((len(texts), int(n.max()) + 1), model.mt_dict.pad(), dtype=torch.long)
        prev[:, 0] = eos
        for i, t in enumerate(texts):
            prev[i, 1 : 1 + len(t)] = t
        blank = ctc_blank(self.unit_dict)
        if int(n.max()) > 0:
            _, states = model.mt_forward(prev, encoder_out)
            unit_logits, unit_lengths = model.units_forward(states[:, 1:], n, prev[:, 1:])
            best_units = unit_frames(unit_logits, blank, self.task.data_cfg.unit_blank_penalty)
        else:  # no sentence of the batch says anything
            unit_lengths, best_units = torch.zeros(len(texts), dtype=torch.long), torch.zeros(len(texts), 0, dtype=torch.long)

        out = []
        for i, h in enumerate(best):
            idx = ctc_collapse(best_units[i, : unit_lengths[i]].tolist(), blank) if len(texts[i]) else []
            tokens = torch.tensor(idx + [self.unit_dict.eos()], dtype=torch.long)
            out.append(
                [
                    {
                        "tokens": tokens,
                        "score": h["score"],
                        "positional_scores": torch.zeros(len(tokens)),
                        "alignment": None,
                        "units": unit_ids(self.unit_dict, idx),
                        "mt_text": detok(model.mt_dict, texts[i].tolist()),
                        "asr_text": asr[i],
                        "st_text": st[i],
                    }
                ]
            )
        return out


class GenerationWriter:
    """Writes what ``fairseq-generate`` decodes, one line per utterance ``id<TAB>value``:
    ``mt.txt`` (detokenised translation), ``asr.txt`` (ASR-CTC transcript), ``st_ctc.txt``
    (ST-CTC text), ``units.txt``, and ``wav/{id}.wav`` when a vocoder is given."""

    FILES = {"mt.txt": "mt_text", "asr.txt": "asr_text", "st_ctc.txt": "st_text", "units.txt": "units"}

    def __init__(self, folder, ids, vocoder=None):
        from pathlib import Path

        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.ids = ids
        self.vocoder = vocoder
        self.files = {name: open(self.folder / name, "w") for name in self.FILES}
        if vocoder is not None:
            (self.folder / "wav").mkdir(exist_ok=True)

    def write(self, sample, hypos) -> None:
        import soundfile as sf

        for i, idx in enumerate(sample["id"].tolist()):
            uid = self.ids[idx]
            h = hypos[i][0]
            for name, key in self.FILES.items():
                value = " ".join(map(str, h[key])) if key == "units" else h[key]
                self.files[name].write(f"{uid}\t{value}\n")
                self.files[name].flush()
            if self.vocoder is not None:
                wav = self.vocoder(torch.tensor(h["units"]))
                sf.write(str(self.folder / "wav" / f"{uid}.wav"), wav.numpy(), self.vocoder.sample_rate)
