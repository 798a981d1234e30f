"""maxwhisper against openai-whisper's own transcripts of the same samples
with the same tiny.en weights (recorded by
benchmarks/e2e/record_openai_reference.py): the segments' text and
timestamps must be identical, greedy and with beam search."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from clips import SHARED_AUDIO
from conftest import DECODING_MODES
from maxwhisper_kernels.audio import load_audio

REFERENCE = json.loads((Path(__file__).parent / "data" / "openai_whisper_reference.json").read_text())


@pytest.mark.parametrize("mode", DECODING_MODES)
@pytest.mark.parametrize("clip", ["jfk", "long_form"])
def test_segments_match_openai_whisper(tiny_en, long_clip, long_form_result, clip, mode):
    audio = long_clip if clip == "long_form" else load_audio(SHARED_AUDIO / "jfk.flac")
    expected = REFERENCE["clips"][clip]
    if hashlib.sha256(np.asarray(audio, np.float32).tobytes()).hexdigest() != expected["sha256"]:
        pytest.skip(f"{clip}: these samples differ from the recorded ones ({REFERENCE['espeak_ng']})")
    if clip == "long_form":
        segments = long_form_result(mode)["segments"]
    else:
        segments = tiny_en.transcribe(audio, **DECODING_MODES[mode])["segments"]
    got = [(s["text"], round(s["start"], 2), round(s["end"], 2)) for s in segments]
    want = [(s["text"], round(s["start"], 2), round(s["end"], 2)) for s in expected["results"][mode]]
    assert got == want
