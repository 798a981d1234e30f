"""An InferenceSession on MAX's CPU device with a chosen number of worker threads.

MAX 26.7 keeps one CPU device per process, created by the first `CPU()` call with
default options; `InferenceSession(num_threads=N)` then asks for the device again
with other options and aborts the process ("getOrCreateCPUDevice called requesting
different options"), and the session always makes that first `CPU()` itself. The
default options size the worker pool by the calling thread's CPU affinity mask,
read when the device is created. So the count is set by narrowing the mask to N
cores while the device is created, then giving every thread started meanwhile
(MAX's workers) the full mask back: N workers that the OS still moves across
all cores, as Ray expects of an actor holding N of its logical CPUs.
"""

from __future__ import annotations

import os

from max.driver import CPU
from max.engine import InferenceSession


def _thread_ids() -> set[int]:
    return {int(tid) for tid in os.listdir("/proc/self/task")}


def max_worker_threads() -> int:
    """MAX's CPU worker threads in this process, found by the names MAX gives them
    ("🔥 Thread0" .. "🔥 Thread<N-1>"); 0 before the device exists. Distinct names
    are counted: each compile also starts a short-lived one-thread runtime whose
    thread is named "🔥 Thread0" too (seen in a process that compiled graphs right
    after making a one-thread device: three "Thread0"s for a moment)."""
    names = set()
    for tid in _thread_ids():
        try:
            with open(f"/proc/self/task/{tid}/comm", encoding="utf-8", errors="replace") as file:
                name = file.read().strip()
        except OSError:  # the thread ended meanwhile
            continue
        if name.startswith("🔥 Thread"):
            names.add(name)
    return len(names)


def cpu_session(num_threads: int | None = None) -> InferenceSession:
    """A session on the CPU device; `num_threads` (None: one per core this process
    may use) only takes effect if no MAX CPU device exists in the process yet, and
    ValueError says so when an existing one has another count."""
    if not num_threads:
        return InferenceSession(devices=[CPU()])
    if num_threads < 0:
        raise ValueError(f"num_threads must be positive, got {num_threads}")
    allowed = os.sched_getaffinity(0)
    if num_threads > len(allowed):
        raise ValueError(
            f"num_threads={num_threads}: this process may run on {len(allowed)} cores only"
        )
    existing = max_worker_threads()
    if existing and existing != num_threads:
        raise ValueError(
            f"num_threads={num_threads}: MAX's CPU device already exists in this process "
            f"with {existing} threads (one device per process; load the model first)"
        )
    before = _thread_ids()
    os.sched_setaffinity(0, sorted(allowed)[:num_threads])
    try:
        session = InferenceSession(devices=[CPU()])
    finally:
        os.sched_setaffinity(0, allowed)
        for tid in _thread_ids() - before:
            try:
                os.sched_setaffinity(tid, allowed)
            except OSError:  # a short-lived thread that already ended
                pass
    return session
