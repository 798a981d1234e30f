# Software prefetch for the CPU kernels that stream decoder weights, more bytes
# than the caches hold (linear.mojo, matmul_int8.mojo). Under perf those loops
# waited on memory: the hardware prefetchers, which follow one address stream
# per page, drew 13-14 GB/s where NumPy's plain pass drew 25 (BUILD.md, "Zen 3").
# Asking a fixed distance ahead keeps enough lines in flight.
# Algorithm: one prefetch instruction per 64-byte cache line of the element
# range asked for, with low locality: weights are read once a step, and must
# not push out what stays in cache.
# (Attention's direct path asked for its keys and values too until its P V
# loop stopped being a chain of dependent FMAs; after that the requests only
# cost time: BUILD.md, "Cross-attention over one row".)
# A prefetch never faults and changes no result; the kernels that use these
# are tested for their outputs only (tests/test_linear.py,
# tests/test_matmul_int8.py).
from std.memory import Pointer
from std.sys.info import size_of
from std.sys.intrinsics import PrefetchOptions, prefetch

comptime CACHE_LINE = 64  # bytes


@always_inline
def prefetch_line[dtype: DType, //](p: Pointer[Scalar[dtype], _], offset: Int):
    """Asks for the cache line holding p[offset]."""
    prefetch[PrefetchOptions().for_read().low_locality().to_data_cache()](p.unsafe_offset(offset))


@always_inline
def prefetch_range[dtype: DType, //](p: Pointer[Scalar[dtype], _], start: Int, stop: Int):
    """Asks for elements [start, stop) of p, one request per cache line."""
    comptime step = CACHE_LINE // size_of[dtype]()
    for e in range(start, stop, step):
        prefetch_line(p, e)
