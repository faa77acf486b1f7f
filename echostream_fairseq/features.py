"""Audio reading, Kaldi-compatible fbank and global CMVN.

One implementation serves training data, offline decoding and streaming:
:func:`fbank` computes the features of a whole waveform, and :class:`OnlineFbank`
produces exactly the same frames from samples that arrive in arbitrary chunks.
"""
from __future__ import annotations

import math
import struct
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


class OnlineFrontEnd:
    """Samples in, CMVN-normalised fbank frames out, chunk by chunk."""

    def __init__(self, cmvn: GlobalCMVN):
        self.fbank = OnlineFbank()
        self.cmvn = cmvn

    def accept(self, samples) -> np.ndarray:
        return self.cmvn(self.fbank.accept(samples))
