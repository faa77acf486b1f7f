"""Training a unit CodeHiFiGAN vocoder on (speech, frame-level units) pairs.

The generator is fairseq's own ``CodeGenerator`` (with its duration predictor); this module adds
what fairseq does not ship: the multi-period and multi-scale discriminators, the HiFi-GAN losses
(least-squares adversarial, feature matching, log-mel L1, multi-resolution STFT), a segment dataset
and a resumable loop.

Training runs in two phases. Until ``gan_start`` the generator learns by regression alone (log-mel
L1 + multi-resolution STFT loss): no discriminator runs, so a step costs a fraction of an
adversarial one and the speech becomes intelligible within a few hundred steps. From
``gan_start`` on, the HiFi-GAN discriminators join to remove the regression's buzz.
Checkpoints are written in fairseq's released format -- ``config.json`` plus ``g_XXXXXXXX`` whose
``generator`` key holds the generator state dict -- so ``CodeHiFiGANVocoder`` loads them unchanged.
The full training state (both discriminators, optimisers, step) goes to ``state_last.pt``.
"""
from __future__ import annotations

import json
import logging
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchaudio
from torch.nn.utils import spectral_norm, weight_norm

from . import features
from .prep.units import read_unit_file, reduce_units

logger = logging.getLogger(__name__)


def vocoder_config(num_units: int, channels: int = 128, embedding_dim: int = 64,
                   resblock_kernels: Sequence[int] = (3, 7, 11), upsample_rates: Sequence[int] = (5, 4, 4, 2, 2)) -> dict:
    """A CodeHiFiGAN config in fairseq's format (hop = product of ``upsample_rates``)."""
    rates = list(upsample_rates)
    hop = int(np.prod(rates))
    return {
        "resblock": "1",
        "upsample_rates": rates,
        "upsample_kernel_sizes": [2 * r + r % 2 for r in rates],  # (k - r) even: exact r-fold upsampling
        "upsample_initial_channel": channels,
        "resblock_kernel_sizes": list(resblock_kernels),
        "resblock_dilation_sizes": [[1, 3, 5] for _ in resblock_kernels],
        "model_in_dim": embedding_dim,
        "num_embeddings": num_units,
        "embedding_dim": embedding_dim,
        "dur_predictor_params": {
            "encoder_embed_dim": embedding_dim,
            "var_pred_hidden_dim": embedding_dim,
            "var_pred_kernel_size": 3,
            "var_pred_dropout": 0.5,
        },
        "sampling_rate": features.SAMPLE_RATE,
        "code_hop_size": hop,
    }


# ---------------------------------------------------------------------------- data
@dataclass
class Utterance:
    id: str
    audio: Path
    units: Path


