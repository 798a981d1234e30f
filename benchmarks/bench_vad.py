"""Silero VAD speed and parity: the whole of ``speech_probs`` (one MAX graph execution per 8192
windows, the LSTM recurrence in the lstm_sequence kernel) on 10 minutes of noise, the graph
alone on one execution's worth of windows,
in audio-hours per wall-clock minute; then, when onnxruntime is installed (the test extra),
the largest probability difference from Silero's own ONNX model run by onnxruntime (one window
per call, state carried, as tests/test_vad.py does) on jfk and six dev clips.
Run: .venv/bin/python benchmarks/bench_vad.py"""

from __future__ import annotations

import csv
import importlib.util
import os
import statistics
import time
from pathlib import Path

import numpy as np
from max.driver import Buffer

from maxwhisper_kernels.audio import SAMPLE_RATE, load_audio
from maxwhisper_kernels.vad.network import BATCH_WINDOWS, SileroVad
from maxwhisper_kernels.vad.weights import CONTEXT, WINDOW, weights_path

SECONDS = 600
SHARED = Path(__file__).resolve().parents[2] / "shared" / "audio"


def hours_per_minute(seconds_of_audio: float, wall: float) -> float:
    return seconds_of_audio / 3600 / (wall / 60)


def onnxruntime_probs(audio: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(weights_path()), providers=["CPUExecutionProvider"])
    n = -(-len(audio) // WINDOW)
    padded = np.zeros(CONTEXT + n * WINDOW, np.float32)
    padded[CONTEXT : CONTEXT + len(audio)] = audio
    state, probs = np.zeros((2, 1, 128), np.float32), np.empty(n, np.float32)
    for i in range(n):
        feed = {"input": padded[None, i * WINDOW : i * WINDOW + CONTEXT + WINDOW], "state": state, "sr": np.array(16000)}
        out, state = session.run(None, feed)
        probs[i] = out[0, 0]
    return probs


def main() -> None:
    rng = np.random.default_rng(0)
    audio = (0.05 * rng.standard_normal(SECONDS * SAMPLE_RATE)).astype(np.float32)
    vad = SileroVad()
    vad.speech_probs(audio[:SAMPLE_RATE])  # warm-up
    times = []
    for _ in range(3):
        start = time.perf_counter()
        vad.speech_probs(audio)
        times.append(time.perf_counter() - start)
    block = audio[: BATCH_WINDOWS * WINDOW + CONTEXT]
    spans = np.ascontiguousarray(np.lib.stride_tricks.sliding_window_view(block, CONTEXT + WINDOW)[::WINDOW])
    state = [Buffer.from_numpy(a) for a in (spans, np.zeros(128, np.float32), np.zeros(128, np.float32))]
    start = time.perf_counter()
    vad.network.execute(*state, *vad.weights)
    front = time.perf_counter() - start
    median = statistics.median(times)
    print(f"load average {os.getloadavg()}")
    print(f"{SECONDS} s of audio: median {median:.3f} s (runs {', '.join(f'{t:.3f}' for t in times)}) "
          f"-> {hours_per_minute(SECONDS, median):.1f} audio-hours per minute")
    print(f"the graph alone, {len(spans)} windows ({len(spans) * WINDOW / SAMPLE_RATE:.0f} s): {front:.3f} s "
          f"-> {hours_per_minute(len(spans) * WINDOW / SAMPLE_RATE, front):.1f} audio-hours per minute")

    if importlib.util.find_spec("onnxruntime") is None:
        print("onnxruntime not installed: no parity figures (pip install -e '.[test]')")
        return
    rows = list(csv.DictReader(open(SHARED / "dev" / "transcripts.tsv"), delimiter="\t"))[:6]
    clips = {"jfk": load_audio(SHARED / "jfk.flac")} | {r["file"]: load_audio(SHARED / "dev" / r["file"]) for r in rows}
    clips["noise 5 s"] = audio[: 5 * SAMPLE_RATE]
    for name, clip in clips.items():
        diff = np.abs(vad.speech_probs(clip) - onnxruntime_probs(clip))
        print(f"parity {name}: {len(diff)} windows, max |ours - onnxruntime| {diff.max():.2e}, mean {diff.mean():.2e}")


if __name__ == "__main__":
    main()
