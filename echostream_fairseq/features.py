"""Audio reading, Kaldi-compatible fbank and global CMVN.

One implementation serves training data, offline decoding and streaming:
:func:`fbank` computes the features of a whole waveform, and :class:`OnlineFbank`
produces exactly the same frames from samples that arrive in arbitrary chunks.
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np
import soundfile as sf
import torch
import torchaudio.compliance.kaldi as kaldi

SAMPLE_RATE = 16000
NUM_MEL_BINS = 80
FRAME_LENGTH_MS = 25.0
FRAME_SHIFT_MS = 10.0
WINDOW = int(SAMPLE_RATE * FRAME_LENGTH_MS / 1000)  # 400 samples
HOP = int(SAMPLE_RATE * FRAME_SHIFT_MS / 1000)  # 160 samples


class AudioError(ValueError):
    """Raised for audio that cannot be used; the message names the file."""


# Float audio is full scale at +-1. Samples this far beyond it are not louder speech but another
# scale (int16 values sent as float, a gain gone wrong); far enough beyond it, the fbank's power
# overflows float32 and every later stage reads NaN.
MAX_ABS_SAMPLE = 8.0

# Source audio is taken at these rates and resampled to SAMPLE_RATE. Below telephone rate there is
# no speech to read, and every sample becomes up to 2 (at 8 kHz) after resampling: at 1 Hz one
# 10 kB frame became 80 million samples (1.3 GB), and a 1 MB one would take a server's memory.
MIN_SOURCE_RATE = 8000
MAX_SOURCE_RATE = 384_000


def check_source_rate(sr: int, where: str) -> int:
    """``sr`` if source audio may come at that rate; otherwise an AudioError naming ``where``."""
    if not MIN_SOURCE_RATE <= sr <= MAX_SOURCE_RATE:
        raise AudioError(f"{where}: sample rate {sr} Hz is outside {MIN_SOURCE_RATE}..{MAX_SOURCE_RATE} Hz")
    return sr


def check_samples(x: np.ndarray, where: str) -> np.ndarray:
    """``x`` (float samples) if every sample is finite and within +-MAX_ABS_SAMPLE; otherwise an
    AudioError that names ``where`` and the first bad sample."""
    bad = ~np.isfinite(x) | (np.abs(x) > MAX_ABS_SAMPLE)
    if bad.any():
        i = int(np.argmax(bad))
        what = "is not finite" if not np.isfinite(x[i]) else f"is outside +-{MAX_ABS_SAMPLE:g} (float audio is full scale at +-1; " \
                                                             "int16 values sent as float?)"
        raise AudioError(f"{where}: sample {i} ({float(x[i]):g}) {what}")
    return x


# the 'data' chunk sizes a streaming writer leaves open, not knowing the length yet
OPEN_DATA_SIZES = (0, 0xFFFFFFFF)


def check_wav_complete(path: Path) -> None:
    """A RIFF/WAVE file whose 'data' chunk declares more bytes than the file holds was cut short
    (an interrupted copy or recording). The audio library reads such a file without a word, as
    the part that is there, so it is an error here: a translation of half a sentence is not the
    translation of the file. Sizes left open by a streaming writer (0 or 0xFFFFFFFF) pass; other
    formats are left to the audio library."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            cid, n = f.read(4), struct.unpack("<I", f.read(4))[0]
            if cid == b"data":
                have = size - pos - 8
                if n not in OPEN_DATA_SIZES and n > have:
                    raise AudioError(f"{path}: truncated: its data chunk declares {n} bytes, the file holds {have} "
                                     f"({100 * have / n:.0f} %)")
                return
            pos += 8 + n + (n & 1)  # chunks are padded to an even size


