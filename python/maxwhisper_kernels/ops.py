"""NumPy in, NumPy out: each call runs one of the project's Mojo kernels in a
MAX graph, on the CPU or, inside `with on_gpu():`, on the first GPU (the
GPU kernel tests and benchmarks use that).

Graphs use symbolic dimensions, so one compiled graph per op variant serves
every shape; compiled models are kept for the life of the process (and MAX
caches the compilation on disk, so the next process loads it faster).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
import math
from collections.abc import Callable, Iterator, Sequence

import numpy as np
from max.driver import CPU
from max.dtype import DType
from max.engine import InferenceSession, Model
from max.graph import BufferType, DeviceRef, Graph, TensorType

from . import custom_ops
from .build import kernel_library
from .devices import gpu_device, to_device, to_host
from .graph_store import load_graph
from .int8_layout import packed_int8_shape
from .mel_filters import mel_filters

log = logging.getLogger(__name__)

HOP_LENGTH = 160


_TARGET = contextvars.ContextVar("maxwhisper_ops_target", default="cpu")


@contextlib.contextmanager
def on_gpu() -> Iterator[None]:
    """Runs the ops called inside the block on the first GPU (raises
    DeviceUnavailableError where there is none)."""
    _device("gpu")
    token = _TARGET.set("gpu")
    try:
        yield
    finally:
        _TARGET.reset(token)


@functools.lru_cache(maxsize=2)
def _device(target: str):
    return CPU() if target == "cpu" else gpu_device()


@functools.lru_cache(maxsize=2)
def session(target: str = "cpu") -> InferenceSession:
    return InferenceSession(devices=[CPU()] if target == "cpu" else [CPU(), _device(target)])


def _description(description: str, target: str) -> str:
    return description if target == "cpu" else f"{description} on {target}"


@functools.lru_cache(maxsize=None)
def _compiled(
    name: str, signature: tuple[tuple[DType, int], ...], body: Callable[..., object], target: str = "cpu"
) -> Model:
    """Compiles a graph whose inputs have the given (dtype, rank)s, every
    dimension symbolic, and whose output is body(*inputs)."""
    device = DeviceRef.from_device(_device(target))
    input_types = [
        TensorType(dtype, [f"in{i}_dim{d}" for d in range(rank)], device)
        for i, (dtype, rank) in enumerate(signature)
    ]

    def build() -> Graph:
        graph = Graph(name, input_types=input_types, custom_extensions=[kernel_library()])
        with graph:
            result = body(*(value.tensor for value in graph.inputs))
            graph.output(*(result if isinstance(result, tuple) else (result,)))
        log.info("compiling the %s graph (not in the graph store yet)", name)
        return graph

    return load_graph(session(target), name, _description(repr(signature), target), build)[0]


def _run(name: str, body: Callable[..., object], *arrays: np.ndarray) -> list[np.ndarray]:
    target = _TARGET.get()
    model = _compiled(name, tuple((DType.from_numpy(a.dtype), a.ndim) for a in arrays), body, target)
    buffers = [to_device(a, _device(target)) for a in arrays]
    return [to_host(out) for out in model.execute(*buffers)]


def _float32(name: str, a: np.ndarray, ndim: int | None = None) -> np.ndarray:
    a = np.asarray(a)
    if not np.issubdtype(a.dtype, np.floating):
        raise ValueError(f"{name} must hold floating-point values, got dtype {a.dtype}")
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {a.shape}")
    return a.astype(np.float32, copy=False)


def _same_shape(names: Sequence[str], arrays: Sequence[np.ndarray]) -> None:
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        described = ", ".join(f"{n} {a.shape}" for n, a in zip(names, arrays))
        raise ValueError(f"shapes must match: {described}")


def layer_norm(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float = 1e-5
) -> np.ndarray:
    """Layer norm over the last axis of x (any leading shape)."""
    x = _float32("x", x)
    weight, bias = _float32("weight", weight, 1), _float32("bias", bias, 1)
    if x.ndim < 1 or x.shape[-1] == 0:
        raise ValueError(f"x must have a non-empty last axis, got shape {x.shape}")
    if weight.shape != (x.shape[-1],) or bias.shape != (x.shape[-1],):
        raise ValueError(
            f"weight {weight.shape} and bias {bias.shape} must be ({x.shape[-1]},) "
            f"to match the last axis of x {x.shape}"
        )
    rows = x.reshape(-1, x.shape[-1])
    if rows.shape[0] == 0:
        return rows.reshape(x.shape).copy()
    body = functools.partial(_layer_norm_body, eps=float(eps))
    return _run(f"layernorm_eps{eps:g}", body, rows, weight, bias)[0].reshape(x.shape)


def _layer_norm_body(x, weight, bias, *, eps):
    return custom_ops.layer_norm(x, weight, bias, eps)


def add_layer_norm(
    x: np.ndarray, residual: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float = 1e-5
) -> tuple[np.ndarray, np.ndarray]:
    """(layer_norm(x + residual), x + residual), fused."""
    x, residual = _float32("x", x), _float32("residual", residual)
    _same_shape(["x", "residual"], [x, residual])
    weight, bias = _float32("weight", weight, 1), _float32("bias", bias, 1)
    if weight.shape != (x.shape[-1],) or bias.shape != (x.shape[-1],):
        raise ValueError(f"weight and bias must be ({x.shape[-1]},) to match x {x.shape}")
    body = functools.partial(_add_layer_norm_body, eps=float(eps))
    rows = [a.reshape(-1, x.shape[-1]) for a in (x, residual)]
    y, total = _run(f"add_layernorm_eps{eps:g}", body, *rows, weight, bias)
    return y.reshape(x.shape), total.reshape(x.shape)


def _add_layer_norm_body(x, residual, weight, bias, *, eps):
    return custom_ops.add_layer_norm(x, residual, weight, bias, eps)


def attention(
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    *,
    causal: bool = False,
    scale: float | None = None,
    bf16: bool = False,
) -> np.ndarray:
    """softmax(scale * q k^T) v over [B, H, T, D] arrays; scale defaults to
    1/sqrt(D). With causal=True query i sees keys up to Tk - Tq + i. k and v
    may have fewer batch rows than q (a divisor of B): query row b then uses
    key row b // (B / Bk), as beams of one audio share its keys.
    bf16=True allows the int8 encoder's AMX path (bfloat16 products) where the CPU has it."""
    q, k, v = _float32("q", q, 4), _float32("k", k, 4), _float32("v", v, 4)
    _check_attention_shapes(q, k, v)
    if causal and q.shape[2] > k.shape[2]:
        raise ValueError(
            f"causal attention needs at least as many keys as queries: Tq={q.shape[2]}, Tk={k.shape[2]}"
        )
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[3])
    scale_array = np.array([scale], dtype=np.float32)
    body = functools.partial(_attention_body, causal=bool(causal), bf16=bool(bf16))
    return _run(f"attention_causal{int(causal)}_bf16{int(bf16)}", body, q, k, v, scale_array)[0]


