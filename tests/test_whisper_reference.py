"""The NumPy forward pass in whisper_reference.py, run on tiny.en and digital silence: the
encoder's output shape, a causal decoder, the no-speech token first, and the dtype asked for."""

from __future__ import annotations

import numpy as np
import pytest

import whisper_reference as reference

SOT, EOT, NO_TIMESTAMPS = 50257, 50256, 50362  # tiny.en (English-only) special tokens


@pytest.fixture(scope="module")
def tiny_audio_features(tiny):
    # Log-mel of digital silence is -1.5 everywhere after Whisper's normalisation.
    return reference.encoder(tiny, np.full((80, 3000), -1.5))


def test_reference_encoder_shape(tiny_audio_features):
    assert tiny_audio_features.shape == (1500, 384)
    assert np.isfinite(tiny_audio_features).all()


def test_reference_decoder_is_causal(tiny, tiny_audio_features):
    logits = reference.decoder_logits(tiny, [SOT, NO_TIMESTAMPS, 50], tiny_audio_features)
    changed = reference.decoder_logits(tiny, [SOT, NO_TIMESTAMPS, 51], tiny_audio_features)
    assert logits.shape == (3, 51864) and np.isfinite(logits).all()
    np.testing.assert_allclose(changed[:2], logits[:2], rtol=0, atol=1e-9)
    assert not np.allclose(changed[2], logits[2])


def test_reference_on_silence_predicts_no_speech(tiny, tiny_audio_features):
    # Whisper's own behaviour on silence: <|nospeech|> right after <|startoftranscript|>.
    logits = reference.decoder_logits(tiny, [SOT], tiny_audio_features)
    assert logits[0].argmax() == 50361


def test_reference_keeps_the_requested_dtype(tiny, tiny_audio_features):
    logits = reference.decoder_logits(tiny, [SOT, NO_TIMESTAMPS], tiny_audio_features, np.float32)
    assert logits.dtype == np.float32
