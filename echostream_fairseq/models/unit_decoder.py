"""Text-to-unit encoder and non-autoregressive CTC unit decoder, both causal over text.

Input: one state per committed target subword (the MT decoder's hidden state at that token).
The T2U encoder runs causal self-attention over those states. The unit decoder repeats every
text state ``upsample`` times, adds an embedding of the slot within its token, runs causal
self-attention over the unit slots and cross-attention restricted to text states up to the
slot's own token, and scores units + CTC blank. Units of token ``i`` therefore depend only on
tokens ``<= i``: new text yields new units without changing earlier ones.

With word look-ahead (``word_end`` given), the cross-attention of token ``i``'s slots reaches
the last token of ``i``'s word instead (``word_end[i] >= i``): the first piece of a word ("▁s" of
"▁s ma ll") is spoken knowing the whole word. Units then depend on whole words, so streaming
feeds the unit decoder complete words only.
"""
from __future__ import annotations

import math
from typing import List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        assert dim % heads == 0, f"dim {dim} not divisible by heads {heads}"
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, mem: torch.Tensor, allowed: Optional[torch.Tensor]) -> torch.Tensor:
        """x: (B, Tq, D); mem: (B, Tk, D); allowed: bool (B or 1, Tq, Tk), True = may attend."""
        B, Tq, D = x.shape
        h = self.heads
        q = self.q(x).view(B, Tq, h, D // h).transpose(1, 2)
        k, v = self.kv(mem).view(B, mem.size(1), 2, h, D // h).permute(2, 0, 3, 1, 4)
        mask = None if allowed is None else allowed.unsqueeze(1)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(B, Tq, D))


class Layer(nn.Module):
    """Pre-norm Transformer layer with self-attention, optional cross-attention and FFN."""

    def __init__(self, dim: int, heads: int, ffn: int, dropout: float, cross: bool):
        super().__init__()
        self.self_attn = Attention(dim, heads, dropout)
        self.norm1 = nn.LayerNorm(dim)
        self.cross_attn = Attention(dim, heads, dropout) if cross else None
        self.norm2 = nn.LayerNorm(dim) if cross else None
        self.ffn = nn.Sequential(nn.Linear(dim, ffn), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ffn, dim))
        self.norm3 = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)

    @torch.no_grad()
    def zero_residual_(self) -> None:
        """Make the layer the identity: every residual branch ends in a zero projection."""
        outs = [self.self_attn.out, self.ffn[-1]] + ([self.cross_attn.out] if self.cross_attn is not None else [])
        for lin in outs:
            lin.weight.zero_()
            lin.bias.zero_()

    def forward(self, x, self_allowed, mem=None, mem_allowed=None):
        """Training and offline decoding; streaming steps the same weights through
        ``_cached_attention`` (eval mode: no dropout)."""
        h = self.norm1(x)
        x = x + self.drop(self.self_attn(h, h, self_allowed))
        if self.cross_attn is not None:
            x = x + self.drop(self.cross_attn(self.norm2(x), mem, mem_allowed))
        return x + self.drop(self.ffn(self.norm3(x)))


def causal_allowed(lengths: torch.Tensor, T: int) -> torch.Tensor:
    """(B, T, T): query t may see keys s <= t that are not padding.

    Padded queries see themselves only, which keeps softmax defined; their outputs are ignored.
    """
    idx = torch.arange(T, device=lengths.device)
    causal = idx[None, :, None] >= idx[None, None, :]
    key_ok = idx[None, None, :] < lengths[:, None, None]
    return (causal & key_ok) | torch.eye(T, dtype=torch.bool, device=lengths.device)[None]


def _prefix_allowed(n_old: int, n_new: int, device) -> torch.Tensor:
    """(1, n_new, n_old + n_new): new query i (global n_old + i) sees keys up to itself."""
    q = n_old + torch.arange(n_new, device=device)
    return (torch.arange(n_old + n_new, device=device)[None, :] <= q[:, None])[None]


