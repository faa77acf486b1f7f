"""Speech synthesis with Debian's espeak-ng and flite, resampled to 16 kHz mono by sox."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from .. import features


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise RuntimeError(f"'{tool}' is not installed; run `make setup` (it installs espeak-ng, flite and sox)")
    return path


def _to_16k(raw: Path, out: Path) -> None:
    subprocess.run(
        # -R: repeatable dither, so the same text and voice give the same bytes on every run
        [_need("sox"), "-R", str(raw), "-r", str(features.SAMPLE_RATE), "-c", "1", "-b", "16", str(out)],
        check=True,
        capture_output=True,
    )


def espeak(text: str, voice: str, out: Path, rate: int = 160, pitch: int = 50) -> None:
    raw = out.with_suffix(".raw.wav")
    subprocess.run(
        [_need("espeak-ng"), "-v", voice, "-s", str(rate), "-p", str(pitch), "-w", str(raw), text],
        check=True,
        capture_output=True,
    )
    _to_16k(raw, out)
    raw.unlink()


def flite_voices() -> list:
    """The voices this flite has built in (``flite -lv``)."""
    listing = subprocess.run([_need("flite"), "-lv"], check=True, capture_output=True, text=True).stdout
    return listing.split(":", 1)[-1].split()


def flite(text: str, voice: str, out: Path) -> None:
    raw = out.with_suffix(".raw.wav")
    subprocess.run([_need("flite"), "-voice", voice, "-t", text, "-o", str(raw)], check=True, capture_output=True)
    _to_16k(raw, out)
    raw.unlink()
