"""GPU benchmark: the project's kernels against the same computation from MAX
built-in ops on the same GPU, then end to end against openai-whisper on
PyTorch (fp16) when it is importable.

    .venv/bin/python benchmarks/bench_gpu.py [--quick]

Writes benchmarks/results/gpu-<device>.md. On a machine where MAX finds no
GPU it says so and exits with status 2 (nothing to measure; the GPU code is
compile-checked by `python -m maxwhisper_kernels.gpu_check` instead).

Kernel timings: each graph runs `reps` times back to back between two
device synchronisations; the figure is the median over rounds, contenders
interleaved round by round. Attention flops count 4 * Tq * Tk * D per head
(non-causal cases only); bandwidth figures count each operand once.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from max.driver import CPU, accelerator_count

RESULTS = Path(__file__).resolve().parent / "results"


def _timed(run, sync, reps: int, rounds: int) -> float:
    """Median seconds per call."""
    run()
    sync()
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(reps):
            run()
        sync()
        samples.append((time.perf_counter() - start) / reps)
    return statistics.median(samples)


def kernel_cases(quick: bool):
    """(name, graph body ours, graph body MAX built-ins, input arrays, work, unit)."""
    from max.graph import ops as g

    from maxwhisper_kernels import custom_ops

    rng = np.random.default_rng(0)
    f32 = np.float32

    def attention_builtin(q, k, v, scale):
        return g.softmax(g.matmul(q, k.transpose(2, 3)) * scale) @ v

    cases = []
    for label, b, bk, tq, tk in (("encoder 1500x1500", 1, 1, 1500, 1500), ("cross, 5 beams", 5, 1, 1, 1500)):
        q = rng.standard_normal((b, 6, tq, 64)).astype(f32)
        k, v = (rng.standard_normal((bk, 6, tk, 64)).astype(f32) for _ in range(2))
        scale = np.array([0.125], f32)
        # MAX's batched matmul has no key rows shared by beams: no built-in contender there.
        builtin = attention_builtin if bk == b else None
        cases.append((f"attention {label}", lambda q, k, v, s: custom_ops.attention(q, k, v, s), builtin,
                      (q, k, v, scale), 4 * b * 6 * tq * tk * 64, "GFLOP/s"))
    for rows in (1500, 5):
        x = rng.standard_normal((rows, 384)).astype(f32)
        w, bias = rng.standard_normal(384).astype(f32), rng.standard_normal(384).astype(f32)
        cases.append((f"layernorm {rows}x384", custom_ops.layer_norm,
                      lambda x, w, b: g.layer_norm(x, w, b, 1e-5), (x, w, bias), 2 * x.nbytes, "GB/s"))
    for dtype in (np.float16, np.float32):
        x = rng.standard_normal((5, 384)).astype(f32)
        w = rng.standard_normal((51864, 384)).astype(dtype)
        bias = np.zeros(51864, f32)
        cases.append((f"linear 5x384 @ 51864x384 {np.dtype(dtype).name}",
                      lambda x, w, b: custom_ops.linear(x, w, b),
                      lambda x, w, b: g.matmul(x, g.cast(w, x.dtype).transpose(0, 1)) + b,
                      (x, w, bias), w.nbytes, "GB/s"))
    if not quick:
        from maxwhisper_kernels.mel_filters import mel_filters

        audio = (rng.standard_normal(16000 * 30) * 0.1).astype(f32)
        cases.append(("log_mel 30 s", custom_ops.log_mel, None, (audio, mel_filters(80)), audio.nbytes, "GB/s"))
    return cases


def _model(session, device_ref, name, body, arrays):
    from max.dtype import DType
    from max.graph import Graph, TensorType

    from maxwhisper_kernels.build import kernel_library

    types = [TensorType(DType.from_numpy(a.dtype), list(a.shape), device_ref) for a in arrays]
    graph = Graph(name, input_types=types, custom_extensions=[kernel_library()])
    with graph:
        graph.output(body(*(value.tensor for value in graph.inputs)))
    return session.load(graph)


def bench_kernels(gpu, quick: bool) -> list[str]:
    from max.engine import InferenceSession
    from max.graph import DeviceRef

    from maxwhisper_kernels.devices import to_device

    session = InferenceSession(devices=[CPU(), gpu])
    device_ref = DeviceRef.from_device(gpu)
    lines = ["| kernel | ours | MAX built-ins | ours / MAX | ours |", "|---|---|---|---|---|"]
    for i, (name, ours, builtin, arrays, work, unit) in enumerate(kernel_cases(quick)):
        inputs = [to_device(a, gpu) for a in arrays]
        models = {"ours": _model(session, device_ref, f"ours{i}", ours, arrays)}
        if builtin is not None:
            models["max"] = _model(session, device_ref, f"max{i}", builtin, arrays)
        times = {key: _timed(lambda m=m: m.execute(*inputs), gpu.synchronize, 20, 5 if quick else 15)
                 for key, m in models.items()}
        rate = work / times["ours"] / 1e9
        max_t = times.get("max")
        lines.append(
            f"| {name} | {times['ours'] * 1e6:.1f} us | "
            + (f"{max_t * 1e6:.1f} us | {max_t / times['ours']:.2f}x" if max_t else "n/a | n/a")
            + f" | {rate:.1f} {unit} |"
        )
        print(lines[-1], flush=True)
    return lines


def bench_end_to_end(quick: bool) -> list[str]:
    from maxwhisper_kernels.audio import load_audio
    from maxwhisper_kernels.model import load_model
    from maxwhisper_kernels.transcribe import transcribe_batch

    dev = Path(__file__).resolve().parents[2] / "shared" / "audio" / "dev"
    clips = sorted(dev.glob("*.flac"))
    if not clips:
        return [f"(end to end skipped: no clips under {dev})"]
    audio = [load_audio(p) for p in clips]
    seconds = sum(len(a) for a in audio) / 16000
    lines = [f"{len(audio)} dev clips, {seconds:.0f} s of speech; each system transcribes the first clip once "
             "before the clock starts (CUDA context, cuBLAS handles, lazily built graphs).", "",
             "| model | batch | maxwhisper x real time | openai-whisper fp16 x real time |", "|---|---|---|---|"]
    reference = _openai_whisper()
    for name in ("tiny.en",) if quick else ("tiny.en", "base"):
        model = load_model(name, device="gpu")
        transcribe_batch(model, audio[:1], temperature=0.0)
        theirs = reference(name, audio, seconds) if reference else None
        for batch in (1, 16, 64):
            start = time.perf_counter()
            for i in range(0, len(audio), batch):
                transcribe_batch(model, audio[i : i + batch], temperature=0.0)
            ours = seconds / (time.perf_counter() - start)
            shown = f"{theirs:.0f}x" if theirs and batch == 1 else "n/a"
            lines.append(f"| {name} | {batch} | {ours:.0f}x | {shown} |")
            print(lines[-1], flush=True)
    return lines


def _openai_whisper():
    """openai-whisper on CUDA (float32 weights, fp16 activations: what its
    load_model and transcribe(fp16=True) do), one file at a time since it has
    no batched transcribe; or None when torch, whisper or CUDA is missing.
    Its model is built from the same checkpoint as ours: no download."""
    try:
        import torch
        import whisper  # noqa: F401 - only whether it is there
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    from openai_model import openai_whisper_model

    from maxwhisper_kernels.weights import load_checkpoint

    def run(name: str, audio, seconds: float) -> float:
        model = openai_whisper_model(load_checkpoint(name)).cuda()
        model.transcribe(audio[0], fp16=True, temperature=0.0)
        torch.cuda.synchronize()
        start = time.perf_counter()
        for a in audio:
            model.transcribe(a, fp16=True, temperature=0.0)
        torch.cuda.synchronize()
        return seconds / (time.perf_counter() - start)

    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, tiny.en only, no log_mel")
    args = parser.parse_args(argv)
    if accelerator_count() == 0:
        print("bench_gpu: MAX finds no GPU on this machine (accelerator_count() == 0); nothing to measure. "
              "The GPU code is compile-checked by `python -m maxwhisper_kernels.gpu_check`.", file=sys.stderr)
        return 2
    from maxwhisper_kernels.devices import gpu_device

    gpu = gpu_device()
    label = "".join(c if c.isalnum() else "-" for c in gpu.model_name or gpu.architecture_name).strip("-").lower()
    header = [f"# GPU benchmark on {gpu.model_name} ({gpu.architecture_name})", "",
              f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
              f"{'--quick' if args.quick else 'full run'}; medians, contenders interleaved.", ""]
    lines = header + ["## Kernels", ""] + bench_kernels(gpu, args.quick)
    lines += ["", "## End to end (dev clips, greedy)", ""] + bench_end_to_end(args.quick)
    out = RESULTS / f"gpu-{label}.md"
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
