"""SimulEval agents: thin adapters over :class:`echostream_fairseq.streaming.StreamingSession`.

    simuleval --agent-class echostream_fairseq.agents.EchoStreamS2STAgent \\
        --checkpoint CKPT --data-dir DATA --source src.list --target tgt.txt \\
        --source-segment-size 320 --output OUT

``EchoStreamS2STAgent`` writes speech, ``EchoStreamS2TTAgent`` translated words and
``EchoStreamASRAgent`` the streaming transcript. The input sample rate is read from the source
(any rate from 8 to 384 kHz is resampled to 16 kHz). With ``--output``, the S2ST and S2TT agents also write the
transcript and translation of every instance to ``{output}/echostream_text.tsv``.
"""
from __future__ import annotations

import os
from argparse import ArgumentParser
from typing import Optional

import numpy as np
from simuleval.agents import SpeechToSpeechAgent, SpeechToTextAgent
from simuleval.agents.actions import ReadAction, WriteAction
from simuleval.data.segments import SpeechSegment

from .. import features
from ..evaluation import asr_bleu  # noqa: F401  (registers the ASR_BLEU_LOCAL scorers with SimulEval)
from ..streaming.engine import PolicyConfig, StepOutput, StreamingSession, load_resources


class _EchoStreamAgent:
    """Shared by the three agents: arguments, resources, one session per instance."""

    speech_output = False
    translate = True

    @staticmethod
    def add_args(parser: ArgumentParser):
        parser.add_argument("--checkpoint", required=True, help="checkpoint written by fairseq-train")
        parser.add_argument("--data-dir", required=True, help="prepared data folder (config, dictionaries, CMVN, vocoder)")
        parser.add_argument("--config-yaml", default="config.yaml")
        parser.add_argument("--multitask-config-yaml", default="config_mtl.yaml")
        parser.add_argument("--punct-model", help="punctuation / sentence-boundary model (echostream-train-punct) for "
                                                  "learned sentence boundaries")
        PolicyConfig.add_args(parser)

    def __init__(self, args):
        self._setup(args)
        super().__init__(args)  # SimulEval's agent: builds states and calls reset()

    def reset(self):
        super().reset()
        self.session = StreamingSession(self.res, self.policy_cfg, speech=self.speech_output, translate=self.translate)
        self.resampler = None  # created on the first segment, from the source's sample rate
        self.consumed = 0

    def _setup(self, args):
        self.res = load_resources(args.checkpoint, args.data_dir, args.config_yaml, args.multitask_config_yaml, vocoder=self.speech_output,
                                  punct_model=args.punct_model, device=getattr(args, "device", "cpu"))  # SimulEval's --device
        self.policy_cfg = PolicyConfig.from_args(args, punct_model=args.punct_model is not None, model_dir=args.data_dir)
        self.output_dir = getattr(args, "output", None)
        self.instance = 0
        if self.output_dir:
            os.makedirs(self.output_dir, exist_ok=True)
            open(os.path.join(self.output_dir, "echostream_text.tsv"), "w").write("index\ttranscript\ttranslation\n")

    def _advance(self) -> StepOutput:
        """Feed the samples that arrived since the last call; flush at the end of the source."""
        st = self.states
        new = np.asarray(st.source[self.consumed :], dtype=np.float32)
        self.consumed = len(st.source)
        sr = st.source_sample_rate or features.SAMPLE_RATE
        if self.resampler is None or self.resampler.orig != sr:
            self.resampler = features.StreamingResampler(sr)
        new = self.resampler.accept(new, final=st.source_finished)
        out = self.session.step(new) if new.size else StepOutput()
        if st.source_finished and not self.session.finished:
            out = out.merged(self.session.finish())
            self._log_text()
        return out

    def _log_text(self):
        if self.output_dir:
            with open(os.path.join(self.output_dir, "echostream_text.tsv"), "a") as f:
                f.write(f"{self.instance}\t{self.session.transcript}\t{self.session.translation}\n")
        self.instance += 1


class EchoStreamS2STAgent(_EchoStreamAgent, SpeechToSpeechAgent):
    """Simultaneous speech-to-speech translation: 16 kHz speech out, duration-synchronised."""

    speech_output = True

    def policy(self):
        out = self._advance()
        if out.pcm.size == 0 and not out.finished:
            return ReadAction()
        seg = SpeechSegment(content=out.pcm.tolist(), sample_rate=features.SAMPLE_RATE, finished=out.finished)
        return WriteAction(seg, finished=out.finished)


class EchoStreamS2TTAgent(_EchoStreamAgent, SpeechToTextAgent):
    """Simultaneous speech-to-text translation: whole words as soon as the policy commits them."""

    def policy(self):
        out = self._advance()
        if not out.words and not out.finished:
            return ReadAction()
        return WriteAction(" ".join(out.words), finished=out.finished)


class EchoStreamASRAgent(_EchoStreamAgent, SpeechToTextAgent):
    """Streaming ASR from the ASR-CTC head: complete words of the transcript as they appear."""

    translate = False  # the transcript needs no MT decoder

    def reset(self):
        super().reset()
        self.sent_words = 0

    def policy(self):
        out = self._advance()
        words = self.session.transcript.split()
        ready = words if out.finished else words[:-1]  # the last word may still grow
        new = ready[self.sent_words :]
        self.sent_words = len(ready)
        if not new and not out.finished:
            return ReadAction()
        return WriteAction(" ".join(new), finished=out.finished)
