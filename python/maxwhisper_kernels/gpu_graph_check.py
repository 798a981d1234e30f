"""Compiles the whole tiny.en graphs for a GPU that is not there.

MAX's compile-only virtual device (`driver.set_virtual_device_*`) makes an
`Accelerator` that compiles but never runs; the graphs are built on
`DeviceRef.GPU()` exactly as `load_model(device="gpu")` builds them, so the
check covers the custom ops' GPU branches as MAX really instantiates them
(dtypes, fusion, the kernel library) plus MAX's own GPU lowering of the
built-in ops around them. The virtual device setting holds for the whole
process, so each architecture is checked in a child process
(`python -m maxwhisper_kernels.gpu_graph_check ARCH`, one line per graph on
stdout). `gpu_check.check_graphs` runs and caches it.
"""

from __future__ import annotations

import os
import sys
import time

# tiny.en's dimensions: only the shapes matter to the compiler, so no
# checkpoint is needed (fields in openai-whisper's ModelDimensions order).
TINY_EN = (80, 1500, 384, 6, 4, 51864, 448, 384, 6, 4)


def _graphs(device):
    from max.dtype import DType

    from .graph import build_decoder_step, build_encoder
    from .weights.dims import ModelDimensions

    dims = ModelDimensions(*TINY_EN)
    # The decoder as load_model builds it for tiny.en (float16 matrices,
    # exact for its weights) and as compute_type="int8" builds it.
    yield "encoder", lambda: build_encoder(dims, device)
    yield "decoder_step", lambda: build_decoder_step(dims, device, DType.float16)
    yield "decoder_step_int8", lambda: build_decoder_step(dims, device, DType.int8)
    yield "alignment_decoder", lambda: build_decoder_step(dims, device, DType.float16, cross_attention_weights=True)


def run(arch: str) -> int:
    from max import driver

    api = "hip" if arch.startswith("gfx") else "cuda"
    driver.set_virtual_device_api(api)
    driver.set_virtual_device_target_arch(arch)
    driver.set_virtual_device_count(1)
    from max.engine import InferenceSession
    from max.graph import DeviceRef

    session = InferenceSession(devices=[driver.CPU(), driver.Accelerator()])
    failed = 0
    for name, build in _graphs(DeviceRef.GPU()):
        start = time.perf_counter()
        try:
            session.compile(build())
            print(f"{name} OK ({time.perf_counter() - start:.0f} s)", flush=True)
        except Exception as exc:  # noqa: BLE001 - the report is the point
            # MAX's outer error only says "Failed to compile the model"; the
            # compiler's own message is the cause.
            cause = exc.__cause__ or exc
            print(f"{name} FAILED {type(cause).__name__}: {str(cause).strip()}".replace("\n", "\n    "), flush=True)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m maxwhisper_kernels.gpu_graph_check ARCH")
    code = run(sys.argv[1])
    # Leave without the interpreter's teardown: after compiles on the virtual
    # device, MAX's runtime sometimes aborts there ("terminate called without
    # an active exception", exit 134) once every graph has reported OK (3 of 7
    # warm runs with round 12's kernels, 0 of 4 before them; see BUILD.md).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
