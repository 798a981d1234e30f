"""Freed memory handed back to the OS: MAX's large tensors and glibc's large arrays.

Two allocators keep what this process frees, so its resident memory climbs to the
high-water mark of everything it ever ran (int8 tiny.en, one worker: 226 MB after load,
418 MB while transcribing jfk after the long clips):

- MAX 26.7 allocates CPU tensors through a tcmalloc that never returns memory. os_memory.c
  takes over its large blocks (256 KiB and more): windows reuse them, and when a
  transcription ends all but KEEP_BETWEEN_TRANSCRIPTIONS bytes of them go back (all when
  the server falls idle), and so do glibc's free heap pages.
- glibc raises its mmap threshold to the largest array freed so far (up to 32 MiB), after
  which arrays below that size come from the heap, whose free middle it returns only when
  asked (malloc_trim). A fixed threshold (MMAP_THRESHOLD) keeps large arrays, a recording's
  samples and log-mel, in mappings of their own.

- Importing MAX reads about 110 MB of its libraries' code and read-only data (static
  initialisers all through libmax.so), and loading the graphs another 36 MB; a transcription
  touches about 12 MB of it. `release()` tells the kernel this process no longer needs its
  clean file pages (madvise MADV_DONTNEED on read-only private file mappings that hold no
  page of their own): they stay in the page cache, and a page used again is mapped back on
  its next access from there, so nothing is read twice from disk.

`install()` must run before MAX's libraries load (the package's __init__ calls it first).
MAXWHISPER_RETURN_MEMORY=0 turns all three off; a MALLOC_MMAP_THRESHOLD_ the caller set wins
over ours. Without a C compiler, or on a MAX whose runtime library does not export the
allocator this expects, tensors stay with tcmalloc and nothing else changes.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import importlib.util
import logging
import os
import re
import shutil
import subprocess
import sysconfig
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("os_memory.c")
RUNTIME_LIBRARY = "libAsyncRTRuntimeGlobals.so"
# The functions os_memory.c stands in for: M::AsyncRT::TCMallocGlobals::tc_new, tc_delete
ALLOCATOR_SYMBOLS = (
    "_ZN1M7AsyncRT15TCMallocGlobals6tc_newEmm",
    "_ZN1M7AsyncRT15TCMallocGlobals9tc_deleteEPv",
)
MMAP_THRESHOLD = 4 << 20
# Tensor blocks kept from one transcription for the next, about what a tiny.en window uses.
# int8, jfk after the long clips, peak per transcription: 345 MB keeping none (and trimming
# the heap), 366 keeping 64 MB, 397 keeping 128 (tcmalloc: 418); keeping none made a jfk
# transcription about 5 % slower (the next one faults its pages in again).
KEEP_BETWEEN_TRANSCRIPTIONS = 64 << 20
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)
_MADV_DONTNEED = 4  # (sys/mman.h)
# One mapping's first line in /proc/self/smaps: start-end perms offset device inode path
_SMAPS_HEADER = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ \S+ *(.*)$", re.MULTILINE)

_library: ctypes.CDLL | None = None
_depth = 0  # transcriptions under way (transcription() calls nest)


def _turned_off() -> bool:
    return os.environ.get("MAXWHISPER_RETURN_MEMORY", "1") == "0"


def _build_dir() -> Path:
    # beside the kernel library (build.py's folder), without importing the Mojo tooling
    default = Path(__file__).resolve().parents[2] / "build"
    return Path(os.environ.get("MAXWHISPER_BUILD_DIR", default))


def build() -> Path | None:
    """The compiled os_memory.c (compiled once per source), or None without a C compiler."""
    source = SOURCE.read_bytes()
    target = _build_dir() / f"os_memory-{hashlib.sha256(source).hexdigest()[:16]}.so"
    if target.exists():
        return target
    compiler = shutil.which((sysconfig.get_config_var("CC") or "cc").split()[0]) or shutil.which("cc")
    if compiler is None:
        log.info("no C compiler: MAX's freed tensor memory stays with its allocator")
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    # compiled beside its final name and renamed: a concurrent import never loads half a file
    handle, staging = tempfile.mkstemp(prefix=".staging-", suffix=".so", dir=target.parent)
    os.close(handle)
    try:
        done = subprocess.run(
            [compiler, "-O2", "-shared", "-fPIC", "-o", staging, str(SOURCE), "-ldl", "-lpthread"],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            log.warning("could not compile %s: %s", SOURCE.name, done.stderr.strip())
            return None
        os.replace(staging, target)
    finally:
        Path(staging).unlink(missing_ok=True)
    return target


def _runtime_library() -> Path | None:
    spec = importlib.util.find_spec("max")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))).parent / "modular" / "lib" / RUNTIME_LIBRARY
    return path if path.is_file() else None


def _loaded(name: str) -> bool:
    try:
        return name in Path("/proc/self/maps").read_text()
    except OSError:
        return True  # cannot tell: assume the worst


def install() -> bool:
    """Sets both up; True when MAX's large tensors are now mapped by os_memory.c."""
    global _library
    if _library is not None:
        return True
    if _turned_off():
        return False
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        try:
            ctypes.CDLL(None).mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        except (OSError, AttributeError):  # not glibc
            pass
    runtime = _runtime_library()
    # Once MAX's libraries are loaded, some of their calls may already be bound to tcmalloc,
    # and a block mapped here must never reach tcmalloc's delete: then leave it all alone.
    if runtime is None or _loaded(RUNTIME_LIBRARY):
        return False
    try:
        real = ctypes.CDLL(str(runtime))  # local: only to check what it exports
        if not all(hasattr(real, symbol) for symbol in ALLOCATOR_SYMBOLS):
            return False
        compiled = build()
        if compiled is None:
            return False
        library = ctypes.CDLL(str(compiled), mode=os.RTLD_GLOBAL | os.RTLD_NOW)
    except OSError as error:
        log.warning("freed tensor memory stays with MAX's allocator: %s", error)
        return False
    if library.mt_bind(str(runtime).encode()) != 0:
        # Cannot happen once the symbols were found above; were it to, every MAX allocation
        # would reach a function with nothing to call.
        raise RuntimeError(f"os_memory: {runtime} does not give its allocator to dlsym")
    library.mt_release.restype = ctypes.c_longlong
    library.mt_release.argtypes = [ctypes.c_longlong]
    _library = library
    return True


