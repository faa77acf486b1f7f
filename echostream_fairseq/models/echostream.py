"""The EchoStream S2ST model (``--arch echostream_s2st`` / ``echostream_mini``).

speech -> Emformer encoder -> ASR-CTC head (source subwords)
                           -> ST-CTC head (target subwords, drives the streaming policy)
                           -> MT decoder (autoregressive) -> T2U encoder -> CTC unit decoder
"""
from __future__ import annotations

from argparse import Namespace
from contextlib import contextmanager
from functools import partial
from typing import Dict, List, Optional

import torch
import torch.nn as nn
from fairseq.models import BaseFairseqModel, register_model, register_model_architecture
from fairseq.models.transformer import Embedding, TransformerDecoder

from .encoder import EmformerSpeechEncoder
from ..decoding import word_start_table
from .unit_decoder import CTCUnitDecoder, T2UEncoder, word_end_index

# names of the multitask YAML entries and the role each plays
ASR_TASK = "source_unigram"
ST_TASK = "ctc_target_unigram"
MT_TASK = "target_unigram"


# what --train-only may name, and the module each part is
TRAINABLE_PARTS = {"encoder": "encoder", "asr_ctc": "asr_ctc_proj", "st_ctc": "st_ctc_proj",
                   "mt_decoder": "mt_decoder", "t2u": "t2u_encoder", "unit_decoder": "unit_decoder"}


def ctc_blank(dictionary) -> int:
    """Every CTC output of the model uses the dictionary's ``<s>`` as its blank.

    ``<s>`` never occurs inside a target sequence, so it is free for the role; fairseq's own
    CTC criterion makes the same choice.
    """
    return dictionary.bos()


