# Software prefetch for the CPU kernels that stream more bytes than the caches
# hold: the decoder's weights (linear.mojo, matmul_int8.mojo) and the cross-
# attention keys and values (attention.mojo's direct path). Under perf those
# loops waited on memory: the hardware prefetchers, which follow one address
# stream per page, drew 13-14 GB/s where NumPy's plain pass drew 25 (BUILD.md, "Zen 3").
# Asking a fixed distance ahead keeps enough lines in flight.
# Algorithm: one prefetch instruction per 64-byte cache line of the element
# range asked for. `keep` chooses the locality hint: data read again by other
# rows soon (attention's keys, read by every query row of the block) is kept
# in all cache levels; data read once (weights) goes in with low locality so
# it does not push out what stays.
# A prefetch never faults and changes no result; the kernels that use these
# are tested for their outputs only (tests/test_linear.py,
# tests/test_matmul_int8.py, tests/test_attention.py).
from std.memory import Pointer
from std.sys.info import size_of
from std.sys.intrinsics import PrefetchOptions, prefetch

comptime CACHE_LINE = 64  # bytes


@always_inline
def prefetch_line[dtype: DType, //, keep: Bool = False](p: Pointer[Scalar[dtype], _], offset: Int):
    """Asks for the cache line holding p[offset]."""
    comptime if keep:
        prefetch[PrefetchOptions().for_read().high_locality().to_data_cache()](p.unsafe_offset(offset))
    else:
        prefetch[PrefetchOptions().for_read().low_locality().to_data_cache()](p.unsafe_offset(offset))


@always_inline
def prefetch_range[dtype: DType, //, keep: Bool = False](p: Pointer[Scalar[dtype], _], start: Int, stop: Int):
    """Asks for elements [start, stop) of p, one request per cache line."""
    comptime step = CACHE_LINE // size_of[dtype]()
    for e in range(start, stop, step):
        prefetch_line[keep](p, e)
