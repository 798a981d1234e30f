"""Transcription of real speech with real tiny.en weights through the MAX graphs."""

import numpy as np
import pytest

from clips import SHARED_AUDIO
from maxwhisper_kernels.audio import SAMPLE_RATE, AudioError, load_audio
from maxwhisper_kernels.text import normalize_text, word_error_rate

JFK_TEXT = (
    "And so my fellow Americans, ask not what your country can do for you, "
    "ask what you can do for your country."
)


@pytest.fixture(scope="module")
def jfk_audio():
    return load_audio(SHARED_AUDIO / "jfk.flac")


@pytest.mark.parametrize("beam_size", [None, 5])
def test_jfk_transcribes_to_the_reference(tiny_en, jfk_audio, beam_size):
    result = tiny_en.transcribe(jfk_audio, beam_size=beam_size)
    assert normalize_text(result["text"]) == normalize_text(JFK_TEXT)
    assert result["language"] == "en"
    segments = result["segments"]
    assert segments[0]["start"] == 0.0
    assert 10.0 <= segments[-1]["end"] <= 11.0
    assert all(a["end"] <= b["start"] for a, b in zip(segments, segments[1:]))


@pytest.mark.parametrize("beam_size", [None, 5])
def test_int8_model_transcribes_jfk(tiny_en_int8, jfk_audio, beam_size):
    """compute_type="int8" (int8 encoder GEMMs and decoder matrices): the same words."""
    result = tiny_en_int8.transcribe(jfk_audio, beam_size=beam_size)
    assert normalize_text(result["text"]) == normalize_text(JFK_TEXT)


def test_path_and_array_give_the_same_result(tiny_en, jfk_audio):
    from_path = tiny_en.transcribe(str(SHARED_AUDIO / "jfk.flac"))
    from_array = tiny_en.transcribe(jfk_audio)
    assert from_path["text"] == from_array["text"]


def test_word_timestamps_cover_the_words_in_order(tiny_en, jfk_audio):
    result = tiny_en.transcribe(jfk_audio, word_timestamps=True)
    words = [w for s in result["segments"] for w in s["words"]]
    assert normalize_text("".join(w["word"] for w in words)) == normalize_text(JFK_TEXT)
    starts = [w["start"] for w in words]
    assert starts == sorted(starts)
    assert all(w["start"] <= w["end"] for w in words)
    # "country" is the last word: it ends near the end of the speech (about 10.5 s).
    assert 9.5 <= words[-1]["end"] <= 11.0
    assert 0.0 <= words[0]["start"] <= 1.0


def test_silence_gives_an_empty_transcript(tiny_en):
    result = tiny_en.transcribe(np.zeros(5 * SAMPLE_RATE, np.float32))
    assert result["text"].strip() == ""


def test_zero_length_array_is_a_clear_error(tiny_en):
    with pytest.raises(AudioError, match="empty"):
        tiny_en.transcribe(np.zeros(0, np.float32))


@pytest.mark.parametrize("content, reason", [(b"", "empty"), (b"this is not audio\n" * 50, "")])
def test_bad_files_are_clear_errors(tiny_en, tmp_path, content, reason):
    path = tmp_path / "input.wav"
    path.write_bytes(content)
    with pytest.raises(AudioError, match="input.wav") as error:
        tiny_en.transcribe(str(path))
    assert reason in str(error.value)
    assert path.read_bytes() == content  # the user's file is left as it was


def test_dev_set_word_error_rate(tiny_en):
    """A slice of the real-speech dev set (LibriSpeech and LJ Speech) stays
    near tiny.en's known accuracy (about 5-15 % WER with the basic normaliser)."""
    rows = [line.split("\t") for line in (SHARED_AUDIO / "dev" / "transcripts.tsv").read_text().splitlines()[1:]]
    chosen = [r for r in rows if r[1].startswith("librispeech")][:4] + [r for r in rows if r[1] == "ljspeech"][:4]
    references, hypotheses = [], []
    for name, *_rest, text in chosen:
        references.append(text)
        hypotheses.append(tiny_en.transcribe(str(SHARED_AUDIO / "dev" / name), beam_size=5)["text"])
    assert word_error_rate(references, hypotheses) < 0.2


def test_int8_decoder_transcribes_jfk_to_the_reference(tiny_en_int8, jfk_audio):
    result = tiny_en_int8.transcribe(jfk_audio)
    assert normalize_text(result["text"]) == normalize_text(JFK_TEXT)
