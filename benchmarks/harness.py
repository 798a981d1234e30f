"""Shared microbenchmark harness: interleaved timing, machine facts, MAX
graph helpers, and the results/ JSON + Markdown writers.

Contenders of one case are timed round-robin (A B C A B C ...) so that a
burst of load from another process on this shared machine hits all of them
alike; each sample repeats a call enough times to last about `target_s`, so
microsecond-scale calls are not lost in timer and scheduler noise.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from max.driver import CPU, Buffer
from max.engine import InferenceSession, Model
from max.graph import BufferType, DeviceRef, Graph, TensorType
from maxwhisper_kernels.build import kernel_library
from maxwhisper_kernels.runtime_options import apply_cpu_target
from provenance import cpu_facts, isa_tag, now, peers_held_to_target, target_isa

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = Path(__file__).resolve().parent / "results"
DEVICE = DeviceRef.CPU()

# fp32 FMA peak of the 2 cores, measured per kind of machine with a C loop of
# independent FMA chains on each core at once (BUILD.md, "Peak"), not derived
# from /proc/cpuinfo's nominal clock:
# - AMD EPYC Zen 3, AVX2: 12 chains of 8 lanes, 100-102 GFLOP/s a core
#   (2 FMA pipes x 8 lanes x 2 flops at about 3.13 GHz), 2026-12-05;
# - Intel Xeon (family 6 model 207), AVX-512: 24 chains of 16 lanes, 171 a core
#   (2 FMA pipes x 16 lanes x 2 flops at about 2.68 GHz; 93 with 8 lanes), 2026-12-05.
# Zen 4 splits 512-bit FMAs over 256-bit pipes, so its peak is taken as Zen 3's
# (not measured). Runs also record NumPy sgemm as the practical ceiling. Code compiled
# for an AVX2 CPU on the Xeon (MAXWHISPER_CPU_TARGET) has its 8-lane peak.
PEAK_GFLOPS = {("Intel", "avx512"): 342.0, ("Intel", "avx2"): 186.0}
DEFAULT_PEAK_GFLOPS = 200.0


def peak_gflops(cpu: dict, isa: str) -> float:
    """The measured 2-core fp32 FMA peak for a machine described by provenance.cpu_facts,
    running code for the vector set that opens the ISA tag ("avx2-znver3-on-avx512": avx2)."""
    isa = isa.split("-", 1)[0]
    vendor = "Intel" if "Intel" in cpu.get("model name", "") else "AMD"
    return PEAK_GFLOPS.get((vendor, isa), DEFAULT_PEAK_GFLOPS)


# Rough DRAM stream bandwidth of this VM; working sets that fit in cache can exceed it.
DRAM_GBPS = 20.0
# Idle time before each sample, so that threads still winding down from the
# previous contender's calls do not share the 2 cores with the next one.
PAUSE_S = 0.02
# OpenBLAS's threads spin for 2^28 cycles (about 0.1 s here) after each NumPy
# matmul, longer than any pause: the contender timed after NumPy's shared the
# cores with them (the linear op's 5-row vocabulary projection read 6.05 ms so,
# 2.1 ms without them). 2^4 cycles lets them sleep at once. OpenBLAS reads the
# variable when NumPy loads it, so run() restarts the benchmark with it set.
OPENBLAS_THREAD_TIMEOUT = "4"

# Loaded by path: tests/ is not a package, and putting it on sys.path would
# expose its conftest and strategies too.
_spec = importlib.util.spec_from_file_location("reference", REPO_ROOT / "tests" / "reference.py")
reference = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(reference)


@dataclass
class Contender:
    """One way of computing a case. `role` ties it to a ratio column:
    "custom", "max" (the MAX built-in bar), "numpy32" or "numpy64"."""

    name: str
    role: str
    run: Callable[[], object]
    to_numpy: Callable[[object], np.ndarray] = np.asarray
    detail: str = ""
    compile_s: float | None = None


@dataclass
class Case:
    """One shape of a kernel. `work` is flops (unit "flop") or bytes moved
    (unit "byte"); `expected` is the float64 reference output."""

    name: str
    shape: str
    work: float
    unit: str
    expected: np.ndarray
    contenders: list[Contender] = field(default_factory=list)


_session: InferenceSession | None = None


def compile_graph(
    name: str,
    input_types: Sequence[TensorType | BufferType],
    body: Callable[..., object],
    custom: bool = False,
) -> tuple[Model, float]:
    """Compiles a graph returning body(*inputs) (BufferType inputs arrive as
    buffers, updated in place); `custom` loads the project's kernel library.
    Returns the model and the seconds compiling took."""
    global _session
    if _session is None:
        apply_cpu_target()  # MAX's own ops too are compiled for MAXWHISPER_CPU_TARGET's CPU
        _session = InferenceSession(devices=[CPU()])
    extensions = [kernel_library()] if custom else []
    graph = Graph(name, input_types=list(input_types), custom_extensions=extensions)
    with graph:
        inputs = (v.buffer if isinstance(v.type, BufferType) else v.tensor for v in graph.inputs)
        graph.output(body(*inputs))
    print(f"  compiling {name} (slow only the first time; MAX caches it)", file=sys.stderr)
    start = time.perf_counter()
    model = _session.load(graph)
    return model, time.perf_counter() - start


def max_contender(
    name: str, role: str, compiled: tuple[Model, float], *arrays: np.ndarray, detail: str = ""
) -> Contender:
    """A contender timing only model.execute: inputs are copied into
    Buffers once, here."""
    model, compile_s = compiled
    buffers = [Buffer.from_numpy(np.ascontiguousarray(a)) for a in arrays]
    return Contender(
        name,
        role,
        run=lambda: model.execute(*buffers),
        to_numpy=lambda outputs: outputs[0].to_numpy(),
        detail=detail,
        compile_s=compile_s,
    )


def composite_kernels(model: Model) -> list[str]:
    """The fused `mo.composite.*` kernels MAX chose for a compiled graph:
    shows whether a built-in pattern (e.g. flash attention) was recognised."""
    return sorted(set(re.findall(r"mo\.composite\.\w+", " ".join(model.kernel_summaries))))


def _blas_info() -> list[dict]:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return [{"note": "threadpoolctl not installed; see numpy.show_config()"}]
    keys = ("internal_api", "version", "architecture", "num_threads", "threading_layer")
    return [{k: pool.get(k) for k in keys} for pool in threadpool_info()]


def _sgemm_gflops() -> float:
    """Best of a few NumPy sgemm runs: the practical fp32 ceiling right now,
    and a gauge of how busy the shared machine was."""
    a = np.random.default_rng(0).standard_normal((2048, 2048), dtype=np.float32)
    best = math.inf
    for _ in range(6):
        start = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - start)
    return 2 * 2048**3 / best / 1e9


def machine_info() -> dict:
    versions = {p: importlib.metadata.version(p) for p in ("max", "mojo", "numpy")}
    env_keys = (
        "OPENBLAS_CORETYPE", "OPENBLAS_THREAD_TIMEOUT", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
    )
    return {
        "date": now(),
        "cpu": cpu_facts(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "versions": versions,
        "blas": _blas_info(),
        "env": {k: os.environ.get(k) for k in env_keys},
        "load_avg_start": os.getloadavg()[0],
        "numpy_sgemm_gflops": round(_sgemm_gflops(), 1),
        "peak_gflops": peak_gflops(cpu_facts(), target_isa()),
        "dram_gbps": DRAM_GBPS,
    }


def _cpu_seconds() -> tuple[float, float]:
    """(busy CPU seconds of the whole VM incl. hypervisor steal, CPU seconds
    of this process); their difference over a run is what others used."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    own = os.times()
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK"), own.user + own.system


