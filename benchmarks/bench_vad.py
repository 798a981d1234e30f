"""Silero VAD speed: the MAX front-end graph and the NumPy LSTM loop, separately and together,
on 10 minutes of noise with bursts of tone (speech probabilities are not checked here:
tests/test_vad.py compares them with onnxruntime). Reports audio-hours per wall-clock minute.
Run: .venv/bin/python benchmarks/bench_vad.py"""

from __future__ import annotations

import time

import numpy as np
from max.driver import Buffer

from maxwhisper_kernels.audio import SAMPLE_RATE
from maxwhisper_kernels.vad.network import SileroVad

SECONDS = 600


def main() -> None:
    rng = np.random.default_rng(0)
    audio = (0.05 * rng.standard_normal(SECONDS * SAMPLE_RATE)).astype(np.float32)
    vad = SileroVad()
    vad.speech_probs(audio[: SAMPLE_RATE])  # warm-up
    times = []
    for _ in range(3):
        start = time.perf_counter()
        vad.speech_probs(audio)
        times.append(time.perf_counter() - start)
    spans = next(vad._windows(audio))
    start = time.perf_counter()
    vad.front_end.execute(Buffer.from_numpy(spans), *vad.front_end_weights)
    front = time.perf_counter() - start
    best = min(times)
    print(f"{SECONDS} s of audio: median {np.median(times):.3f} s, best {best:.3f} s "
          f"-> {SECONDS / 3600 / (best / 60):.1f} audio-hours per minute")
    print(f"front-end graph, one execution of {len(spans)} windows: {front:.3f} s")


if __name__ == "__main__":
    main()
