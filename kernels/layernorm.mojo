# Layer normalisation over the last axis, optionally fused with a residual add.
#
# Ops:
#   "layernorm":     y = (x - mean) / sqrt(var + eps) * gamma + beta
#   "add_layernorm": s = x + r;  y = layernorm(s)   (outputs y and s)
# Layout: x, r, y, s are [rows, cols] row-major (callers flatten leading axes);
#         gamma, beta are [cols]. eps is a compile-time parameter.
# Accumulation is fp32 and two-pass (mean of values shifted by the row's
# first element, then the centred sum of squares); deviations are taken
# between shifted values too, so rows with a large offset keep their
# precision.
# Tested against a NumPy float64 reference in tests/test_layernorm.py.
import extensibility
from extensibility import InputTensor, OutputTensor
from max.gpu.host import DeviceContext
from .team import Team
from std.math import sqrt
from std.memory import Pointer
from std.sys.info import num_physical_cores, simd_width_of
from .layernorm_gpu import layernorm_gpu

comptime F32 = DType.float32
comptime W = simd_width_of[F32]()
# Up to this many elements (85 rows of 384, about 7 us on one core here) a
# single thread beats waking the parallel workers; decoder steps have 1-16 rows.
comptime SERIAL_ELEMENTS = 1 << 15


# Independent partial sums per pass: one accumulator is a chain of dependent
# adds (3-4 cycles each), which bounded a 384-wide row on AVX2 (48 vectors a
# pass) more than its loads did; with CHAINS of them the pass runs at load speed.
comptime CHAINS = 4


@always_inline
def _centred_sum[
    power: Int, dtype: DType
](src: Pointer[Scalar[dtype], _], cols: Int, shift: Float32, mean: Float32) -> Float32:
    """sum over the row of (x - shift - mean)^power, power 1 or 2."""
    var acc = SIMD[F32, CHAINS * W](0)
    var c = 0
    while c + CHAINS * W <= cols:
        var d = (src.unsafe_load[width=CHAINS * W](c).cast[F32]() - shift) - mean
        acc += d * d if power == 2 else d
        c += CHAINS * W
    var part = acc.reduce_add[W]()
    while c + W <= cols:
        var d = (src.unsafe_load[width=W](c).cast[F32]() - shift) - mean
        part += d * d if power == 2 else d
        c += W
    var total = part.reduce_add()
    while c < cols:
        var d = (src.unsafe_load(c).cast[F32]() - shift) - mean
        total += d * d if power == 2 else d
        c += 1
    return total


@always_inline
def _normalize_row[
    dtype: DType
](
    src: Pointer[Scalar[dtype], _],
    dst: Pointer[Scalar[dtype], MutAnyOrigin],
    gamma: Pointer[Scalar[dtype], _],
    beta: Pointer[Scalar[dtype], _],
    cols: Int,
    eps: Float32,
):
    """Normalises one row of `cols` values from `src` into `dst`."""
    # Everything runs on values shifted by the row's first element: with a
    # large common offset the shifted values are exact and their mean small,
    # whereas a mean rounded back to the offset's scale would be off by half
    # an ulp of the offset; a constant row gives exactly zero deviations.
    var shift = src.unsafe_load(0).cast[F32]()
    var mean = _centred_sum[1](src, cols, shift, 0) / Float32(cols)
    var rstd = 1.0 / sqrt(_centred_sum[2](src, cols, shift, mean) / Float32(cols) + eps)

    var c = 0
    while c + W <= cols:
        var d = (src.unsafe_load[width=W](c).cast[F32]() - shift) - mean
        var g = gamma.unsafe_load[width=W](c).cast[F32]()
        var b = beta.unsafe_load[width=W](c).cast[F32]()
        dst.unsafe_store(c, (d * rstd * g + b).cast[dtype]())
        c += W
    while c < cols:
        var d = (src.unsafe_load(c).cast[F32]() - shift) - mean
        var g = gamma.unsafe_load(c).cast[F32]()
        var b = beta.unsafe_load(c).cast[F32]()
        dst.unsafe_store(c, (d * rstd * g + b).cast[dtype]())
        c += 1


@always_inline
def _add_rows[
    dtype: DType
](
    x: Pointer[Scalar[dtype], _],
    r: Pointer[Scalar[dtype], _],
    s: Pointer[Scalar[dtype], MutAnyOrigin],
    cols: Int,
):
    var c = 0
    while c + W <= cols:
        s.unsafe_store(c, x.unsafe_load[width=W](c) + r.unsafe_load[width=W](c))
        c += W
    while c < cols:
        s.unsafe_store(c, x.unsafe_load(c) + r.unsafe_load(c))
        c += 1


