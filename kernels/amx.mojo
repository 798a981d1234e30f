# Intel AMX (Advanced Matrix Extensions) plumbing shared by the kernels that
# use the tile unit: matmul_int8.mojo (tdpbssd) and attention_amx.mojo
# (tdpbf16ps).
#
# The tile unit holds 8 registers tmm0-7 of up to 16 rows x 64 bytes. A
# product instruction adds A [16 rows x 64 bytes] times B [16 rows x 64 bytes]
# into C [16 x 16 float32 or int32]: B's row i holds, for each of C's 16
# columns, the 4 bytes (int8) or 2 values (bf16) that meet A's row bytes
# 4i..4i+3 (2i..2i+1): the "pairs/quads in a 32-bit lane" layout.
#
# Why run time, not compile time: Linux hands out the tile registers only to
# a process that asks (arch_prctl(ARCH_REQ_XCOMP_PERM, XTILEDATA)), and the
# compiler here names an AMX machine by an older CPU model whose feature list
# has no AMX, so no compile-time query can see it. The instructions are
# emitted as inline assembly for the same reason. The request fails on CPUs
# without AMX tiles; every CPU with the tiles so far (Sapphire Rapids and
# later) also has AMX-INT8 and AMX-BF16.
from std.ffi import external_call
from std.memory import Pointer
from std.memory.alloc import unsafe_alloc
from std.sys._assembly import inlined_assembly
from std.sys.info import CompilationTarget

comptime TILE_ROWS = 16
comptime TILE_BYTES = 64  # bytes per tile row


def amx_permitted() -> Bool:
    """Asks Linux for the AMX tile registers (granted once per process; asking
    again is a cheap no-op) and says whether it agreed."""
    comptime if CompilationTarget.is_x86() and CompilationTarget.is_linux():
        comptime SYS_ARCH_PRCTL = 158
        comptime ARCH_REQ_XCOMP_PERM = 0x1023
        comptime XFEATURE_XTILEDATA = 18
        return external_call["syscall", Int](SYS_ARCH_PRCTL, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0
    return False


@always_inline
def amx_configure[c_origin: MutOrigin, //](cfg: Pointer[UInt8, c_origin]):
    """Loads palette 1 with all 8 tiles at 16 rows x 64 bytes into the calling
    thread's tile state (cfg: 64 bytes of scratch). Tile state is per thread,
    so every work item configures its own and ends with amx_release."""
    for i in range(64):
        cfg.unsafe_store(i, 0)
    cfg.unsafe_store(0, 1)  # palette
    for t in range(8):
        cfg.unsafe_store(16 + 2 * t, UInt8(TILE_BYTES))  # bytes per row (a 16-bit field)
        cfg.unsafe_store(48 + t, UInt8(TILE_ROWS))
    inlined_assembly["ldtilecfg ($0)", NoneType, constraints="r,~{memory}"](cfg)


@always_inline
def amx_release():
    inlined_assembly["tilerelease", NoneType, constraints="~{memory}"]()


# Tiles 0-3 hold sums, 4-7 operands, in both kernels. The tile is part of the
# instruction's text, so each number is a branch of its own.
@always_inline
def tile_load[tile: Int](p: Pointer, stride: Int):
    """Tile 4-7 <- 16 rows of 64 bytes at p, stride bytes apart."""
    comptime if tile == 4:
        inlined_assembly["tileloadd ($0,$1,1), %tmm4", NoneType, constraints="r,r,~{memory}"](p, stride)
    elif tile == 5:
        inlined_assembly["tileloadd ($0,$1,1), %tmm5", NoneType, constraints="r,r,~{memory}"](p, stride)
    elif tile == 6:
        inlined_assembly["tileloadd ($0,$1,1), %tmm6", NoneType, constraints="r,r,~{memory}"](p, stride)
    else:
        inlined_assembly["tileloadd ($0,$1,1), %tmm7", NoneType, constraints="r,r,~{memory}"](p, stride)


@always_inline
def tile_store[tile: Int](p: Pointer, stride: Int):
    """Sum tile 0-3 -> 16 rows of 64 bytes at p, stride bytes apart."""
    comptime if tile == 0:
        inlined_assembly["tilestored %tmm0, ($0,$1,1)", NoneType, constraints="r,r,~{memory}"](p, stride)
    elif tile == 1:
        inlined_assembly["tilestored %tmm1, ($0,$1,1)", NoneType, constraints="r,r,~{memory}"](p, stride)
    elif tile == 2:
        inlined_assembly["tilestored %tmm2, ($0,$1,1)", NoneType, constraints="r,r,~{memory}"](p, stride)
    else:
        inlined_assembly["tilestored %tmm3, ($0,$1,1)", NoneType, constraints="r,r,~{memory}"](p, stride)


@always_inline
def zero_sums():
    """Tiles 0-3, the kernels' sum tiles, to zero."""
    inlined_assembly["tilezero %tmm0", NoneType, constraints="~{memory}"]()
    inlined_assembly["tilezero %tmm1", NoneType, constraints="~{memory}"]()
    inlined_assembly["tilezero %tmm2", NoneType, constraints="~{memory}"]()
    inlined_assembly["tilezero %tmm3", NoneType, constraints="~{memory}"]()
