"""The MT decoder stepped incrementally over a growing encoder output: the one owner of
fairseq's incremental buffers for a session's sentence."""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

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


class IncrementalMTDecoder:
    """One sentence's MT decoding over encoder frames that keep arriving.

    ``extend(frames)`` adds encoder frames (and their cross-attention keys and values to every
    layer's cache); ``step(prefix)`` returns the next token's log-probabilities and the decoder
    state of the prefix's last position; ``snapshot()``/``rollback()`` undo a step (a stop
    decision decodes the same position again later); ``truncate(n)`` keeps the first ``n``
    frames (a sentence closed inside what was heard); ``frames`` is what has been heard."""

    def __init__(self, model, frames: Optional[torch.Tensor] = None):
        self.m = model
        self.d = model.mt_decoder
        self._frames: Optional[GrowingTensor] = None
        self._kv: Dict[int, Tuple[GrowingTensor, GrowingTensor]] = {}  # layer -> growing cross-attention K, V
        self._inc: Dict = {}
        self.steps = 0
        if frames is not None and frames.numel():
            self.extend(frames)

    @property
    def n_frames(self) -> int:
        return self._frames.n if self._frames is not None else 0

    @property
    def frames(self) -> torch.Tensor:
        return self._frames.view if self._frames is not None else torch.zeros(0, self.m.encoder.embed_dim)

    @property
    def cached_frames(self) -> int:
        """Frames whose cross-attention keys and values are cached (the longest layer)."""
        return max((gk.n for gk, _ in self._kv.values()), default=0)

    def extend(self, new: torch.Tensor) -> None:
        if new.numel() == 0:
            return
        if self._frames is None:
            self._frames = GrowingTensor(new, 0)
        else:
            self._frames.append(new)
        for i, layer in enumerate(self.d.layers):
            attn = layer.encoder_attn
            buf = attn._get_input_buffer(self._inc)
            if "prev_key" not in buf:
                continue  # not decoded yet: the first step computes K/V from all frames
            T = new.size(0)
            k = attn.k_proj(new).view(1, T, attn.num_heads, attn.head_dim).transpose(1, 2)
            v = attn.v_proj(new).view(1, T, attn.num_heads, attn.head_dim).transpose(1, 2)
            gk, gv = self._kv.get(i, (None, None))
            if gk is None or gk.view.data_ptr() != buf["prev_key"].data_ptr():
                gk, gv = GrowingTensor(buf["prev_key"], 2), GrowingTensor(buf["prev_value"], 2)
                self._kv[i] = (gk, gv)
            buf["prev_key"], buf["prev_value"] = gk.append(k), gv.append(v)
            self._inc = attn._set_input_buffer(self._inc, buf)

    def truncate(self, n: int) -> None:
        """Keep the first ``n`` encoder frames only (cached keys and values too)."""
        if n >= self.n_frames:
            return
        self._frames.n = n
        for gk, gv in self._kv.values():
            gk.n = gv.n = min(gk.n, n)
        for layer in self.d.layers:
            buf = layer.encoder_attn._get_input_buffer(self._inc)
            if "prev_key" in buf:
                buf["prev_key"], buf["prev_value"] = buf["prev_key"][:, :, :n], buf["prev_value"][:, :, :n]
                self._inc = layer.encoder_attn._set_input_buffer(self._inc, buf)

    def step(self, prefix: List[int]) -> Tuple[torch.Tensor, torch.Tensor]:
        """(log-probabilities of the token after ``[eos] + prefix``, the decoder state at the
        prefix's last position); the caches then hold the prefix."""
        tokens = torch.tensor([[self.d.dictionary.eos()] + prefix])
        encoder_out = {"encoder_out": [self.frames[:, None]], "encoder_padding_mask": []}
        logits, x = self.m.mt_forward(tokens, encoder_out, incremental_state=self._inc)
        self.steps += 1
        return torch.log_softmax(logits[0, -1].float(), -1), x[0, -1]

    def snapshot(self) -> Dict:
        return {k: dict(v) for k, v in self._inc.items()}

    def rollback(self, snap: Dict) -> None:
        self._inc = snap

    def state_tensors(self) -> List[torch.Tensor]:
        """Every tensor this decoder holds, each storage once (for memory accounting)."""
        out = [self._frames.store] if self._frames is not None else []
        for gk, gv in self._kv.values():
            out += [gk.store, gv.store]
        for v in self._inc.values():
            out += [x for x in (v.values() if isinstance(v, dict) else [v]) if isinstance(x, torch.Tensor)]
        seen, unique = set(), []
        for t in out:
            key = t.untyped_storage().data_ptr()
            if key not in seen:
                seen.add(key)
                unique.append(t)
        return unique
