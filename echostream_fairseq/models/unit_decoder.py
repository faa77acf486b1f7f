"""Text-to-unit encoder and non-autoregressive CTC unit decoder, both causal over text.

Input: one state per committed target subword (the MT decoder's hidden state at that token).
The T2U encoder runs causal self-attention over those states. The unit decoder repeats every
text state ``upsample`` times, adds an embedding of the slot within its token, runs causal
self-attention over the unit slots and cross-attention restricted to text states up to the
slot's own token, and scores units + CTC blank. Units of token ``i`` therefore depend only on
tokens ``<= i``: new text yields new units without changing earlier ones.
"""
from __future__ import annotations

import math
from typing import Optional

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

    def forward(self, x: torch.Tensor, mem: torch.Tensor, allowed: Optional[torch.Tensor], cache: Optional[dict] = None) -> torch.Tensor:
        """x: (B, Tq, D); mem: (B, Tk, D); allowed: bool (B or 1, Tq, Tk_total), True = may attend.

        With ``cache``, ``mem`` holds only new keys/values; they are appended to the cached ones
        (streaming: earlier positions are never recomputed)."""
        B, Tq, D = x.shape
        h = self.heads
        q = self.q(x).view(B, Tq, h, D // h).transpose(1, 2)
        k, v = self.kv(mem).view(B, mem.size(1), 2, h, D // h).permute(2, 0, 3, 1, 4)
        if cache is not None:
            if "k" in cache:
                k, v = torch.cat([cache["k"], k], dim=2), torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
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

    def forward(self, x, self_allowed, mem=None, mem_allowed=None, cache: Optional[dict] = None):
        """``cache`` (streaming): {"self": {...}, "cross": {...}}; ``mem`` is then only the new
        memory entries."""
        h = self.norm1(x)
        x = x + self.drop(self.self_attn(h, h, self_allowed, None if cache is None else cache.setdefault("self", {})))
        if self.cross_attn is not None:
            x = x + self.drop(self.cross_attn(self.norm2(x), mem, mem_allowed, None if cache is None else cache.setdefault("cross", {})))
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

    def step(self, new_states: torch.Tensor, cache: dict) -> torch.Tensor:
        """Streaming: (1, n, D_in) states of newly committed tokens -> (1, n, D)."""
        x = self.proj(new_states)
        n_old = cache.get("n", 0)
        allowed = _prefix_allowed(n_old, x.size(1), x.device)
        layers = cache.setdefault("layers", [{} for _ in self.layers])
        for layer, c in zip(self.layers, layers):
            x = layer(x, allowed, cache=c)
        cache["n"] = n_old + x.size(1)
        return self.norm(x)


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

    def forward(self, text: torch.Tensor, text_lengths: torch.Tensor):
        """text: (B, N, D) T2U states. Returns logits (B, N*upsample, V) and their lengths."""
        B, N, D = text.shape
        r = self.upsample
        x = text.repeat_interleave(r, dim=1) + self.slot_embed.weight.repeat(N, 1)[None]
        unit_lengths = text_lengths * r
        allowed = causal_allowed(unit_lengths, N * r)
        token_of_slot = torch.arange(N * r, device=text.device) // r
        mem_allowed = token_of_slot[None, :, None] >= torch.arange(N, device=text.device)[None, None, :]
        mem_allowed = mem_allowed & (torch.arange(N, device=text.device)[None, None, :] < text_lengths[:, None, None])
        # a query on a fully padded sequence sees the first text state (kept defined, ignored)
        mem_allowed[:, :, 0] = True
        for layer in self.layers:
            x = layer(x, allowed, text, mem_allowed)
        return self.out(self.norm(x)), unit_lengths

    def step(self, new_text: torch.Tensor, cache: dict) -> torch.Tensor:
        """Streaming: T2U states of newly committed tokens (1, n, D) -> unit logits (n*r, V) for
        their slots. Equal to the corresponding rows of :meth:`forward` on the whole text."""
        r = self.upsample
        n_new = new_text.size(1)
        n_old = cache.get("n", 0)
        x = new_text.repeat_interleave(r, dim=1) + self.slot_embed.weight.repeat(n_new, 1)[None]
        allowed = _prefix_allowed(n_old * r, n_new * r, x.device)
        token_of_slot = n_old + torch.arange(n_new * r, device=x.device) // r
        mem_allowed = (torch.arange(n_old + n_new, device=x.device)[None, :] <= token_of_slot[:, None])[None]
        layers = cache.setdefault("layers", [{} for _ in self.layers])
        for layer, c in zip(self.layers, layers):
            x = layer(x, allowed, new_text, mem_allowed, cache=c)
        cache["n"] = n_old + n_new
        return self.out(self.norm(x))[0]
