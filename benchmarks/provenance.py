"""Where a benchmark result came from: commit, date, CPU model and vector ISA, load.
No MAX import, so benchmarks that only drive the package (server, batching, corpus)
can use it as well as the kernel harness."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def commit() -> str:
    """The checkout's short commit, with "+dirty" when tracked files differ from it."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True
        ).stdout.strip()

    short = git("rev-parse", "--short", "HEAD") or "unknown"
    return short + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def cpu_facts() -> dict:
    """/proc/cpuinfo's model name, family and model, and the vector flags the kernels care about."""
    facts: dict = {}
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key in ("model name", "cpu family", "model") and key not in facts:
            facts[key] = value
        elif key == "flags" and "flags" not in facts:
            flags = set(value.split())
            wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")
            facts["flags"] = [f for f in wanted if f in flags]
    return facts


# MAXWHISPER_CPU_TARGET (python/maxwhisper_kernels/runtime_options.py) compiles the kernels
# for another CPU than this one; these are the targets the benchmarks know the vector set of.
AVX2_TARGETS = ("haswell", "broadwell", "skylake", "znver1", "znver2", "znver3", "x86-64-v3")
AVX512_TARGETS = ("skylake-avx512", "icelake-server", "sapphirerapids", "znver4", "znver5", "x86-64-v4")


def cpu_target() -> str:
    return os.environ.get("MAXWHISPER_CPU_TARGET", "").strip()


def host_isa() -> str:
    flags = cpu_facts().get("flags", [])
    if "avx512f" in flags:
        return "avx512"
    return "avx2" if "avx2" in flags else platform.machine()


def target_isa() -> str:
    """The vector set the kernels are compiled for: this CPU's, or MAXWHISPER_CPU_TARGET's."""
    target = cpu_target()
    if not target:
        return host_isa()
    if target in AVX2_TARGETS:
        return "avx2"
    if target in AVX512_TARGETS:
        return "avx512"
    raise SystemExit(f"MAXWHISPER_CPU_TARGET={target!r}: the benchmarks know no vector set for it "
                     f"(add it to benchmarks/provenance.py)")


def isa_tag() -> str:
    """The vector instruction set the kernels were compiled for here: results
    of different sets are kept apart, since tiles are chosen per set. Code compiled
    for another CPU (MAXWHISPER_CPU_TARGET) is tagged apart from a real machine of
    that kind, e.g. avx2-znver3-on-avx512: its caches and memory are this host's."""
    if cpu_target():
        return f"{target_isa()}-{cpu_target()}-on-{host_isa()}"
    return host_isa()


def peers_held_to_target() -> dict[str, str]:
    """Environment variables that make the other libraries in a run (CTranslate2 and its
    oneDNN, NumPy, OpenBLAS, PyTorch) use no wider vectors than MAXWHISPER_CPU_TARGET's,
    so that a run on this machine stands for one on a machine of the target's kind. An AMD
    target also turns Intel MKL off in CTranslate2, which only uses MKL on Intel CPUs."""
    if not cpu_target() or target_isa() != "avx2" or host_isa() != "avx512":
        return {}
    env = {
        "CT2_FORCE_CPU_ISA": "AVX2",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",  # NumPy 2.4's AVX-512 groups
        "OPENBLAS_CORETYPE": "Haswell",
        "ATEN_CPU_CAPABILITY": "avx2",
    }
    if cpu_target().startswith("znver"):
        env["CT2_USE_MKL"] = "0"
    return env


def now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def header() -> str:
    """One sentence for a result file: commit, date, CPU and ISA, cores, load average."""
    cpu = cpu_facts()
    return (
        f"At {commit()}, {now()}; {cpu.get('model name', platform.processor())} "
        f"[{isa_tag()}: {'/'.join(cpu.get('flags', []))}], {os.cpu_count()} cores, "
        f"1-minute load average {os.getloadavg()[0]:.1f} at the start"
    )