@register_model("echostream")
class EchoStreamModel(BaseFairseqModel):
    @staticmethod
    def add_args(parser):
        a = parser.add_argument
        a("--encoder-embed-dim", type=int, metavar="N", help="Emformer width")
        a("--encoder-ffn-embed-dim", type=int, metavar="N", help="Emformer FFN width")
        a("--encoder-layers", type=int, metavar="N", help="Emformer layers")
        a("--encoder-attention-heads", type=int, metavar="N", help="Emformer heads")
        a("--segment-length", type=int, metavar="N", help="Emformer segment, in 40 ms frames")
        a("--right-context-length", type=int, metavar="N", help="Emformer look-ahead, in 40 ms frames")
        a("--left-context-length", type=int, metavar="N", help="Emformer left context, in 40 ms frames")
        a("--max-memory-size", type=int, metavar="N", help="Emformer memory vectors (0: none)")
        a("--decoder-embed-dim", type=int, metavar="N", help="MT decoder width")
        a("--decoder-ffn-embed-dim", type=int, metavar="N", help="MT decoder FFN width")
        a("--decoder-layers", type=int, metavar="N", help="MT decoder layers")
        a("--decoder-attention-heads", type=int, metavar="N", help="MT decoder heads")
        a("--t2u-layers", type=int, metavar="N", help="causal T2U encoder layers (0 allowed)")
        a("--unit-decoder-embed-dim", type=int, metavar="N", help="T2U / unit decoder width")
        a("--unit-decoder-ffn-embed-dim", type=int, metavar="N", help="T2U / unit decoder FFN width")
        a("--unit-decoder-layers", type=int, metavar="N", help="CTC unit decoder layers")
        a("--unit-decoder-attention-heads", type=int, metavar="N", help="T2U / unit decoder heads")
        a("--unit-upsample", type=int, metavar="N", help="unit slots per target subword")
        a("--unit-word-lookahead", action="store_true",
          help="the unit slots of a target subword see the MT states of its whole word (the first piece of "
               "a word is spoken knowing the word); streaming then speaks complete words only")
        a("--dropout", type=float, metavar="D", help="dropout probability")
        a("--attention-dropout", type=float, metavar="D", help="attention dropout (MT decoder)")
        a("--activation-dropout", type=float, metavar="D", help="FFN activation dropout (MT decoder)")
        a("--prefix-train-prob", type=float, metavar="P",
          help="share of training utterances whose MT decoder sees, for each target token, only the source "
               "prefix that streaming gives it: up to the chunk where the ST-CTC count reaches the token "
               "(0: the whole source always)")
        a("--train-only", nargs="+", choices=sorted(TRAINABLE_PARTS), metavar="PART",
          help="train these parts and keep every other one as it is (e.g. 't2u unit_decoder' after --init-from: "
               "the text side stays the same model); parts: " + ", ".join(sorted(TRAINABLE_PARTS)))

    def __init__(self, args, encoder, mt_decoder, t2u_encoder, unit_decoder, asr_dict, st_dict, mt_dict, unit_dict):
        super().__init__()
        self.args = args
        self.encoder = encoder
        self.asr_ctc_proj = nn.Linear(args.encoder_embed_dim, len(asr_dict)) if asr_dict is not None else None
        self.st_ctc_proj = nn.Linear(args.encoder_embed_dim, len(st_dict)) if st_dict is not None else None
        self.mt_decoder = mt_decoder
        self.t2u_encoder = t2u_encoder
        self.unit_decoder = unit_decoder
        self.asr_dict, self.st_dict, self.mt_dict, self.unit_dict = asr_dict, st_dict, mt_dict, unit_dict
        # MT tokens that begin a word (and end-of-sentence, which ends the last one)
        starts = word_start_table(mt_dict)
        starts[mt_dict.eos()] = True
        self.register_buffer("_starts_word", torch.tensor(starts, dtype=torch.bool), persistent=False)
        parts = getattr(args, "train_only", None)
        if parts:
            for name, attr in TRAINABLE_PARTS.items():
                module = getattr(self, attr)
                if name not in parts and module is not None:
                    module.requires_grad_(False)

    def start_grown_layers_as_identity(self, fresh) -> List[str]:
        """Layers of the T2U encoder and the unit decoder that a checkpoint lacked (every tensor
        of theirs in ``fresh``: the model was made deeper) start as the identity: their residual
        branches add zero, so a unit decoder grown on top of its checkpoint's layers computes what
        the checkpoint computed and training goes on from there. Returns the layers' names."""
        fresh = set(fresh)
        grown = []
        for stack in ("t2u_encoder", "unit_decoder"):
            layers = getattr(self, stack).layers
            new = [all(f"{stack}.layers.{i}.{k}" in fresh for k, _ in layer.named_parameters()) for i, layer in enumerate(layers)]
            if all(new):  # a stack the checkpoint did not have at all trains from its own initialisation
                continue
            for i, layer in enumerate(layers):
                if new[i]:
                    layer.zero_residual_()
                    grown.append(f"{stack}.layers.{i}")
        return grown

    @classmethod
    def build_model(cls, args, task):
        base_architecture(args)
        mt_dict = task.multitask_dictionary(MT_TASK)
        if mt_dict is None:
            raise ValueError(
                f"the echostream model needs the '{MT_TASK}' entry in --multitask-config-yaml: "
                "its MT decoder feeds the unit decoder"
            )
        asr_dict = task.multitask_dictionary(ASR_TASK)
        st_dict = task.multitask_dictionary(ST_TASK)
        encoder = EmformerSpeechEncoder(args)
        mt_decoder = build_mt_decoder(args, mt_dict)
        t2u = T2UEncoder(
            args.decoder_embed_dim,
            args.unit_decoder_embed_dim,
            args.t2u_layers,
            args.unit_decoder_attention_heads,
            args.unit_decoder_ffn_embed_dim,
            args.dropout,
        )
        unit_decoder = CTCUnitDecoder(
            args.unit_decoder_embed_dim,
            args.unit_decoder_layers,
            args.unit_decoder_attention_heads,
            args.unit_decoder_ffn_embed_dim,
            args.dropout,
            args.unit_upsample,
            len(task.target_dictionary),
        )
        return cls(args, encoder, mt_decoder, t2u, unit_decoder, asr_dict, st_dict, mt_dict, task.target_dictionary)

    # ----------------------------------------------------------------- pieces
    def ctc_log_probs(self, proj: nn.Module, encoder_out) -> torch.Tensor:
        """(T, B, V) log-probabilities of a CTC head over encoder frames."""
        return nn.functional.log_softmax(proj(encoder_out["encoder_out"][0]).float(), dim=-1)

    def mt_forward(self, prev_output_tokens, encoder_out, incremental_state=None, frame_limits=None):
        """MT decoder: returns (logits B x T x V, hidden states B x T x C). ``frame_limits``
        (B x T): decoder position t attends to the first ``frame_limits[b, t]`` encoder frames only."""
        if frame_limits is None:
            x, _ = self.mt_decoder.extract_features(prev_output_tokens, encoder_out, incremental_state=incremental_state)
        else:
            frames = torch.arange(encoder_out["encoder_out"][0].size(0), device=frame_limits.device)
            with limited_cross_attention(self.mt_decoder, frames[None, None, :] < frame_limits[:, :, None]):
                x, _ = self.mt_decoder.extract_features(prev_output_tokens, encoder_out)
        return self.mt_decoder.output_layer(x), x

    @torch.no_grad()
    def streaming_frame_limits(self, encoder_out, prev_output_tokens, text_lengths) -> Optional[torch.Tensor]:
        """Per utterance chosen with probability ``--prefix-train-prob``: the source frames each
        decoder position sees when streaming (:func:`streaming_prefix_frames`); None when no
        utterance is chosen."""
        p = getattr(self.args, "prefix_train_prob", 0.0) or 0.0
        if not self.training or p <= 0 or self.st_ctc_proj is None:
            return None
        enc = encoder_out["encoder_out"][0]  # S x B x C
        B = enc.size(1)
        lengths = encoder_out["src_lengths"][0]  # encoder frames per utterance
        chosen = torch.rand(B, device=enc.device) < p
        if not chosen.any():
            return None
        greedy = self.st_ctc_proj(enc).argmax(-1).t()  # B x S
        phase = torch.randint(0, self.args.segment_length, (B,), device=enc.device)
        limits = streaming_prefix_frames(greedy, lengths, text_lengths, prev_output_tokens.size(1),
                                         ctc_blank(self.st_dict), self.args.segment_length, phase)
        return torch.where(chosen[:, None], limits, lengths[:, None])

    @property
    def word_lookahead(self) -> bool:
        return bool(getattr(self.args, "unit_word_lookahead", False))

    def starts_word(self, tokens: torch.Tensor) -> torch.Tensor:
        """Bool, same shape as ``tokens`` (MT dictionary ids): the token begins a word."""
        return self._starts_word[tokens.to(self._starts_word.device)]

    def units_forward(self, text_states: torch.Tensor, text_lengths: torch.Tensor, tokens: Optional[torch.Tensor] = None):
        """Unit logits (B x U x K) and lengths from one state per committed target subword;
        ``tokens`` (B x N, the subwords themselves) are needed with ``--unit-word-lookahead``."""
        word_end = None
        if self.word_lookahead:
            if tokens is None:
                raise ValueError("this model's unit decoder looks ahead to the end of each word: pass the target tokens")
            word_end = word_end_index(self.starts_word(tokens), text_lengths)
        return self.unit_decoder(self.t2u_encoder(text_states, text_lengths), text_lengths, word_end)

    def forward(self, src_tokens, src_lengths, mt_prev_output_tokens, mt_text_lengths, **kwargs) -> Dict:
        """Training forward pass with the MT decoder teacher-forced on the target text.

        ``mt_prev_output_tokens`` is ``[eos] y1 .. yn``; the hidden state at the position whose
        input is ``y_t`` represents token ``t`` for the unit decoder (positions 1..n).
        """
        encoder_out = self.encoder(src_tokens, src_lengths)
        limits = self.streaming_frame_limits(encoder_out, mt_prev_output_tokens, mt_text_lengths)
        mt_logits, mt_states = self.mt_forward(mt_prev_output_tokens, encoder_out, frame_limits=limits)
        unit_logits, unit_lengths = self.units_forward(mt_states[:, 1:], mt_text_lengths, mt_prev_output_tokens[:, 1:])
        return {
            "encoder_out": encoder_out,
            "mt_logits": mt_logits,
            "unit_logits": unit_logits,
            "unit_lengths": unit_lengths,
        }

    def max_positions(self):
        return (self.args.max_source_positions, self.args.max_target_positions)

    def upgrade_state_dict_named(self, state_dict, name):
        return state_dict


