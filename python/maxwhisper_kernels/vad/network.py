"""Silero VAD's network as one MAX graph over thousands of windows at a time.

Each 32 ms window (512 samples at 16 kHz, with the previous window's last 64 samples in front:
576 samples) goes through a learned STFT and four small convolutions independently of every
other window, so that front-end runs over all windows at once and ends with the LSTM's input
projection. Only the recurrence ``h @ W_hh`` is sequential: a (128 x 512) matrix-vector
product per window, run by the lstm_sequence kernel (kernels/lstm.mojo) inside the same
graph, which takes the recurrent state in and hands it back for the next block of audio. The
output layer (ReLU, a 128 -> 1 projection, a sigmoid) follows in the graph. Speeds:
benchmarks/results/vad.md.
"""

from __future__ import annotations

import numpy as np
from max.driver import CPU, Buffer
from max.dtype import DType
from max.engine import InferenceSession
from max.graph import DeviceRef, Graph, TensorType, ops

from .. import custom_ops
from ..build import kernel_library
from .weights import CONTEXT, WINDOW, load_vad_weights

_SPAN = WINDOW + CONTEXT
_REFLECT = 64  # reflection padding on the right before the STFT convolution
_N_FFT, _HOP = 256, 128
_HIDDEN = 128
# Windows per graph execution: bounds the front-end's memory (about 2.5 kB a window in flight).
BATCH_WINDOWS = 8192


_CONVS = (("conv1", 1), ("conv2", 2), ("conv3", 2), ("conv4", 1))  # (name, stride)


