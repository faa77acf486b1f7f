"""Streaming speech encoder: time reduction x4 + ``torchaudio.models.Emformer``.

``forward`` encodes whole utterances for training and offline decoding. ``init_state`` /
``streaming_step`` / ``streaming_finish`` encode the same audio chunk by chunk with explicit
state, at a cost per chunk that does not depend on how much audio came before. Both paths
produce the same frames: the last segment of an utterance is padded with zero frames to a
whole segment plus the right context in both.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

import torch
import torch.nn as nn
from fairseq.models import FairseqEncoder
from torchaudio.models import Emformer

REDUCTION = 4  # fbank frames stacked into one encoder frame (10 ms -> 40 ms)


@dataclass
class EncoderState:
    """Everything the encoder keeps between chunks of one stream."""

    fbank_tail: torch.Tensor  # (<REDUCTION, feat_dim) fbank frames not yet stacked
    pending: torch.Tensor  # (<S+R, D) projected frames waiting for a full segment + right context
    emformer_states: Optional[List[List[torch.Tensor]]] = None
    frames_out: int = 0  # encoder frames emitted so far
    segments: int = 0  # Emformer segments run so far
    finished: bool = False


class EmformerSpeechEncoder(FairseqEncoder):
    def __init__(self, args, src_dict=None):
        super().__init__(src_dict)
        self.feat_dim = args.input_feat_per_channel
        self.embed_dim = args.encoder_embed_dim
        self.segment_length = args.segment_length
        self.right_context_length = args.right_context_length
        self.in_proj = nn.Linear(self.feat_dim * REDUCTION, self.embed_dim)
        self.emformer = Emformer(
            input_dim=self.embed_dim,
            num_heads=args.encoder_attention_heads,
            ffn_dim=args.encoder_ffn_embed_dim,
            num_layers=args.encoder_layers,
            segment_length=args.segment_length,
            dropout=args.dropout,
            left_context_length=args.left_context_length,
            right_context_length=args.right_context_length,
            max_memory_size=args.max_memory_size,
            tanh_on_mem=args.max_memory_size > 0,
        )

    # ------------------------------------------------------------------ offline
    @staticmethod
    def reduced_lengths(src_lengths: torch.Tensor) -> torch.Tensor:
        return torch.div(src_lengths + REDUCTION - 1, REDUCTION, rounding_mode="floor")

    def _stack(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, T, F) with T a multiple of REDUCTION -> (B, T/REDUCTION, F*REDUCTION)."""
        B, T, F = feats.shape
        return feats.reshape(B, T // REDUCTION, F * REDUCTION)

    def forward(self, src_tokens: torch.Tensor, src_lengths: torch.Tensor, **kwargs):
        """src_tokens: (B, T, feat_dim) CMVN-normalised fbank; src_lengths: (B,)."""
        B, T, _ = src_tokens.shape
        S, R = self.segment_length, self.right_context_length
        lengths = self.reduced_lengths(src_lengths)
        # zero the padding of each utterance, then stack to 40 ms frames
        t_pad = -(-T // REDUCTION) * REDUCTION
        frame_mask = torch.arange(t_pad, device=src_tokens.device)[None, :] < src_lengths[:, None]
        feats = nn.functional.pad(src_tokens, (0, 0, 0, t_pad - T)) * frame_mask[..., None]
        x = self.in_proj(self._stack(feats))
        valid = torch.arange(x.size(1), device=x.device)[None, :] < lengths[:, None]
        x = x * valid[..., None]
        # whole segments (zero-padded) plus R frames of zero right context at the end
        seg_lengths = torch.div(lengths + S - 1, S, rounding_mode="floor") * S
        total = int(seg_lengths.max()) + R
        x = nn.functional.pad(x, (0, 0, 0, total - x.size(1)))
        y, _ = self.emformer(x, seg_lengths)
        t_out = int(lengths.max())
        y = y[:, :t_out]
        padding_mask = ~valid[:, :t_out]
        return {
            "encoder_out": [y.transpose(0, 1)],  # T x B x C
            "encoder_padding_mask": [padding_mask] if padding_mask.any() else [],
            "encoder_embedding": [],
            "encoder_states": [],
            "src_tokens": [],
            "src_lengths": [lengths],
        }

    def reorder_encoder_out(self, encoder_out, new_order):
        def sel(lst, dim):
            return [t.index_select(dim, new_order) for t in lst]

        return {
            "encoder_out": sel(encoder_out["encoder_out"], 1),
            "encoder_padding_mask": sel(encoder_out["encoder_padding_mask"], 0),
            "encoder_embedding": [],
            "encoder_states": [],
            "src_tokens": [],
            "src_lengths": sel(encoder_out["src_lengths"], 0),
        }

    # ---------------------------------------------------------------- streaming
    def init_state(self) -> EncoderState:
        p = self.in_proj.weight
        return EncoderState(
            fbank_tail=p.new_zeros(0, self.feat_dim),
            pending=p.new_zeros(0, self.embed_dim),
        )

    def _context_key(self, state: EncoderState) -> tuple:
        """Streams whose Emformer states have the same usable left context and memory run one
        batched ``infer`` (torchaudio reads both from the batch's first stream)."""
        em = self.emformer.emformer_layers[0]
        past = state.segments * self.segment_length
        return min(em.left_context_length, past), min(em.max_memory_size, -(-past // self.segment_length))

    def _run_segments(self, states: List[EncoderState], final: bool) -> List[torch.Tensor]:
        """Run every complete segment (all that is left when ``final``) of each stream; one
        batched ``infer`` per round for the streams that have a segment and share a context key.
        Returns each stream's new frames."""
        S, R = self.segment_length, self.right_context_length
        outs: List[List[torch.Tensor]] = [[] for _ in states]
        while True:
            ready = [i for i, st in enumerate(states) if st.pending.size(0) >= S + R or (final and st.pending.size(0) > 0)]
            if not ready:
                break
            groups: dict = {}
            for i in ready:
                groups.setdefault(self._context_key(states[i]), []).append(i)
            for group in groups.values():
                blocks, n_valid = [], []
                for i in group:
                    st = states[i]
                    n_valid.append(min(S, st.pending.size(0)))
                    blocks.append(nn.functional.pad(st.pending[: S + R], (0, 0, 0, S + R - min(S + R, st.pending.size(0)))))
                    st.pending = st.pending[S:]
                first = states[group[0]].emformer_states is None
                batched = None if first else [[torch.cat([states[i].emformer_states[l][j] for i in group], dim=1)
                                                for j in range(len(states[group[0]].emformer_states[l]))]
                                               for l in range(len(self.emformer.emformer_layers))]
                x = torch.stack(blocks)
                y, _, new_states = self.emformer.infer(x, torch.full((len(group),), S + R, device=x.device), batched)
                for b, i in enumerate(group):
                    st = states[i]
                    st.emformer_states = new_states if len(group) == 1 else [[t[:, b : b + 1] for t in layer] for layer in new_states]
                    st.segments += 1
                    outs[i].append(y[b, : n_valid[b]])
        result = []
        for st, o in zip(states, outs):
            out = torch.cat(o) if o else st.pending.new_zeros(0, self.embed_dim)
            st.frames_out += out.size(0)
            result.append(out)
        return result

    def _take_features(self, feats: torch.Tensor, state: EncoderState) -> None:
        if state.finished:
            raise RuntimeError("streaming_step after streaming_finish")
        feats = torch.cat([state.fbank_tail, feats.to(state.fbank_tail)])
        n_full = feats.size(0) // REDUCTION * REDUCTION
        state.fbank_tail = feats[n_full:]
        if n_full:
            x = self.in_proj(self._stack(feats[None, :n_full]))[0]
            state.pending = torch.cat([state.pending, x])

    def _take_end(self, state: EncoderState) -> None:
        """Pad the last partial frame with zeros, as ``forward`` does."""
        if state.fbank_tail.size(0):
            tail = nn.functional.pad(state.fbank_tail, (0, 0, 0, REDUCTION - state.fbank_tail.size(0)))
            state.fbank_tail = tail[:0]
            state.pending = torch.cat([state.pending, self.in_proj(self._stack(tail[None]))[0]])

    def streaming_step_many(self, feats: List[torch.Tensor], states: List[EncoderState]) -> List[torch.Tensor]:
        """:meth:`streaming_step` for many streams at once (segments batched)."""
        for f, st in zip(feats, states):
            self._take_features(f, st)
        return self._run_segments(states, final=False)

    def streaming_finish_many(self, states: List[EncoderState]) -> List[torch.Tensor]:
        """:meth:`streaming_finish` for many streams at once."""
        for st in states:
            if st.finished:
                raise RuntimeError("streaming_finish called twice")
            self._take_end(st)
        outs = self._run_segments(states, final=True)
        for st in states:
            st.finished = True
        return outs

    def streaming_step(self, feats: torch.Tensor, state: EncoderState) -> torch.Tensor:
        """Consume new normalised fbank frames (n, feat_dim); return new encoder frames (m, D)."""
        return self.streaming_step_many([feats], [state])[0]

    def streaming_finish(self, state: EncoderState) -> torch.Tensor:
        """Flush: pad the last partial frame and segment with zeros, as ``forward`` does."""
        return self.streaming_finish_many([state])[0]
