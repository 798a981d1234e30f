"""The LSTM recurrence of Silero VAD (128 units) over one graph execution's worth of windows
(8192, 262 s of audio), and a short piece (64 windows, 2 s, a streamed block's tail).
Run: .venv/bin/python benchmarks/bench_lstm.py"""

from __future__ import annotations

import sys

import numpy as np

from harness import DEVICE, Case, Contender, compile_graph, max_contender, reference, run
from max.dtype import DType
from max.graph import TensorType, ops
from maxwhisper_kernels import custom_ops

HIDDEN = 128
STEPS = {"VAD block, 8192 windows": 8192, "short piece, 64 windows": 64}
NOTES = [
    "Work is the recurrent matrix-vector product, 2 * 128 * 512 flop a step (the gates' "
    "tanh add little); time is sequential, so one core does it all: '% of peak' is of both "
    "cores, twice that of the one it runs on.",
    "MAX's built-in ops have no recurrence of their own: the bar is the same step in a MAX "
    "while_loop (h, c and every step's h carried as loop values).",
    "NumPy f32 is the loop the VAD ran before this kernel: a mat-vec and the gates per step.",
]


def sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def numpy_loop(gates_in, w_hh, h, c):
    hs = np.empty((len(gates_in), HIDDEN), np.float32)
    for t in range(len(gates_in)):
        g = gates_in[t] + h @ w_hh
        i, f = sigmoid(g[:HIDDEN]), sigmoid(g[HIDDEN : 2 * HIDDEN])
        cell, o = np.tanh(g[2 * HIDDEN : 3 * HIDDEN]), sigmoid(g[3 * HIDDEN :])
        c = f * c + i * cell
        h = o * np.tanh(c)
        hs[t] = h
    return hs


def max_while_loop(gates_in, w_hh, h0, c0):
    """The recurrence from MAX built-ins: a while_loop whose values are the step, h, c and
    the [T, H] table of every step's h (written one row per step with a one-hot update)."""
    steps = gates_in.shape[0]
    rows = ops.range(0, steps, 1, out_dim=steps, device=DEVICE, dtype=DType.int64)
    start = (ops.constant(0, DType.int64, DEVICE), ops.unsqueeze(h0, 0), ops.unsqueeze(c0, 0),
             ops.broadcast_to(ops.constant(0.0, DType.float32, DEVICE), [steps, HIDDEN]))

    def more(t, h, c, hs):
        return t < ops.constant(int(steps), DType.int64, DEVICE)

    def step(t, h, c, hs):
        g = ops.gather(gates_in, ops.reshape(t, [1]), axis=0) + h @ w_hh
        i, f = ops.sigmoid(g[:, 0:HIDDEN]), ops.sigmoid(g[:, HIDDEN : 2 * HIDDEN])
        cell, o = ops.tanh(g[:, 2 * HIDDEN : 3 * HIDDEN]), ops.sigmoid(g[:, 3 * HIDDEN :])
        c = f * c + i * cell
        h = o * ops.tanh(c)
        here = ops.cast(ops.unsqueeze(rows == t, 1), DType.float32)
        return t + 1, h, c, hs * (1.0 - here) + here * h

    return ops.while_loop(start, more, step)[3]


def make_cases() -> list[Case]:
    types = [
        TensorType(DType.float32, ["steps", 4 * HIDDEN], DEVICE),
        TensorType(DType.float32, [HIDDEN, 4 * HIDDEN], DEVICE),
        TensorType(DType.float32, [HIDDEN], DEVICE),
        TensorType(DType.float32, [HIDDEN], DEVICE),
    ]
    custom = compile_graph("bench_lstm_custom", types, lambda *a: custom_ops.lstm_sequence(*a)[0], custom=True)
    rng = np.random.default_rng(0)
    w_hh = rng.normal(0, 0.15, (HIDDEN, 4 * HIDDEN)).astype(np.float32)
    h0, c0 = np.zeros((2, HIDDEN), np.float32)
    cases = []
    for name, steps in STEPS.items():
        gates_in = rng.normal(0, 2, (steps, 4 * HIDDEN)).astype(np.float32)
        fixed = [TensorType(DType.float32, [steps, 4 * HIDDEN], DEVICE), *types[1:]]
        builtin = compile_graph(f"bench_lstm_max_{steps}", fixed, max_while_loop)
        case = Case(name, f"gates [{steps}, 512], w_hh [128, 512] fp32", 2.0 * HIDDEN * 4 * HIDDEN * steps,
                    "flop", reference.lstm_sequence(gates_in, w_hh, h0, c0)[0])
        case.contenders = [
            max_contender("custom lstm_sequence op", "custom", custom, gates_in, w_hh, h0, c0),
            max_contender("MAX while_loop of built-in ops", "max", builtin, gates_in, w_hh, h0, c0),
            Contender("NumPy f32 loop", "numpy32", lambda g=gates_in: numpy_loop(g, w_hh, h0, c0)),
            Contender("NumPy f64 reference", "numpy64",
                      lambda g=gates_in: reference.lstm_sequence(g, w_hh, h0, c0)[0]),
        ]
        cases.append(case)
    return cases


if __name__ == "__main__":
    sys.exit(run("lstm", "LSTM recurrence (Silero VAD)", make_cases, NOTES))
