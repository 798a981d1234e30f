"""A decoding step's work on the vocabulary projection's logits (kernels/token_scores.mojo):
the token rules, the timestamp rule, the log-softmax normaliser and the 16 best ids, for one
row (greedy) and five (beam 5), with the rules of a real decoding state (mid-text, timestamps
on, openai-whisper's default suppressed tokens).
Run: .venv/bin/python benchmarks/bench_token_scores.py"""

from __future__ import annotations

import sys

import numpy as np

from harness import DEVICE, Case, Contender, compile_graph, max_contender, reference, run
from max.dtype import DType
from max.graph import TensorType, ops
from maxwhisper_kernels import custom_ops
from maxwhisper_kernels.decoding import top_tokens
from maxwhisper_kernels.decoding.rules import apply_bars, token_rules
from maxwhisper_kernels.decoding.search import log_normalisers
from maxwhisper_kernels.tokenizer import get_tokenizer

VOCAB = 51864
TOP = 16  # what graph/decoder.py asks for
NOTES = [
    "Work is the bytes of one pass over the rows' logits (4 bytes a token); the op makes a "
    "few passes over each row, which stays in L2.",
    "MAX built-in: the same computation from built-in ops, the rules given as an additive "
    "[rows, V] mask (built-ins have no range fill): mask, timestamp sum against the best text "
    "logit, max, log-sum-exp and top_k. Only the normalisers are compared.",
    "NumPy f32 is what decoding ran before this kernel, and still runs where the decoder graph "
    "has no token_scores (the GPU): TokenRules.apply on a copy, log_normalisers, top_tokens.",
]


def builtin_scores(logits, mask, first_timestamp: int):
    ruled = logits + mask
    text, times = ruled[:, :first_timestamp], ruled[:, first_timestamp:]
    time_peak = ops.max(times, axis=-1)
    time_total = time_peak + ops.log(ops.sum(ops.exp(times - time_peak), axis=-1))
    text_barred = time_total > ops.max(text, axis=-1)
    never = ops.constant(float("-inf"), DType.float32, DEVICE)
    ruled = ops.concat([ops.where(text_barred, never, text), times], axis=-1)
    peak = ops.max(ruled, axis=-1)
    normaliser = ops.log(ops.sum(ops.exp(ruled - peak), axis=-1))
    _, top = ops.top_k(ruled, TOP, axis=-1)
    return ops.concat([ops.cast(peak, DType.float64), ops.cast(normaliser, DType.float64)], axis=-1), top


def make_cases() -> list[Case]:
    tokenizer = get_tokenizer(False)
    rules = token_rules(tokenizer, 3, suppress_blank=True, suppress_tokens="-1", timestamps=True, latest_start=50)
    first = rules.first_timestamp
    types = [
        TensorType(DType.float32, ["rows", VOCAB], DEVICE),
        TensorType(DType.int64, ["rows", "n_bars", 2], DEVICE),
        TensorType(DType.int64, ["n_barred"], DEVICE),
        TensorType(DType.int64, [1], DEVICE),
    ]
    custom = compile_graph(
        "bench_token_scores_custom", types, lambda *a: custom_ops.token_scores(*a, TOP)[2], custom=True
    )
    builtin = compile_graph(
        "bench_token_scores_max",
        [types[0], TensorType(DType.float32, ["rows", VOCAB], DEVICE)],
        lambda logits, mask: builtin_scores(logits, mask, first)[0],
    )
    rng = np.random.default_rng(0)
    cases = []
    for name, rows in {"greedy, 1 row": 1, "beam 5, 5 rows": 5}.items():
        tokens = np.array([[50257, 50362, 50363, first + 10, 400, 500]] * rows)
        logits = rng.normal(0, 3, (rows, VOCAB)).astype(np.float32)
        bars, barred = rules.bars(tokens), rules.barred_everywhere
        mask = np.zeros((rows, VOCAB), np.float32)
        apply_bars(mask, bars)
        mask[:, barred] = -np.inf
        first_timestamp = np.array([first], np.int64)
        expected = reference.token_scores(logits, bars, barred, first, TOP)[2]

        def numpy_path(logits=logits, tokens=tokens):
            ruled = logits.copy()
            rules.apply(ruled, tokens)
            top_tokens(ruled, TOP)
            return np.stack(log_normalisers(ruled), axis=-1)

        case = Case(name, f"logits [{rows}, {VOCAB}] fp32", 4.0 * rows * VOCAB, "byte", expected)
        case.contenders = [
            max_contender("custom token_scores op", "custom", custom, logits, bars, barred, first_timestamp),
            max_contender("MAX built-in ops (mask input)", "max", builtin, logits, mask),
            Contender("NumPy f32 (decoding's own path)", "numpy32", numpy_path),
            Contender("NumPy f64 reference", "numpy64",
                      lambda logits=logits, bars=bars: reference.token_scores(logits, bars, barred, first, TOP)[2]),
        ]
        cases.append(case)
    return cases


if __name__ == "__main__":
    sys.exit(run("token_scores", "Token rules, normaliser and top-16 of a decoding step", make_cases, NOTES))
