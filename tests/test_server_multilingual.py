"""/v1/audio/translations on the multilingual base model, with the openai client: German speech
(espeak-ng, from tests/data/german.txt) comes back as the English that base_model.transcribe
gives with task="translate", and /v1/audio/transcriptions of the same file stays German."""

from __future__ import annotations

from pathlib import Path

import pytest
from clips import synthesise
from serving import running_server

from maxwhisper_kernels.server import ServerConfig
from maxwhisper_kernels.text import normalize_text

openai = pytest.importorskip("openai")

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def german_wav(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("speech") / "german.wav"
    synthesise(path, (DATA / "german.txt").read_text().strip(), "de", 140)
    return path


@pytest.fixture(scope="module")
def client(base_model):
    with running_server(base_model, ServerConfig(model_name="base")) as url:
        yield openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=240)


def test_translation_is_the_library_translation(base_model, client, german_wav):
    expected = base_model.transcribe(str(german_wav), task="translate")
    with open(german_wav, "rb") as audio:
        result = client.audio.translations.create(
            model="base", file=audio, response_format="verbose_json"
        )
    assert result.text == expected["text"]
    assert [s.text for s in result.segments] == [s["text"] for s in expected["segments"]]
    words = set(normalize_text(result.text).split())
    assert "morning" in words and not {"guten", "heute", "hund"} & words


def test_transcription_of_the_same_file_stays_german(base_model, client, german_wav):
    expected = base_model.transcribe(str(german_wav))
    with open(german_wav, "rb") as audio:
        result = client.audio.transcriptions.create(
            model="base", file=audio, response_format="verbose_json"
        )
    assert result.language == "de" == expected["language"]
    assert result.text == expected["text"]
    assert {"guten", "morgen"} <= set(normalize_text(result.text).split())