def read_audio(path: Union[str, Path], expected_sr: Optional[int] = SAMPLE_RATE) -> np.ndarray:
    """Read a mono waveform as float32 in [-1, 1].

    Multi-channel audio is averaged to mono. With ``expected_sr`` set, a file at another
    rate is an error (resampling is the caller's explicit choice, see :func:`resample`).
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"audio file not found: {path}")
    try:
        wav, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises several types for corrupt files
        raise AudioError(f"cannot read audio file {path}: {e}") from e
    check_wav_complete(path)
    if wav.shape[0] == 0:
        raise AudioError(f"audio file is empty: {path}")
    wav = wav.mean(axis=1)
    if expected_sr is not None and sr != expected_sr:
        raise AudioError(f"{path}: sample rate {sr} Hz, expected {expected_sr} Hz")
    check_source_rate(sr, str(path))
    return check_samples(wav, str(path))


def resample(wav: np.ndarray, orig_sr: int, new_sr: int = SAMPLE_RATE) -> np.ndarray:
    if orig_sr == new_sr:
        return wav
    import torchaudio.functional as AF

    return AF.resample(torch.from_numpy(np.ascontiguousarray(wav)), orig_sr, new_sr).numpy()


class StreamingResampler:
    """Chunk-by-chunk resampling equal to :func:`resample` of the whole signal (same windowed
    sinc): an output sample is released once the input under its kernel has arrived; the
    remaining ones come with ``final=True``. Memory stays bounded by one chunk + the kernel."""

    WIDTH = 6  # torchaudio's default lowpass_filter_width

    def __init__(self, orig_sr: int, new_sr: int = SAMPLE_RATE):
        check_source_rate(orig_sr, "streamed source")
        if new_sr <= 0:
            raise ValueError(f"sample rates must be positive, got {orig_sr} -> {new_sr}")
        g = math.gcd(orig_sr, new_sr)
        self.orig, self.new = orig_sr, new_sr
        self.a, self.b = orig_sr // g, new_sr // g  # a input samples <-> b output samples
        self.half = int(math.ceil(self.WIDTH * self.a / min(self.a, self.b))) + 1  # kernel half-width in input samples
        self.buf = np.zeros(0, dtype=np.float32)
        self.done = 0  # outputs of the current buffer already released

    def accept(self, samples: np.ndarray, final: bool = False) -> np.ndarray:
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        if self.orig == self.new:
            return samples
        self.buf = np.concatenate([self.buf, samples])
        total = -(-len(self.buf) * self.b // self.a)  # what resample() of the buffer returns
        ready = total if final else max(0, (len(self.buf) - self.half) * self.b // self.a)
        if ready <= self.done:
            return np.zeros(0, dtype=np.float32)
        y = resample(self.buf, self.orig, self.new)[self.done : ready]
        self.done = ready
        # drop whole periods of input that no unreleased output needs
        drop = max(0, self.done * self.a // self.b - self.half) // self.a * self.a
        if drop:
            self.buf = self.buf[drop:]
            self.done -= drop * self.b // self.a
        return y.astype(np.float32)


SILENCE_DB = -45.0  # RMS level (dBFS) under which a 10 ms block counts as silence


def block_db(samples: np.ndarray) -> np.ndarray:
    """RMS level (dBFS) of each complete 10 ms block (the fbank hop)."""
    n = samples.size // HOP
    x = samples[: n * HOP].reshape(n, HOP).astype(np.float64)
    return 10 * np.log10(np.mean(x ** 2, axis=1) + 1e-12)


def _fbank_frames(samples: torch.Tensor, vtln_warp: float = 1.0) -> torch.Tensor:
    """Fbank of complete frames of ``samples`` (float in [-1, 1]); (n_frames, 80).
    ``vtln_warp`` != 1 warps the mel filters (training-time vocal tract length perturbation)."""
    if samples.numel() < WINDOW:
        return torch.zeros(0, NUM_MEL_BINS)
    # Kaldi works on int16-scaled samples; fairseq's speech recipes do the same.
    return kaldi.fbank(
        samples.unsqueeze(0) * 32768.0,
        num_mel_bins=NUM_MEL_BINS,
        frame_length=FRAME_LENGTH_MS,
        frame_shift=FRAME_SHIFT_MS,
        dither=0.0,
        energy_floor=0.0,
        sample_frequency=SAMPLE_RATE,
        vtln_warp=vtln_warp,
    )


def to_s16le(x: np.ndarray) -> bytes:
    """float [-1, 1] -> little-endian int16, the inverse of reading 16-bit PCM as x / 32768."""
    return np.clip(np.round(np.asarray(x) * 32768), -32768, 32767).astype("<i2").tobytes()


def num_frames(num_samples: int) -> int:
    """Number of fbank frames of a waveform of ``num_samples`` samples (Kaldi snip_edges)."""
    return 0 if num_samples < WINDOW else 1 + (num_samples - WINDOW) // HOP


def fbank(wav: Union[np.ndarray, torch.Tensor], vtln_warp: float = 1.0) -> np.ndarray:
    """80-dim log-mel fbank of a whole 16 kHz waveform, float32 (n_frames, 80)."""
    samples = torch.as_tensor(np.asarray(wav, dtype=np.float32))
    return _fbank_frames(samples, vtln_warp).numpy()


class OnlineFbank:
    """Fbank over a stream: ``accept(samples)`` returns the frames that became complete.

    The concatenation of all returned frames equals :func:`fbank` of the whole stream.
    Only the samples of the next incomplete frame are kept, so memory is constant.
    """

    def __init__(self):
        self._buf = torch.zeros(0)

    def accept(self, samples: Union[np.ndarray, torch.Tensor]) -> np.ndarray:
        new = torch.as_tensor(np.asarray(samples, dtype=np.float32)).reshape(-1)
        self._buf = torch.cat([self._buf, new])
        n = num_frames(self._buf.numel())
        if n == 0:
            return np.zeros((0, NUM_MEL_BINS), dtype=np.float32)
        used = (n - 1) * HOP + WINDOW
        frames = _fbank_frames(self._buf[:used])
        self._buf = self._buf[n * HOP :]
        return frames.numpy()


class GlobalCMVN:
    """Global mean/variance normalisation from fairseq's ``gcmvn.npz`` (keys ``mean``, ``std``)."""

    def __init__(self, mean: np.ndarray, std: np.ndarray):
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)
        if self.mean.shape != self.std.shape or self.mean.ndim != 1:
            raise ValueError(f"CMVN mean {self.mean.shape} and std {self.std.shape} must be equal 1-D shapes")
        if np.any(self.std <= 0):
            raise ValueError("CMVN std must be positive")

    @classmethod
    def load(cls, path: Union[str, Path]) -> "GlobalCMVN":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"global CMVN stats file not found: {path}")
        try:
            stats = np.load(path)
            return cls(stats["mean"], stats["std"])
        except (KeyError, ValueError, OSError) as e:
            raise ValueError(f"bad global CMVN stats file {path}: {e}") from e

    @classmethod
    def estimate(cls, features, floor: float = 1e-8) -> "GlobalCMVN":
        """Stats over an iterable of (n_frames, dim) arrays, as fairseq's prep computes them."""
        total, sq, n = None, None, 0
        for f in features:
            f = np.asarray(f, dtype=np.float64)
            total = f.sum(0) if total is None else total + f.sum(0)
            sq = (f**2).sum(0) if sq is None else sq + (f**2).sum(0)
            n += f.shape[0]
        if n == 0:
            raise ValueError("cannot estimate CMVN from no frames")
        mean = total / n
        var = np.maximum(sq / n - mean**2, floor)
        return cls(mean.astype(np.float32), np.sqrt(var).astype(np.float32))

    def save(self, path: Union[str, Path]) -> None:
        np.savez(path, mean=self.mean, std=self.std)

    def __call__(self, feats: np.ndarray) -> np.ndarray:
        return ((feats - self.mean) / self.std).astype(np.float32)


