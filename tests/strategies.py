"""Hypothesis strategies shared by the kernel tests."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st


@st.composite
def arrays(draw, shape, low_scale=1e-3, high_scale=1e3):
    """Float32 normal values of shape, at a drawn magnitude (seeded from
    hypothesis so failures replay)."""
    seed = draw(st.integers(0, 2**32 - 1))
    scale = draw(st.floats(low_scale, high_scale))
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * scale).astype(np.float32)
