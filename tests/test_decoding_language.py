"""Language detection (decoding/language.py) with a multilingual scripted fake model that
hears German: the language it detects, and the prompt that decoding then writes."""

from __future__ import annotations

import pytest

from decoding_script import MEL, german_model
from decoding_script import multilingual_dir  # noqa: F401, F811 (a fixture)
from maxwhisper_kernels.decoding import decode, detect_language


def test_detect_language_and_decode_in_the_detected_language(multilingual_dir):
    model, german, prompt = german_model(multilingual_dir)

    token, probs = detect_language(model, MEL)
    assert token == german
    assert max(probs, key=probs.get) == "de" and sum(probs.values()) == pytest.approx(1.0)
    assert len(probs) == 99

    result = decode(model, MEL)
    assert result.language == "de" and result.language_probs["de"] > 0.99
    assert model.inferences[-1].fed[0][0].tolist() == prompt
    assert result.text == "Hello"