def _attention_body(q, k, v, scale, *, causal, bf16):
    return custom_ops.attention(q, k, v, scale, causal, bf16)


def _check_attention_shapes(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> None:
    _same_shape(["k", "v"], [k, v])
    if q.shape[1] != k.shape[1] or q.shape[3] != k.shape[3] or q.shape[0] % max(k.shape[0], 1):
        raise ValueError(
            f"q {q.shape} and k/v {k.shape} must agree in heads and head size, "
            "and k/v's batch must divide q's"
        )
    if 0 in q.shape or 0 in k.shape:
        raise ValueError(f"q {q.shape} and k/v {k.shape} must not be empty")


def attention_int8kv(
    q: np.ndarray,
    k: np.ndarray,
    k_scale: np.ndarray,
    v: np.ndarray,
    v_scale: np.ndarray,
    *,
    scale: float | None = None,
) -> np.ndarray:
    """attention(q, K, V) over int8 keys and values k, v [Bk, H, Tk, D] whose row t stands
    for k_scale[.., t] * k[.., t] (scales [Bk, H, Tk]), as the int8 decoder's cross-attention
    reads them; q [B, H, Tq, D] with Bk dividing B."""
    q = _float32("q", q, 4)
    k, v = np.asarray(k), np.asarray(v)
    if k.dtype != np.int8 or v.dtype != np.int8 or k.ndim != 4:
        raise ValueError(f"k and v must be 4-D int8 arrays, got {k.dtype} {k.shape} and {v.dtype} {v.shape}")
    _check_attention_shapes(q, k, v)
    k_scale, v_scale = _float32("k_scale", k_scale, 3), _float32("v_scale", v_scale, 3)
    _same_shape(["k rows", "k_scale", "v_scale"], [np.empty(k.shape[:3]), k_scale, v_scale])
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[3])
    scale_array = np.array([scale], dtype=np.float32)
    return _run("attention_int8kv", custom_ops.attention_int8kv, q, k, k_scale, v, v_scale, scale_array)[0]