def _for_rows[
    target: StaticString, F: def(Int) -> None
](rows: Int, cols: Int, row_fn: F, ctx: DeviceContext) raises:
    """Runs row_fn over all rows; CPU workers take contiguous row ranges."""
    comptime if target == "cpu":
        var pool = Team.pool()
        _rows_on(rows, cols, row_fn, pool)
    else:
        raise Error("layernorm: no GPU path yet")


def _rows_on[F: def(Int) -> None](rows: Int, cols: Int, row_fn: F, mut team: Team):
    """row_fn over all rows in contiguous ranges, spread as team says."""
    var chunks = 1
    if rows * cols > SERIAL_ELEMENTS:
        chunks = min(rows, num_physical_cores() * 4)

    def chunk(i: Int) {rows, chunks, row_fn}:
        for r in range(i * rows // chunks, (i + 1) * rows // chunks):
            row_fn(r)

    team.items(chunks, chunk)


def add_layernorm_cpu[
    dtype: DType, //
](
    xp: Pointer[Scalar[dtype], _],
    rp: Pointer[Scalar[dtype], _],
    yp: Pointer[Scalar[dtype], MutAnyOrigin],
    sp: Pointer[Scalar[dtype], MutAnyOrigin],
    gp: Pointer[Scalar[dtype], _],
    bp: Pointer[Scalar[dtype], _],
    rows: Int,
    cols: Int,
    eps: Float32,
    mut team: Team,
):
    """s = x + r, y = layernorm(s) over rows of cols on the CPU, spread as team
    says. s may be x itself."""
    def row(i: Int) {xp, rp, yp, sp, gp, bp, cols, eps}:
        var off = i * cols
        _add_rows(xp.unsafe_offset(off), rp.unsafe_offset(off), sp.unsafe_offset(off), cols)
        _normalize_row(sp.unsafe_offset(off), yp.unsafe_offset(off), gp, bp, cols, eps)

    _rows_on(rows, cols, row, team)


@extensibility.register("layernorm")
struct LayerNorm:
    @staticmethod
    def execute[
        target: StaticString, eps: Float32
    ](
        y: OutputTensor[rank=2, ...],
        x: InputTensor[dtype=y.dtype, rank=2, ...],
        gamma: InputTensor[dtype=y.dtype, rank=1, ...],
        beta: InputTensor[dtype=y.dtype, rank=1, ...],
        ctx: DeviceContext,
    ) raises:
        var cols = x.dim_size(1)
        var xp = x.unsafe_ptr()
        var yp = y.unsafe_ptr()
        var gp = gamma.unsafe_ptr()
        var bp = beta.unsafe_ptr()

        comptime if target == "gpu":
            # r and s are unused without the fused add; x and y stand in.
            layernorm_gpu[y.dtype, False](xp, xp, yp, yp, gp, bp, x.dim_size(0), cols, eps, ctx)
            return

        def row(r: Int) {xp, yp, gp, bp, cols}:
            _normalize_row(xp.unsafe_offset(r * cols), yp.unsafe_offset(r * cols), gp, bp, cols, eps)

        _for_rows[target](x.dim_size(0), cols, row, ctx)


@extensibility.register("add_layernorm")
struct AddLayerNorm:
    @staticmethod
    def execute[
        target: StaticString, eps: Float32
    ](
        y: OutputTensor[rank=2, ...],
        s: OutputTensor[dtype=y.dtype, rank=2, ...],
        x: InputTensor[dtype=y.dtype, rank=2, ...],
        r: InputTensor[dtype=y.dtype, rank=2, ...],
        gamma: InputTensor[dtype=y.dtype, rank=1, ...],
        beta: InputTensor[dtype=y.dtype, rank=1, ...],
        ctx: DeviceContext,
    ) raises:
        var cols = x.dim_size(1)
        var xp = x.unsafe_ptr()
        var rp = r.unsafe_ptr()
        var yp = y.unsafe_ptr()
        var sp = s.unsafe_ptr()
        var gp = gamma.unsafe_ptr()
        var bp = beta.unsafe_ptr()

        comptime if target == "gpu":
            layernorm_gpu[y.dtype, True](xp, rp, yp, sp, gp, bp, x.dim_size(0), cols, eps, ctx)
            return

        var pool = Team.pool()
        add_layernorm_cpu(xp, rp, yp, sp, gp, bp, x.dim_size(0), cols, eps, pool)
