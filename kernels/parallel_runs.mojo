# Work items split into one contiguous run per worker thread.
#
# Two reasons to take this over a bare `parallelize`. MAX 26.7's parallelize
# sends even a single item through the worker pool (about 6 us a call on Zen 3,
# against nothing inline); here a single run (one item, or a process held to
# one thread) stays on the calling thread. And the decoder's streaming kernels
# (attention's direct path, linear) read every key, value or weight once per
# call, more bytes than the caches hold: given one run of consecutive items, a
# worker streams its share of that memory in address order, which the hardware
# prefetchers follow, where items handed out one by one interleave the
# workers' streams (BUILD.md, "Cross-attention over one row": the float16
# vocabulary projection from DRAM 1.56-1.96 against 1.73-2.04 ms, Zen 3).
# Algorithm: parts = min(n_items, parallelism_level()); part p runs items
# [p * n_items // parts, (p + 1) * n_items // parts) in order, one parallel
# task per part, so every item runs exactly once; a single part runs on the
# calling thread.
# Tested through its users: tests/test_attention.py, tests/test_linear.py.
from max.algorithm.backend.cpu.parallelize import parallelize
from std.runtime import parallelism_level


def parallel_runs[F: def(Int) -> None](n_items: Int, item_fn: F):
    """Calls item_fn(i) once for each i in [0, n_items), in parallel runs."""
    var parts = min(n_items, parallelism_level())
    if parts == 1:
        for i in range(n_items):
            item_fn(i)
        return

    def run(part: Int) {item_fn, n_items, parts}:
        for i in range(part * n_items // parts, (part + 1) * n_items // parts):
            item_fn(i)

    parallelize(run, parts)
