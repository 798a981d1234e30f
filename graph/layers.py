"""Pieces shared by the encoder and decoder graphs."""

from __future__ import annotations

from max.dtype import DType
from max.graph import DeviceRef, TensorValue, Weight, ops

from maxwhisper_kernels import custom_ops


class Weights:
    """Declares graph weights by name; parameters.py supplies their values
    under the same names when the graph is loaded."""

    def __init__(self, device: DeviceRef):
        self.device = device

    def __call__(self, name: str, *shape: int) -> Weight:
        return Weight(name, DType.float32, list(shape), self.device)


def linear(x: TensorValue, w: Weights, name: str, d_in: int, d_out: int, bias: bool = True):
    """x @ W + b with W stored as [d_in, d_out]."""
    y = x @ w(f"{name}.weight", d_in, d_out)
    return y + w(f"{name}.bias", d_out) if bias else y


def layer_norm(x: TensorValue, w: Weights, name: str, d: int) -> TensorValue:
    return custom_ops.layer_norm(x, w(f"{name}.weight", d), w(f"{name}.bias", d))


def add_layer_norm(x: TensorValue, residual: TensorValue, w: Weights, name: str, d: int):
    """(LN(x + residual), x + residual): a residual add fused with the next norm."""
    return custom_ops.add_layer_norm(x, residual, w(f"{name}.weight", d), w(f"{name}.bias", d))


def mlp(x: TensorValue, w: Weights, name: str, d: int) -> TensorValue:
    h = ops.gelu(linear(x, w, f"{name}.0", d, 4 * d))
    return linear(h, w, f"{name}.2", 4 * d, d)


def split_heads(x: TensorValue, n_head: int) -> TensorValue:
    """[B, T, H*D] -> [B, H, T, D], the layout the attention kernel reads."""
    batch, time, width = x.shape
    return ops.reshape(x, [batch, time, n_head, int(width) // n_head]).transpose(1, 2)


def merge_heads(x: TensorValue) -> TensorValue:
    batch, n_head, time, d_head = x.shape
    return ops.reshape(x.transpose(1, 2), [batch, time, int(n_head) * int(d_head)])


def head_scale(d: int, n_head: int) -> float:
    return (d // n_head) ** -0.5
