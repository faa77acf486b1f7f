"""Streaming punctuation and sentence boundaries over the ASR-CTC transcript.

A controllable time-delay Transformer (CT-Transformer): the input is the stream of source subword
ids that the ASR-CTC head emits (the model's own source dictionary), with punctuation pieces left
out; for every token it predicts the mark that follows it (none, comma, full stop, question,
exclamation). The look-ahead is a number of tokens, ``delay``, chosen at run time: the first layer
lets token i see tokens up to i + delay, every later layer is causal, so the mark after token i
depends on tokens <= i + delay only and is decided as soon as token i + delay is heard. One
model serves every delay: training draws the delay per batch from 0..max_delay.

Training text is any punctuated text in the source language, one sentence (or paragraph) per
line: the toy corpus's own source sentences, or a real corpus's source transcripts. Labels come
from the punctuation pieces themselves; a line that ends without a mark ends with a full stop.
"""
from __future__ import annotations

import logging
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .assets import half_state

logger = logging.getLogger(__name__)

WORD_START = "\u2581"
MARKS = ["", ",", ".", "?", "!"]  # class 0: no mark
SENTENCE_END = {2, 3, 4}
CLOSING_CHARS = set(".,;:?!…\"'»")  # what the model predicts; opening marks (¿ ¡) stay in the input
OPENERS = {"?": "¿", "!": "¡"}


def piece_mark(piece: str) -> Optional[int]:
    """None for a piece that is input to the model (words, word starts, opening marks); for a
    closing-punctuation piece, the class of its mark (0 when it has none, such as a quote)."""
    core = piece.replace(WORD_START, "")
    if not core or not set(core) <= CLOSING_CHARS:
        return None
    for ch in reversed(core):
        if ch in MARKS[1:]:
            return MARKS.index(ch)
    return 0


@dataclass
class PunctConfig:
    dim: int = 128
    layers: int = 2
    heads: int = 4
    ffn: int = 256
    dropout: float = 0.1
    window: int = 64  # tokens of context the model sees (training windows and streaming window)
    max_delay: int = 4


