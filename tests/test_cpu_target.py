"""MAXWHISPER_CPU_TARGET (runtime_options): kernels compiled for another CPU than this one.

Code for an AVX2 CPU (x86-64-v3: AVX2, FMA, F16C) runs on any newer x86 machine, so these
tests run the kernels' AVX2 paths even where CI has AVX-512, and check them against the
NumPy references. That the compile really targeted AVX2 is read from the machine code
itself: the stored graphs are disassembled and must use no 512-bit register."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from maxwhisper_kernels import graph_store, runtime_options

TESTS_DIR = Path(__file__).resolve().parent

x86_with_avx2 = pytest.mark.skipif(
    platform.machine() != "x86_64" or "avx2" not in Path("/proc/cpuinfo").read_text(),
    reason="x86-64-v3 code needs an x86-64 CPU with AVX2",
)

# Four kernels, each on a shape that takes its vector loops, against tests/reference.py.
KERNELS_ON_TARGET = """
import sys
import numpy as np
sys.path.insert(0, {tests!r})
import reference
from maxwhisper_kernels import ops
from maxwhisper_kernels.int8_layout import pack_int8_matrix

rng = np.random.default_rng(7)
x = rng.standard_normal((37, 384)).astype(np.float32)
w, b = rng.standard_normal(384).astype(np.float32), rng.standard_normal(384).astype(np.float32)
err = np.abs(ops.layer_norm(x, w, b) - reference.layer_norm(x, w, b)).max()
assert err < 1e-4, ("layer_norm", err)

q, k, v = (rng.standard_normal((1, 6, 100, 64)).astype(np.float32) for _ in range(3))
err = np.abs(ops.attention(q, k, v, causal=True) - reference.attention(q, k, v, causal=True)).max()
assert err < 1e-4, ("attention", err)

weight = rng.standard_normal((200, 384)).astype(np.float16)
expected = x.astype(np.float64) @ weight.astype(np.float64).T + b[:200]
err = np.abs(ops.linear(x, weight, b[:200]) - expected).max() / np.abs(expected).max()
assert err < 1e-5, ("linear", err)

values = rng.integers(-127, 128, (96, 384)).astype(np.int8)
scale = rng.uniform(1e-3, 1e-2, 96).astype(np.float32)
got = ops.matmul_int8(x, pack_int8_matrix(values), scale, b[:96])
expected = reference.matmul_int8(x, values, scale, b[:96])
np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
print("kernels exact on target")
"""


def _machine_code(mef: Path) -> str:
    """The disassembly of the shared object a MEF file carries (from its ELF header on)."""
    data = mef.read_bytes()
    start = data.find(b"\x7fELF")
    assert start >= 0, f"{mef.name}: no ELF object inside"
    elf = mef.with_suffix(".so")
    elf.write_bytes(data[start:])
    done = subprocess.run(["objdump", "-d", str(elf)], capture_output=True, text=True, check=True)
    return done.stdout


@x86_with_avx2
@pytest.mark.skipif(shutil.which("objdump") is None, reason="objdump (binutils) reads the machine code")
def test_kernels_compiled_for_an_avx2_target_are_avx2_code_and_exact(tmp_path):
    env = dict(os.environ, MAXWHISPER_CPU_TARGET="x86-64-v3", MAXWHISPER_GRAPH_CACHE=str(tmp_path))
    done = subprocess.run(
        [sys.executable, "-c", KERNELS_ON_TARGET.format(tests=str(TESTS_DIR))],
        env=env, capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "kernels exact on target" in done.stdout
    stored = sorted(tmp_path.glob("*.mef"))
    assert len(stored) == 4, [p.name for p in stored]
    for mef in stored:
        code = _machine_code(mef)
        assert "%ymm" in code, f"{mef.name}: no 256-bit vector code at all"
        assert "%zmm" not in code, f"{mef.name}: 512-bit registers in code compiled for x86-64-v3"


def test_an_unknown_cpu_name_is_refused_before_anything_compiles():
    env = dict(os.environ, MAXWHISPER_CPU_TARGET="pentium-9000", MAXWHISPER_GRAPH_CACHE="")
    done = subprocess.run(
        [sys.executable, "-c", "from maxwhisper_kernels import ops; import numpy as np; "
         "ops.layer_norm(np.ones((2, 8), np.float32), np.ones(8, np.float32), np.zeros(8, np.float32))"],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode != 0
    assert "CpuTargetError" in done.stderr
    assert "MAXWHISPER_CPU_TARGET='pentium-9000'" in done.stderr and "--print-supported-cpus" in done.stderr


def test_stored_graphs_are_kept_apart_per_target(monkeypatch):
    keys = {}
    for target in ("", "x86-64-v3", "znver3"):
        monkeypatch.setenv(runtime_options.CPU_TARGET_VARIABLE, target)
        graph_store._environment_digest.cache_clear()
        keys[target] = graph_store._key("encoder", "same description")
    graph_store._environment_digest.cache_clear()
    assert len(set(keys.values())) == 3, keys
