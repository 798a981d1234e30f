"""os_memory: MAX's large tensors in mappings this process unmaps (most of them when a
transcription ends, all when asked).

Checked against the kernel's own accounting (/proc/self/status), not the library's counters
alone. That the transcripts stay exact with it on is what the parity tests check (they run
with it, as every test does)."""

from __future__ import annotations

import gc
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from clips import SHARED_AUDIO
from maxwhisper_kernels import os_memory

JFK = SHARED_AUDIO / "jfk.flac"

needs_compiler = pytest.mark.skipif(
    shutil.which("cc") is None or os.environ.get("MAXWHISPER_RETURN_MEMORY") == "0",
    reason="no C compiler to build os_memory.c, or turned off (MAXWHISPER_RETURN_MEMORY=0)",
)


def anonymous_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no RssAnon in /proc/self/status")


@needs_compiler
def test_installed_in_the_test_process():
    assert os_memory.stats() is not None


@needs_compiler
def test_windows_reuse_blocks_and_release_unmaps_them(tiny_en_int8):
    mel = np.random.default_rng(0).standard_normal((1, 80, 3000)).astype(np.float32)
    # Earlier tests' tensors caught in reference cycles would otherwise be freed whenever the
    # collector happens to run, in the middle of the counts below (a suite run saw 3.3 MB
    # arrive between reading bytes_kept and releasing).
    gc.collect()
    os_memory.release()
    before = os_memory.stats()
    for _ in range(3):
        features = tiny_en_int8.encode(mel)
        del features
    after = os_memory.stats()
    # the second and third windows ask for the sizes the first one mapped
    assert after["blocks_reused"] - before["blocks_reused"] >= after["blocks_mapped"] - before["blocks_mapped"]
    kept = after["bytes_kept"]
    assert kept > 16 << 20  # an encoder window's working memory: tens of MB
    resident = anonymous_mib()
    released = os_memory.release()
    assert released >= kept  # everything kept goes (and whatever was freed since)
    assert os_memory.stats()["bytes_kept"] == 0
    # the kernel's count of this process's anonymous memory fell by what was unmapped
    assert resident - anonymous_mib() > 0.8 * released / 2**20


@needs_compiler
def test_a_transcription_keeps_only_a_windows_worth(tiny_en_int8):
    result = tiny_en_int8.transcribe(str(JFK), language="en")
    assert "ask not what your country can do for you" in result["text"]
    # what the next transcription will want again stays; nothing else does
    assert 0 < os_memory.stats()["bytes_kept"] <= os_memory.KEEP_BETWEEN_TRANSCRIPTIONS


def run_python(code: str, **env: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env}, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_turned_off_by_the_environment():
    code = "import maxwhisper_kernels as mw; from maxwhisper_kernels import os_memory; print(os_memory.stats())"
    assert run_python(code, MAXWHISPER_RETURN_MEMORY="0") == "None"


@needs_compiler
def test_left_alone_when_max_was_loaded_first():
    # MAX's libraries may have bound calls to tcmalloc already: a block mapped here must never
    # reach tcmalloc's delete, so nothing is installed, and MAX still works.
    code = (
        "import max.driver, numpy as np\n"
        "from maxwhisper_kernels import os_memory\n"
        "from maxwhisper_kernels.ops import log_mel_spectrogram\n"
        "print(os_memory.stats(), log_mel_spectrogram(np.zeros(16000, np.float32)).shape)"
    )
    assert run_python(code) == "None (80, 100)"
