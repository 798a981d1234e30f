# Reductions shared by the GPU kernels.
from max.gpu.primitives import warp


@always_inline
def warp_sum(x: Float32) -> Float32:
    """Butterfly sum over 32 lanes, the result in every lane (on AMD's
    64-lane wavefronts each half of the wavefront sums its own 32 lanes,
    which is what the kernels index: lanes modulo 32)."""
    var s = x
    comptime for i in range(5):
        s += warp.shuffle_xor(s, UInt32(1 << i))
    return s