def _cached_attention(attn: "Attention", x: torch.Tensor, mem: torch.Tensor, mem_lengths: List[int],
                      allowed: torch.Tensor, caches: List[dict]) -> torch.Tensor:
    """Streaming attention for a batch of streams with caches of unequal length: x (B, Tq, D)
    padded queries, mem (B, Tm, D) padded new memory of ``mem_lengths`` valid entries each,
    allowed (B, Tq, Tk) over each stream's cached + new keys (padding: False). Each stream's
    cache grows by its new keys and values only."""
    B, Tq, D = x.shape
    h = attn.heads
    q = attn.q(x).view(B, Tq, h, D // h).transpose(1, 2)
    k, v = attn.kv(mem).view(B, mem.size(1), 2, h, D // h).permute(2, 0, 3, 1, 4)
    keys, values = [], []
    for b, cache in enumerate(caches):
        kb, vb = k[b : b + 1, :, : mem_lengths[b]], v[b : b + 1, :, : mem_lengths[b]]
        if "k" in cache:
            kb, vb = torch.cat([cache["k"], kb], dim=2), torch.cat([cache["v"], vb], dim=2)
        cache["k"], cache["v"] = kb, vb
        keys.append(kb)
        values.append(vb)
    Tk = allowed.size(-1)
    if B == 1:
        K, V = keys[0], values[0]
    else:
        K, V = k.new_zeros(B, h, Tk, D // h), v.new_zeros(B, h, Tk, D // h)
        for b in range(B):
            K[b, :, : keys[b].size(2)] = keys[b][0]
            V[b, :, : values[b].size(2)] = values[b][0]
    y = F.scaled_dot_product_attention(q, K, V, attn_mask=allowed.unsqueeze(1))
    return attn.out(y.transpose(1, 2).reshape(B, Tq, D))


def _stream_masks(n_old: List[int], n_new: List[int], r_q: int, r_k: int, device=None,
                  word_ends: Optional[List[Sequence[int]]] = None) -> torch.Tensor:
    """(B, max n_new*r_q, max (n_old+n_new)*r_k): query slot i of stream b (global token
    n_old[b] + i // r_q) sees key slots of tokens up to its own (unit slots over text tokens with
    ``word_ends``: up to the end of its word); padded queries see key 0 only."""
    B = len(n_old)
    Tq = max(n_new) * r_q
    Tk = max(o + n for o, n in zip(n_old, n_new)) * r_k
    out = torch.zeros(B, Tq, Tk, dtype=torch.bool)
    for b in range(B):
        if r_q == r_k:  # self-attention: slot by slot
            out[b, : n_new[b] * r_q, : (n_old[b] + n_new[b]) * r_k] = _prefix_allowed(n_old[b] * r_q, n_new[b] * r_q, "cpu")[0]
        else:  # unit slots over text tokens (r_k == 1)
            tok = n_old[b] + torch.arange(n_new[b] * r_q) // r_q
            if word_ends is not None:
                ends = torch.as_tensor(list(word_ends[b]), dtype=torch.long)
                if ends.numel() != n_new[b] or (ends.numel() and (ends.max() >= n_old[b] + n_new[b] or (ends < tok[::r_q]).any())):
                    raise ValueError(f"stream {b}: word ends {ends.tolist()} do not fit its {n_new[b]} new tokens "
                                     f"after {n_old[b]} (a word must be complete before its units are decoded)")
                tok = ends.repeat_interleave(r_q)
            out[b, : n_new[b] * r_q, : n_old[b] + n_new[b]] = torch.arange(n_old[b] + n_new[b])[None, :] <= tok[:, None]
        out[b, n_new[b] * r_q :, 0] = True
    return out.to(device) if device is not None else out


def _pad_rows(rows: List[torch.Tensor]) -> torch.Tensor:
    """(n_b, D) tensors -> (B, max n_b, D), zero-padded."""
    out = rows[0].new_zeros(len(rows), max(r.size(0) for r in rows), rows[0].size(-1))
    for b, r in enumerate(rows):
        out[b, : r.size(0)] = r
    return out


class T2UEncoder(nn.Module):
    def __init__(self, in_dim: int, dim: int, layers: int, heads: int, ffn: int, dropout: float):
        super().__init__()
        self.proj = nn.Linear(in_dim, dim) if in_dim != dim else nn.Identity()
        self.layers = nn.ModuleList([Layer(dim, heads, ffn, dropout, cross=False) for _ in range(layers)])
        self.norm = nn.LayerNorm(dim) if layers > 0 else nn.Identity()

    def forward(self, text_states: torch.Tensor, text_lengths: torch.Tensor) -> torch.Tensor:
        x = self.proj(text_states)
        allowed = causal_allowed(text_lengths, x.size(1))
        for layer in self.layers:
            x = layer(x, allowed)
        return self.norm(x)

    def step_many(self, new_states: List[torch.Tensor], caches: List[dict]) -> List[torch.Tensor]:
        """Streaming, many streams at once: per stream (n_b, D_in) states of its newly committed
        tokens and its cache -> (n_b, D)."""
        n_new = [t.size(0) for t in new_states]
        n_old = [c.get("n", 0) for c in caches]
        x = self.proj(_pad_rows(new_states))
        allowed = _stream_masks(n_old, n_new, 1, 1, x.device)
        per_layer = [c.setdefault("layers", [{} for _ in self.layers]) for c in caches]
        for i, layer in enumerate(self.layers):
            h = layer.norm1(x)
            x = x + _cached_attention(layer.self_attn, h, h, n_new, allowed, [p[i].setdefault("self", {}) for p in per_layer])
            x = x + layer.ffn(layer.norm3(x))
        for c, n in zip(caches, n_new):
            c["n"] = c.get("n", 0) + n
        x = self.norm(x)
        return [x[b, : n_new[b]] for b in range(len(caches))]


class CTCUnitDecoder(nn.Module):
    def __init__(self, dim: int, layers: int, heads: int, ffn: int, dropout: float, upsample: int, num_units: int):
        super().__init__()
        self.upsample = upsample
        self.slot_embed = nn.Embedding(upsample, dim)
        nn.init.normal_(self.slot_embed.weight, std=dim**-0.5)
        self.layers = nn.ModuleList([Layer(dim, heads, ffn, dropout, cross=True) for _ in range(layers)])
        self.norm = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, num_units)
        self.scale = math.sqrt(dim)

    def forward(self, text: torch.Tensor, text_lengths: torch.Tensor, word_end: Optional[torch.Tensor] = None):
        """text: (B, N, D) T2U states; word_end: None (causal over tokens) or (B, N) the last
        token of each token's word. Returns logits (B, N*upsample, V) and their lengths."""
        B, N, D = text.shape
        r = self.upsample
        x = text.repeat_interleave(r, dim=1) + self.slot_embed.weight.repeat(N, 1)[None]
        unit_lengths = text_lengths * r
        allowed = causal_allowed(unit_lengths, N * r)
        token_of_slot = torch.arange(N * r, device=text.device) // r
        if word_end is None:
            reach = token_of_slot[None, :, None]
        else:  # (B, N*r, 1): the last text state each slot may see
            reach = word_end.to(text.device).repeat_interleave(r, dim=1)[:, :, None]
        mem_allowed = reach >= torch.arange(N, device=text.device)[None, None, :]
        mem_allowed = mem_allowed & (torch.arange(N, device=text.device)[None, None, :] < text_lengths[:, None, None])
        # a query on a fully padded sequence sees the first text state (kept defined, ignored)
        mem_allowed[:, :, 0] = True
        for layer in self.layers:
            x = layer(x, allowed, text, mem_allowed)
        return self.out(self.norm(x)), unit_lengths

    def step_many(self, new_text: List[torch.Tensor], caches: List[dict],
                  word_ends: Optional[List[Sequence[int]]] = None) -> List[torch.Tensor]:
        """Streaming, many streams at once: per stream (n_b, D) T2U states of its newly committed
        tokens and its cache -> (n_b * r, V) unit logits, equal to the corresponding rows of
        :meth:`forward` on the whole text. With word look-ahead, ``word_ends[b]`` holds the
        stream's ``word_end`` (counted over the whole sentence) of each new token; the new
        tokens must end with a complete word."""
        r = self.upsample
        n_new = [t.size(0) for t in new_text]
        n_old = [c.get("n", 0) for c in caches]
        slots = [t.repeat_interleave(r, dim=0) + self.slot_embed.weight.repeat(t.size(0), 1) for t in new_text]
        x = _pad_rows(slots)
        text = _pad_rows(new_text)
        self_allowed = _stream_masks(n_old, n_new, r, r, x.device)
        mem_allowed = _stream_masks(n_old, n_new, r, 1, x.device, word_ends)
        per_layer = [c.setdefault("layers", [{} for _ in self.layers]) for c in caches]
        for i, layer in enumerate(self.layers):
            h = layer.norm1(x)
            x = x + _cached_attention(layer.self_attn, h, h, [n * r for n in n_new], self_allowed,
                                      [p[i].setdefault("self", {}) for p in per_layer])
            x = x + _cached_attention(layer.cross_attn, layer.norm2(x), text, n_new, mem_allowed,
                                      [p[i].setdefault("cross", {}) for p in per_layer])
            x = x + layer.ffn(layer.norm3(x))
        for c, n in zip(caches, n_new):
            c["n"] = c.get("n", 0) + n
        logits = self.out(self.norm(x))
        return [logits[b, : n_new[b] * r] for b in range(len(caches))]


def word_end_index(starts_word: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(B, N) bool "this token starts a word" and (B,) lengths -> (B, N) long: the index of the
    last token of each token's word (the token before the next word start, or the last token)."""
    B, N = starts_word.shape
    pos = torch.arange(N, device=starts_word.device)
    limit = lengths.to(starts_word.device)[:, None]
    # next word start strictly after t (or the length), by a reversed running minimum
    starts_at = torch.where(starts_word & (pos[None, :] < limit), pos[None, :], limit.expand(B, N))
    after = torch.cat([starts_at[:, 1:], limit], dim=1)
    nxt = torch.flip(torch.cummin(torch.flip(after, [1]), dim=1).values, [1])
    return torch.maximum(torch.minimum(nxt, limit) - 1, pos[None, :])