def _time_sample(run: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        run()
    return (time.perf_counter() - start) / calls


def measure(case: Case, repeats: int, target_s: float, fp32_peak: float) -> dict:
    """Times every contender of a case, interleaved, and checks its output;
    fp32_peak: the machine's GFLOP/s (machine_info's), for flop-counted cases."""
    calls = {}
    for c in case.contenders:
        c.run()  # first call: lazy allocation, page faults, thread start-up
        calls[c.name] = max(1, math.ceil(target_s / _time_sample(c.run, 1)))
    samples: dict[str, list[float]] = {c.name: [] for c in case.contenders}
    busy_start, own_start, wall_start = *_cpu_seconds(), time.perf_counter()
    with tqdm(total=repeats * len(case.contenders), desc=case.name, leave=False) as bar:
        for _ in range(repeats):
            for c in case.contenders:
                time.sleep(PAUSE_S)
                samples[c.name].append(_time_sample(c.run, calls[c.name]))
                bar.update()
    busy_end, own_end = _cpu_seconds()
    others = (busy_end - busy_start - (own_end - own_start)) / (time.perf_counter() - wall_start)
    medians = {c.role: statistics.median(samples[c.name]) for c in case.contenders}
    rows = []
    for c in case.contenders:
        median = statistics.median(samples[c.name])
        rate = case.work / median / 1e9
        peak = fp32_peak if case.unit == "flop" else DRAM_GBPS
        error = np.max(np.abs(c.to_numpy(c.run()).astype(np.float64) - case.expected))
        rows.append({
            "contender": c.name,
            "role": c.role,
            "detail": c.detail,
            "median_s": median,
            "min_s": min(samples[c.name]),
            "max_s": max(samples[c.name]),
            "calls_per_sample": calls[c.name],
            "samples": repeats,
            "rate": rate,
            "rate_unit": "GFLOP/s" if case.unit == "flop" else "GB/s",
            "peak_fraction": rate / peak,
            "speedup_vs_max": medians["max"] / median,
            # a case with no NumPy contender (an op NumPy lacks, such as erf) has no such ratio
            "speedup_vs_numpy32": medians["numpy32"] / median if "numpy32" in medians else None,
            "max_abs_err": float(error),
            "compile_s": c.compile_s,
        })
    return {"case": case.name, "shape": case.shape, "work": case.work, "unit": case.unit,
            "other_processes_cores": max(0.0, others), "results": rows}


def run(
    kernel: str,
    title: str,
    make_cases: Callable[[], list[Case]],
    notes: Sequence[str],
) -> int:
    """Command-line entry point of one kernel's benchmark."""
    # NumPy and OpenBLAS read these only as they load: set, then start again
    wanted = {"OPENBLAS_THREAD_TIMEOUT": OPENBLAS_THREAD_TIMEOUT, **peers_held_to_target()}
    if any(os.environ.get(key) is None for key in wanted):
        for key, value in wanted.items():
            os.environ.setdefault(key, value)
        os.execv(sys.executable, [sys.executable, *sys.argv])
    parser = argparse.ArgumentParser(description=f"Microbenchmark: {title}.")
    parser.add_argument("--repeats", type=int, help="samples per contender (default 40, quick 5)")
    parser.add_argument("--quick", action="store_true", help="fewer, shorter samples")
    args = parser.parse_args()
    repeats = args.repeats or (5 if args.quick else 40)
    target_s = 0.005 if args.quick else 0.05

    machine = machine_info()
    print(f"{title}: {machine['cpu'].get('model name')} [{isa_tag()}], {machine['cores']} cores, "
          f"BLAS {machine['blas']}, OPENBLAS_CORETYPE={machine['env']['OPENBLAS_CORETYPE']}, "
          f"load {machine['load_avg_start']:.2f}", file=sys.stderr)
    measured = []
    for case in make_cases():
        measured.append(measure(case, repeats, target_s, machine["peak_gflops"]))
        print(_table([measured[-1]], machine["peak_gflops"]), file=sys.stderr)
    machine["load_avg_end"] = os.getloadavg()[0]
    payload = {"kernel": kernel, "isa": isa_tag(), "title": title, "machine": machine, "notes": list(notes),
               "settings": {"repeats": repeats, "quick": args.quick, "target_sample_s": target_s},
               "cases": measured}
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / f"{kernel}-{isa_tag()}.json").write_text(json.dumps(payload, indent=1) + "\n")
    write_summary()
    return 0


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3g}"


