"""The batching scheduler under load: 16 concurrent openai clients, each a different dev clip,
every transcript the one the clip gets alone; a full queue answered 429 with Retry-After."""

from __future__ import annotations

import concurrent.futures
import statistics
import time
import urllib.request

import pytest
from clips import SHARED_AUDIO
from serving import SERVER_API_KEY, running_server

from maxwhisper_kernels.server import ServerConfig

openai = pytest.importorskip("openai")

DEV = SHARED_AUDIO / "dev"
N_CLIENTS = 16
REQUEST_TIMEOUT_S = 240  # a bound, not a speed claim: the machine is shared


def shortest_dev_clips(count: int) -> list[str]:
    rows = [line.split("\t") for line in (DEV / "transcripts.tsv").read_text().splitlines()[1:]]
    rows.sort(key=lambda row: float(row[2]))
    return [row[0] for row in rows[:count]]


def rounds(server_url: str) -> tuple[float, float]:
    """(scheduler rounds so far, rounds that decoded a single window)."""
    with urllib.request.urlopen(f"{server_url}/metrics", timeout=10) as response:
        samples = dict(
            line.rsplit(" ", 1) for line in response.read().decode().splitlines() if line[0] != "#"
        )
    return float(samples["maxwhisper_batch_size_count"]), float(
        samples['maxwhisper_batch_size_bucket{le="1"}']
    )


def test_concurrent_clients_each_get_their_solo_transcript(tiny_en, server_url):
    clips = shortest_dev_clips(N_CLIENTS)
    solo = {clip: tiny_en.transcribe(str(DEV / clip))["text"] for clip in clips}
    rounds_before, single_before = rounds(server_url)

    def one_request(clip: str) -> tuple[str, str, float]:
        client = openai.OpenAI(
            base_url=f"{server_url}/v1", api_key=SERVER_API_KEY, max_retries=0,
            timeout=REQUEST_TIMEOUT_S,
        )  # fmt: skip
        started = time.monotonic()
        with open(DEV / clip, "rb") as audio:
            text = client.audio.transcriptions.create(model="tiny.en", file=audio).text
        return clip, text, time.monotonic() - started

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(N_CLIENTS) as pool:
        answers = list(pool.map(one_request, clips, timeout=REQUEST_TIMEOUT_S))
    wall = time.monotonic() - started

    assert sorted(clip for clip, _, _ in answers) == sorted(clips)
    for clip, text, _ in answers:
        assert text == solo[clip], clip
    rounds_after, single_after = rounds(server_url)
    # 16 one-window requests at once: the windows of several shared a round
    assert rounds_after - rounds_before < N_CLIENTS
    assert rounds_after - rounds_before > single_after - single_before
    latencies = sorted(latency for _, _, latency in answers)
    p95 = latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))]
    print(
        f"\nserver load: {N_CLIENTS} clients, {len(answers) / wall:.2f} requests/s, "
        f"p50 {statistics.median(latencies):.2f} s, p95 {p95:.2f} s, "
        f"{rounds_after - rounds_before:.0f} rounds (shared, loaded machine)"
    )


def test_a_full_queue_is_429_with_retry_after(tiny_en):
    clip = DEV / shortest_dev_clips(1)[0]
    config = ServerConfig(model_name="tiny.en", max_batch=1, max_queue=1)
    with running_server(tiny_en, config) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=120)

        def one_request(_):
            try:
                return client.audio.transcriptions.create(model="tiny.en", file=clip).text
            except openai.RateLimitError as error:
                return error

        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(one_request, range(6), timeout=REQUEST_TIMEOUT_S))
    refused = [a for a in answers if isinstance(a, openai.RateLimitError)]
    assert refused, "six requests at once, a queue of one: some must be refused"
    assert len(refused) < len(answers)
    assert all(error.response.headers["retry-after"] == "1" for error in refused)
    assert all(error.response.headers.get("x-should-retry") is None for error in refused)
    assert refused[0].response.json()["error"]["type"] == "rate_limit_error"