class UnitSpeechData:
    """Frame-level units and the speech they were extracted from; random fixed-length segments.

    Unit frame ``i`` covers samples ``[i * hop, (i + 1) * hop)``; an utterance whose units run
    more than one frame past its audio is an error naming both files."""

    def __init__(self, utts: Sequence[Utterance], hop: int, num_units: int, segment_frames: int):
        self.hop, self.segment_frames = hop, segment_frames
        self.items: List[Tuple[str, torch.Tensor, torch.Tensor]] = []
        for u in utts:
            wav = features.read_audio(u.audio)
            codes = read_unit_file(u.units)
            if not codes:
                raise ValueError(f"{u.units}: no units (utterance {u.id})")
            bad = next((c for c in codes if not 0 <= c < num_units), None)
            if bad is not None:
                raise ValueError(f"{u.units}: unit {bad} outside 0..{num_units - 1} (utterance {u.id})")
            if (len(codes) - 1) * hop > len(wav):
                raise ValueError(f"{u.units}: {len(codes)} unit frames need {len(codes) * hop} samples but {u.audio} has {len(wav)}")
            audio = np.zeros(len(codes) * hop, dtype=np.float32)
            n = min(len(wav), audio.size)
            audio[:n] = wav[:n]
            self.items.append((u.id, torch.tensor(codes, dtype=torch.long), torch.from_numpy(audio)))
        if not self.items:
            raise ValueError("no utterances to train the vocoder on")

    def __len__(self) -> int:
        return len(self.items)

    def batch(self, size: int, rng: random.Random):
        """(codes B x S, audio B x S*hop, reduced units B x R, log-duration targets, mask)."""
        codes, audio, red, dur = [], [], [], []
        for _ in range(size):
            _, c, a = self.items[rng.randrange(len(self.items))]
            s = self.segment_frames
            if c.numel() < s:
                c = F.pad(c, (0, s - c.numel()), value=int(c[-1]))
                a = F.pad(a, (0, s * self.hop - a.numel()))
            start = rng.randrange(c.numel() - s + 1)
            codes.append(c[start : start + s])
            audio.append(a[start * self.hop : (start + s) * self.hop])
            r, d = reduce_units(c.tolist())
            red.append(torch.tensor(r))
            dur.append(torch.tensor(d, dtype=torch.float))
        lengths = torch.tensor([r.numel() for r in red])
        mask = torch.arange(int(lengths.max()))[None] < lengths[:, None]
        red_t = nn.utils.rnn.pad_sequence(red, batch_first=True)
        dur_t = nn.utils.rnn.pad_sequence(dur, batch_first=True)
        return torch.stack(codes), torch.stack(audio), red_t, torch.log(dur_t + 1), mask


def utterances_from_lists(lists: Sequence[Path], units_dirs: Sequence[Path], audio_column: str = "tgt_audio") -> List[Utterance]:
    """Corpus lists (``id`` and an audio column, paths relative to the list) + ``{units_dir}/{id}.npy``.

    Each list is paired with every units folder that holds its utterances, and each of its
    utterances is used once per such folder: several folders give several unit sequences for the
    same speech (the quantiser's and a model's), or the units of several corpora (one folder each).
    A folder holds all of a list's utterances or none: a partial one is an error naming the first
    missing file, and so is a list that no folder holds."""
    from .prep.corpus import read_list

    utts = []
    for lst in lists:
        rows = read_list(lst)
        if rows and audio_column not in rows[0]:
            raise ValueError(f"{lst}: no column '{audio_column}'")
        held = 0
        for units_dir in units_dirs:
            files = [units_dir / f"{r['id']}.npy" for r in rows]
            missing = [(f, r) for f, r in zip(files, rows) if not f.is_file()]
            if len(missing) == len(rows):
                continue
            if missing:
                f, r = missing[0]
                raise FileNotFoundError(f"{f}: no units for utterance {r['id']} of {lst} "
                                        f"({len(missing)} of its {len(rows)} utterances have none in {units_dir})")
            held += 1
            utts.extend(Utterance(r["id"], lst.parent / r[audio_column], f) for f, r in zip(files, rows))
        if rows and not held:
            first = rows[0]["id"]
            raise FileNotFoundError(f"{lst}: no units folder holds its utterances (no {first}.npy in "
                                    + ", ".join(str(d) for d in units_dirs) + ")")
    return utts


# ---------------------------------------------------------------------------- discriminators
def _wn(conv, spectral=False):
    return spectral_norm(conv) if spectral else weight_norm(conv)


def _conv_stack(convs, post, x):
    """Leaky-ReLU conv layers then a 1-channel output conv: (flattened scores, every feature map)."""
    fmaps = []
    for conv in convs:
        x = F.leaky_relu(conv(x), 0.1)
        fmaps.append(x)
    x = post(x)
    fmaps.append(x)
    return x.flatten(1), fmaps