def _percent(fraction: float) -> str:
    return f"{100 * fraction:.0f}%" if fraction >= 0.1 else f"{100 * fraction:.1g}%"


def _table(cases: list[dict], peak: float) -> str:
    """peak: the machine's fp32 GFLOP/s, applied at writing time so that results
    recorded before the peak was measured per machine read right too."""
    unit = cases[0]["results"][0]["rate_unit"]
    lines = [
        f"| case | contender | median ms | min-max ms | {unit} | % of peak "
        "| speed vs MAX built-in | speed vs NumPy f32 | max abs err |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for case in cases:
        label = f"{case['case']}<br>(others: {case['other_processes_cores']:.1f} cores)"
        for r in case["results"]:
            name = r["contender"] + (f" ({r['detail']})" if r["detail"] else "")
            lines.append(
                f"| {label} | {name} | {_ms(r['median_s'])} "
                f"| {_ms(r['min_s'])}-{_ms(r['max_s'])} | {r['rate']:.3g} "
                f"| {_percent(r['rate'] / peak if unit == 'GFLOP/s' else r['peak_fraction'])} "
                f"| {r['speedup_vs_max']:.2f}x "
                f"| {'-' if r['speedup_vs_numpy32'] is None else format(r['speedup_vs_numpy32'], '.2f') + 'x'} "
                f"| {r['max_abs_err']:.1e} |"
            )
            label = case["case"]
    return "\n".join(lines)


def _section(payload: dict) -> str:
    m = payload["machine"]
    blas = ", ".join(
        " ".join(str(p.get(k)) for k in ("internal_api", "version", "architecture"))
        + f" ({p.get('num_threads')} threads)" for p in m["blas"]
    )
    shapes = "; ".join(f"{c['case']}: {c['shape']}" for c in payload["cases"])
    cpu = m["cpu"]
    peak = peak_gflops(cpu, payload.get("isa", ""))
    header = [
        f"## {payload['title']} [{payload.get('isa', '?')}]",
        "",
        f"{m['date']}, {cpu.get('model name')} (family {cpu.get('cpu family')} "
        f"model {cpu.get('model')}, {'/'.join(cpu.get('flags', []))}), {m['cores']} cores; "
        f"max {m['versions']['max']}, mojo {m['versions']['mojo']}, numpy {m['versions']['numpy']} "
        f"with {blas}; OPENBLAS_CORETYPE={m['env']['OPENBLAS_CORETYPE']}; "
        f"load average {m['load_avg_start']:.2f} -> {m['load_avg_end']:.2f}; "
        f"fp32 peak {peak:g} GFLOP/s; NumPy sgemm 2048^3 at the start: {m['numpy_sgemm_gflops']} GFLOP/s; "
        f"{payload['settings']['repeats']} interleaved samples per contender"
        + (" (--quick)" if payload["settings"]["quick"] else "") + ".",
        "",
        f"Shapes: {shapes}.",
        "",
    ]
    notes = [f"- {n}" for n in payload["notes"]]
    return "\n".join(header + [_table(payload["cases"], peak), ""] + notes) + "\n"


def write_summary() -> None:
    """Regenerates results/README.md from every results/*.json."""
    payloads = [json.loads(p.read_text()) for p in sorted(RESULTS_DIR.glob("*.json"))]
    payloads = [p for p in payloads if "kernel" in p]  # e2e*.json: the end-to-end harness's
    intro = (
        "# Kernel microbenchmarks\n\n"
        "Generated by `benchmarks/run_all.py` (or one `benchmarks/bench_*.py`); do not edit.\n"
        "Times are medians over interleaved samples of the steady-state call "
        "(MAX: `model.execute` on inputs already in Buffers, compile excluded). "
        "% of peak: of the 2 cores' fp32 FMA peak measured for that kind of machine with "
        f"independent FMA chains (each header says which: {DEFAULT_PEAK_GFLOPS:g} GFLOP/s on AMD, "
        f"{PEAK_GFLOPS[('Intel', 'avx512')]:g} on the Intel AVX-512 machines, "
        f"{PEAK_GFLOPS[('Intel', 'avx2')]:g} for AVX2 code run there) or of ~{DRAM_GBPS:g} "
        "GB/s DRAM; the NumPy sgemm rate in each header is the practical ceiling of that run. "
        "Speed ratios are baseline time / "
        "contender time (above 1 = faster than the baseline). max abs err is against the float64 "
        "NumPy reference in tests/reference.py. \"others\" is the CPU other processes "
        "(and the hypervisor) took while the case ran, out of 2 cores: this machine is "
        "shared, and a busy core slows every parallel contender. Runs since 2026-12-03 06:15 UTC "
        "set OPENBLAS_THREAD_TIMEOUT=4 (the header's env says so): before, OpenBLAS's threads "
        "still spun after NumPy's samples and slowed the contender timed next. A tag such as "
        "avx2-znver3-on-avx512 marks a run of code compiled for another CPU than the host's "
        "(MAXWHISPER_CPU_TARGET; NumPy and OpenBLAS held to the same vectors): that vector set's "
        "code paths, with the host's caches and memory.\n"
    )
    RESULTS_DIR.joinpath("README.md").write_text(
        intro + "".join("\n" + _section(p) for p in payloads)
    )