def release(keep: int = 0) -> int:
    """Unmaps the tensor blocks kept for reuse but the `keep` most recently freed bytes and
    hands glibc's free heap pages back; with keep=0 the clean file pages go too
    (release_file_pages). Returns the tensor bytes released."""
    released = 0 if _library is None else _library.mt_release(keep)
    try:
        # the heap's free pages between live chunks: 16 MB after the long clips, and jfk
        # transcribed 15 times took as long with this after each as without
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # a C library without malloc_trim
        pass
    if keep == 0:
        release_file_pages()
    return released


def release_file_pages() -> int:
    """Drops the pages of read-only private file mappings (libraries' code and constants)
    from this process's resident set; returns the bytes dropped. ~10 ms with MAX loaded.

    Only mappings whose every resident page is still the file's own: a private mapping that
    was ever written to (relocated data that was made read-only afterwards, RELRO) holds
    anonymous copies, which MADV_DONTNEED would throw away, so those are left alone. The
    dropped pages stay in the page cache; the next access maps a page back (a minor fault),
    which is why a page a transcription needs costs one fault and no disk read."""
    if _turned_off():
        return 0
    try:
        smaps = Path("/proc/self/smaps").read_text()
        madvise = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):  # not Linux
        return 0
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    headers = list(_SMAPS_HEADER.finditer(smaps))
    dropped = 0
    for i, header in enumerate(headers):
        start, end, perms, path = header.groups()
        # devices and deleted or memory-backed files are not pages the file gives back as they were
        if perms not in ("r--p", "r-xp") or not path.startswith("/") or path.startswith("/dev/"):
            continue
        if path.endswith("(deleted)"):
            continue
        body = smaps[header.end() : headers[i + 1].start() if i + 1 < len(headers) else len(smaps)]
        resident, own = _field_kib(body, "Rss:"), _field_kib(body, "Anonymous:")
        if resident and own == 0:
            first, last = int(start, 16), int(end, 16)
            if madvise(first, last - first, _MADV_DONTNEED) == 0:
                dropped += resident << 10
    return dropped


def _field_kib(body: str, name: str) -> int | None:
    at = body.find("\n" + name)
    if at < 0:
        return None
    return int(body[at + len(name) + 1 :].split(None, 1)[0])


@contextlib.contextmanager
def transcription():
    """Around a transcription (calls may nest: only the outermost one acts). When it ends,
    the most recently freed KEEP_BETWEEN_TRANSCRIPTIONS bytes of blocks stay for the next
    one and the rest go back."""
    global _depth
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0:
            release(KEEP_BETWEEN_TRANSCRIPTIONS)


def stats() -> dict[str, int] | None:
    """Counters of os_memory.c (None when it is not in use)."""
    if _library is None:
        return None
    out = (ctypes.c_longlong * 5)()
    _library.mt_stats(out)
    return dict(zip(("bytes_in_use", "bytes_kept", "blocks_mapped", "blocks_reused", "blocks_unmapped"), out))
