# GPU branch of "cached_attention" (semantics and layouts in kv_cache.mojo):
# _store_kernel writes each token row's new keys and values into its cache
# row slots[b] at positions past ..; then, on the same stream, the split
# attention kernel of attention_gpu.mojo reads key t of row b from cache row
# lineage[b, t]. A kernel cannot raise, so a slot out of range stores
# nothing and a lineage entry out of range turns that row's output into NaN
# (the CPU op raises); the host checks the positions against the cache size.
# Tested on a GPU against the gathered-cache NumPy reference in
# tests/test_gpu_kernels.py; compile-checked by maxwhisper_kernels.gpu_check.
from max.gpu import thread_idx, block_idx, MAX_THREADS_PER_BLOCK_METADATA
from max.gpu.host import DeviceContext
from std.memory import Pointer
from std.utils import StaticTuple
from .attention_gpu import F32, SPLIT_TPB, head_width, launch_split


@__llvm_metadata(MAX_THREADS_PER_BLOCK_METADATA=StaticTuple[Int32, 1](Int32(SPLIT_TPB)))
def _store_kernel(
    k: Pointer[Float32, MutAnyOrigin],
    v: Pointer[Float32, MutAnyOrigin],
    k_cache: Pointer[Float32, MutAnyOrigin],
    v_cache: Pointer[Float32, MutAnyOrigin],
    slots: Pointer[Int64, MutAnyOrigin],
    H: Int32,
    T: Int32,
    D: Int32,
    R: Int32,
    CTX: Int32,
    past: Int32,
):
    """Block (b, h) stores token row b's T new keys and values of head h in
    its cache row slots[b] at positions past ..; a slot out of range stores
    nothing (the lineage check then turns the row's output into NaN)."""
    var bh = Int32(block_idx.x)
    var b = bh // H
    var h = bh - b * H
    var slot = Int32(slots.unsafe_load(Int(b)))
    if slot < 0 or slot >= R:
        return
    var src = Int64(bh) * Int64(T) * Int64(D)
    var dst = ((Int64(slot) * Int64(H) + Int64(h)) * Int64(CTX) + Int64(past)) * Int64(D)
    var x = Int32(thread_idx.x)
    while x < T * D:
        k_cache.unsafe_store(Int(dst + Int64(x)), k.unsafe_load(Int(src + Int64(x))))
        v_cache.unsafe_store(Int(dst + Int64(x)), v.unsafe_load(Int(src + Int64(x))))
        x += Int32(SPLIT_TPB)


def cached_attention_gpu(
    q: Pointer[Float32, MutAnyOrigin],
    k: Pointer[Float32, MutAnyOrigin],
    v: Pointer[Float32, MutAnyOrigin],
    k_cache: Pointer[Float32, MutAnyOrigin],
    v_cache: Pointer[Float32, MutAnyOrigin],
    slots: Pointer[Int64, MutAnyOrigin],
    lineage: Pointer[Int64, MutAnyOrigin],
    o: Pointer[Float32, MutAnyOrigin],
    scale: Pointer[Float32, MutAnyOrigin],
    B: Int,
    H: Int,
    T: Int,
    D: Int,
    R: Int,
    CTX: Int,
    total: Int,
    ctx: DeviceContext,
) raises:
    """Op "cached_attention" on the GPU (shapes as in kv_cache.mojo): the
    store kernel runs first on the same stream, so the attention kernel
    sees this step's keys."""
    var past = total - T
    if past < 0 or total > CTX:
        raise Error("cached_attention: ", total, " positions for ", T, " new tokens in a cache of ", CTX)
    if B == 0 or T == 0 or H == 0:
        return
    ctx.enqueue_function[_store_kernel](
        k, v, k_cache, v_cache, slots, Int32(H), Int32(T), Int32(D), Int32(R), Int32(CTX), Int32(past),
        grid_dim=B * H, block_dim=SPLIT_TPB,
    )
    var dk = head_width(D)
    # Each row is its own "key head" (group 1): b = bk, causal from past.
    if dk == 32:
        launch_split[F32, 32, True, True](q, k_cache, v_cache, o, scale, lineage, T, B * H, 1, H, T, total, D, R, CTX, ctx)
    elif dk == 64:
        launch_split[F32, 64, True, True](q, k_cache, v_cache, o, scale, lineage, T, B * H, 1, H, T, total, D, R, CTX, ctx)
    else:
        launch_split[F32, 128, True, True](q, k_cache, v_cache, o, scale, lineage, T, B * H, 1, H, T, total, D, R, CTX, ctx)
