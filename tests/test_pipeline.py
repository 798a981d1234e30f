"""transcribe(vad_filter=True): only speech is decoded and the times are the original audio's."""

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
