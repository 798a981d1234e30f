"""One model, one worker thread, a bounded queue: concurrent requests decoded together.

The worker takes the oldest queued request and every other queued request with the same
options (task, language, prompt, temperatures, word timing), up to max_batch, and runs them
through transcribe_batch, which keeps each audio's own windows and seek and decodes their
current windows as one batch. With the default deterministic decoding each request gets the
transcript it would get alone. Batching is per request: a batch runs until its longest audio
is done, and requests that arrive meanwhile wait for the next batch.
"""

from __future__ import annotations

import collections
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

# MAX's own helper for threads other than the main one: MLIR's current context is per thread,
# and a graph the model compiles on first use (the alignment decoder of word timestamps) fails
# with "No active MLIR context" without it.
from max._mlir_context import ensure_default_mlir_context

from ..transcribe import transcribe_batch
from .metrics import Metrics


class QueueFull(Exception):
    """The queue holds max_queue requests already."""


class ShuttingDown(Exception):
    """The scheduler no longer takes requests."""


@dataclass
class Job:
    audio: np.ndarray
    options: dict
    future: Future = field(default_factory=Future)
    queued_at: float = field(default_factory=time.monotonic)

    @property
    def key(self) -> tuple:
        return tuple(sorted((name, repr(value)) for name, value in self.options.items()))


class Scheduler:
    def __init__(self, model, max_batch: int, max_queue: int, metrics: Metrics) -> None:
        if max_batch < 1 or max_queue < 1:
            raise ValueError(f"max_batch ({max_batch}) and max_queue ({max_queue}) must be >= 1")
        self.model = model
        self.max_batch = max_batch
        self.max_queue = max_queue
        self.metrics = metrics
        self._queue: collections.deque[Job] = collections.deque()
        self._ready = threading.Condition()
        self._closing = False
        self._worker = threading.Thread(target=self._run, name="maxwhisper-scheduler", daemon=True)
        self._worker.start()

    def submit(self, audio: np.ndarray, options: dict) -> Future:
        """A future of transcribe()'s result for this audio; raises QueueFull or ShuttingDown."""
        job = Job(audio, options)
        with self._ready:
            if self._closing:
                raise ShuttingDown()
            if len(self._queue) >= self.max_queue:
                raise QueueFull()
            self._queue.append(job)
            self.metrics.set_queue_depth(len(self._queue))
            self._ready.notify()
        return job.future

    def close(self, timeout: float | None = None) -> None:
        """Takes no more requests, finishes the queued ones, and stops the worker."""
        with self._ready:
            self._closing = True
            self._ready.notify()
        self._worker.join(timeout)

    def _next_batch(self) -> list[Job]:
        """The oldest live job and the queued jobs that can share its batch (empty: stop)."""
        with self._ready:
            while not self._queue and not self._closing:
                self._ready.wait()
            batch: list[Job] = []
            rest: collections.deque[Job] = collections.deque()
            while self._queue:
                job = self._queue.popleft()
                if job.future.cancelled():
                    continue
                if len(batch) < self.max_batch and (not batch or job.key == batch[0].key):
                    batch.append(job)
                else:
                    rest.append(job)
            self._queue = rest
            self.metrics.set_queue_depth(len(self._queue))
        # a job cancelled (its client gone) after it was picked is dropped here
        return [job for job in batch if job.future.set_running_or_notify_cancel()]

    def _run(self) -> None:
        with ensure_default_mlir_context():
            self._serve()

    def _serve(self) -> None:
        while True:
            batch = self._next_batch()
            if not batch:
                with self._ready:
                    if self._closing and not self._queue:
                        return
                continue
            self.metrics.observe_batch(len(batch))
            try:
                results = transcribe_batch(
                    self.model,
                    [job.audio for job in batch],
                    verbose=None,
                    progress=False,
                    **batch[0].options,
                )
            except Exception as error:  # noqa: BLE001 - handed to each request's future
                for job in batch:
                    job.future.set_exception(error)
                continue
            for job, result in zip(batch, results):
                job.future.set_result(result)
