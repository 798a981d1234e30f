"""Compile-checks the kernels' GPU branches without a GPU.

For each op with a GPU branch, a small Mojo harness calls the op's
`execute[target="gpu"]` on device buffers, and `mojo build
--target-accelerator ARCH --emit asm` code-generates it: PTX for sm_90 /
sm_80, AMD GPU code for gfx942, one file per kernel beside the output.
Nothing runs: the build only proves that the GPU branch type-checks,
elaborates and lowers for that architecture. A build that succeeds but
emits no kernel file counts as a failure (a branch that only raises).

Then the whole tiny.en graphs (encoder, decoder step in float16 and int8,
alignment decoder) are compiled for the same architecture on MAX's
compile-only virtual device, in a child process
(maxwhisper_kernels.gpu_graph_check); `--kernels-only` skips that part.

Results are cached under ~/.cache/maxwhisper/gpu_check/<arch>/<op>-<hash>/, the hash
covering the compiler version, every kernel source and the harness (for the
graphs: the MAX version and the Python that builds them too), so an
unchanged tree re-checks in milliseconds. Run
`python -m maxwhisper_kernels.gpu_check [--arch sm_90 sm_80 gfx942]`;
it prints one line per op and graph and exits 1 if any failed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from maxwhisper_kernels.build import REPO_ROOT, _compiler_version, _sources, find_mojo

ARCHS = ("sm_90", "sm_80", "gfx942")

# In the user's cache rather than build/, so that a fresh clone (CI) of an
# unchanged tree finds its results: the key names everything they depend on.
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "maxwhisper" / "gpu_check"

_PRELUDE = """\
from extensibility import InputTensor, OutputTensor, StaticTensorSpec
from max.gpu.host import DeviceContext
from std.utils.index import IndexList

