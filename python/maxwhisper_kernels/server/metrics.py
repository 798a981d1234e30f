"""Counters for GET /metrics, in Prometheus' text exposition format (version 0.0.4).

Written out by hand: a handful of counters, one gauge and two histograms do not need a client
library, and the lock keeps the worker thread's and the event loop's updates apart.
"""

from __future__ import annotations

import bisect
import threading

LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)  # seconds
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32)  # windows per round


class _Histogram:
    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    def lines(self, name: str) -> list[str]:
        lines, cumulative = [], 0
        for bound, count in zip((*self.bounds, "+Inf"), self.counts):
            cumulative += count
            lines.append(f'{name}_bucket{{le="{bound}"}} {cumulative}')
        lines += [f"{name}_sum {self.sum}", f"{name}_count {cumulative}"]
        return lines


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, int], int] = {}
        self._audio_seconds = 0.0
        self._queue_depth = 0
        self._in_progress = 0
        self._active = 0
        self._cancelled = 0
        self._batch_size = _Histogram(BATCH_BUCKETS)
        self._latency = _Histogram(LATENCY_BUCKETS)

    def count_request(self, endpoint: str, status: int) -> None:
        with self._lock:
            self._requests[(endpoint, status)] = self._requests.get((endpoint, status), 0) + 1

    def observe_transcription(self, audio_seconds: float, latency: float) -> None:
        with self._lock:
            self._audio_seconds += audio_seconds
            self._latency.observe(latency)

    def observe_batch(self, size: int) -> None:
        with self._lock:
            self._batch_size.observe(size)

    def add_in_progress(self, delta: int) -> None:
        with self._lock:
            self._in_progress += delta

    def set_active(self, count: int) -> None:
        with self._lock:
            self._active = count

    def count_cancelled(self) -> None:
        with self._lock:
            self._cancelled += 1

    def set_queue_depth(self, depth: int) -> None:
        with self._lock:
            self._queue_depth = depth

    def render(self) -> str:
        with self._lock:
            lines = [
                "# HELP maxwhisper_requests_total Transcription requests answered, by status.",
                "# TYPE maxwhisper_requests_total counter",
            ]
            for (endpoint, status), count in sorted(self._requests.items()):
                lines.append(
                    f'maxwhisper_requests_total{{endpoint="{endpoint}",status="{status}"}} {count}'
                )
            lines += [
                "# HELP maxwhisper_audio_seconds_total Seconds of audio transcribed.",
                "# TYPE maxwhisper_audio_seconds_total counter",
                f"maxwhisper_audio_seconds_total {self._audio_seconds}",
                "# HELP maxwhisper_cancelled_total Requests dropped because the client went away.",
                "# TYPE maxwhisper_cancelled_total counter",
                f"maxwhisper_cancelled_total {self._cancelled}",
                "# HELP maxwhisper_transcriptions_active Requests in the engine, taking turns.",
                "# TYPE maxwhisper_transcriptions_active gauge",
                f"maxwhisper_transcriptions_active {self._active}",
                "# HELP maxwhisper_queue_depth Requests waiting to join the engine.",
                "# TYPE maxwhisper_queue_depth gauge",
                f"maxwhisper_queue_depth {self._queue_depth}",
                "# HELP maxwhisper_requests_in_progress Transcription requests being handled.",
                "# TYPE maxwhisper_requests_in_progress gauge",
                f"maxwhisper_requests_in_progress {self._in_progress}",
                "# HELP maxwhisper_batch_size Windows decoded per scheduler round.",
                "# TYPE maxwhisper_batch_size histogram",
                *self._batch_size.lines("maxwhisper_batch_size"),
                "# HELP maxwhisper_request_latency_seconds Upload received to result ready.",
                "# TYPE maxwhisper_request_latency_seconds histogram",
                *self._latency.lines("maxwhisper_request_latency_seconds"),
            ]
        return "\n".join(lines) + "\n"