def cached_attention(
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    k_cache: np.ndarray,
    v_cache: np.ndarray,
    slots: np.ndarray,
    lineage: np.ndarray,
    scale: float | None = None,
) -> np.ndarray:
    """Causal attention of q [B, H, T, D] over a key/value cache [R, H, ctx, D]
    that the op updates in place (k_cache and v_cache, float32 C-contiguous,
    are modified): k and v [B, H, T, D] are stored in cache row slots[b] at
    positions past .. past + T - 1, then row b reads position t from cache row
    lineage[b, t] ([B, past + T]). scale defaults to 1/sqrt(D)."""
    q, k, v = (_float32(n, a, 4) for n, a in (("q", q), ("k", k), ("v", v)))
    _same_shape(["q", "k", "v"], [q, k, v])
    for name, cache in (("k_cache", k_cache), ("v_cache", v_cache)):
        if cache.dtype != np.float32 or cache.ndim != 4 or not cache.flags.c_contiguous:
            raise ValueError(f"{name} must be a C-contiguous float32 [R, H, ctx, D] array, updated in place")
    _same_shape(["k_cache", "v_cache"], [k_cache, v_cache])
    slots, lineage = np.asarray(slots, np.int64), np.asarray(lineage, np.int64)
    if slots.shape != q.shape[:1] or lineage.ndim != 2 or lineage.shape[0] != q.shape[0]:
        raise ValueError(f"slots {slots.shape} and lineage {lineage.shape} must have q's {q.shape[0]} rows")
    if q.shape[1] != k_cache.shape[1] or q.shape[3] != k_cache.shape[3]:
        raise ValueError(f"q {q.shape} and the cache {k_cache.shape} must agree in heads and head size")
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[3])
    target = _TARGET.get()
    device = _device(target)
    model = _compiled_cached_attention(float(scale), target)
    caches = [to_device(k_cache, device), to_device(v_cache, device)]
    inputs = [to_device(a, device) for a in (q, k, v, slots, lineage)]
    out = model.execute(*inputs[:3], *caches, *inputs[3:])
    # On the CPU the buffers share the arrays' memory, so the caches were
    # updated in place; a GPU's copies are written back.
    if not device.is_host:
        k_cache[...], v_cache[...] = (to_host(c) for c in caches)
    return to_host(out[0])


@functools.lru_cache(maxsize=None)
def _compiled_cached_attention(scale: float, target: str = "cpu") -> Model:
    device = DeviceRef.from_device(_device(target))
    rows = TensorType(DType.float32, ["b", "h", "t", "d"], device)
    cache = BufferType(DType.float32, ["r", "h", "ctx", "d"], device)
    input_types = [
        rows,
        rows,
        rows,
        cache,
        cache,
        TensorType(DType.int64, ["b"], device),
        TensorType(DType.int64, ["b", "total"], device),
    ]

    def build() -> Graph:
        graph = Graph("cached_attention", input_types=input_types, custom_extensions=[kernel_library()])
        with graph:
            q, k, v, k_cache, v_cache, slots, lineage = graph.inputs
            out = custom_ops.cached_attention(
                q.tensor, k.tensor, v.tensor, k_cache.buffer, v_cache.buffer, slots.tensor, lineage.tensor, scale
            )
            graph.output(out)
        return graph

    return load_graph(session(target), "cached_attention", _description(f"scale={scale!r}", target), build)[0]


def linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """x @ weight.T + bias for x [M, K] and weight [N, K] (float32, or float16
    to halve the bytes read); the result is float32. (int8 weights go through
    matmul_int8.)"""
    x = _float32("x", x, 2)
    weight = np.asarray(weight)
    if weight.dtype not in (np.float16, np.float32) or weight.ndim != 2:
        raise ValueError(f"weight must be a 2-D float16 or float32 array, got {weight.dtype} {weight.shape}")
    bias = np.zeros(weight.shape[0], np.float32) if bias is None else _float32("bias", bias, 1)
    if weight.shape[1] != x.shape[1] or bias.shape != (weight.shape[0],):
        raise ValueError(f"x {x.shape}, weight {weight.shape} and bias {bias.shape} do not fit x @ weight.T + bias")
    if 0 in x.shape or 0 in weight.shape:
        raise ValueError(f"x {x.shape} and weight {weight.shape} must not be empty")
    return _run("linear", custom_ops.linear, x, weight, bias)[0]


