"""One model, one worker thread: the windows of concurrent requests decoded together.

The worker runs rounds. Between two rounds it admits every request that arrived meanwhile
(start_transcriptions: log-mel, language), drops the requests whose client went away, and then
decodes the current 30 s window of up to max_batch requests with decode_next_windows, which
batches the windows that share settings, language and prompt length. The requests in the engine
take turns (round robin): the ones just decoded go to the back, behind the new arrivals, so a
long request gets one window per turn and never holds a short one behind it. Each request keeps
its own seek and tokens, so with the default deterministic decoding it gets the transcript it
would get alone.

Requests with equal options have equal settings, which is what lets decode_next_windows put
their windows in one batch even when they arrived at different times; requests whose
options differ (a prompt, a language, temperature > 0) keep their own and take their turns in
the same rotation, decoded in a batch of their own.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

# MAX's own helper for threads other than the main one: MLIR's current context is per thread,
# and a graph the model compiles on first use (the alignment decoder of word timestamps) fails
# with "No active MLIR context" without it.
from max._mlir_context import ensure_default_mlir_context

from .. import os_memory
from ..transcribe import AudioTranscription, decode_next_windows, start_transcriptions
from .metrics import Metrics

log = logging.getLogger("maxwhisper.server")


class QueueFull(Exception):
    """The server holds max_queue unfinished requests already."""


class ShuttingDown(Exception):
    """The scheduler no longer takes requests."""


@dataclass(eq=False)
class Job:
    """One request in the scheduler. on_segments, when given, is called from the worker thread
    with the segments each round adds, before the future gets the result."""

    audio: np.ndarray
    options: dict
    on_segments: Callable[[list[dict]], None] | None = None
    future: Future = field(default_factory=Future)
    queued_at: float = field(default_factory=time.monotonic)
    transcription: AudioTranscription | None = None
    published: int = 0  # segments handed to on_segments so far
    _abandoned: threading.Event = field(default_factory=threading.Event)

    def cancel(self) -> None:
        """The client went away: the worker drops this job before its next round."""
        self._abandoned.set()

    @property
    def abandoned(self) -> bool:
        return self._abandoned.is_set()

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
        self._arrivals: list[Job] = []
        self._unfinished = 0  # accepted and not yet answered: queued plus in the engine
        self._ready = threading.Condition()
        self._closing = False
        self._active: collections.deque[Job] = collections.deque()  # the worker's own
        self._worker = threading.Thread(target=self._run, name="maxwhisper-scheduler", daemon=True)
        self._worker.start()

    def submit(self, audio: np.ndarray, options: dict, on_segments=None) -> Job:
        """Queues the audio with start_transcriptions' options; the job's future gets the
        result dict. Raises QueueFull or ShuttingDown."""
        job = Job(audio, options, on_segments)
        with self._ready:
            if self._closing:
                raise ShuttingDown()
            if self._unfinished >= self.max_queue:
                raise QueueFull()
            self._unfinished += 1
            self._arrivals.append(job)
            self.metrics.set_queue_depth(len(self._arrivals))
            self._ready.notify()
        return job

    def close(self, timeout: float | None = None) -> None:
        """Takes no more requests, finishes the accepted ones, and stops the worker."""
        with self._ready:
            self._closing = True
            self._ready.notify()
        self._worker.join(timeout)

    def _run(self) -> None:
        with ensure_default_mlir_context():
            while self._take_arrivals():
                self._drop_abandoned()
                if self._active:
                    self._round()

    def _take_arrivals(self) -> bool:
        """Admits the requests that arrived since the last round (waiting for one when the
        engine is idle); False once closing and everything is answered."""
        with self._ready:
            if not self._arrivals and not self._active:
                os_memory.release()  # idle: the last rounds' working memory goes back
            while not self._arrivals and not self._active and not self._closing:
                self._ready.wait()
            if self._closing and not self._arrivals and not self._active:
                return False
            arrivals, self._arrivals = self._arrivals, []
            self.metrics.set_queue_depth(0)
        groups: dict[tuple, list[Job]] = {}
        for job in arrivals:
            if job.abandoned:  # gone before it started: no log-mel for it
                self._drop(job)
            else:
                groups.setdefault(job.key, []).append(job)
        admitted: list[Job] = []
        for jobs in groups.values():
            admitted += self._start(jobs)
        # new arrivals queue behind the requests already taking turns; ahead of them, a
        # client that sends its next file as soon as one is answered would starve the others
        self._active.extend(admitted)
        self.metrics.set_active(len(self._active))
        return True

    def _start(self, jobs: list[Job]) -> list[Job]:
        """Starts jobs with equal options together (one language detection batch); their
        windows batch with those of running jobs whose settings are equal."""
        try:
            transcriptions = start_transcriptions(
                self.model, [job.audio for job in jobs], verbose=None, **jobs[0].options
            )
        except Exception as error:  # noqa: BLE001 - handed to each request's future
            for job in jobs:
                self._finish(job, error=error)
            return []
        for job, transcription in zip(jobs, transcriptions):
            job.transcription = transcription
        return jobs

    def _drop_abandoned(self) -> None:
        for job in [job for job in self._active if job.abandoned]:
            self._active.remove(job)
            self._drop(job)
        self.metrics.set_active(len(self._active))

    def _drop(self, job: Job) -> None:
        self.metrics.count_cancelled()
        self._finish(job, cancelled=True)

    def _round(self) -> None:
        """The current window of the next max_batch requests in the rotation."""
        turn = [self._active.popleft() for _ in range(min(self.max_batch, len(self._active)))]
        self.metrics.observe_batch(len(turn))
        try:
            decode_next_windows(self.model, [job.transcription for job in turn])
        except Exception as error:  # noqa: BLE001 - handed to each request's future
            for job in turn:
                self._finish(job, error=error)
            self.metrics.set_active(len(self._active))
            return
        finished = []
        for job in turn:
            self._publish(job)
            if job.transcription.done:
                finished.append(job)
            else:
                self._active.append(job)  # to the back: the others take their turns first
        # The gauge first: a client that reads /metrics as soon as its answer arrives must not
        # still be counted (the server test caught it counting the finished request).
        self.metrics.set_active(len(self._active))
        for job in finished:
            self._finish(job, result=job.transcription.result())

    @staticmethod
    def _publish(job: Job) -> None:
        segments = job.transcription.all_segments
        if job.on_segments is not None and len(segments) > job.published:
            try:
                job.on_segments(segments[job.published :])
            except Exception:  # a listener's failure must not stop the worker serving the rest
                log.exception("could not hand a request its new segments")
        job.published = len(segments)

    def _finish(self, job: Job, result=None, error=None, cancelled=False) -> None:
        with self._ready:
            self._unfinished -= 1
        if cancelled:
            job.future.cancel()
        elif error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(result)
