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


def isa_tag() -> str:
    """The vector instruction set the kernels were compiled for here: results
    of different sets are kept apart, since tiles are chosen per set."""
    flags = cpu_facts().get("flags", [])
    if "avx512f" in flags:
        return "avx512"
    return "avx2" if "avx2" in flags else platform.machine()


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
