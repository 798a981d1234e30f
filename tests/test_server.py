"""maxwhisper-server against the real openai client: every response format and granularity on
jfk.flac, streaming, /v1/models, /metrics, and the error cases, each compared with what
model.transcribe gives for the same file."""

from __future__ import annotations

import json
import re
import urllib.request

import pytest
from clips import SHARED_AUDIO

openai = pytest.importorskip("openai")

JFK = SHARED_AUDIO / "jfk.flac"


@pytest.fixture(scope="module")
def reference(tiny_en):
    """What the library itself gives for jfk.flac, without and with word timestamps."""
    return {
        "segment": tiny_en.transcribe(str(JFK)),
        "word": tiny_en.transcribe(str(JFK), word_timestamps=True),
    }


def transcribe(client, **fields):
    with open(JFK, "rb") as audio:
        return client.audio.transcriptions.create(model="tiny.en", file=audio, **fields)


def test_json_is_the_library_text(openai_client, reference):
    result = transcribe(openai_client)
    assert isinstance(result, openai.types.audio.Transcription)
    assert result.text == reference["segment"]["text"]
    assert "ask not what your country can do for you" in result.text.lower()


def test_whisper_1_names_the_served_model(openai_client, reference):
    with open(JFK, "rb") as audio:
        result = openai_client.audio.transcriptions.create(model="whisper-1", file=audio)
    assert result.text == reference["segment"]["text"]


def test_text_srt_vtt_are_the_writers_output(openai_client, reference):
    segments = reference["segment"]["segments"]
    text = transcribe(openai_client, response_format="text")
    assert text.splitlines() == [s["text"].strip() for s in segments]
    srt = transcribe(openai_client, response_format="srt")
    blocks = srt.strip().split("\n\n")
    assert len(blocks) == len(segments)
    assert blocks[0].splitlines()[0] == "1"
    assert re.fullmatch(r"\d\d:\d\d:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}", blocks[0].splitlines()[1])
    assert [b.splitlines()[2] for b in blocks] == [s["text"].strip() for s in segments]
    vtt = transcribe(openai_client, response_format="vtt")
    assert vtt.startswith("WEBVTT\n")
    assert vtt.count(" --> ") == len(segments)


@pytest.mark.parametrize(
    "granularities, has_segments, has_words",
    [(None, True, False), (["segment"], True, False), (["word"], False, True),
     (["word", "segment"], True, True)],
)  # fmt: skip
def test_verbose_json_granularities(openai_client, reference, granularities, has_segments, has_words):
    fields = {"response_format": "verbose_json"}
    if granularities is not None:
        fields["timestamp_granularities"] = granularities
    result = transcribe(openai_client, **fields)
    assert isinstance(result, openai.types.audio.TranscriptionVerbose)
    expected = reference["word" if has_words else "segment"]
    assert result.text == expected["text"]
    assert result.language == "en"
    assert result.duration == pytest.approx(11.0, abs=0.1)  # jfk.flac is 11 s
    if has_segments:
        assert [s.text for s in result.segments] == [s["text"] for s in expected["segments"]]
        assert [s.tokens for s in result.segments] == [s["tokens"] for s in expected["segments"]]
        assert result.segments[0].start == expected["segments"][0]["start"]
    else:
        assert result.segments is None
    if has_words:
        words = [w for s in expected["segments"] for w in s["words"]]
        assert [(w.word, w.start, w.end) for w in result.words] == [
            (w["word"], w["start"], w["end"]) for w in words
        ]
    else:
        assert result.words is None


def test_streaming_deltas_add_up_to_the_text(openai_client, reference):
    with open(JFK, "rb") as audio:
        events = list(
            openai_client.audio.transcriptions.create(model="tiny.en", file=audio, stream=True)
        )
    assert [e.type for e in events[:-1]] == ["transcript.text.delta"] * (len(events) - 1)
    assert events[-1].type == "transcript.text.done"
    assert [e.delta for e in events[:-1]] == [s["text"] for s in reference["segment"]["segments"]]
    assert events[-1].text == reference["segment"]["text"]


def test_models_lists_the_model(openai_client):
    ids = [model.id for model in openai_client.models.list()]
    assert ids == ["tiny.en", "whisper-1"]


