# Where row (b, h, i) of D values starts in a batch of attention rows: b the
# batch row, h the head, i the token. The attention ops take [B, H, T, D]
# (heads outer); the fused decoder layer reads its heads straight out of a
# projection's output rows, [B, T, H * D] or wider (heads inner), so it needs
# no transposes. Only offsets change: every row is computed as before.


@fieldwise_init
struct Strides(ImplicitlyCopyable):
    var batch: Int
    var head: Int
    var token: Int

    @staticmethod
    def heads_outer(H: Int, T: Int, D: Int) -> Strides:
        """[B, H, T, D], row-major."""
        return Strides(H * T * D, T * D, D)

    @staticmethod
    def heads_inner(T: Int, row: Int, D: Int) -> Strides:
        """[B, T, row] with head h at columns h * D .. h * D + D - 1 of a row."""
        return Strides(T * row, D, row)

    @always_inline
    def at(self, b: Int, h: Int, i: Int) -> Int:
        return b * self.batch + h * self.head + i * self.token
