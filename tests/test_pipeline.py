"""transcribe(vad_filter=True): only speech is decoded and the times are the original audio's."""

import wave

import numpy as np
import pytest

from clips import SHARED_AUDIO
from maxwhisper_kernels.audio import SAMPLE_RATE, load_audio

GAP_SECONDS = 60


@pytest.fixture(scope="module")
def two_utterances_and_a_gap():
    """jfk, 60 s of faint noise and near-silence, then a LibriSpeech clip."""
    first = load_audio(SHARED_AUDIO / "jfk.flac")
    second = load_audio(SHARED_AUDIO / "dev" / "1221-135766-0002.flac")
    rng = np.random.default_rng(3)
    gap = (0.003 * rng.standard_normal(GAP_SECONDS * SAMPLE_RATE)).astype(np.float32)
    audio = np.concatenate([first, gap, second])
    gap_start = len(first) / SAMPLE_RATE
    return audio, gap_start, gap_start + GAP_SECONDS


def test_vad_filter_skips_the_gap_and_restores_times(tiny_en, two_utterances_and_a_gap):
    audio, gap_start, gap_end = two_utterances_and_a_gap
    result = tiny_en.transcribe(audio, vad_filter=True, vad_parameters={"min_silence_duration_ms": 500})
    text = result["text"].lower()
    assert "ask not what your country can do for you" in text
    assert "hester" in text and "apprehension" in text
    segments = result["segments"]
    # Nothing is placed inside the gap (400 ms of speech padding allowed at either edge) ...
    for segment in segments:
        assert segment["end"] <= gap_start + 0.5 or segment["start"] >= gap_end - 0.5, segment
    # ... and the second utterance's segments sit after it, in the original audio's time.
    assert any(s["start"] >= gap_end - 0.5 for s in segments)
    assert segments[-1]["end"] <= len(audio) / SAMPLE_RATE + 0.01
    assert [s["start"] for s in segments] == sorted(s["start"] for s in segments)


def test_vad_filter_on_silence_gives_no_text(tiny_en):
    rng = np.random.default_rng(5)
    noise = (0.003 * rng.standard_normal(20 * SAMPLE_RATE)).astype(np.float32)
    result = tiny_en.transcribe(noise, vad_filter=True)
    assert result["text"] == "" and result["segments"] == []


def test_bad_vad_parameter_is_a_clear_error(tiny_en):
    with pytest.raises(TypeError, match="min_silence"):
        tiny_en.transcribe(np.zeros(16000, np.float32), vad_filter=True, vad_parameters={"min_silence": 1})


def test_batched_pipeline_matches_the_speech(tiny_en, two_utterances_and_a_gap):
    """batch_size=2: both utterances fall in one or two <= 30 s windows decoded together."""
    audio, gap_start, gap_end = two_utterances_and_a_gap
    result = tiny_en.transcribe(audio, batch_size=2)
    text = result["text"].lower()
    assert "ask not what your country can do for you" in text
    assert "hester" in text and "apprehension" in text
    for segment in result["segments"]:
        assert segment["end"] <= gap_start + 0.5 or segment["start"] >= gap_end - 0.5, segment
    assert [s["id"] for s in result["segments"]] == list(range(len(result["segments"])))


@pytest.fixture(scope="module")
def jfk_words(tiny_en):
    """jfk's words with their times, transcribed alone (no VAD, no batching)."""
    result = tiny_en.transcribe(load_audio(SHARED_AUDIO / "jfk.flac"), word_timestamps=True)
    return [w for s in result["segments"] for w in s["words"]]


def bare(word: str) -> str:
    return "".join(c for c in word.lower() if c.isalnum())


# Whisper times words from its cross-attention on 20 ms frames; where the window begins (the
# chunk brings up to 0.4 s of the noise before jfk) moves that alignment by a frame or so, and
# at most 0.2 s at the edges of a pause ("for you, | ask": measured 0.18), where the attention
# has no sound to place a boundary on.
WORD_TOLERANCE = 0.2
TYPICAL_WORD_ERROR = 0.05  # the median over all word starts and ends


@pytest.mark.parametrize("path", ["vad_filter", "batched"])
def test_word_times_are_the_original_audios(tiny_en, jfk_words, path):
    """jfk after 45 s of faint noise: every word lands 45 s later than in jfk alone."""
    silence = 45.0
    rng = np.random.default_rng(11)
    lead = (0.003 * rng.standard_normal(int(silence * SAMPLE_RATE))).astype(np.float32)
    audio = np.concatenate([lead, load_audio(SHARED_AUDIO / "jfk.flac")])
    options = {"vad_filter": True} if path == "vad_filter" else {"batch_size": 2}
    result = tiny_en.transcribe(audio, word_timestamps=True, **options)
    words = [w for s in result["segments"] for w in s["words"]]
    # The text may differ in punctuation (the window starts elsewhere), not in its words.
    assert [bare(w["word"]) for w in words] == [bare(w["word"]) for w in jfk_words]
    shifts = np.array([[w["start"] - r["start"], w["end"] - r["end"]] for w, r in zip(words, jfk_words)])
    np.testing.assert_allclose(shifts, silence, atol=WORD_TOLERANCE)
    assert np.median(np.abs(shifts - silence)) <= TYPICAL_WORD_ERROR
    for segment in result["segments"]:  # segments hold their words
        assert segment["start"] <= segment["words"][0]["start"] and segment["words"][-1]["end"] <= segment["end"]


