"""Several audios transcribed together (transcribe_batch, the CLI's --batch_size): the scripted
fake model shows how windows are batched, the real tiny.en weights that each audio gets what it
gets alone."""

import numpy as np
import pytest

from clips import SHARED_AUDIO
from conftest import DECODING_MODES
from decoding_script import (  # noqa: F401 (fake_mel is a fixture)
    HELLO,
    MEL,
    SOT,
    TOKENIZER,
    WORLD,
    FakeModel,
    Reply,
    fake_mel,
    replies,
    seconds_of_audio,
    ts,
)
from maxwhisper_kernels import cli
from maxwhisper_kernels.audio import load_audio
from maxwhisper_kernels.decoding import DecodingOptions, decode_batch
from maxwhisper_kernels.transcribe import transcribe, transcribe_batch

DEV_CLIPS = ["dev/1089-134686-0002.flac", "dev/1221-135766-0001.flac"]


def first_fed_rows(model: FakeModel) -> list[list[list[int]]]:
    """The rows of initial tokens of each decoder pass."""
    return [inference.fed[0].tolist() for inference in model.inferences]


def test_decode_batch_gives_each_window_its_prompt():
    model = FakeModel(replies([Reply([ts(0), HELLO, ts(1)])], [Reply([ts(0), WORLD, ts(1)])]))
    options = [DecodingOptions(prompt=[HELLO]), DecodingOptions(prompt=[WORLD])]
    hello, world = decode_batch(model, np.stack([MEL, MEL]), options)
    assert (hello.text, world.text) == ("Hello", "world")
    prompts = [[TOKENIZER.sot_prev, HELLO, SOT], [TOKENIZER.sot_prev, WORLD, SOT]]
    assert first_fed_rows(model) == [prompts]


@pytest.mark.parametrize(
    "second, error",
    [
        (DecodingOptions(prompt=[WORLD, HELLO]), "initial tokens"),  # a longer prompt
        (DecodingOptions(prompt=[WORLD], beam_size=2), "only in their prompts"),
    ],
)
def test_decode_batch_refuses_windows_that_cannot_share_a_pass(second, error):
    model = FakeModel(replies([Reply([ts(0), HELLO, ts(1)])]))
    with pytest.raises(ValueError, match=error):
        decode_batch(model, np.stack([MEL, MEL]), [DecodingOptions(prompt=[HELLO]), second])


@pytest.mark.usefixtures("fake_mel")
def test_only_the_windows_that_fail_are_decoded_again():
    model = FakeModel(
        replies(
            # first audio: improbable, then at the next temperature fine
            [Reply([ts(0), HELLO, WORLD, ts(1)], rivals=400), Reply([ts(0), HELLO, ts(1)])],
            [Reply([ts(0), WORLD, ts(1)])],  # second audio: kept
        )
    )
    first, second = transcribe_batch(model, [seconds_of_audio(5), seconds_of_audio(5)])
    assert [(s["text"], s["temperature"]) for s in first["segments"]] == [(" Hello", 0.2)]
    assert [(s["text"], s["temperature"]) for s in second["segments"]] == [(" world", 0.0)]
    assert [inference.windows for inference in model.inferences] == [[0, 1], [0]]
    assert model.n_encoded == 2  # the retry reuses the first audio's rows of the encoding


@pytest.mark.usefixtures("fake_mel")
def test_windows_share_a_batch_when_their_prompts_are_as_long():
    # three 40 s audios; after the first window the prompts of the first and third are three
    # tokens long, the second's four
    model = FakeModel(
        replies(
            [Reply([ts(0), HELLO, ts(1)])],
            [Reply([ts(0), HELLO, WORLD, ts(1)])],
            [Reply([ts(0), WORLD, ts(1)])],
            *[[Reply([ts(0), HELLO, ts(1)])]] * 3,
        )
    )
    results = transcribe_batch(model, [seconds_of_audio(40)] * 3)
    assert [r["text"] for r in results] == [" Hello Hello", " Hello world Hello", " world Hello"]
    assert [len(inference.windows) for inference in model.inferences] == [3, 2, 1]
    prompts = [[TOKENIZER.sot_prev, ts(0), word, ts(1), SOT] for word in (HELLO, WORLD)]
    assert first_fed_rows(model)[1] == prompts
    for result in results:
        assert [s["seek"] for s in result["segments"]] == [0, 3000]


@pytest.fixture(scope="module")
def clips(long_clip):
    """jfk, two dev-set clips and the long clip, whose windows run out at different times."""
    return [load_audio(SHARED_AUDIO / name) for name in ["jfk.flac", *DEV_CLIPS]] + [long_clip]


def test_batch_gives_each_audio_its_own_transcript(tiny_en, clips, long_form_result):
    batch = transcribe_batch(tiny_en, clips, **DECODING_MODES["greedy"])
    alone = [tiny_en.transcribe(audio, **DECODING_MODES["greedy"]) for audio in clips[:-1]]
    alone.append(long_form_result("greedy"))
    for got, want in zip(batch, alone):
        assert got["text"] == want["text"]
        assert [(s["start"], s["end"], s["text"]) for s in got["segments"]] == [
            (s["start"], s["end"], s["text"]) for s in want["segments"]
        ]


def test_cli_transcribes_files_in_batches(tiny_en, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr("maxwhisper_kernels.model.load_model", lambda *args, **kwargs: tiny_en)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"this is not audio\n" * 50)
    paths = [str(SHARED_AUDIO / "jfk.flac"), str(bad), str(SHARED_AUDIO / DEV_CLIPS[0])]
    options = ["--beam_size", "None", "--best_of", "None", "-f", "txt", "-o", str(tmp_path)]
    status = cli.main([*paths, "--batch_size", "2", "--verbose", "False", *options])

    assert status == 1  # for the bad file, after the others were transcribed
    errors = capsys.readouterr().err
    assert "bad.wav" in errors
    for path in paths[::2]:
        name = path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        text = (tmp_path / f"{name}.txt").read_text()
        expected = transcribe(tiny_en, path, **DECODING_MODES["greedy"])["text"]
        assert " ".join(text.split()) == " ".join(expected.split())