comptime F = DType.float32
comptime I = DType.int64
comptime s1 = StaticTensorSpec[F, 1].get_unknown()
comptime s2 = StaticTensorSpec[F, 2].get_unknown()
comptime s4 = StaticTensorSpec[F, 4].get_unknown()
comptime is1 = StaticTensorSpec[I, 1].get_unknown()
comptime is2 = StaticTensorSpec[I, 2].get_unknown()
"""


def _tensor(name: str, kind: str, shape: tuple[int, ...], dtype: str = "F") -> str:
    """Harness lines for one device buffer (dtype F: float32, I: int64)
    wrapped as an op's tensor; the buffer stays a local of main so it
    outlives the call."""
    dims = ", ".join(map(str, shape))
    size = " * ".join(map(str, shape))
    spec = ("s" if dtype == "F" else "is") + str(len(shape))
    return (
        f"    var {name}_buf = ctx.enqueue_create_buffer[{dtype}]({size})\n"
        f"    var {name} = {kind}[static_spec={spec}]({name}_buf.unsafe_ptr(), IndexList[{len(shape)}]({dims}))\n"
    )


# Each body runs inside `def main() raises:` with `ctx` in scope; shapes are
# Whisper's (tiny.en width 384), symbolic in the tensor specs as in a graph.
HARNESSES = {
    "layernorm": (
        "from kernels.layernorm import LayerNorm, AddLayerNorm",
        _tensor("x", "InputTensor", (4, 384))
        + _tensor("r", "InputTensor", (4, 384))
        + _tensor("y", "OutputTensor", (4, 384))
        + _tensor("s", "OutputTensor", (4, 384))
        + _tensor("g", "InputTensor", (384,))
        + _tensor("b", "InputTensor", (384,))
        + "    LayerNorm.execute[target=\"gpu\", eps=1e-5](y, x, g, b, ctx)\n"
        + "    AddLayerNorm.execute[target=\"gpu\", eps=1e-5](y, s, x, r, g, b, ctx)\n",
    ),
    # Encoder self-attention (1500 rows: the tiled kernel) and cross
    # attention of 5 beams sharing one audio's keys (the split kernel); the
    # head-width dispatch instantiates every kernel either way.
    "attention": (
        "from kernels.attention import Attention",
        _tensor("q", "InputTensor", (1, 6, 1500, 64))
        + _tensor("qb", "InputTensor", (5, 6, 1, 64))
        + _tensor("k", "InputTensor", (1, 6, 1500, 64))
        + _tensor("v", "InputTensor", (1, 6, 1500, 64))
        + _tensor("o", "OutputTensor", (1, 6, 1500, 64))
        + _tensor("ob", "OutputTensor", (5, 6, 1, 64))
        + _tensor("sc", "InputTensor", (1,))
        + "    Attention.execute[target=\"gpu\", causal=False, bf16=False](o, q, k, v, sc, ctx)\n"
        + "    Attention.execute[target=\"gpu\", causal=True, bf16=False](ob, qb, k, v, sc, ctx)\n",
    ),
    # A decoder step of 5 beams over an in-place cache of 448 positions.
    "cached_attention": (
        "from kernels.kv_cache import CachedAttention\nfrom extensibility import _MutableInputTensor",
        _tensor("q", "InputTensor", (5, 6, 1, 64))
        + _tensor("k", "InputTensor", (5, 6, 1, 64))
        + _tensor("v", "InputTensor", (5, 6, 1, 64))
        + _tensor("kc", "_MutableInputTensor", (5, 6, 448, 64))
        + _tensor("vc", "_MutableInputTensor", (5, 6, 448, 64))
        + _tensor("slots", "InputTensor", (5,), "I")
        + _tensor("lineage", "InputTensor", (5, 10), "I")
        + _tensor("sc", "InputTensor", (1,))
        + _tensor("o", "OutputTensor", (5, 6, 1, 64))
        + "    CachedAttention.execute[target=\"gpu\"](o, q, k, v, kc, vc, slots, lineage, sc, ctx)\n",
    ),
    # One 30-s window of audio (3000 frames), 80 mel bins.
    "log_mel": (
        "from kernels.log_mel import LogMel",
        _tensor("audio", "InputTensor", (480000,))
        + _tensor("filters", "InputTensor", (80, 201))
        + _tensor("out", "OutputTensor", (80, 3000))
        + "    LogMel.execute[target=\"gpu\"](out, audio, filters, ctx)\n",
    ),
    # A 5-beam decoder step through the vocabulary projection, in each
    # weight type the default decoder stores (float32, float16).
    "linear": (
        "from kernels.linear import Linear\nfrom extensibility import StaticTensorSpec as S",
        _tensor("x", "InputTensor", (5, 384))
        + _tensor("w", "InputTensor", (51864, 384))
        + _tensor("b", "InputTensor", (51864,))
        + _tensor("y", "OutputTensor", (5, 51864))
        + "    var wh_buf = ctx.enqueue_create_buffer[DType.float16](51864 * 384)\n"
        + "    var wh = InputTensor[static_spec=S[DType.float16, 2].get_unknown()](wh_buf.unsafe_ptr(), IndexList[2](51864, 384))\n"
        + "    Linear.execute[target=\"gpu\"](y, x, w, b, ctx)\n"
        + "    Linear.execute[target=\"gpu\"](y, x, wh, b, ctx)\n",
    ),
}


@dataclass
class Result:
    op: str
    arch: str
    ok: bool
    message: str
    asm_dir: Path


def harness_source(op: str) -> str:
    imports, body = HARNESSES[op]
    return f"{imports}\n{_PRELUDE}\n\ndef main() raises:\n    var ctx = DeviceContext()\n{body}"


def _key(mojo: Path, op: str, arch: str) -> str:
    digest = hashlib.sha256(_compiler_version(mojo).encode() + b"\0" + arch.encode())
    for path in _sources():
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update(harness_source(op).encode())
    return digest.hexdigest()[:16]


def _kernel_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*") if p.suffix in (".ptx", ".amdgcn") or "amdgcn" in p.name)


def check(op: str, arch: str, mojo: Path | None = None) -> Result:
    """Compiles one op's GPU branch for arch (cached by source hash)."""
    mojo = mojo or find_mojo()
    out = CACHE_DIR / arch / f"{op}-{_key(mojo, op, arch)}"
    if (out / "OK").exists():
        return Result(op, arch, True, "OK (cached)", out)
    with tempfile.TemporaryDirectory(prefix=f"gpu-check-{op}-") as tmp:
        harness = Path(tmp) / f"check_{op}.mojo"
        harness.write_text(harness_source(op))
        asm = Path(tmp) / "asm"
        asm.mkdir()
        done = subprocess.run(
            [str(mojo), "build", "--target-accelerator", arch, "--emit", "asm",
             "-I", str(REPO_ROOT), str(harness), "-o", str(asm / f"{op}.s")],
            capture_output=True, text=True,
        )
        if done.returncode != 0:
            # Keep the compiler's own words, minus its crash-reporter noise.
            lines = [ln for ln in (done.stderr + done.stdout).splitlines() if "Crashpad" not in ln]
            return Result(op, arch, False, "\n".join(lines).strip(), out)
        kernels = _kernel_files(asm)
        if not kernels:
            return Result(op, arch, False, "compiled, but no GPU kernel was emitted", out)
        staging = out.with_name(out.name + ".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(asm, staging)
        (staging / "OK").write_text(f"{len(kernels)} kernels\n")
        shutil.rmtree(out, ignore_errors=True)
        staging.rename(out)
    return Result(op, arch, True, f"OK ({len(kernels)} kernels)", out)


_PACKAGE = Path(__file__).resolve().parent
# What the graphs check compiles besides the kernels: the graph builders.
_GRAPH_SOURCES = (REPO_ROOT / "graph", _PACKAGE / "custom_ops.py", _PACKAGE / "gpu_graph_check.py")


def _graphs_key(mojo: Path, arch: str) -> str:
    digest = hashlib.sha256(_compiler_version(mojo).encode() + metadata.version("max").encode() + arch.encode())
    files = list(_sources())
    for source in _GRAPH_SOURCES:
        files += sorted(source.glob("*.py")) if source.is_dir() else [source]
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def check_graphs(arch: str, mojo: Path | None = None) -> Result:
    """Compiles the tiny.en graphs for arch on the virtual device (cached)."""
    out = CACHE_DIR / arch / f"graphs-{_graphs_key(mojo or find_mojo(), arch)}"
    if (out / "OK").exists():
        return Result("graphs", arch, True, "OK (cached)\n" + (out / "OK").read_text().strip(), out)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "maxwhisper_kernels.gpu_graph_check", arch], capture_output=True, text=True
    )
    report = done.stdout.strip() or done.stderr.strip()[-4000:]
    if done.returncode != 0:
        # Every graph can print OK and the child still fail (a crash or a kill at
        # exit, seen once in a cold fresh clone): say how it ended and its last words.
        tail = done.stderr.strip()[-2000:] if done.stdout.strip() else ""
        ending = f"the check process exited with code {done.returncode}"
        return Result("graphs", arch, False, "\n".join(filter(None, [ending, report, tail])), out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "OK").write_text(report + "\n")
    return Result("graphs", arch, True, f"OK ({time.perf_counter() - start:.0f} s)\n{report}", out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", nargs="+", default=["sm_90"], choices=ARCHS)
    parser.add_argument("--jobs", type=int, default=2, help="parallel compiler processes")
    parser.add_argument("--kernels-only", action="store_true", help="skip the whole-graph check")
    args = parser.parse_args(argv)
    mojo = find_mojo()
    jobs = [(op, arch) for arch in args.arch for op in HARNESSES]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(lambda j: check(j[0], j[1], mojo), jobs))
    if not args.kernels_only:
        # One child process at a time: each compiles four graphs on all cores.
        results += [check_graphs(arch, mojo) for arch in args.arch]
    for res in results:
        first, _, rest = res.message.partition("\n")
        print(f"{res.arch:7s} {res.op:18s} {first if res.ok else 'FAILED'}")
        detail = rest if res.ok else res.message
        if detail:
            print("    " + detail.replace("\n", "\n    "))
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