def write_wav(path, audio: np.ndarray) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(np.round(np.clip(audio, -1, 32767 / 32768) * 32768).astype("<i2").tobytes())


def test_speech_chunks_from_a_file_in_blocks_equal_the_whole_array(two_utterances_and_a_gap, tmp_path):
    """The file read in blocks of 3 s and a bit (VAD state, segmenter and kept audio carried
    between blocks) gives the chunks of the whole waveform at once, sample for sample."""
    from maxwhisper_kernels.audio import AudioStream
    from maxwhisper_kernels.pipeline import speech_chunks
    from maxwhisper_kernels.vad import VadOptions

    path = tmp_path / "long.wav"
    write_wav(path, two_utterances_and_a_gap[0])
    whole = load_audio(path)
    options = VadOptions(min_silence_duration_ms=160, max_speech_duration_s=5)
    streamed = list(speech_chunks(AudioStream(path, 3 * SAMPLE_RATE + 123), options))
    at_once = list(speech_chunks([whole], options))
    assert len(streamed) == len(at_once) >= 4  # max_speech_duration_s cuts the utterances
    for (chunk, samples), (expected, expected_samples) in zip(streamed, at_once):
        assert chunk == expected
        np.testing.assert_array_equal(samples, whole[chunk["start"] : chunk["end"]])
        np.testing.assert_array_equal(samples, expected_samples)


def test_batched_pipeline_holds_far_less_than_the_recording(tiny_en, tmp_path):
    """40 minutes of faint noise with jfk at 20 min, from a file: the pipeline's NumPy memory
    peaks far below the recording as float32 (154 MB). tracemalloc sees NumPy's arrays, not
    MAX's own buffers, which hold the model, not the audio."""
    import tracemalloc

    rng = np.random.default_rng(2)
    audio = (0.003 * rng.standard_normal(40 * 60 * SAMPLE_RATE)).astype(np.float32)
    jfk = load_audio(SHARED_AUDIO / "jfk.flac")
    audio[20 * 60 * SAMPLE_RATE : 20 * 60 * SAMPLE_RATE + len(jfk)] += jfk
    path = tmp_path / "forty_minutes.wav"
    write_wav(path, audio)
    as_float32 = audio.nbytes
    del audio
    tracemalloc.start()
    try:
        result = tiny_en.transcribe(path, batch_size=4)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "ask not what your country can do for you" in result["text"].lower()
    assert all(20 * 60 - 1 <= s["start"] and s["end"] <= 20 * 60 + 12 for s in result["segments"])
    assert peak < as_float32 / 2, f"peak {peak / 2**20:.0f} MiB"


def test_speech_time_map_by_hand():
    from maxwhisper_kernels.pipeline import _SpeechTimeMap

    # Speech at 1-3 s and 10-12 s of the original: joined, 0-2 s and 2-4 s.
    times = _SpeechTimeMap([{"start": 16000, "end": 48000}, {"start": 160000, "end": 192000}])
    assert times.original(0.5) == 1.5
    assert times.original(2.0, is_end=True) == 3.0  # an end on the join closes the first chunk
    assert times.original(2.0) == 10.0  # a start on the join opens the second
    assert times.original(1.9) == 10.0  # 0.1 s before the join holds no word
    assert times.original(1.5) == 2.5
    assert times.original(4.3, is_end=True) == 12.0  # never past the speech


def test_cli_one_file_with_batch_size_runs_the_pipeline(tiny_en, monkeypatch, tmp_path, capsys):
    from maxwhisper_kernels import cli, pipeline

    monkeypatch.setattr("maxwhisper_kernels.model.load_model", lambda *args, **kwargs: tiny_en)
    calls = []
    real = pipeline.transcribe_batched
    monkeypatch.setattr(pipeline, "transcribe_batched", lambda *a, **k: calls.append(a[2]) or real(*a, **k))
    options = ["--beam_size", "None", "--best_of", "None", "-f", "txt", "-o", str(tmp_path)]
    assert cli.main([str(SHARED_AUDIO / "jfk.flac"), "--batch_size", "3", "--verbose", "False", *options]) == 0
    assert calls == [3]
    assert "ask not what your country" in (tmp_path / "jfk.txt").read_text().lower()


def test_cli_pipeline_names_an_unreadable_file(tiny_en, monkeypatch, tmp_path, capsys):
    from maxwhisper_kernels import cli

    monkeypatch.setattr("maxwhisper_kernels.model.load_model", lambda *args, **kwargs: tiny_en)
    bad = tmp_path / "notes.flac"
    bad.write_text("not audio at all")
    assert cli.main([str(bad), "--batch_size", "4", "-o", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {bad}: ") and "Traceback" not in err  # the file and the reason
