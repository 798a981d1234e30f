"""Float64 NumPy references for the kernels, written from the definitions in
the kernel headers (and Whisper's whisper/audio.py), not from the code under
test."""

from __future__ import annotations

import numpy as np


def layer_norm(x, weight, bias, eps=1e-5):
    x = np.asarray(x, dtype=np.float64)
    centred = x - x.mean(axis=-1, keepdims=True)
    variance = (centred**2).mean(axis=-1, keepdims=True)
    return centred / np.sqrt(variance + eps) * weight + bias


def attention(q, k, v, causal=False, scale=None):
    q, k, v = (np.asarray(a, dtype=np.float64) for a in (q, k, v))
    tq, tk, d = q.shape[-2], k.shape[-2], q.shape[-1]
    scores = np.einsum("bhqd,bhkd->bhqk", q, k) * (d**-0.5 if scale is None else scale)
    if causal:
        hidden = np.arange(tk)[None, :] > (tk - tq + np.arange(tq))[:, None]
        scores = np.where(hidden, -np.inf, scores)
    weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
    weights /= weights.sum(axis=-1, keepdims=True)
    return np.einsum("bhqk,bhkd->bhqd", weights, v)


def quantize_rows(x):
    """Per row of the last axis: scale = max |x| / 127 (float32), values x / scale rounded half
    to even into int8; a zero row keeps scale 0 (the int8 decoder's cross-attention inputs)."""
    x = np.asarray(x, dtype=np.float32)
    scale = (np.abs(x).max(axis=-1) / np.float32(127)).astype(np.float32)
    safe = np.where(scale > 0, scale, np.float32(1))
    return np.rint(x / safe[..., None]).astype(np.int8), scale


def slaney_mel_filters(n_mels, sr=16000, n_fft=400):
    """Triangles between consecutive Slaney-mel band edges, each scaled to unit
    area (2 / bandwidth), evaluated at the rfft bin frequencies."""

    def to_mel(f):
        return f * 3.0 / 200.0 if f < 1000.0 else 15.0 + 27.0 * np.log(f / 1000.0) / np.log(6.4)

    def to_hz(m):
        return m * 200.0 / 3.0 if m < 15.0 else 1000.0 * 6.4 ** ((m - 15.0) / 27.0)

    top = to_mel(sr / 2)
    edges = [to_hz(top * i / (n_mels + 1)) for i in range(n_mels + 2)]
    freqs = np.arange(n_fft // 2 + 1) * sr / n_fft
    bank = np.zeros((n_mels, len(freqs)))
    for band in range(n_mels):
        lo, mid, hi = edges[band : band + 3]
        for j, f in enumerate(freqs):
            if lo < f < hi:
                rise = (f - lo) / (mid - lo) if f <= mid else (hi - f) / (hi - mid)
                bank[band, j] = rise * 2.0 / (hi - lo)
    return bank


def log_mel_spectrogram(audio, n_mels=80, padding=0):
    audio = np.asarray(audio, dtype=np.float64)
    if padding:
        audio = np.concatenate([audio, np.zeros(padding)])
    n_fft, hop = 400, 160
    padded = np.pad(audio, n_fft // 2, mode="reflect")
    n_frames = 1 + (len(padded) - n_fft) // hop
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    frames = np.stack([padded[i * hop : i * hop + n_fft] for i in range(n_frames)])
    power = np.abs(np.fft.rfft(frames * window, axis=-1)) ** 2
    mel = slaney_mel_filters(n_mels) @ power[:-1].T
    log_spec = np.log10(np.maximum(mel, 1e-10))
    log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
    return (log_spec + 4.0) / 4.0


def quantize_rows_dynamic(x):
    """The int8 GEMM's activation quantization, from its definition, in the
    kernel's float32 arithmetic: (q [M, K] int8 in [-127, 127], scale [M])."""
    x = np.asarray(x, np.float32)
    peak = np.abs(x).max(axis=1)
    with np.errstate(divide="ignore"):
        inv = np.where(peak > 0, np.float32(127) / peak, np.float32(0)).astype(np.float32)
    q = np.clip(np.rint(x * inv[:, None]), -127, 127).astype(np.int8)
    return q, (peak / np.float32(127)).astype(np.float32)


def matmul_int8(x, values, weight_scale, bias=None):
    """y = fma(float32(sum_k q_x q_w), scale_x[m] * weight_scale[n], bias[n]):
    exact integer sums (int64), then the kernel's float32 epilogue (a fused
    multiply-add rounds once; float64 holds the product of two float32
    exactly)."""
    q, x_scale = quantize_rows_dynamic(x)
    sums = q.astype(np.int64) @ np.asarray(values, np.int64).T
    scale = (x_scale[:, None] * np.asarray(weight_scale, np.float32)[None, :]).astype(np.float32)
    b = np.zeros(len(weight_scale), np.float32) if bias is None else np.asarray(bias, np.float32)
    y = sums.astype(np.float32).astype(np.float64) * scale.astype(np.float64) + b.astype(np.float64)
    return y.astype(np.float32)


def lstm_sequence(gates_in, w_hh, h, c):
    """An LSTM cell over time (torch.nn.LSTMCell's gates: input, forget, cell, output), from
    gate pre-activations gates_in[t] + h @ w_hh: every step's h [T, H], the final h and c."""
    hidden = len(h)
    h, c, w_hh = (np.asarray(a, dtype=np.float64) for a in (h, c, w_hh))
    sigmoid = lambda x: 1.0 / (1.0 + np.exp(-x))  # noqa: E731
    steps = []
    for row in np.asarray(gates_in, dtype=np.float64):
        g = row + h @ w_hh
        i, f = sigmoid(g[:hidden]), sigmoid(g[hidden : 2 * hidden])
        cell, o = np.tanh(g[2 * hidden : 3 * hidden]), sigmoid(g[3 * hidden :])
        c = f * c + i * cell
        h = o * np.tanh(c)
        steps.append(h)
    return np.array(steps).reshape(-1, hidden), h, c


def token_scores(logits, bars, suppressed, first_timestamp, k):
    """The token_scores op from its definition, row by row: (filtered logits, ids of the k best
    ordered by value then id, [peak, log-sum-exp shifted by the peak] in float64)."""
    filtered = np.array(logits, dtype=np.float32)
    vocab = filtered.shape[1]
    top = np.zeros((len(filtered), k), dtype=np.int64)
    stats = np.zeros((len(filtered), 2))
    for r, row in enumerate(filtered):
        row[[i for i in suppressed if 0 <= i < vocab]] = -np.inf
        for lo, hi in bars[r]:
            row[max(lo, 0) : max(hi, 0)] = -np.inf
        if 0 <= first_timestamp < vocab:
            times = row[first_timestamp:].astype(np.float64)
            if np.isfinite(times.max()):
                total = times.max() + np.log(np.sum(np.exp(times - times.max())))
                if total > row[:first_timestamp].max():
                    row[:first_timestamp] = -np.inf
        peak = row.max().astype(np.float64)
        with np.errstate(invalid="ignore"):  # a row with everything barred: NaN
            stats[r] = peak, np.log(np.sum(np.exp(row.astype(np.float64) - peak)))
        top[r] = np.lexsort((np.arange(vocab), -row))[:k]  # by value, then by id
    return filtered, top, stats