def matmul_int8(
    x: np.ndarray,
    packed: np.ndarray,
    weight_scale: np.ndarray,
    bias: np.ndarray | None = None,
    isa: str = "native",
    gelu: bool = False,
) -> np.ndarray:
    """x [M, K] @ W^T + bias for W = weight_scale[:, None] * values, packed
    = pack_int8_matrix(values); x is quantized per row to int8 in the op.
    isa: "native", or "vnni" / "avx2" / "portable" to force that path
    ("native" takes AMX where the CPU and OS allow it, else VNNI, AVX2 or
    portable code). gelu: GELU (the exact form) applied to the result in the op."""
    x = _float32("x", x, 2)
    weight_scale = _float32("weight_scale", weight_scale, 1)
    n = weight_scale.shape[0]
    bias = np.zeros(0, np.float32) if bias is None else _float32("bias", bias, 1)
    packed = np.asarray(packed)
    expected = packed_int8_shape(n, x.shape[1])
    if packed.dtype != np.int8 or packed.shape != expected or bias.shape not in ((0,), (n,)):
        raise ValueError(
            f"packed weights {packed.dtype} {packed.shape} (want int8 {expected}), bias {bias.shape} and "
            f"weight_scale ({n},) do not fit x {x.shape}: pack the [N, K] int8 matrix with pack_int8_matrix"
        )
    if 0 in x.shape:
        raise ValueError(f"x {x.shape} must not be empty")
    if isa not in ("native", "vnni", "avx2", "portable"):
        raise ValueError(f"isa must be 'native', 'vnni', 'avx2' or 'portable', got {isa!r}")
    body = functools.partial(custom_ops.matmul_int8, isa=isa, gelu=gelu)
    return _run(f"matmul_int8_{isa}{'_gelu' if gelu else ''}", body, x, packed, weight_scale, bias)[0]


def log_mel_spectrogram(audio: np.ndarray, n_mels: int = 80, padding: int = 0) -> np.ndarray:
    """Whisper's log-mel spectrogram [n_mels, (len(audio) + padding) // 160]
    of 16 kHz mono audio, with `padding` zeros appended first."""
    audio = _float32("audio", audio, 1)
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    if not np.all(np.isfinite(audio)):
        raise ValueError("audio contains NaN or infinite samples")
    if padding:
        audio = np.pad(audio, (0, padding))
    if len(audio) < HOP_LENGTH:
        raise ValueError(
            f"audio of {len(audio)} samples is shorter than one hop ({HOP_LENGTH} samples) "
            "and has no frames"
        )
    return _run("log_mel", custom_ops.log_mel, audio, mel_filters(n_mels))[0]


def lstm_sequence(
    gates_in: np.ndarray, w_hh: np.ndarray, h0: np.ndarray, c0: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An LSTM cell over time: gates_in [T, 4H] (input projection plus biases), w_hh [H, 4H],
    h0, c0 [H] -> (h of every step [T, H], final h, final c); gate order i, f, g, o."""
    gates_in, w_hh = _float32("gates_in", gates_in, 2), _float32("w_hh", w_hh, 2)
    h0, c0 = _float32("h0", h0, 1), _float32("c0", c0, 1)
    hidden = h0.shape[0]
    if c0.shape != h0.shape or w_hh.shape != (hidden, 4 * hidden) or gates_in.shape[1] != 4 * hidden:
        raise ValueError(
            f"expected gates_in [T, {4 * hidden}], w_hh [{hidden}, {4 * hidden}] and c0 [{hidden}] "
            f"for h0 [{hidden}]; got {gates_in.shape}, {w_hh.shape}, {c0.shape}"
        )
    return tuple(_run("lstm_sequence", custom_ops.lstm_sequence, gates_in, w_hh, h0, c0))


TOKEN_SCORES_MAX_TOP = 32  # kernels/token_scores.mojo's MAX_TOP


def token_scores(
    logits: np.ndarray, bars: np.ndarray, suppressed: np.ndarray, first_timestamp: int, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """custom_ops.token_scores on NumPy arrays: (filtered logits, top-k ids, [peak, normaliser])
    for logits [rows, V], bars [rows, n, 2] and suppressed [s] (int64 ids), first_timestamp
    (-1: no timestamp rule)."""
    logits = _float32("logits", logits, 2)
    bars, suppressed = np.asarray(bars, np.int64), np.asarray(suppressed, np.int64)
    if bars.ndim != 3 or bars.shape[::2] != (len(logits), 2) or suppressed.ndim != 1:
        raise ValueError(f"expected bars [{len(logits)}, n, 2] and suppressed [s]; got {bars.shape}, {suppressed.shape}")
    if not 1 <= k <= min(TOKEN_SCORES_MAX_TOP, logits.shape[1]):
        raise ValueError(f"k must be 1 to {TOKEN_SCORES_MAX_TOP} and at most the vocabulary ({logits.shape[1]}); got {k}")
    body = functools.partial(custom_ops.token_scores, k=k)
    return tuple(_run(f"token_scores_{k}", body, logits, bars, suppressed, np.array([first_timestamp], np.int64)))
