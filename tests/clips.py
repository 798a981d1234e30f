"""Test audio: the shared real-speech clips and a long clip synthesised with
espeak-ng from a known text."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np

from maxwhisper_kernels.audio import load_audio

SHARED_AUDIO = Path(__file__).resolve().parents[1].parent / "shared" / "audio"
LONG_FORM_TEXT = (Path(__file__).parent / "data" / "long_form.txt").read_text()


def synthesise(path: Path, text: str, voice: str, words_per_minute: int) -> np.ndarray:
    """espeak-ng speech of `text` in `voice` (en-us, de, es...), at 16 kHz."""
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is not installed: run scripts/setup.sh (it installs it with apt-get)")
    subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(words_per_minute), "-w", str(path), text],
        check=True,
        capture_output=True,
    )
    return load_audio(path)


def synthesise_long_form(folder: Path) -> np.ndarray:
    """About 2.5 minutes of espeak-ng speech of LONG_FORM_TEXT, at 16 kHz."""
    return synthesise(folder / "long_form.wav", LONG_FORM_TEXT, "en-us", 160)