def _status_error(call, error_type):
    with pytest.raises(error_type) as caught:
        call()
    error = caught.value
    body = error.response.json()["error"]
    assert set(body) == {"message", "type", "param", "code"}
    # nothing of the server's machine: no traceback, no temporary or install path
    assert "Traceback" not in body["message"] and "/tmp" not in body["message"]
    assert "site-packages" not in body["message"]
    return error, body


def test_unknown_model_is_404(openai_client):
    error, body = _status_error(
        lambda: openai_client.audio.transcriptions.create(model="large-v9", file=JFK),
        openai.NotFoundError,
    )
    assert body["code"] == "model_not_found" and body["param"] == "model"
    assert error.response.headers["x-should-retry"] == "false"


@pytest.mark.parametrize(
    "name, content, reason",
    [("empty.wav", b"", "empty"), ("notes.txt", b"just some text, not audio\n" * 40, "no audio stream")],
)
def test_bad_files_are_400_naming_the_file(openai_client, name, content, reason):
    error, body = _status_error(
        lambda: openai_client.audio.transcriptions.create(model="tiny.en", file=(name, content)),
        openai.BadRequestError,
    )
    assert body["message"].startswith(f"{name}: ") and reason in body["message"]
    assert body["param"] == "file"
    assert error.response.headers["x-should-retry"] == "false"


def test_json_with_word_granularity_is_400(openai_client):
    _, body = _status_error(
        lambda: transcribe(openai_client, response_format="json", timestamp_granularities=["word"]),
        openai.BadRequestError,
    )
    assert body["param"] == "timestamp_granularities"


@pytest.mark.parametrize(
    "fields, param",
    [({"response_format": "docx"}, "response_format"), ({"temperature": 3}, "temperature"),
     ({"language": "klingon"}, "language"), ({"language": "de"}, "language")],
)  # fmt: skip
def test_bad_fields_are_400(openai_client, fields, param):
    _, body = _status_error(lambda: transcribe(openai_client, **fields), openai.BadRequestError)
    assert body["param"] == param


def test_translation_on_an_english_only_model_is_400(openai_client):
    _, body = _status_error(
        lambda: openai_client.audio.translations.create(model="tiny.en", file=JFK),
        openai.BadRequestError,
    )
    assert "English-only" in body["message"]


def test_upload_over_the_limit_is_413(openai_client):
    big = b"\0" * (3 * 1024 * 1024)  # the fixture's limit is 2 MiB
    error, body = _status_error(
        lambda: openai_client.audio.transcriptions.create(model="tiny.en", file=("big.wav", big)),
        openai.APIStatusError,
    )
    assert error.status_code == 413 and body["code"] == "file_too_large"


def test_missing_or_wrong_api_key_is_401(server_url):
    client = openai.OpenAI(base_url=f"{server_url}/v1", api_key="wrong", max_retries=0)
    _, body = _status_error(lambda: client.models.list(), openai.AuthenticationError)
    assert body["code"] == "invalid_api_key"


def test_health(server_url):
    with urllib.request.urlopen(f"{server_url}/health", timeout=10) as response:
        assert json.load(response) == {"status": "ok", "model": "tiny.en"}


def _metrics(server_url) -> dict[str, float]:
    with urllib.request.urlopen(f"{server_url}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def test_metrics_count_requests_audio_and_batches(openai_client, server_url):
    before = _metrics(server_url)
    ok = 'maxwhisper_requests_total{endpoint="transcribe",status="200"}'
    transcribe(openai_client)
    after = _metrics(server_url)
    assert after[ok] == before.get(ok, 0) + 1
    audio = "maxwhisper_audio_seconds_total"
    assert after[audio] - before[audio] == pytest.approx(11.0, abs=0.1)
    count = "maxwhisper_request_latency_seconds_count"
    assert after[count] == before[count] + 1
    assert after['maxwhisper_request_latency_seconds_bucket{le="+Inf"}'] == after[count]
    assert after["maxwhisper_batch_size_count"] == before["maxwhisper_batch_size_count"] + 1
    assert after["maxwhisper_queue_depth"] == 0
