"""The MT decoder stepped incrementally over a growing encoder output, one sentence of one
session each, stepped alone or many at once.

Each decoder owns its caches: the sentence's encoder frames, every layer's cross-attention keys
and values over them (extended with new frames only) and every layer's self-attention keys and
values over the decoded positions. ``step_batch`` runs one decoder position for any number of
decoders in one forward per layer, padding the caches of unequal length and masking the
padding; a single decoder is the batch of one. The arithmetic is fairseq's pre-norm
``TransformerDecoder`` (the model's weights, no private fairseq buffers).
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch


class GrowingTensor:
    """A tensor that grows along ``dim`` with amortised O(1) appends (capacity doubles); ``view``
    is the filled part and ``n`` its length (lowering ``n`` truncates)."""

    def __init__(self, like: torch.Tensor, dim: int):
        self.dim = dim
        self.store = like.clone()
        self.n = like.size(dim)

    def append(self, x: torch.Tensor) -> torch.Tensor:
        need = self.n + x.size(self.dim)
        if need > self.store.size(self.dim):
            shape = list(self.store.shape)
            shape[self.dim] = max(need, 2 * self.store.size(self.dim))
            bigger = self.store.new_empty(shape)
            bigger.narrow(self.dim, 0, self.n).copy_(self.view)
            self.store = bigger
        self.store.narrow(self.dim, self.n, x.size(self.dim)).copy_(x)
        self.n = need
        return self.view

    @property
    def view(self) -> torch.Tensor:
        return self.store.narrow(self.dim, 0, self.n)


def _grow(cache: Optional[GrowingTensor], x: torch.Tensor, dim: int) -> GrowingTensor:
    if cache is None:
        return GrowingTensor(x, dim)
    cache.append(x)
    return cache


def padded(views: Sequence[torch.Tensor], dim: int) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Stack tensors of unequal length along ``dim`` into a new leading batch dimension, padded
    with zeros; returns (batch, valid) where valid (B, T) marks the real entries (None when all
    are equally long)."""
    lengths = [v.size(dim) for v in views]
    if len(set(lengths)) == 1:
        return torch.stack(list(views)), None
    T = max(lengths)
    shape = list(views[0].shape)
    shape[dim] = T
    out = views[0].new_zeros([len(views)] + shape)
    for b, v in enumerate(views):
        out[b].narrow(dim, 0, v.size(dim)).copy_(v)
    valid = torch.arange(T, device=out.device)[None, :] < torch.tensor(lengths, device=out.device)[:, None]
    return out, valid


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, valid: Optional[torch.Tensor]) -> torch.Tensor:
    """fairseq's attention arithmetic: q (B, H, 1, hd) already scaled, k/v (B, H, T, hd), valid
    (B, T) or None; softmax in float32. Returns (B, H, 1, hd)."""
    w = torch.matmul(q, k.transpose(-1, -2))
    if valid is not None:
        w = w.masked_fill(~valid[:, None, None, :], float("-inf"))
    return torch.matmul(torch.softmax(w.float(), dim=-1).type_as(w), v)


class IncrementalMTDecoder:
    """One sentence's MT decoding over encoder frames that keep arriving.

    ``extend(frames)`` adds encoder frames; ``step(prefix)`` returns the next token's
    log-probabilities and the decoder state of the prefix's last position (the caches then hold
    ``[eos] + prefix``); ``snapshot()``/``rollback()`` undo a step (a stop decision decodes the
    same position again later); ``truncate(n)`` keeps the first ``n`` frames (a sentence closed
    inside what was heard); ``frames`` is what has been heard."""

    def __init__(self, model, frames: Optional[torch.Tensor] = None):
        self.m = model
        self.d = model.mt_decoder
        n_layers = len(self.d.layers)
        self._frames: Optional[GrowingTensor] = None
        self._cross: List[Optional[Tuple[GrowingTensor, GrowingTensor]]] = [None] * n_layers  # (H, T, hd) K, V
        self._self: List[Optional[Tuple[GrowingTensor, GrowingTensor]]] = [None] * n_layers  # (H, t, hd) K, V
        self.positions = 0  # decoder positions whose self-attention keys and values are cached
        self.steps = 0
        if frames is not None and frames.numel():
            self.extend(frames)

    @property
    def n_frames(self) -> int:
        return self._frames.n if self._frames is not None else 0

    @property
    def frames(self) -> torch.Tensor:
        return self._frames.view if self._frames is not None else self.m.encoder.in_proj.weight.new_zeros(0, self.m.encoder.embed_dim)

    @property
    def cached_frames(self) -> int:
        """Frames whose cross-attention keys and values are cached (the longest layer)."""
        return max((kv[0].n for kv in self._cross if kv is not None), default=0)

    def extend(self, new: torch.Tensor) -> None:
        if new.numel():
            self._frames = _grow(self._frames, new, 0)

    def truncate(self, n: int) -> None:
        """Keep the first ``n`` encoder frames only (cached keys and values too)."""
        if n >= self.n_frames:
            return
        self._frames.n = n
        for kv in self._cross:
            if kv is not None:
                kv[0].n = kv[1].n = min(kv[0].n, n)

    def step(self, prefix: List[int]) -> Tuple[torch.Tensor, torch.Tensor]:
        """(log-probabilities of the token after ``[eos] + prefix``, the decoder state at the
        prefix's last position)."""
        return step_batch([self], [prefix])[0]

    def snapshot(self) -> int:
        return self.positions

    def rollback(self, snap: int) -> None:
        self.positions = snap

    def state_tensors(self) -> List[torch.Tensor]:
        """Every tensor this decoder holds (for memory accounting)."""
        out = [self._frames.store] if self._frames is not None else []
        for kv in self._cross + self._self:
            if kv is not None:
                out += [kv[0].store, kv[1].store]
        return out


