"""Whisper's log-mel spectrogram of one 30 s window (480000 samples -> 80 x 3000).
Run: .venv/bin/python benchmarks/bench_log_mel.py [--quick]"""

from __future__ import annotations

import math
import sys

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from harness import (
    DEVICE, Case, Contender, compile_graph, max_contender, reference, run,
)
from max.dtype import DType
from max.graph import TensorType, ops
from maxwhisper_kernels import custom_ops
from maxwhisper_kernels.mel_filters import mel_filters

SAMPLES, N_FFT, HOP, N_MELS = 480_000, 400, 160, 80
N_FREQ = N_FFT // 2 + 1
N_FRAMES = SAMPLES // HOP  # the kernel drops rfft's last frame, as Whisper does
# Multiply-adds as the kernel does them: per frame and bin, one 200-long dot
# for the real part and one for the imaginary part (the symmetric window
# folds 400 samples into even/odd halves), then the mel matmul.
FLOPS = N_FRAMES * (N_FREQ * 2 * (N_FFT // 2) * 2 + N_MELS * N_FREQ * 2)
NOTES = [
    f"FLOPs ({FLOPS / 1e6:.0f} M) are counted as the custom kernel does the work: per frame, "
    "201 bins x 2 dot products of 200 (window-folded real DFT) + the 80x201 mel "
    "matmul, 2 flops per multiply-add. The same count is used for every contender, "
    "so GFLOP/s is an effective rate: an FFT does far fewer flops, the DFT-matmul "
    "graph about twice as many.",
    "MAX DFT-matmul graph: STFT is no MAX built-in, so framing is an ops.gather with "
    "constant reflect-pad indices, the windowed DFT one matmul with a [400, 402] cos/sin "
    "basis, power summed through the mel matmul with the filters stacked twice, then "
    "log/max ops; shapes are fixed to 30 s.",
    "NumPy f32: np.fft.rfft (pocketfft, complex64) on strided frames; the f64 "
    "reference also rebuilds its mel filterbank in Python on every call (~1 ms).",
]


def hann() -> np.ndarray:
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)


def log_mel_f32(audio: np.ndarray, filters: np.ndarray, window: np.ndarray) -> np.ndarray:
    """A fast float32 NumPy log-mel (the float64 reference is no speed baseline)."""
    padded = np.pad(audio, N_FFT // 2, mode="reflect")
    frames = sliding_window_view(padded, N_FFT)[::HOP][:N_FRAMES]
    spectrum = np.fft.rfft(frames * window, axis=-1)
    power = spectrum.real**2 + spectrum.imag**2
    log_spec = np.log10(np.maximum(filters @ power.T, 1e-10))
    np.maximum(log_spec, log_spec.max() - 8.0, out=log_spec)
    return (log_spec + 4.0) / 4.0


def dft_graph_body(filters: np.ndarray):
    """Log-mel from MAX built-in ops: gather frames, DFT and mel as matmuls."""
    frame_index = np.pad(np.arange(SAMPLES), N_FFT // 2, mode="reflect")[
        HOP * np.arange(N_FRAMES)[:, None] + np.arange(N_FFT)[None, :]
    ]
    angle = 2 * np.pi * np.outer(np.arange(N_FFT), np.arange(N_FREQ)) / N_FFT
    basis = hann()[:, None] * np.concatenate([np.cos(angle), np.sin(angle)], axis=1)
    basis = basis.astype(np.float32)
    mel_basis = np.concatenate([filters.T, filters.T], axis=0)

    def body(audio):
        frames = ops.reshape(
            ops.gather(audio, ops.constant(frame_index.reshape(-1), DType.int64, DEVICE), axis=0),
            [N_FRAMES, N_FFT],
        )
        spectrum = ops.matmul(frames, ops.constant(basis, DType.float32, DEVICE))
        mel = ops.matmul(spectrum * spectrum, ops.constant(mel_basis, DType.float32, DEVICE))
        log_spec = ops.log(ops.max(ops.transpose(mel, 0, 1), 1e-10)) * (1 / math.log(10))
        floor = ops.max(ops.reshape(log_spec, [-1]), axis=-1) - 8.0
        return (ops.max(log_spec, floor) + 4.0) / 4.0

    return body


def make_cases() -> list[Case]:
    filters = mel_filters(N_MELS)
    window = hann().astype(np.float32)
    custom = compile_graph(
        "bench_log_mel_custom",
        [
            TensorType(DType.float32, ["L"], DEVICE),
            TensorType(DType.float32, ["mels", "freq"], DEVICE),
        ],
        custom_ops.log_mel,
        custom=True,
    )
    builtin = compile_graph(
        "bench_log_mel_max_dft",
        [TensorType(DType.float32, [SAMPLES], DEVICE)],
        dft_graph_body(filters),
    )
    rng = np.random.default_rng(0)
    t = np.arange(SAMPLES) / 16000
    tone = 0.2 * np.sin(2 * np.pi * 440 * t)
    audio = (0.05 * rng.standard_normal(SAMPLES) + tone).astype(np.float32)
    case = Case(
        "30 s window", f"audio [{SAMPLES}] fp32 -> [{N_MELS}, {N_FRAMES}]", FLOPS, "flop",
        reference.log_mel_spectrogram(audio, N_MELS),
    )
    case.contenders = [
        max_contender("custom log_mel op", "custom", custom, audio, filters),
        max_contender("MAX DFT-matmul graph", "max", builtin, audio),
        Contender("NumPy f32 rfft", "numpy32", lambda: log_mel_f32(audio, filters, window)),
        Contender(
            "NumPy f64 reference", "numpy64",
            lambda: reference.log_mel_spectrogram(audio, N_MELS),
        ),
    ]
    return [case]


if __name__ == "__main__":
    sys.exit(run("log_mel", "Log-mel spectrogram", make_cases, NOTES))
