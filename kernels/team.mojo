# How one op's work is spread over the CPU's worker threads: per phase through
# MAX's pool (ordinary ops), or by a team of threads that stay inside one op
# and step through many phases together (the fused decoder layer).
#
# Why a team: a decoder step for a few rows is about 70 small ops, and handing
# each op to the workers costs more than its work (round 16, Zen 3: a 1-row
# 384 x 384 GEMV took 18-21 us as an op on 2 threads, 5.7-7.5 us as a phase of
# one op). A team pays for the pool once per op.
#
# Algorithm: phase p owns two shared counters, claimed[p] and done[p]. Every
# member runs the same sequence of phases. In a phase of n items a member
# takes item i = claimed[p]++ while i < n, runs it and counts it in done[p];
# when nothing is left to take it spins until done[p] == n. A member therefore
# only waits on items another member has already taken and is running, never
# on a member that has not started: a worker that arrives late (the pool busy
# with another request of the server) finds the earlier phases done and
# catches up, and a team of one does everything itself. The counters are
# sequentially consistent atomics, so what an item wrote is visible to every
# member that has seen done[p] == n.
# Without a team (`Team.pool()`), `runs` gives one contiguous run of items per
# worker (parallel_runs.mojo) and `items` hands them out one by one through
# MAX's parallelize, as the separate ops do.
# Tested through its users: tests/test_decoder_layer.py runs the fused layer
# with a team and without, against the separate ops.
from max.algorithm.backend.cpu.parallelize import parallelize
from std.atomic import Atomic
from std.memory import Pointer
from std.memory.alloc import unsafe_alloc
from std.os import abort
from .parallel_runs import parallel_runs


struct Team(ImplicitlyCopyable):
    """One member's view of a team: the shared counters (two for each of
    `phases` phases) and the index of the member's next phase. No counters:
    no team (MAX's pool)."""

    var counters: Optional[Pointer[Int64, MutUntrackedOrigin]]
    var phase: Int
    var phases: Int

    def __init__(out self, counters: Optional[Pointer[Int64, MutUntrackedOrigin]], phases: Int):
        self.counters = counters
        self.phase = 0
        self.phases = phases

    @staticmethod
    def pool() -> Team:
        return Team(None, 0)

    @staticmethod
    def counters_for(phases: Int) -> Pointer[Int64, MutUntrackedOrigin]:
        """Zeroed counters for a team of `phases` phases (free with unsafe_free)."""
        var c = unsafe_alloc[Int64](2 * phases)
        for i in range(2 * phases):
            c.unsafe_store(i, 0)
        return c

    def is_team(self) -> Bool:
        return Bool(self.counters)

    def runs[F: def(Int) -> None](mut self, n: Int, item_fn: F):
        """item_fn(i) once for each i in [0, n); without a team one
        contiguous run per worker."""
        if self.is_team():
            self._phase(n, item_fn)
        else:
            parallel_runs(n, item_fn)

    def items[F: def(Int) -> None](mut self, n: Int, item_fn: F):
        """item_fn(i) once for each i in [0, n); without a team, items handed
        out one by one (a single item on the calling thread)."""
        if self.is_team():
            self._phase(n, item_fn)
        elif n == 1:
            item_fn(0)
        elif n > 1:
            parallelize(item_fn, n)

    def once[F: def() -> None](mut self, job: F):
        """job() on exactly one member (the first to get there); the others go
        on when it is done."""
        def item(i: Int) {job}:
            job()

        if self.is_team():
            self._phase(1, item)
        else:
            job()

    def _phase[F: def(Int) -> None](mut self, n: Int, item_fn: F):
        if self.phase >= self.phases:
            abort("team: more phases than counters were made for")
        var claimed = self.counters.value().unsafe_offset(2 * self.phase)
        var done = self.counters.value().unsafe_offset(2 * self.phase + 1)
        self.phase += 1
        while True:
            var i = Int(Atomic.fetch_add(claimed, 1))
            if i >= n:
                break
            item_fn(i)
            _ = Atomic.fetch_add(done, 1)
        while Int(Atomic.load(done)) < n:
            pass