class PeriodDiscriminator(nn.Module):
    def __init__(self, period: int, width: int):
        super().__init__()
        self.period = period
        chans = [1, width, 4 * width, 16 * width, 32 * width, 32 * width]
        self.convs = nn.ModuleList(
            _wn(nn.Conv2d(chans[i], chans[i + 1], (5, 1), (3 if i < 4 else 1, 1), padding=(2, 0))) for i in range(5)
        )
        self.post = _wn(nn.Conv2d(chans[-1], 1, (3, 1), 1, padding=(1, 0)))

    def forward(self, x):
        b, c, t = x.shape
        if t % self.period:
            x = F.pad(x, (0, self.period - t % self.period), "reflect")
        return _conv_stack(self.convs, self.post, x.view(b, c, -1, self.period))


class ScaleDiscriminator(nn.Module):
    def __init__(self, width: int, spectral: bool = False):
        super().__init__()
        w = width
        spec = [(1, w, 15, 1, 1), (w, w, 41, 2, 4), (w, 2 * w, 41, 2, 4), (2 * w, 4 * w, 41, 4, 4),
                (4 * w, 8 * w, 41, 4, 4), (8 * w, 8 * w, 41, 1, 4), (8 * w, 8 * w, 5, 1, 1)]
        self.convs = nn.ModuleList(
            _wn(nn.Conv1d(i, o, k, s, groups=g, padding=k // 2), spectral) for i, o, k, s, g in spec
        )
        self.post = _wn(nn.Conv1d(8 * w, 1, 3, 1, padding=1), spectral)

    def forward(self, x):
        return _conv_stack(self.convs, self.post, x)


class MultiPeriodDiscriminator(nn.Module):
    def __init__(self, width: int = 32, periods: Sequence[int] = (2, 3, 5, 7, 11)):
        super().__init__()
        self.discriminators = nn.ModuleList(PeriodDiscriminator(p, width) for p in periods)

    def forward(self, x):
        return [d(x) for d in self.discriminators]


class MultiScaleDiscriminator(nn.Module):
    def __init__(self, width: int = 128):
        super().__init__()
        self.discriminators = nn.ModuleList(ScaleDiscriminator(width, spectral=i == 0) for i in range(3))
        self.pool = nn.AvgPool1d(4, 2, padding=2)

    def forward(self, x):
        outs = []
        for i, d in enumerate(self.discriminators):
            if i:
                x = self.pool(x)
            outs.append(d(x))
        return outs


# ---------------------------------------------------------------------------- losses
def discriminator_loss(real, fake) -> torch.Tensor:
    return sum(torch.mean((1 - r) ** 2) + torch.mean(f**2) for (r, _), (f, _) in zip(real, fake))


def generator_adv_loss(fake) -> torch.Tensor:
    return sum(torch.mean((1 - f) ** 2) for f, _ in fake)


def feature_matching_loss(real, fake) -> torch.Tensor:
    return 2 * sum(torch.mean(torch.abs(rm.detach() - fm)) for (_, rms), (_, fms) in zip(real, fake) for rm, fm in zip(rms, fms))


class LogMel(nn.Module):
    def __init__(self, sample_rate: int):
        super().__init__()
        self.mel = torchaudio.transforms.MelSpectrogram(sample_rate, n_fft=1024, win_length=1024, hop_length=256, f_min=0.0, f_max=8000.0, n_mels=80, center=False)

    def forward(self, wav):
        wav = F.pad(wav, (384, 384), mode="reflect")
        return torch.log(torch.clamp(self.mel(wav), min=1e-5))


class MultiResolutionSTFTLoss(nn.Module):
    """Spectral convergence + log-magnitude L1, averaged over three STFT resolutions (Parallel
    WaveGAN's loss): phase-blind regression that pins down the spectrum at fine time and fine
    frequency resolution at once."""

    RESOLUTIONS = ((512, 128, 512), (1024, 256, 1024), (256, 64, 256))  # (n_fft, hop, window)

    def __init__(self):
        super().__init__()
        for i, (_, _, w) in enumerate(self.RESOLUTIONS):
            self.register_buffer(f"window{i}", torch.hann_window(w), persistent=False)

    def forward(self, y_hat, y):
        total = 0.0
        for i, (n_fft, hop, win) in enumerate(self.RESOLUTIONS):
            window = getattr(self, f"window{i}")
            s_hat = torch.stft(y_hat, n_fft, hop, win, window, return_complex=True).abs().clamp(min=1e-7)
            s = torch.stft(y, n_fft, hop, win, window, return_complex=True).abs().clamp(min=1e-7)
            sc = torch.linalg.norm(s - s_hat, dim=(-2, -1)) / torch.linalg.norm(s, dim=(-2, -1)).clamp(min=1e-7)
            total = total + sc.mean() + F.l1_loss(torch.log(s_hat), torch.log(s))
        return total / len(self.RESOLUTIONS)


def resolve_device(name: str) -> torch.device:
    """``cpu``, ``cuda`` (an error without a CUDA device) or ``auto`` (CUDA when there is one)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r}: no CUDA device is available here (torch.cuda.is_available() is False); use cpu or auto")
        return torch.device(name)
    raise ValueError(f"unknown device {name!r}: expected cpu, cuda, cuda:N or auto")


def cpu_native_bf16() -> bool:
    """Whether this CPU runs bf16 natively (oneDNN's own test: AVX-512 or AMX). Without them bf16
    is emulated: an adversarial step of the recipe's vocoder took 34 s with bf16 autocast and
    3.8 s without on a 2-core AVX2 CPU."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def resolve_bf16(choice: str, device: torch.device) -> bool:
    """``--bf16`` as a bool: ``on``, ``off``, or ``auto``: on only on a CPU that runs bf16
    natively (on an H200 it was slower than fp32: 254 ms against 210 ms per adversarial step,
    ``bench/vocoder_step.py``)."""
    if choice == "auto":
        return device.type == "cpu" and cpu_native_bf16()
    if choice in ("on", "off"):
        return choice == "on"
    raise ValueError(f"unknown bf16 choice {choice!r}: expected on, off or auto")


# ---------------------------------------------------------------------------- training
@dataclass
class TrainOptions:
    max_steps: int = 20000
    batch_size: int = 8
    segment_frames: int = 32
    lr: float = 2e-4
    lr_decay: float = 0.9999  # per step
    mel_weight: float = 45.0
    stft_weight: float = 0.0  # multi-resolution STFT loss (0: off)
    dur_weight: float = 1.0
    gan_start: int = 0  # steps of regression alone (mel + STFT) before the discriminators join
    bf16: bool = False  # bf16 autocast for the networks (losses in fp32)
    disc_period_width: int = 8
    disc_scale_width: int = 16
    log_interval: int = 50
    save_interval: int = 1000
    keep_last: int = 2
    seed: int = 1


class VocoderTrainer:
    def __init__(self, save_dir: Path, config: dict, opts: TrainOptions, train: UnitSpeechData, valid: Optional[UnitSpeechData] = None,
                 device: str = "cpu"):
        from fairseq.models.text_to_speech.codehifigan import CodeGenerator

        self.save_dir, self.config, self.opts = Path(save_dir), config, opts
        self.train_data, self.valid_data = train, valid
        self.device = resolve_device(device)
        torch.manual_seed(opts.seed)
        self.gen = CodeGenerator(config).to(self.device)
        self.mpd = MultiPeriodDiscriminator(opts.disc_period_width).to(self.device)
        self.msd = MultiScaleDiscriminator(opts.disc_scale_width).to(self.device)
        betas = (0.8, 0.99)
        self.opt_g = torch.optim.AdamW(self.gen.parameters(), opts.lr, betas=betas)
        self.opt_d = torch.optim.AdamW(list(self.mpd.parameters()) + list(self.msd.parameters()), opts.lr, betas=betas)
        self.mel = LogMel(config["sampling_rate"]).to(self.device)
        self.stft = MultiResolutionSTFTLoss().to(self.device)
        self.step = 0
        self.rng = random.Random(opts.seed)
        self.history: List[Dict[str, float]] = []

    # ---- state
    def _state(self) -> dict:
        return {
            "generator": self.gen.state_dict(), "mpd": self.mpd.state_dict(), "msd": self.msd.state_dict(),
            "optim_g": self.opt_g.state_dict(), "optim_d": self.opt_d.state_dict(), "step": self.step,
            "rng": self.rng.getstate(), "torch_rng": torch.get_rng_state(), "config": self.config,
            "options": asdict(self.opts),
        }

    def resume(self) -> bool:
        path = self.save_dir / "state_last.pt"
        if not path.is_file():
            return False
        st = torch.load(path, map_location=self.device, weights_only=False)
        if st["config"] != self.config:
            raise ValueError(f"{path}: saved with a different generator config; use another --save-dir or the same size flags")
        self.gen.load_state_dict(st["generator"])
        self.mpd.load_state_dict(st["mpd"])
        self.msd.load_state_dict(st["msd"])
        self.opt_g.load_state_dict(st["optim_g"])
        self.opt_d.load_state_dict(st["optim_d"])
        self.step = st["step"]
        self.rng.setstate(st["rng"])
        torch.set_rng_state(st["torch_rng"].cpu())
        logger.info("resumed from %s at step %d", path, self.step)
        return True

    def init_generator(self, path: Path) -> None:
        """Generator weights from a fairseq-format checkpoint (``g_*``); optimiser and step stay fresh."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"vocoder checkpoint not found: {path}")
        st = torch.load(path, map_location=self.device, weights_only=False)
        if "generator" not in st:
            raise ValueError(f"{path}: no 'generator' key (not a CodeHiFiGAN checkpoint)")
        try:
            self.gen.load_state_dict(st["generator"])
        except RuntimeError as e:
            raise ValueError(f"{path}: does not fit the generator of these size flags: {str(e).splitlines()[0]}") from None
        logger.info("generator initialised from %s", path)

    def save(self) -> Path:
        """fairseq's format (config.json + g_XXXXXXXX with a ``generator`` key) + the full state."""
        self.save_dir.mkdir(parents=True, exist_ok=True)
        (self.save_dir / "config.json").write_text(json.dumps(self.config, indent=2))
        g = self.save_dir / f"g_{self.step:08d}"
        _save_atomic({"generator": {k: v.cpu() for k, v in self.gen.state_dict().items()}}, g)
        _save_atomic(self._state(), self.save_dir / "state_last.pt")
        old = sorted(self.save_dir.glob("g_" + "[0-9]" * 8))[: -self.opts.keep_last]
        for p in old:
            p.unlink()
        return g

    # ---- one step
    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.opts.bf16)

    def train_step(self) -> Dict[str, float]:
        o = self.opts
        self.gen.train()
        codes, audio, red, log_dur, mask = (t.to(self.device) for t in self.train_data.batch(o.batch_size, self.rng))
        adversarial = self.step >= o.gan_start
        y = audio.unsqueeze(1)
        with self._autocast():
            y_hat = self.gen(code=codes)
        y_hat = y_hat.float()
        n = min(y.size(-1), y_hat.size(-1))
        y, y_hat = y[..., :n], y_hat[..., :n]

        losses = {}
        if adversarial:
            self.opt_d.zero_grad()
            with self._autocast():
                d_loss = discriminator_loss(self.mpd(y), self.mpd(y_hat.detach())) + discriminator_loss(self.msd(y), self.msd(y_hat.detach()))
            d_loss.float().backward()
            self.opt_d.step()
            losses["d"] = d_loss

        self.opt_g.zero_grad()
        mel_loss = F.l1_loss(self.mel(y_hat.squeeze(1)), self.mel(y.squeeze(1)))
        g_loss = o.mel_weight * mel_loss
        losses["mel"] = mel_loss
        if o.stft_weight:
            stft_loss = self.stft(y_hat.squeeze(1), y.squeeze(1))
            g_loss = g_loss + o.stft_weight * stft_loss
            losses["stft"] = stft_loss
        if adversarial:
            with self._autocast():
                real_p, fake_p = self.mpd(y), self.mpd(y_hat)
                real_s, fake_s = self.msd(y), self.msd(y_hat)
                adv = generator_adv_loss(fake_p) + generator_adv_loss(fake_s)
                fm = feature_matching_loss(real_p, fake_p) + feature_matching_loss(real_s, fake_s)
            g_loss = g_loss + adv.float() + fm.float()
            losses.update(adv=adv, fm=fm)
        with self._autocast():
            dur_pred = self.gen.dur_predictor(self.gen.dict(red))
        dur_loss = F.mse_loss(dur_pred.float()[mask], log_dur[mask])
        g_loss = g_loss + o.dur_weight * dur_loss
        g_loss.backward()
        self.opt_g.step()
        for opt in (self.opt_g, self.opt_d):
            for group in opt.param_groups:
                group["lr"] = o.lr * o.lr_decay ** (self.step + 1)
        self.step += 1
        losses.update(g=g_loss, dur=dur_loss)
        order = ("g", "d", "mel", "stft", "adv", "fm", "dur")
        return {k: float(losses[k].detach()) for k in order if k in losses}

    @torch.no_grad()
    def validate(self, limit: int = 20) -> Dict[str, float]:
        """Mean log-mel L1 over whole utterances (ground-truth frame units) and duration MSE."""
        if self.valid_data is None:
            return {}
        self.gen.eval()
        mels, durs = [], []
        for _, codes, audio in self.valid_data.items[:limit]:
            codes, audio = codes.to(self.device), audio.to(self.device)
            y_hat = self.gen(code=codes[None]).view(-1)[: audio.numel()]
            mels.append(float(F.l1_loss(self.mel(y_hat[None]), self.mel(audio[None]))))
            r, d = reduce_units(codes.tolist())
            pred = self.gen.dur_predictor(self.gen.dict(torch.tensor([r], device=self.device)))
            durs.append(float(F.mse_loss(pred[0], torch.log(torch.tensor(d, dtype=torch.float, device=self.device) + 1))))
        return {"valid_mel": float(np.mean(mels)), "valid_dur": float(np.mean(durs))}

    def fit(self, progress: bool = True) -> Path:
        from tqdm import tqdm

        o = self.opts
        bar = tqdm(total=o.max_steps, initial=self.step, desc="vocoder", unit="step", disable=not progress, dynamic_ncols=True)
        acc: Dict[str, List[float]] = {}
        last = None
        while self.step < o.max_steps:
            losses = self.train_step()
            for k, v in losses.items():
                if not np.isfinite(v):
                    raise FloatingPointError(f"vocoder step {self.step}: {k} loss is {v}")
                acc.setdefault(k, []).append(v)
            bar.update(1)
            if self.step % o.log_interval == 0 or self.step == o.max_steps:
                mean = {k: float(np.mean(v)) for k, v in acc.items()}
                acc = {}
                bar.set_postfix(mel=f"{mean['mel']:.3f}", g=f"{mean['g']:.1f}")
                logger.info("step %d | %s", self.step, " | ".join(f"{k} {v:.4f}" for k, v in mean.items()))
                self.history.append({"step": self.step, **mean})
            if self.step % o.save_interval == 0 or self.step == o.max_steps:
                val = self.validate()
                if val:
                    logger.info("step %d | %s", self.step, " | ".join(f"{k} {v:.4f}" for k, v in val.items()))
                last = self.save()
                logger.info("saved %s", last)
        bar.close()
        return last or self.save()


def _save_atomic(obj, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    torch.save(obj, tmp)
    tmp.replace(path)