def _network_weights(w: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The network's weights as matmul operands, in the order the graph takes them.

    They are graph inputs, not constants: the compiled graph then does not depend on the
    weight values (a constant-folded graph took minutes to compile here, and again for any
    other weight file).
    """
    arrays = [w["stft_conv.weight"][:, 0, :].T]  # (256, 258)
    for name, _ in _CONVS:
        arrays += [w[f"{name}.weight"][:, :, k].T for k in range(3)] + [w[f"{name}.bias"]]
    arrays += [w["lstm_cell.weight_ih"].T, w["lstm_cell.bias_ih"] + w["lstm_cell.bias_hh"]]
    arrays += [w["lstm_cell.weight_hh"].T]  # (128, 512): h @ W_hh
    arrays += [w["final_conv.weight"][0, :, 0:1], w["final_conv.bias"]]  # (128, 1), (1,)
    return [np.ascontiguousarray(a, dtype=np.float32) for a in arrays]


def _network_graph(weights: list[np.ndarray], dev: DeviceRef) -> Graph:
    """(windows, 576) samples and the LSTM state (h, c) -> (each window's speech probability,
    the state after the last window)."""
    types = [TensorType(DType.float32, ["windows", _SPAN], dev)]
    types += [TensorType(DType.float32, [_HIDDEN], dev)] * 2
    types += [TensorType(DType.float32, list(a.shape), dev) for a in weights]
    graph = Graph("silero_vad", input_types=types, custom_extensions=[kernel_library()])
    with graph:
        x, h0, c0, *params = (value.tensor for value in graph.inputs)
        params = iter(params)
        # Reflection without repeating the edge sample: pad[j] = x[SPAN - 2 - j].
        mirror = np.arange(_SPAN - 2, _SPAN - 2 - _REFLECT, -1, dtype=np.int64)
        padded = ops.concat([x, ops.gather(x, ops.constant(mirror, DType.int64, dev), axis=1)], axis=1)
        stft = next(params)
        n_frames = (_SPAN + _REFLECT - _N_FFT) // _HOP + 1  # 4
        half = _N_FFT // 2 + 1  # 129 frequency bins
        frames = []
        for t in range(n_frames):
            spectrum = padded[:, t * _HOP : t * _HOP + _N_FFT] @ stft
            real, imag = spectrum[:, :half], spectrum[:, half:]
            frames.append(ops.sqrt(real * real + imag * imag))
        # Convolutions (kernel 3, padding 1) written per output position: with 4, 2 and 1 time
        # steps the zero padding is simply a missing term.
        for _, stride in _CONVS:
            taps = [next(params) for _ in range(3)]
            bias = next(params)
            out = []
            for position in range(0, len(frames), stride):
                total = bias
                for k in range(3):
                    source = position + k - 1
                    if 0 <= source < len(frames):
                        total = total + frames[source] @ taps[k]
                out.append(ops.relu(total))
            frames = out
        (features,) = frames  # (windows, 128)
        w_ih, b_gates, w_hh = next(params), next(params), next(params)
        hs, h, c = custom_ops.lstm_sequence(features @ w_ih + b_gates, w_hh, h0, c0)
        w_out, b_out = next(params), next(params)
        probs = ops.sigmoid(ops.relu(hs) @ w_out + b_out)  # (windows, 1)
        graph.output(ops.reshape(probs, [-1]), h, c)
    return graph


class SileroVad:
    """Silero VAD v6 at 16 kHz: ``speech_probs(audio)`` gives one probability per 512 samples."""

    def __init__(self, session: InferenceSession | None = None):
        w = load_vad_weights()
        self.session = session or InferenceSession(devices=[CPU()])
        weights = _network_weights(w)
        self.network = self.session.load(_network_graph(weights, DeviceRef.CPU()))
        self.weights = [Buffer.from_numpy(a) for a in weights]

    def stream(self) -> "SpeechProbStream":
        """Probabilities of audio that arrives in pieces (the recurrent state is carried)."""
        return SpeechProbStream(self)

    def speech_probs(self, audio: np.ndarray) -> np.ndarray:
        """Speech probability of each 32 ms window of 16 kHz mono ``audio`` (zero-padded tail)."""
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim != 1:
            raise ValueError(f"VAD expects mono audio (1-D samples), got shape {audio.shape}")
        stream = self.stream()
        return np.concatenate([stream.feed(audio), stream.finish()])


class SpeechProbStream:
    """Silero over audio given in pieces of any length: ``feed`` returns the probabilities of the
    whole windows received so far, ``finish`` that of the zero-padded last partial window.
    The same probabilities as the whole audio at once, since only the LSTM state and 64
    samples of context cross a window boundary."""

    def __init__(self, vad: SileroVad):
        self.vad = vad
        self.h = np.zeros(_HIDDEN, np.float32)
        self.c = np.zeros(_HIDDEN, np.float32)
        self.context = np.zeros(CONTEXT, np.float32)  # the last samples of the previous window
        self.pending = np.zeros(0, np.float32)  # samples short of a whole window

    def feed(self, samples: np.ndarray) -> np.ndarray:
        samples = np.asarray(samples, dtype=np.float32)
        if len(self.pending):
            samples = np.concatenate([self.pending, samples])
        whole = len(samples) // WINDOW * WINDOW
        self.pending = samples[whole:].copy()
        if not whole:
            return np.zeros(0, np.float32)
        block = np.concatenate([self.context, samples[:whole]])
        self.context = block[-CONTEXT:].copy()
        return np.concatenate([self._run(block[i * WINDOW : (i + BATCH_WINDOWS) * WINDOW + CONTEXT])
                               for i in range(0, whole // WINDOW, BATCH_WINDOWS)])

    def finish(self) -> np.ndarray:
        if not len(self.pending):
            return np.zeros(0, np.float32)
        last = np.zeros(WINDOW, np.float32)
        last[: len(self.pending)] = self.pending
        self.pending = np.zeros(0, np.float32)
        return self.feed(last)

    def _run(self, block: np.ndarray) -> np.ndarray:
        """Probabilities of the windows of ``block`` (context samples, then whole windows)."""
        spans = np.ascontiguousarray(np.lib.stride_tricks.sliding_window_view(block, _SPAN)[::WINDOW])
        state = [Buffer.from_numpy(s) for s in (spans, self.h, self.c)]
        probs, h, c = (out.to_numpy() for out in self.vad.network.execute(*state, *self.vad.weights))
        self.h, self.c = h.copy(), c.copy()  # the graph's buffers are not ours to keep
        return probs.copy()