def _heads(attn, x: torch.Tensor) -> torch.Tensor:
    """(N, C) -> (N, H, hd)."""
    return x.view(x.size(0), attn.num_heads, attn.head_dim)


@torch.no_grad()
def step_batch(decs: Sequence[IncrementalMTDecoder], prefixes: Sequence[List[int]]) -> List[Tuple[torch.Tensor, torch.Tensor]]:
    """One decoder position for each of ``decs`` (all over the same model), in one forward per
    layer: decoder ``b`` reads the last token of ``[eos] + prefixes[b]`` at position
    ``len(prefixes[b])``. Returns per decoder (log-probabilities, state)."""
    d = decs[0].d
    eos = d.dictionary.eos()
    for dec, p in zip(decs, prefixes):
        if len(p) != dec.positions:
            raise ValueError(f"prefix of {len(p)} tokens for a decoder holding {dec.positions} positions")
        if dec.n_frames == 0:
            raise ValueError("an MT decoder step needs encoder frames")
    device = d.embed_tokens.weight.device
    pos = torch.tensor([len(p) for p in prefixes])
    x = d.embed_scale * d.embed_tokens(torch.tensor([p[-1] if p else eos for p in prefixes], device=device))
    ep = d.embed_positions
    top = int(pos.max())
    if ep.padding_idx + 2 + top > ep.weights.size(0):
        ep(torch.zeros(1, top + 1, dtype=torch.long), incremental_state={})  # grows its table
    x = x + ep.weights[(ep.padding_idx + 1 + pos).to(ep.weights.device)].to(x)
    # cross-attention keys and values of frames not cached yet, all decoders' at once per layer
    fresh = [(b, dec.frames[(dec._cross[0][0].n if dec._cross[0] is not None else 0):]) for b, dec in enumerate(decs)]
    fresh = [(b, f) for b, f in fresh if f.size(0)]
    new_frames = torch.cat([f for _, f in fresh]) if fresh else None
    for i, layer in enumerate(d.layers):
        sa, ea = layer.self_attn, layer.encoder_attn
        # self-attention over the decoded positions
        h = layer.self_attn_layer_norm(x)
        q = _heads(sa, sa.q_proj(h) * sa.scaling)
        k, v = _heads(sa, sa.k_proj(h)), _heads(sa, sa.v_proj(h))
        keys, values = [], []
        for b, dec in enumerate(decs):
            kv = dec._self[i]
            if kv is not None:
                kv[0].n = kv[1].n = int(pos[b])  # a rolled-back position is overwritten
            kv = (_grow(kv and kv[0], k[b, :, None], 1), _grow(kv and kv[1], v[b, :, None], 1))
            dec._self[i] = kv
            keys.append(kv[0].view)
            values.append(kv[1].view)
        K, valid = padded(keys, 1)
        V, _ = padded(values, 1)
        y = attend(q[:, :, None], K, V, valid)
        x = x + sa.out_proj(y.reshape(x.shape))
        # cross-attention over the sentence's encoder frames
        h = layer.encoder_attn_layer_norm(x)
        q = _heads(ea, ea.q_proj(h) * ea.scaling)
        if new_frames is not None:
            nk, nv = _heads(ea, ea.k_proj(new_frames)).transpose(0, 1), _heads(ea, ea.v_proj(new_frames)).transpose(0, 1)
            start = 0
            for b, f in fresh:
                dec = decs[b]
                n = f.size(0)
                kv = dec._cross[i]
                dec._cross[i] = (_grow(kv and kv[0], nk[:, start:start + n], 1), _grow(kv and kv[1], nv[:, start:start + n], 1))
                start += n
        K, valid = padded([dec._cross[i][0].view for dec in decs], 1)
        V, _ = padded([dec._cross[i][1].view for dec in decs], 1)
        y = attend(q[:, :, None], K, V, valid)
        x = x + ea.out_proj(y.reshape(x.shape))
        # feed-forward
        h = layer.final_layer_norm(x)
        x = x + layer.fc2(layer.activation_fn(layer.fc1(h)))
    if d.layer_norm is not None:
        x = d.layer_norm(x)
    logits = d.output_layer(x)
    for dec in decs:
        dec.positions += 1
        dec.steps += 1
    lprobs = torch.log_softmax(logits.float(), -1)
    return [(lprobs[b], x[b]) for b in range(len(decs))]
