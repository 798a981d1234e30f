"""Compiled graphs kept across processes as MEF files, so a warm start builds
and compiles nothing.

MAX caches compilations on disk itself, but a hit in that cache still costs
the graph's construction in Python (the first custom op of a process makes
MAX analyse the whole kernel library, about 2 s here) and the front half of
the compile pipeline (about 2 s per Whisper graph on 2 cores). A compiled
graph exported as a MEF file loads in about 0.1 s, with no graph built.

A stored MEF is only valid for exactly what it was compiled from, so its key
covers: the graph's name and the caller's description of it (model
dimensions, weight dtypes, flags), the kernel library (its path holds the
hash of the Mojo sources and compiler), the Python sources that build graphs,
the MAX version, the CPU's instruction-set flags (a cache directory shared
between an AVX-512 and an AVX2 machine must not hand one the other's code) and
the CPU the kernels were compiled for when MAXWHISPER_CPU_TARGET names one.
Weights are not compiled in: they are bound when the model is initialised.

Every upgrade or kernel edit makes new keys, so the store would only grow (a tiny.en
encoder is 10 MB; a day of kernel work left 800 MB). A load marks its file as used
(its mtime), and each new file trims the store to STORE_LIMIT_BYTES by removing the
files used longest ago. A file another process has loaded stays readable after its
removal (its mapping holds the inode); at worst a later start compiles it again.

MAX's compiler keeps much of what it allocates: a process that compiled the int8
tiny.en graphs held 117 MB more heap for the rest of its life than one that loaded
them from here (231 against 113 MB after load) and peaked at 522 MB against 220.
So a model load that misses the store compiles in a child process
(compile_in_child), which loads the same model, fills the store and exits with
all of that; the caller then loads the graphs from the store.
MAXWHISPER_COMPILE_IN_PROCESS=1 compiles in the calling process instead.

`MAXWHISPER_GRAPH_CACHE` moves the store (default: maxwhisper/graphs under
XDG_CACHE_HOME or ~/.cache); setting it to an empty string turns it off.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from importlib import metadata
from pathlib import Path

from max.engine import InferenceSession, Model
from max.graph import Graph

from .build import kernel_library
from .runtime_options import cpu_target

log = logging.getLogger(__name__)

_PACKAGE_DIR = Path(__file__).resolve().parent
_GRAPH_DIR = _PACKAGE_DIR.parent.parent / "graph"
# Room for several versions of the graphs of a few models (tiny.en's three: 25 MB)
STORE_LIMIT_BYTES = 512 << 20


def store_dir() -> Path | None:
    configured = os.environ.get("MAXWHISPER_GRAPH_CACHE")
    if configured is not None:
        return Path(configured) if configured else None
    cache_home = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache_home) / "maxwhisper" / "graphs"


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return " ".join(sorted(line.split(":", 1)[1].split()))
    except OSError:
        pass
    return platform.processor()


@functools.lru_cache(maxsize=1)
def _environment_digest() -> str:
    """What every stored graph depends on besides its own description."""
    digest = hashlib.sha256()
    digest.update(str(kernel_library()).encode())
    digest.update(metadata.version("max").encode())
    digest.update(platform.machine().encode() + _cpu_flags().encode())
    digest.update(b"target:" + cpu_target().encode())  # code compiled for another CPU (runtime_options)
    # Any edit to the code that builds graphs may change a graph, so all of
    # it is in the key; sources that never build graphs cost only a rebuild.
    for folder in (_PACKAGE_DIR, _GRAPH_DIR):
        for path in sorted(folder.glob("*.py")):
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _key(name: str, description: str) -> str:
    digest = hashlib.sha256(_environment_digest().encode())
    digest.update(name.encode() + b"\0" + description.encode())
    return f"{name}-{digest.hexdigest()[:20]}"


def load_graph(
    session: InferenceSession,
    name: str,
    description: str,
    build: Callable[[], Graph],
    weights: Mapping[str, object] | None = None,
    compile_elsewhere: Callable[[], bool] | None = None,
) -> tuple[Model, bool]:
    """The model compiled from build(), taken from the store when it holds it.
    description must name everything build() depends on that the sources do
    not (dimensions, dtypes, flags). On a miss, compile_elsewhere (when given)
    may fill the store from another process and say so; the graph is then
    loaded from there, else compiled here. Returns (model, compiled_now)."""
    folder = store_dir()
    if folder is not None:
        path = folder / f"{_key(name, description)}.mef"
        stored = _load_stored(session, path, weights)
        if stored is not None:
            return stored, False
        if compile_elsewhere is not None and compile_elsewhere():
            stored = _load_stored(session, path, weights)
            if stored is not None:
                return stored, True  # compiled for this load, by the other process
    compiled = session.compile(build())
    if folder is not None:
        _export(compiled, path)
    return session.init(compiled, weights_registry=weights), True


def _load_stored(session: InferenceSession, path: Path, weights) -> Model | None:
    if not path.exists():
        return None
    try:
        model = session.init(session.compile(path), weights_registry=weights)
    except Exception as error:  # a truncated or stale file: compile anew
        log.warning("ignoring unusable compiled graph %s: %s", path, error)
        path.unlink(missing_ok=True)
        return None
    _mark_used(path)
    return model


def _export(compiled, path: Path) -> None:
    # Written beside its final name and renamed, so a process starting at the
    # same time never reads half a file.
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, staging = tempfile.mkstemp(prefix=".staging-", suffix=".mef", dir=path.parent)
        os.close(handle)
        try:
            compiled.export_mef(staging)
            os.replace(staging, path)
        finally:
            Path(staging).unlink(missing_ok=True)
        trim(path.parent, STORE_LIMIT_BYTES)
    except OSError as error:  # a read-only cache only costs the next start time
        log.warning("could not store the compiled graph in %s: %s", path.parent, error)


COMPILE_IN_PROCESS = "MAXWHISPER_COMPILE_IN_PROCESS"
# The child: the same package as the caller's (else its keys could differ and both would
# compile), then load_model, which compiles and stores every graph the model loads.
_CHILD = (
    "import sys, maxwhisper_kernels\n"
    "if maxwhisper_kernels.__file__ != sys.argv[3]:\n"
    "    sys.exit(3)\n"
    "from maxwhisper_kernels.model import load_model\n"
    "load_model(sys.argv[1], compute_type=sys.argv[2])\n"
)


def compile_in_child(source: Path, compute_type: str) -> bool:
    """Loads the model at `source` in a child process, which fills the store with its
    graphs; True when the child succeeded. The child inherits this environment (and with
    it the store's folder) and its messages go to this process's stderr."""
    if os.environ.get(COMPILE_IN_PROCESS) == "1" or store_dir() is None or not sys.executable:
        return False
    if not Path(source).exists():
        return False
    package = sys.modules[__package__].__file__
    try:
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, str(source), compute_type, package],
            env={**os.environ, COMPILE_IN_PROCESS: "1"},  # the child never starts another
            # whatever it prints goes to stderr: a caller's stdout may be a protocol or a result
            stdout=2,
        )
    except OSError as error:  # no stderr to hand it, no interpreter to start
        log.warning("could not start a process to compile in: %s", error)
        return False
    if done.returncode != 0:
        log.warning("compiling in a child process failed (exit %s): compiling here", done.returncode)
        return False
    return True


def _mark_used(path: Path) -> None:
    try:
        os.utime(path)
    except OSError:  # a read-only store: its files are simply never trimmed by us
        pass


def trim(folder: Path, limit: int) -> list[Path]:
    """Removes the stored graphs used longest ago until the rest fit in `limit` bytes;
    returns what it removed."""
    files = []
    for path in folder.glob("*.mef"):
        if path.name.startswith("."):  # another process's file still being written (_export)
            continue
        try:
            info = path.stat()
        except OSError:  # removed meanwhile by another process
            continue
        files.append((info.st_mtime, info.st_size, path))
    files.sort(reverse=True)  # most recently used first
    removed, total = [], 0
    for _, size, path in files:
        total += size
        if total > limit:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed
