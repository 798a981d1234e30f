"""The scheduler's window-level interleaving, seen from real clients: a long clip streams its
segments while it is still in the engine, a short request sent meanwhile is answered before the
long one ends, a client that hangs up is dropped from the engine, and a request at temperature
> 0 is decoded in its own settings group without changing the others' transcripts.

Nothing here is timed: "before" is read from the server's own gauges at the moment an answer
arrives (the long clip has about six windows, so it is still being decoded then)."""

from __future__ import annotations

import concurrent.futures
import socket
import time
import urllib.parse
import urllib.request
import wave

import numpy as np
import pytest
from clips import SHARED_AUDIO
from serving import running_server

from maxwhisper_kernels.server import ServerConfig

openai = pytest.importorskip("openai")

JFK = SHARED_AUDIO / "jfk.flac"
DEV_CLIP = SHARED_AUDIO / "dev" / "1089-134686-0002.flac"
ACTIVE = "maxwhisper_transcriptions_active"
CANCELLED = "maxwhisper_cancelled_total"
BOUND_S = 240  # how long a wait may last before the test gives up: a bound, not a speed claim


@pytest.fixture(scope="module")
def long_wav(long_clip, tmp_path_factory):
    """The 2.5-minute espeak-ng clip as a 16-bit WAV file, as a client would upload it."""
    path = tmp_path_factory.mktemp("upload") / "long_form.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes((np.clip(long_clip, -1, 1) * 32767).astype("<i2").tobytes())
    return path


@pytest.fixture(scope="module")
def long_reference(tiny_en, long_wav):
    return tiny_en.transcribe(str(long_wav))


@pytest.fixture(scope="module")
def url(tiny_en):
    with running_server(tiny_en, ServerConfig(model_name="tiny.en", max_batch=4)) as base:
        yield base


@pytest.fixture(scope="module")
def client(url):
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=BOUND_S)


def metrics(url: str) -> dict[str, float]:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        lines = response.read().decode().splitlines()
    return {
        name: float(value)
        for name, value in (line.rsplit(" ", 1) for line in lines if not line.startswith("#"))
    }


def wait_for(url: str, condition) -> dict[str, float]:
    deadline = time.monotonic() + BOUND_S
    while not condition(sample := metrics(url)):
        assert time.monotonic() < deadline, f"the server never reached the state: {sample}"
        time.sleep(0.1)
    return sample


def test_a_long_clip_streams_its_segments_while_it_is_decoded(
    client, url, long_wav, long_reference
):
    answered = 'maxwhisper_requests_total{endpoint="transcribe",status="200"}'
    before = metrics(url).get(answered, 0)
    deltas, states_at_first_delta, done = [], None, None
    with open(long_wav, "rb") as audio:
        for event in client.audio.transcriptions.create(model="tiny.en", file=audio, stream=True):
            if event.type == "transcript.text.delta":
                if not deltas:
                    states_at_first_delta = metrics(url)
                deltas.append(event.delta)
            else:
                done = event
    # the first text came while the request was still in the engine, not yet answered
    assert states_at_first_delta[ACTIVE] == 1
    assert states_at_first_delta.get(answered, 0) == before
    assert done.type == "transcript.text.done"
    assert len(deltas) == len(long_reference["segments"]) > 1
    assert deltas == [segment["text"] for segment in long_reference["segments"]]
    assert "".join(deltas) == done.text == long_reference["text"]


def test_a_short_request_is_not_held_behind_a_long_one(
    tiny_en, client, url, long_wav, long_reference
):
    jfk_text = tiny_en.transcribe(str(JFK))["text"]
    with open(long_wav, "rb") as audio:
        long_events = iter(
            client.audio.transcriptions.create(model="tiny.en", file=audio, stream=True)
        )
        first = next(long_events)  # the long clip is in the engine now
        with open(JFK, "rb") as short:
            short_text = client.audio.transcriptions.create(model="tiny.en", file=short).text
        engine_when_short_answered = metrics(url)[ACTIVE]
        rest = list(long_events)
    assert short_text == jfk_text
    # jfk took its turns between the long clip's windows: the long one was still decoding
    assert engine_when_short_answered == 1
    assert rest[-1].text == long_reference["text"]
    assert first.delta + "".join(e.delta for e in rest[:-1]) == long_reference["text"]


def _multipart_request(url: str, path, fields: dict[str, str]) -> bytes:
    boundary = "maxwhisper-test-boundary"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{path.name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode()
        + path.read_bytes()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    body = b"".join(parts)
    host = urllib.parse.urlsplit(url).netloc
    head = (
        f"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: {host}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


def test_a_client_that_hangs_up_is_dropped_from_the_engine(tiny_en, client, url, long_wav):
    before = metrics(url)
    address = urllib.parse.urlsplit(url)
    with socket.create_connection((address.hostname, address.port), timeout=30) as raw:
        raw.sendall(_multipart_request(url, long_wav, {"model": "tiny.en"}))
        wait_for(url, lambda m: m[ACTIVE] == 1)  # its windows are being decoded
    after = wait_for(url, lambda m: m[CANCELLED] == before[CANCELLED] + 1)
    assert after[ACTIVE] == 0 and after["maxwhisper_queue_depth"] == 0
    gone = 'maxwhisper_requests_total{endpoint="transcribe",status="499"}'
    assert wait_for(url, lambda m: m.get(gone, 0) == before.get(gone, 0) + 1)
    # the engine goes on serving
    with open(JFK, "rb") as audio:
        text = client.audio.transcriptions.create(model="tiny.en", file=audio).text
    assert text == tiny_en.transcribe(str(JFK))["text"]


def test_temperature_above_zero_has_its_own_settings(tiny_en, client):
    solo = tiny_en.transcribe(str(DEV_CLIP))["text"]

    def request(temperature: float):
        with open(DEV_CLIP, "rb") as audio:
            return client.audio.transcriptions.create(
                model="tiny.en", file=audio, temperature=temperature,
                response_format="verbose_json",
            )  # fmt: skip

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(request, [0.0, 0.5, 0.0]))
    greedy, sampled, greedy_again = answers
    assert greedy.text == greedy_again.text == solo
    # temperature 0 is the fallback schedule, which starts at 0; 0.5 is sampled at 0.5 only
    assert {segment.temperature for segment in greedy.segments} == {0.0}
    assert sampled.segments and {segment.temperature for segment in sampled.segments} == {0.5}
    assert sampled.text.strip()
