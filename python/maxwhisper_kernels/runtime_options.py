"""Process-wide MAX settings that only take effect when made before MAX acts on them:
how long its CPU worker threads busy-wait (before the CPU device exists) and which CPU
its kernels are compiled for (before the first compile, cpu_target below).

Busy-waiting. MAX reads this setting in two places that must agree: the async runtime reads the variable
MODULAR_THREAD_BUSY_WAIT_US when `driver.CPU()` makes the device, and libmax reads its
config key runtime.thread_busy_wait_time_us (variable MODULAR_RUNTIME_THREAD_BUSY_WAIT_TIME_US)
when an InferenceSession asks for the device. When they differ, the process aborts
("getOrCreateCPUDevice called requesting different options"), so both are set to one value.

Why not MAX's default: with it, after a transcription returned, both worker threads of a
2-core machine kept spinning (clock_gettime in a loop) for seconds, longer after longer jobs
(about 6 s after an int8 transcription of a 292 s clip), and between decoder steps they
competed with the Python thread that picks tokens. With 10 us, the same transcriptions took
the same or less wall time with 15-35 % less CPU, and the threads sleep once a job ends
(BUILD.md, Traps, has the table). 0 (sleep at once) made a 292 s clip 1.6x
slower: every parallel kernel then wakes its threads through the kernel.
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess
import sys

BUSY_WAIT_US = "10"
_RUNTIME_VARIABLE = "MODULAR_THREAD_BUSY_WAIT_US"
_CONFIG_VARIABLE = "MODULAR_RUNTIME_THREAD_BUSY_WAIT_TIME_US"


def set_thread_busy_wait() -> None:
    """Sets both variables to the caller's value when one is set (so they agree), else to
    BUSY_WAIT_US. Does nothing once MAX is imported: a device may exist already, and one
    asked for with other options aborts the process."""
    if "max._core" in sys.modules:
        return
    value = os.environ.get(_RUNTIME_VARIABLE) or os.environ.get(_CONFIG_VARIABLE) or BUSY_WAIT_US
    os.environ.setdefault(_RUNTIME_VARIABLE, value)
    os.environ.setdefault(_CONFIG_VARIABLE, value)


CPU_TARGET_VARIABLE = "MAXWHISPER_CPU_TARGET"


class CpuTargetError(ValueError):
    """MAXWHISPER_CPU_TARGET names no CPU that LLVM knows; the message says which."""


def cpu_target() -> str:
    """The LLVM CPU name in MAXWHISPER_CPU_TARGET ("" when unset: this machine's CPU).

    With a name, MAX compiles every CPU kernel, ours and its own, for that CPU: the
    kernels' compile-time choices (vector width, register tiles, VNNI or AVX2 int8 paths)
    are then that CPU's. It serves two purposes: code for an older CPU (znver3, haswell)
    runs and is measured on a newer one, which is how the AVX2 paths are benchmarked and
    tested on an AVX-512 machine; and MAX's own compile cache can be filled for machines
    of another kind. Code that runs here must only use instructions this machine has:
    naming a newer CPU than the host's makes kernels die with an illegal instruction."""
    return os.environ.get(CPU_TARGET_VARIABLE, "").strip()


@functools.lru_cache(maxsize=1)
def _known_cpus() -> frozenset[str]:
    """The CPU names the Mojo compiler accepts for this machine's architecture."""
    from .build import find_mojo

    triple = f"{platform.machine()}-unknown-linux-gnu"
    listing = subprocess.run(
        [str(find_mojo()), "build", "--print-supported-cpus", "--target-triple", triple],
        capture_output=True,
        text=True,
    ).stdout
    # a heading line ("Available CPUs for target ...:") and then one indented name a line
    return frozenset(line.strip() for line in listing.splitlines() if line.startswith(" ") and line.strip())


def apply_cpu_target() -> None:
    """Points MAX's CPU code generation at cpu_target(), before anything is compiled.
    CpuTargetError for a name the compiler does not know: MAX itself takes any string
    there without a word, so a typo would only show as a build unlike the one asked for."""
    target = cpu_target()
    if not target:
        return
    known = _known_cpus()
    if known and target not in known:
        raise CpuTargetError(
            f"{CPU_TARGET_VARIABLE}={target!r} is not a CPU the Mojo compiler knows for "
            f"{platform.machine()}; `mojo build --print-supported-cpus --target-triple "
            f"{platform.machine()}-unknown-linux-gnu` lists them (e.g. znver3, haswell, x86-64-v3)"
        )
    from max import driver

    driver.set_virtual_cpu_target(target)
