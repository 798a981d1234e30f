import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import reference
from maxwhisper_kernels import ops
from maxwhisper_kernels.mel_filters import mel_filters

SR = 16000
TOL = 1e-4  # absolute, after Whisper's (x + 4) / 4 normalisation


def check(audio, n_mels=80, padding=0):
    out = ops.log_mel_spectrogram(audio, n_mels=n_mels, padding=padding)
    expected = reference.log_mel_spectrogram(audio, n_mels=n_mels, padding=padding)
    assert out.shape == expected.shape == (n_mels, (len(audio) + padding) // 160)
    np.testing.assert_allclose(out, expected, rtol=0, atol=TOL)


@given(
    length=st.integers(160, 60 * SR),
    scale=st.sampled_from([0.0, 1e-4, 1e-2, 0.3, 1.0]),
    seed=st.integers(0, 2**32 - 1),
    n_mels=st.sampled_from([80, 128]),
    padding=st.sampled_from([0, 1, 400, 30 * SR]),
)
def test_log_mel_matches_reference(length, scale, seed, n_mels, padding):
    rng = np.random.default_rng(seed)
    audio = np.clip(rng.standard_normal(length) * scale, -1, 1).astype(np.float32)
    check(audio, n_mels, padding)


@pytest.mark.parametrize("n_mels", [80, 128])
def test_filterbank_matches_slaney_definition(n_mels):
    np.testing.assert_allclose(
        mel_filters(n_mels), reference.slaney_mel_filters(n_mels), rtol=1e-5, atol=1e-8
    )


def test_pure_tone_peaks_in_its_band():
    t = np.arange(30 * SR) / SR
    audio = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    check(audio)
    out = ops.log_mel_spectrogram(audio)
    centre = np.argmax(mel_filters(80)[:, 1000 * 400 // SR])
    assert np.all(np.argmax(out[:, 5:-5], axis=0) == centre)


def test_silence_is_constant():
    out = ops.log_mel_spectrogram(np.zeros(SR, np.float32))
    np.testing.assert_array_equal(out, np.full((80, 100), (-10 + 4) / 4, np.float32))


def test_full_scale_square_wave():
    audio = np.sign(np.sin(2 * np.pi * 250 * np.arange(3 * SR) / SR)).astype(np.float32)
    check(audio)


def test_whisper_window_with_padding():
    audio = np.random.default_rng(5).uniform(-0.5, 0.5, 11 * SR).astype(np.float32)
    check(audio, padding=30 * SR)


@pytest.mark.parametrize(
    "audio, kwargs, match",
    [
        (np.zeros(100, np.float32), {}, "shorter than one hop"),
        (np.array([0.0, np.nan] * 200, np.float32), {}, "NaN"),
        (np.zeros((2, 400), np.float32), {}, "dimensions"),
        (np.zeros(400, np.int16), {}, "floating-point"),
        (np.zeros(400, np.float32), {"n_mels": 40}, "n_mels"),
        (np.zeros(400, np.float32), {"padding": -1}, "padding"),
    ],
)
def test_bad_input_raises(audio, kwargs, match):
    with pytest.raises(ValueError, match=match):
        ops.log_mel_spectrogram(audio, **kwargs)


def test_short_audio_padded_to_one_hop():
    audio = np.random.default_rng(6).standard_normal(10).astype(np.float32)
    check(audio, padding=150)
