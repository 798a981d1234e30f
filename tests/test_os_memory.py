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
import time
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


def settled_stats() -> dict:
    """os_memory's counters once they stop moving: blocks can still arrive after a call
    returns (a fresh clone's suite saw 19.6 MB kept again right after release()), so the
    counts are read when two looks 50 ms apart agree, within 2 s."""
    last = os_memory.stats()
    for _ in range(40):
        time.sleep(0.05)
        now = os_memory.stats()
        if now == last:
            break
        last = now
    return last


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
    after = settled_stats()
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


def test_library_pages_dropped_and_mapped_back_when_used():
    # In a process of its own, so that the count is MAX's import alone, not the suite's.
    code = (
        "import numpy as np\n"
        "from pathlib import Path\n"
        "from maxwhisper_kernels import os_memory\n"
        "from maxwhisper_kernels.ops import log_mel_spectrogram\n"
        "def file_mib():\n"
        "    line = next(l for l in Path('/proc/self/status').read_text().splitlines() if l.startswith('RssFile:'))\n"
        "    return int(line.split()[1]) / 1024\n"
        "audio = np.sin(np.arange(32000, dtype=np.float32) * 0.05)\n"
        "before_mel = log_mel_spectrogram(audio)\n"
        "before = file_mib()\n"
        "dropped = os_memory.release_file_pages() / 2**20\n"
        "after = file_mib()\n"
        "same = np.array_equal(log_mel_spectrogram(audio), before_mel)\n"
        "print(round(before), round(after), round(dropped), same)"
    )
    before, after, dropped, same = run_python(code).split()
    # MAX's start-up code is ~100 MB of library pages; the kernel's own count falls by what
    # was dropped, and the op, whose code is mapped back from the page cache, still works
    assert int(dropped) > 50
    assert int(before) - int(after) > 0.8 * int(dropped)
    assert same == "True"
    off = code.replace("release_file_pages()", "release_file_pages() + 1")
    assert run_python(off, MAXWHISPER_RETURN_MEMORY="0").split()[2] == "0"


def test_private_mapping_written_before_it_was_made_read_only_is_kept(tmp_path):
    # Like a library's relocated data (RELRO): its pages are this process's own copies now,
    # and dropping them would bring the file's bytes back in their place.
    import ctypes
    import mmap

    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    size = 4 * mmap.PAGESIZE
    written, untouched = tmp_path / "written.bin", tmp_path / "untouched.bin"
    written.write_bytes(b"A" * size)
    untouched.write_bytes(b"B" * size)
    with open(written, "rb") as f:
        changed = mmap.mmap(f.fileno(), size, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    with open(untouched, "rb") as f:
        clean = mmap.mmap(f.fileno(), size, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ)
    changed[:] = b"C" * size
    view = ctypes.c_char.from_buffer(changed)
    assert libc.mprotect(ctypes.addressof(view), size, mmap.PROT_READ) == 0, ctypes.get_errno()
    del view
    assert clean[:] == b"B" * size  # resident now
    assert os_memory.release_file_pages() >= size
    assert changed[:] == b"C" * size
    assert clean[:] == b"B" * size
    changed.close()
    clean.close()