# Frame level (dB): 10 log10 of the mean mel-filterbank power of a frame, minus the level a full-scale
# 1 kHz sine gives (tests/test_input_level.py checks it); so a sine at -20 dBFS reads -20 dB.
# Speech reads a few dB above its RMS in dBFS: the toy corpus's espeak-ng voices peak near -10 dB.
LEVEL_REF_DB = 109.14
LOG_FLOOR = math.log(float(np.finfo(np.float32).eps))  # Kaldi's fbank floor: log(max(eps, power))
_NAT_TO_DB = 10 / math.log(10)


def frame_level_db(feats: np.ndarray) -> np.ndarray:
    """The level (dB, see LEVEL_REF_DB) of each fbank frame."""
    f = np.asarray(feats, dtype=np.float64)
    if f.shape[0] == 0:
        return np.zeros(0)
    top = f.max(axis=1, keepdims=True)
    mean_power = top[:, 0] + np.log(np.exp(f - top).mean(axis=1))  # log of the mean mel power
    return _NAT_TO_DB * mean_power - LEVEL_REF_DB


@dataclass
class InputLevel:
    """Input level normalisation (a data config's ``input_level``): speech quieter than the speech
    the model learned from is raised before the model reads it, as if the same recording (the same
    signal-to-noise ratio) had been made at the usual level. Speech loud enough is left exactly as
    it is, and so is a stream of steady noise with no one speaking.

    Levels are those of :func:`frame_level_db`, smoothed by the median of the last 5 frames (a
    click of one or two frames moves nothing). ``peak`` is the stream's loudest speech so far,
    falling by ``release_db_per_s`` a second, and ``floor`` its quietest background so far
    (minimum statistics), rising by ``floor_rise_db_per_s`` a second. Each fbank frame is raised by

        clip(min(target_db - max(peak, its own level), 5 (peak - floor - min_snr_db)), 0, max_gain_db) dB,

    a constant added to its log-mel bins above the fbank floor, which is what a gain on the samples
    does. So no frame is raised above ``target_db``, and nothing is raised until the stream holds
    something ``min_snr_db`` above its background (the allowed gain grows 5 dB per dB beyond it).
    The gain rises by at most ``attack_db_per_s`` a second (the first consonant of a loud speaker,
    heard before the vowel that sets the peak, is barely raised) and falls at once. The gain of a
    frame depends on it and on earlier frames alone, so a stream read in chunks gets exactly the
    frames of the whole recording."""

    target_db: float
    max_gain_db: float = 30.0
    min_snr_db: float = 6.0
    release_db_per_s: float = 1.0
    floor_rise_db_per_s: float = 3.0
    attack_db_per_s: float = 200.0

    MEDIAN_FRAMES = 5

    def __post_init__(self):
        for name, lo, hi in (("target_db", -80.0, 0.0), ("max_gain_db", 0.0, 60.0), ("min_snr_db", 0.0, 60.0),
                             ("release_db_per_s", 0.0, 60.0), ("floor_rise_db_per_s", 0.0, 60.0),
                             ("attack_db_per_s", 0.0, 1000.0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not lo <= v <= hi:
                raise ValueError(f"{name} must be a number in [{lo:g}, {hi:g}], got {v!r}")

    def stream(self) -> "LevelNormaliser":
        return LevelNormaliser(self)

    def apply(self, feats: np.ndarray) -> np.ndarray:
        """The frames of one whole recording, normalised."""
        return self.stream().accept(feats)


def smoothed_levels(level: np.ndarray, before: np.ndarray = np.zeros(0)) -> np.ndarray:
    """The level :class:`InputLevel` reads for each frame of ``level``: the median of its own and the
    ``MEDIAN_FRAMES - 1`` before it (fewer at a stream's start). ``before``: the levels of the frames
    that came before ``level`` (the last ``MEDIAN_FRAMES - 1``; all of them, fewer, at the start)."""
    k = InputLevel.MEDIAN_FRAMES
    ctx = np.concatenate([before, level])
    start = ctx.size - level.size  # ctx[0] is the stream's first frame while fewer than k - 1 came before
    full = max(start, k - 1)  # the first frame with k levels behind it
    return np.concatenate([[np.median(ctx[: j + 1]) for j in range(start, min(full, ctx.size))],
                           np.median(np.lib.stride_tricks.sliding_window_view(ctx, k)[full - (k - 1):], axis=1)
                           if ctx.size >= k else []])


def peak_level_db(feats: np.ndarray) -> float:
    """The loudest speech of one recording, as :class:`InputLevel` tracks it: the highest of its
    :func:`smoothed_levels` (-inf for no frames)."""
    level = frame_level_db(feats)
    return float(smoothed_levels(level).max()) if level.size else -math.inf


def input_level_for(train_peaks) -> InputLevel:
    """The input level normalisation of a model trained on speech whose utterances peak at
    ``train_peaks`` (dB, :func:`peak_level_db`): a source is raised to the level that 95 % of the
    training utterances reach (their 5th percentile, rounded down to a whole dB)."""
    peaks = np.asarray([p for p in train_peaks if math.isfinite(p)], dtype=np.float64)
    if not peaks.size:
        raise ValueError("no training utterance with audio to set the input level from")
    return InputLevel(target_db=float(max(-80.0, math.floor(np.percentile(peaks, 5)))))


class LevelNormaliser:
    """The running state of :class:`InputLevel` over one stream: ``accept(frames)`` returns them
    normalised; ``gain_db`` is the gain of the last frame (0 before any)."""

    SNR_SLOPE = 5.0  # dB of gain allowed per dB of peak over floor beyond min_snr_db

    def __init__(self, cfg: InputLevel):
        self.cfg = cfg
        per_frame = FRAME_SHIFT_MS / 1000
        self.release, self.rise = cfg.release_db_per_s * per_frame, cfg.floor_rise_db_per_s * per_frame  # dB per frame
        self.recent = np.zeros(0)  # the levels of the last MEDIAN_FRAMES - 1 frames
        # peak at frame k = max over j <= k of (smoothed level j - release * (k - j)): the running
        # max of (level j + release * j), less release * k; the floor likewise with a running min
        self.peak_acc, self.floor_acc = -np.inf, np.inf
        # gain at frame k = min(wanted k, gain k-1 + attack) = min over j <= k of (wanted j + attack * (k - j)),
        # with the gain before the stream 0: the running min of (wanted j - attack * j), plus attack * k
        self.attack = cfg.attack_db_per_s * per_frame
        self.gain_acc = self.attack  # (the gain 0 before frame 0, as the term of frame -1)
        self.frames = 0
        self.gain_db = 0.0

    def accept(self, feats: np.ndarray) -> np.ndarray:
        feats = np.asarray(feats, dtype=np.float32)
        n = feats.shape[0]
        if n == 0:
            return feats
        level = frame_level_db(feats)
        med = smoothed_levels(level, self.recent)
        idx = self.frames + np.arange(n)
        peak_acc = np.maximum.accumulate(np.maximum(med + self.release * idx, self.peak_acc))
        floor_acc = np.minimum.accumulate(np.minimum(med - self.rise * idx, self.floor_acc))
        peak = np.maximum(peak_acc - self.release * idx, level)
        floor = floor_acc + self.rise * idx
        c = self.cfg
        wanted = np.clip(np.minimum(c.target_db - peak, self.SNR_SLOPE * (peak - floor - c.min_snr_db)), 0.0, c.max_gain_db)
        gain_acc = np.minimum.accumulate(np.minimum(wanted - self.attack * idx, self.gain_acc))
        gain = gain_acc + self.attack * idx
        self.peak_acc, self.floor_acc, self.gain_acc = float(peak_acc[-1]), float(floor_acc[-1]), float(gain_acc[-1])
        self.recent = np.concatenate([self.recent, level])[-(InputLevel.MEDIAN_FRAMES - 1):]
        self.frames += n
        self.gain_db = float(gain[-1])
        if not gain.any():
            return feats
        raised = feats + (gain / _NAT_TO_DB).astype(np.float32)[:, None]
        return np.where(feats > LOG_FLOOR + 1e-3, raised, feats).astype(np.float32)  # (floored bins held no power)


class OnlineFrontEnd:
    """Samples in, fbank frames out (level-normalised with ``level``, then CMVN), chunk by chunk."""

    def __init__(self, cmvn: GlobalCMVN, level: Optional[InputLevel] = None):
        self.fbank = OnlineFbank()
        self.cmvn = cmvn
        self.level = level.stream() if level is not None else None

    @property
    def gain_db(self) -> float:
        """The input level normalisation's gain on the latest frame (0 without it)."""
        return self.level.gain_db if self.level is not None else 0.0

    def accept(self, samples) -> np.ndarray:
        feats = self.fbank.accept(samples)
        if self.level is not None:
            feats = self.level.accept(feats)
        return self.cmvn(feats)