def streaming_prefix_frames(greedy: torch.Tensor, lengths: torch.Tensor, text_lengths: torch.Tensor, positions: int,
                            blank: int, chunk: int, phase: torch.Tensor) -> torch.Tensor:
    """(B x positions) source frames each MT decoder position sees when streaming.

    ``greedy`` (B x S) is the ST-CTC's best label per frame. Streaming commits target token
    t + 1 (decoder position t, counted from 0) once the ST-CTC has counted t + 1 tokens (the
    default gate: lag 1, whole words), and the decoder then sees every frame of that chunk; a
    chunk is ``chunk`` frames and the chunk grid starts ``phase[b]`` frames early. Positions the
    count never reaches, the end-of-sentence position and padding see the whole source, as at
    the end of a stream."""
    B, S = greedy.shape
    valid = torch.arange(S, device=greedy.device)[None, :] < lengths[:, None]
    new = (greedy != blank) & valid
    new[:, 1:] &= greedy[:, 1:] != greedy[:, :-1]
    counts = new.long().cumsum(1)  # tokens counted after each frame
    need = torch.arange(1, positions + 1, device=greedy.device).expand(B, -1).contiguous()
    first = torch.searchsorted(counts, need)  # the frame at which the count reaches t + 1
    ph = phase[:, None]
    limits = torch.minimum((first + 1 + ph + chunk - 1) // chunk * chunk - ph, lengths[:, None])
    full = (first >= lengths[:, None]) | (torch.arange(positions, device=greedy.device)[None, :] >= text_lengths[:, None])
    return torch.where(full, lengths[:, None].expand(B, positions), limits)


@contextmanager
def limited_cross_attention(decoder: TransformerDecoder, allowed: torch.Tensor):
    """Within the block, every cross-attention of ``decoder`` lets query t of utterance b see
    the encoder frames where ``allowed[b, t]`` (B x T x S) only: fairseq's attention
    arithmetic, the layers' own weights."""
    mods = [layer.encoder_attn for layer in decoder.layers]
    for mha in mods:
        mha.forward = partial(_limited_attention, mha, allowed)
    try:
        yield
    finally:
        for mha in mods:
            del mha.forward


def _limited_attention(mha, allowed, query, key, value, key_padding_mask=None, **_):
    T, B, C = query.shape
    H = mha.num_heads
    hd = C // H
    q = (mha.q_proj(query) * mha.scaling).view(T, B, H, hd).permute(1, 2, 0, 3)
    k = mha.k_proj(key).view(-1, B, H, hd).permute(1, 2, 0, 3)
    v = mha.v_proj(value).view(-1, B, H, hd).permute(1, 2, 0, 3)
    w = torch.matmul(q, k.transpose(-1, -2)).masked_fill(~allowed[:, None], float("-inf"))
    probs = mha.dropout_module(torch.softmax(w.float(), dim=-1).type_as(w))
    out = torch.matmul(probs, v).permute(2, 0, 1, 3).reshape(T, B, C)
    return mha.out_proj(out), None


def build_mt_decoder(args, dictionary) -> TransformerDecoder:
    dec_args = Namespace(
        decoder_embed_dim=args.decoder_embed_dim,
        decoder_output_dim=args.decoder_embed_dim,
        decoder_input_dim=args.decoder_embed_dim,
        decoder_ffn_embed_dim=args.decoder_ffn_embed_dim,
        decoder_layers=args.decoder_layers,
        decoder_attention_heads=args.decoder_attention_heads,
        decoder_normalize_before=True,
        decoder_learned_pos=False,
        encoder_embed_dim=args.encoder_embed_dim,
        dropout=args.dropout,
        attention_dropout=args.attention_dropout,
        activation_dropout=args.activation_dropout,
        activation_fn="relu",
        max_target_positions=args.max_target_positions,
        share_decoder_input_output_embed=True,
        no_scale_embedding=False,
        no_token_positional_embeddings=False,
        adaptive_softmax_cutoff=None,
        layernorm_embedding=False,
        decoder_layerdrop=0.0,
        quant_noise_pq=0,
    )
    embed = Embedding(len(dictionary), args.decoder_embed_dim, dictionary.pad())
    return TransformerDecoder(dec_args, dictionary, embed)


def _defaults(args):
    """Returns ``g(name, value)``: set ``args.name`` to ``value`` unless the user gave it."""

    def g(name, value):
        if getattr(args, name, None) is None:
            setattr(args, name, value)

    return g


@register_model_architecture("echostream", "echostream_s2st")
def base_architecture(args):
    """Paper size: 16-layer Emformer d256, 4-layer MT decoder, 6-layer CTC unit decoder."""
    g = _defaults(args)
    g("encoder_embed_dim", 256)
    g("encoder_ffn_embed_dim", 1024)
    g("encoder_layers", 16)
    g("encoder_attention_heads", 4)
    g("segment_length", 8)
    g("right_context_length", 2)
    g("left_context_length", 32)
    g("max_memory_size", 0)
    g("decoder_embed_dim", 256)
    g("decoder_ffn_embed_dim", 2048)
    g("decoder_layers", 4)
    g("decoder_attention_heads", 4)
    g("t2u_layers", 0)
    g("unit_decoder_embed_dim", 256)
    g("unit_decoder_ffn_embed_dim", 2048)
    g("unit_decoder_layers", 6)
    g("unit_decoder_attention_heads", 4)
    g("unit_upsample", 25)
    g("dropout", 0.1)
    g("attention_dropout", 0.1)
    g("activation_dropout", 0.1)
    g("prefix_train_prob", 0.0)
    g("unit_word_lookahead", False)
    g("max_source_positions", 6000)
    g("max_target_positions", 1024)


@register_model_architecture("echostream", "echostream_mini")
def mini_architecture(args):
    """Trains on 2 CPU cores: 4-layer Emformer d144, 2-layer MT decoder, 2-layer unit decoder."""
    g = _defaults(args)
    g("encoder_embed_dim", 144)
    g("encoder_ffn_embed_dim", 576)
    g("encoder_layers", 4)
    g("encoder_attention_heads", 4)
    g("left_context_length", 16)
    g("decoder_embed_dim", 144)
    g("decoder_ffn_embed_dim", 576)
    g("decoder_layers", 2)
    g("unit_decoder_embed_dim", 144)
    g("unit_decoder_ffn_embed_dim", 576)
    g("unit_decoder_layers", 2)
    g("unit_upsample", 12)
    g("dropout", 0.1)
    base_architecture(args)
