"""The lstm_sequence kernel (kernels/lstm.mojo) against an LSTM cell written out in NumPy
float64 from its definition (reference.lstm_sequence)."""

import numpy as np
import pytest
import reference

from maxwhisper_kernels import ops


@pytest.mark.parametrize("steps, hidden", [(1, 128), (37, 128), (300, 64)])
def test_lstm_sequence_matches_the_definition(steps, hidden):
    rng = np.random.default_rng(steps)
    gates_in = rng.normal(0, 2, (steps, 4 * hidden)).astype(np.float32)
    w_hh = rng.normal(0, 0.15, (hidden, 4 * hidden)).astype(np.float32)
    h0, c0 = rng.normal(0, 0.5, (2, hidden)).astype(np.float32)
    hs, h, c = ops.lstm_sequence(gates_in, w_hh, h0, c0)
    want_hs, want_h, want_c = reference.lstm_sequence(gates_in, w_hh, h0, c0)
    np.testing.assert_allclose(hs, want_hs, atol=2e-5)
    np.testing.assert_allclose(h, want_h, atol=2e-5)
    np.testing.assert_allclose(c, want_c, atol=1e-4)
    assert np.array_equal(hs[-1], h)


def test_lstm_sequence_in_pieces_equals_at_once():
    """Carrying (h, c) from one call into the next gives the same steps, bit for bit."""
    rng = np.random.default_rng(1)
    gates_in = rng.normal(0, 2, (90, 512)).astype(np.float32)
    w_hh = rng.normal(0, 0.15, (128, 512)).astype(np.float32)
    zero = np.zeros(128, np.float32)
    whole, _, _ = ops.lstm_sequence(gates_in, w_hh, zero, zero)
    first, h, c = ops.lstm_sequence(gates_in[:40], w_hh, zero, zero)
    second, _, _ = ops.lstm_sequence(gates_in[40:], w_hh, h, c)
    assert np.array_equal(np.concatenate([first, second]), whole)


def test_lstm_sequence_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="w_hh"):
        ops.lstm_sequence(np.zeros((3, 512)), np.zeros((128, 256)), np.zeros(128), np.zeros(128))