class CTTransformer(nn.Module):
    def __init__(self, vocab_size: int, cfg: PunctConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(vocab_size, cfg.dim)
        self.pos = nn.Embedding(cfg.window, cfg.dim)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(cfg.dim, cfg.heads, cfg.ffn, cfg.dropout, batch_first=True, norm_first=True)
            for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(cfg.dim)
        self.out = nn.Linear(cfg.dim, len(MARKS))

    @staticmethod
    def masks(n: int, delay: int, device=None) -> Tuple[torch.Tensor, torch.Tensor]:
        """Boolean attention masks (True = blocked): first layer sees ``delay`` tokens ahead, the
        others none."""
        i = torch.arange(n, device=device)
        ahead = i[None, :] - i[:, None]
        return ahead > delay, ahead > 0

    def forward(self, ids: torch.Tensor, delay: int, pad_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """ids (B, T) with T <= window -> logits (B, T, classes)."""
        if ids.size(1) > self.cfg.window:
            raise ValueError(f"{ids.size(1)} tokens exceed the model's window of {self.cfg.window}")
        first, causal = self.masks(ids.size(1), delay, ids.device)
        x = self.embed(ids) + self.pos(torch.arange(ids.size(1), device=ids.device))[None]
        for n, layer in enumerate(self.layers):
            x = layer(x, src_mask=first if n == 0 else causal, src_key_padding_mask=pad_mask)
        return self.out(self.norm(x))


class PunctModel:
    """The model with its vocabulary; ``tracker()`` makes a streaming decoder."""

    def __init__(self, net: CTTransformer, symbols: List[str], openers: Dict[str, str], meta: Optional[dict] = None):
        self.net = net.eval()
        self.symbols = symbols
        self.openers = openers  # e.g. {"?": "¿"} when the training text opens questions
        self.meta = meta or {}
        self.mark_of = [piece_mark(s) for s in symbols]

    @classmethod
    def load(cls, path) -> "PunctModel":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"punctuation model not found: {path}")
        try:
            ck = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise ValueError(f"{path}: not a punctuation model written by echostream-train-punct ({e})") from e
        missing = {"cfg", "model", "symbols"} - set(ck) if isinstance(ck, dict) else {"cfg", "model", "symbols"}
        if missing:
            raise ValueError(f"{path}: not a punctuation model written by echostream-train-punct (no {sorted(missing)})")
        net = CTTransformer(len(ck["symbols"]), PunctConfig(**ck["cfg"]))
        net.load_state_dict(ck["model"])
        return cls(net, list(ck["symbols"]), dict(ck.get("openers", {})), ck.get("meta"))

    def save(self, path, fp16: bool = False) -> None:
        """``fp16``: weights stored in half precision (half the size; :meth:`load` computes in fp32)."""
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(str(path) + ".tmp")
        state = half_state(self.net.state_dict()) if fp16 else self.net.state_dict()
        torch.save({"cfg": asdict(self.net.cfg), "model": state, "symbols": self.symbols,
                    "openers": self.openers, "meta": self.meta}, tmp)
        tmp.replace(path)

    def check_dictionary(self, dictionary, name: str = "the ASR dictionary") -> None:
        symbols = [dictionary[i] for i in range(len(dictionary))]
        if symbols != self.symbols:
            raise ValueError(f"the punctuation model was trained on another vocabulary than {name} "
                             f"({len(self.symbols)} vs {len(symbols)} symbols): train it with that dictionary")

    def tracker(self, delay: int) -> "PunctTracker":
        return PunctTracker(self, delay)

    @torch.no_grad()
    def predict(self, ids: Sequence[int], delay: int) -> List[int]:
        """Marks for a whole token sequence (offline; windows of the streaming size)."""
        t = self.tracker(delay)
        decided = t.push([(tok, n) for n, tok in enumerate(ids)]) + t.flush_all()
        marks = [0] * len(ids)
        for n, m in decided:
            marks[n] = m
        return marks


class PunctTracker:
    """Streaming decisions: ``push`` word tokens as the ASR emits them (with any reference the
    caller wants back); each token's mark is decided once ``delay`` tokens follow it."""

    def __init__(self, model: PunctModel, delay: int):
        if not 0 <= delay <= model.net.cfg.max_delay:
            raise ValueError(f"punctuation delay must be in 0..{model.net.cfg.max_delay} tokens (the model's training range), got {delay}")
        self.model = model
        self.delay = delay
        self.window: List[int] = []  # last tokens (ids), at most the model's window
        self.pending: List[object] = []  # references of undecided tokens, oldest first

    def _logits(self) -> torch.Tensor:
        return self.model.net(torch.tensor([self.window]), self.delay)[0]

    @torch.no_grad()
    def push(self, tokens: Sequence[Tuple[int, object]]) -> List[Tuple[object, int]]:
        """tokens: (ASR dictionary id, reference). Punctuation ids are skipped. Returns the
        decided (reference, mark class) pairs, oldest first."""
        decided = []
        W = self.model.net.cfg.window
        for tok, ref in tokens:
            if self.model.mark_of[tok] is not None:
                continue
            self.window.append(tok)
            self.pending.append(ref)
            if len(self.window) > W:
                self.window.pop(0)
            if len(self.pending) > self.delay:  # the oldest pending token has its look-ahead
                logits = self._logits()
                decided.append((self.pending.pop(0), int(logits[-1 - self.delay].argmax())))
        return decided

    @torch.no_grad()
    def flush_all(self) -> List[Tuple[object, int]]:
        """End of the source: decide every pending token with the look-ahead there is."""
        if not self.pending:
            return []
        logits = self._logits()
        n = len(self.pending)
        out = [(ref, int(logits[len(self.window) - n + j].argmax())) for j, ref in enumerate(self.pending)]
        self.pending = []
        return out

    @torch.no_grad()
    def close(self) -> int:
        """The sentence ends here (a pause): drop pending tokens; the sentence-end mark for the
        last token (the most likely of full stop, question, exclamation)."""
        if not self.pending:  # the last token's mark was already decided (or nothing was heard)
            return MARKS.index(".")
        logits = self._logits()[-1]
        self.pending = []
        ends = sorted(SENTENCE_END)
        return ends[int(logits[ends].argmax())]


def recompose(text: str, mark: int, openers: Dict[str, str], keep_own: bool = False) -> str:
    """A closed sentence as shown: first letter upper-cased, ending in ``mark`` -- or, with
    ``keep_own``, in the sentence-end mark it already has (a translation's own punctuation)."""
    text = text.strip()
    if keep_own and text and text[-1] in ".?!":
        mark = MARKS.index(text[-1])
    text = text.strip(".,;:?!… ")
    if not text:
        return ""
    m = MARKS[mark] if mark else "."
    opener = openers.get(m, "")
    if opener and not text.startswith(opener):
        text = opener + text
    i = len(opener) if opener else 0
    return text[:i] + text[i:i + 1].upper() + text[i + 1:] + m


# ---------------------------------------------------------------------- training
def encode_lines(lines: Sequence[str], spm_model, dictionary, line_is_sentence: bool = True) -> List[Tuple[List[int], List[int]]]:
    """Each line -> (word token ids, mark class after each token)."""
    out = []
    for line in lines:
        pieces = spm_model.encode(line.strip(), out_type=str)
        ids, labels = [], []
        for piece in pieces:
            idx = dictionary.index(piece)
            mark = piece_mark(dictionary[idx]) if idx != dictionary.unk() else piece_mark(piece)
            if mark is None:
                ids.append(idx)
                labels.append(0)
            elif mark and labels:
                labels[-1] = mark
        if not ids:
            continue
        if line_is_sentence and labels[-1] not in SENTENCE_END:
            labels[-1] = MARKS.index(".")
        out.append((ids, labels))
    return out


def openers_of(lines: Sequence[str]) -> Dict[str, str]:
    """Opening marks the text uses (Spanish ¿...?, ¡...!) -- for recomposition."""
    found = {}
    for close, opener in OPENERS.items():
        ends = [ln for ln in lines if ln.strip().endswith(close)]
        if ends and sum(ln.strip().startswith(opener) for ln in ends) * 2 >= len(ends):
            found[close] = opener
    return found


class Degrade:
    """Make clean text look like a streaming transcript of running speech: with probability
    ``p`` a sentence loses what marks its start (its first pieces lower-cased, an opening mark
    dropped), and tokens drop out at rate ``p_drop``. Without pauses between sentences the ASR
    rarely hears a sentence start as one."""

    def __init__(self, symbols: List[str], p: float = 0.5, p_drop: float = 0.05):
        index = {s: i for i, s in enumerate(symbols)}
        self.lower = {i: index[s.lower()] for i, s in enumerate(symbols) if s.lower() != s and s.lower() in index}
        self.opener = {i for i, s in enumerate(symbols) if s.replace(WORD_START, "") in OPENERS.values()}
        self.p, self.p_drop = p, p_drop

    def __call__(self, sent, rng: random.Random):
        ids, labels = list(sent[0]), list(sent[1])
        if rng.random() < self.p:
            if ids and ids[0] in self.opener and len(ids) > 1:
                ids, labels = ids[1:], labels[1:]
            ids[:2] = [self.lower.get(i, i) for i in ids[:2]]
        keep = [n for n in range(len(ids)) if n == len(ids) - 1 or rng.random() >= self.p_drop]
        for n in range(len(ids) - 1):
            if labels[n] and n not in keep:  # a dropped token's mark moves to the one before
                prev = max((k for k in keep if k < n), default=None)
                if prev is not None:
                    labels[prev] = labels[n]
        return [ids[n] for n in keep], [labels[n] for n in keep]


def stream_batch(sents, batch: int, window: int, rng: random.Random, pad: int, degrade: Optional[Degrade] = None):
    """Random windows of sentences laid end to end (as a long talk would be)."""
    ids, labels = [], []
    for _ in range(batch):
        seq, lab = [], []
        while len(seq) < window + rng.randrange(window):
            s = sents[rng.randrange(len(sents))]
            if degrade is not None:
                s = degrade(s, rng)
            seq += s[0]
            lab += s[1]
        start = rng.randrange(max(1, len(seq) - window + 1))
        ids.append(seq[start:start + window])
        labels.append(lab[start:start + window])
    n = max(len(x) for x in ids)
    x = torch.full((batch, n), pad, dtype=torch.long)
    y = torch.full((batch, n), -100, dtype=torch.long)
    for b, (s, l) in enumerate(zip(ids, labels)):
        x[b, :len(s)] = torch.tensor(s)
        y[b, :len(l)] = torch.tensor(l)
    return x, y, x.eq(pad)


def boundary_f1(pred: Sequence[int], gold: Sequence[int]) -> Dict[str, float]:
    """Precision, recall and F1 of sentence ends (any sentence-end class) over aligned tokens."""
    p = {i for i, m in enumerate(pred) if m in SENTENCE_END}
    g = {i for i, m in enumerate(gold) if m in SENTENCE_END}
    tp = len(p & g)
    prec = tp / len(p) if p else 0.0
    rec = tp / len(g) if g else 0.0
    return {"precision": prec, "recall": rec, "f1": 2 * prec * rec / (prec + rec) if tp else 0.0}


def evaluate(model: PunctModel, sents, delay: int, n_streams: int = 20, per_stream: int = 12, seed: int = 0) -> Dict[str, float]:
    """Boundary F1 on streams of held-out sentences laid end to end, decoded as in streaming."""
    rng = random.Random(seed)
    pred, gold = [], []
    for _ in range(n_streams):
        chosen = [sents[rng.randrange(len(sents))] for _ in range(per_stream)]
        ids = [i for s in chosen for i in s[0]]
        gold += [m for s in chosen for m in s[1]]
        pred += model.predict(ids, delay)
    return boundary_f1(pred, gold)


def train(train_sents, valid_sents, symbols: List[str], openers: Dict[str, str], cfg: PunctConfig, pad: int,
          steps: int = 1500, batch: int = 32, lr: float = 1e-3, seed: int = 1, progress: bool = True,
          log_interval: int = 100, degrade: float = 0.5) -> PunctModel:
    from tqdm import tqdm

    torch.manual_seed(seed)
    rng = random.Random(seed)
    net = CTTransformer(len(symbols), cfg)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    noisy = Degrade(symbols, degrade) if degrade > 0 else None
    bar = tqdm(range(steps), desc="punct", unit="step", disable=not progress, dynamic_ncols=True)
    net.train()
    for step in bar:
        x, y, pad_mask = stream_batch(train_sents, batch, cfg.window, rng, pad, noisy)
        logits = net(x, rng.randint(0, cfg.max_delay), pad_mask)
        loss = F.cross_entropy(logits.reshape(-1, len(MARKS)), y.reshape(-1), ignore_index=-100)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        sched.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
        if (step + 1) % log_interval == 0 or step + 1 == steps:
            logger.info("step %d loss %.4f", step + 1, loss.item())
    model = PunctModel(net, symbols, openers)
    meta = {"steps": steps, "train_sentences": len(train_sents), "degrade": degrade}
    if valid_sents:
        for d in range(cfg.max_delay + 1):
            r = evaluate(model, valid_sents, d)
            meta[f"valid_f1_delay{d}"] = round(r["f1"], 4)
            logger.info("valid boundary F1 at delay %d: %.3f (P %.3f R %.3f)", d, r["f1"], r["precision"], r["recall"])
    model.meta = meta
    return model
