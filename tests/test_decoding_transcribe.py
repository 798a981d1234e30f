"""Long-form transcription (transcribe/) driven by the scripted fake model: windows,
segments and seeking, prompts, the silence skip, temperature fallback in turn and in parallel,
clip timestamps and option checks, against openai-whisper's rules worked out by hand."""

from __future__ import annotations

import pytest

from decoding_script import (
    AGAIN,
    AND,
    BLANK,
    HELLO,
    ONE,
    SOT,
    THE,
    THEN,
    TOKENIZER,
    TWO,
    WORLD,
    FakeModel,
    Reply,
    german_model,
    replies,
    seconds_of_audio,
    segment_summary,
    tree,
    ts,
)
from decoding_script import fake_mel, multilingual_dir  # noqa: F401, F811 (fixtures)
from maxwhisper_kernels.transcribe import transcribe


@pytest.mark.usefixtures("fake_mel")
def test_seek_follows_complete_segments_and_single_timestamp_endings():
    model = FakeModel(
        replies(
            # two closed segments, then one cut off by the window's end: resume at 4.0 s
            [Reply([ts(0), HELLO, ts(2), ts(2), WORLD, ts(4), ts(5), AND, THEN])],
            # a lone final timestamp: nothing more in this window, go on 30 s later
            [Reply([ts(0), AGAIN, ts(1.5)])],
            # the last 16 s: a pair, then a segment closed by a lone final timestamp
            [Reply([ts(0), ONE, ts(1), ts(1), TWO, ts(2)])],
        )
    )
    result = transcribe(model, seconds_of_audio(50), temperature=0.0)
    assert segment_summary(result) == [
        (0, 0, 0.0, 2.0, " Hello"),
        (1, 0, 2.0, 4.0, " world"),
        (2, 400, 4.0, 5.5, " again"),
        (3, 3400, 34.0, 35.0, " one"),
        (4, 3400, 35.0, 36.0, " two"),
    ]
    assert result["text"] == " Hello world again one two"
    assert result["language"] == "en"
    assert result["segments"][0]["tokens"] == [ts(0), HELLO, ts(2)]
    assert result["segments"][3]["temperature"] == 0.0
    assert set(result["segments"][0]) == {
        "id", "seek", "start", "end", "text", "tokens", "temperature", "avg_logprob",
        "compression_ratio", "no_speech_prob",
    }  # fmt: skip
    # each window is prompted with the text so far
    prompts = [inference.fed[0][0].tolist() for inference in model.inferences]
    assert prompts[1] == [TOKENIZER.sot_prev, ts(0), HELLO, ts(2), ts(2), WORLD, ts(4), SOT]
    assert prompts[2][-2:] == [ts(1.5), SOT]


@pytest.mark.usefixtures("fake_mel")
def test_window_without_timestamp_pairs_ends_at_its_last_timestamp():
    model = FakeModel(replies([Reply([ts(0), HELLO, WORLD, ts(7.5)])]))
    result = transcribe(model, seconds_of_audio(10), temperature=0.0)
    assert segment_summary(result) == [(0, 0, 0.0, 7.5, " Hello world")]


@pytest.mark.usefixtures("fake_mel")
def test_condition_on_previous_text_off_prompts_nothing():
    model = FakeModel(replies([Reply([ts(0), HELLO, ts(2)])], [Reply([ts(0), WORLD, ts(2)])]))
    transcribe(model, seconds_of_audio(40), condition_on_previous_text=False, initial_prompt="one")
    prompts = [inference.fed[0][0].tolist() for inference in model.inferences]
    assert prompts == [[TOKENIZER.sot_prev, ONE, SOT], [SOT]]


@pytest.mark.usefixtures("fake_mel")
def test_silent_window_is_skipped():
    model = FakeModel(
        replies(
            # probably no speech (0.98 > 0.6) and improbable text: skipped, no fallback
            [Reply([ts(0), HELLO, WORLD, ts(1)], rivals=400, no_speech=40.0)],
            # probably no speech (0.73), but confident text: kept
            [Reply([ts(0), AGAIN, ts(1)], no_speech=31.0)],
        )
    )
    result = transcribe(model, seconds_of_audio(40))
    assert segment_summary(result) == [(0, 3000, 30.0, 31.0, " again")]
    assert model.attempts == {0: 1, 1: 1}
    assert result["segments"][0]["no_speech_prob"] > 0.6


@pytest.mark.usefixtures("fake_mel")
def test_temperature_fallback_on_low_log_probability_and_repetition():
    model = FakeModel(
        replies(
            [
                Reply([ts(0), HELLO, WORLD, AGAIN, ts(1)], rivals=400),  # avg_logprob < -1
                Reply([ts(0), *[THE] * 60, ts(5)]),  # compression ratio > 2.4
                Reply([ts(0), HELLO, ts(1)]),
            ],
        )
    )
    result = transcribe(model, seconds_of_audio(5), beam_size=2, best_of=3)
    assert [s["text"] for s in result["segments"]] == [" Hello"]
    assert result["segments"][0]["temperature"] == 0.4
    assert model.n_encoded == 1  # one encoding serves every attempt
    # beam search at T=0, best-of-3 sampling above it
    assert [inference.n_group for inference in model.inferences] == [2, 3, 3]


FALLBACK_SCRIPT = [
    Reply([ts(0), HELLO, WORLD, AGAIN, ts(1)], rivals=400),  # avg_logprob < -1
    Reply([ts(0), *[THE] * 60, ts(5)]),  # compression ratio > 2.4
    Reply([ts(0), HELLO, ts(1)]),
    Reply([ts(0), WORLD, ts(1)]),
]


@pytest.mark.usefixtures("fake_mel")
@pytest.mark.parametrize("parallel, best_of, groups", [(2, 3, [1, 6]), (3, 3, [1, 9]), (3, None, [1, 3])])
def test_parallel_fallback_keeps_what_trying_in_turn_keeps(parallel, best_of, groups):
    in_turn = FakeModel(replies(FALLBACK_SCRIPT))
    at_once = FakeModel(replies(FALLBACK_SCRIPT), draws_per_attempt=best_of or 1)
    expected = transcribe(in_turn, seconds_of_audio(5), best_of=best_of)["segments"]
    found = transcribe(at_once, seconds_of_audio(5), best_of=best_of, parallel_fallback=parallel)["segments"]
    summary = [(s["text"], s["temperature"], s["avg_logprob"], s["compression_ratio"]) for s in expected]
    assert summary == [(" Hello", 0.4, pytest.approx(found[0]["avg_logprob"]), found[0]["compression_ratio"])]
    assert [(s["text"], s["temperature"]) for s in found] == [(" Hello", 0.4)]
    # greedy at 0, then 0.2 and 0.4 (and 0.6) drawn in one pass of best_of rows each
    assert [inference.n_group for inference in at_once.inferences] == groups
    assert [inference.n_group for inference in in_turn.inferences] == [1, best_of or 1, best_of or 1]


@pytest.mark.usefixtures("fake_mel")
def test_parallel_fallback_goes_on_when_every_temperature_of_a_pass_fails():
    script = [*FALLBACK_SCRIPT[:2], FALLBACK_SCRIPT[1], FALLBACK_SCRIPT[1], FALLBACK_SCRIPT[3]]
    model = FakeModel(replies(script), draws_per_attempt=1)
    temperatures = (0.0, 0.2, 0.4, 0.6, 0.8)
    result = transcribe(model, seconds_of_audio(5), temperature=temperatures, parallel_fallback=2)
    assert [(s["text"], s["temperature"]) for s in result["segments"]] == [(" world", 0.8)]
    assert [inference.n_group for inference in model.inferences] == [1, 2, 2]  # 0 | 0.2 0.4 | 0.6 0.8


@pytest.mark.parametrize("bad", [0, -1, 1.5])
def test_parallel_fallback_must_be_a_count(bad):
    with pytest.raises(ValueError, match="parallel_fallback"):
        transcribe(FakeModel(replies(FALLBACK_SCRIPT)), seconds_of_audio(5), parallel_fallback=bad)


@pytest.mark.usefixtures("fake_mel")
def test_fallback_keeps_the_last_result_when_every_temperature_fails():
    model = FakeModel(
        replies(
            [Reply([ts(0), HELLO, WORLD, AGAIN, ts(1)], rivals=400)],
            [Reply([ts(0), ONE, ts(1)])],
        )
    )
    result = transcribe(model, seconds_of_audio(40), temperature=(0.0, 0.6), seed=0)
    first, second = result["segments"]
    assert first["temperature"] == 0.6 and first["avg_logprob"] < -1
    assert second["temperature"] == 0.0
    # text sampled above temperature 0.5 does not prompt the next window
    assert [inference.fed[0][0].tolist() for inference in model.inferences][-1] == [SOT]


@pytest.mark.usefixtures("fake_mel")
def test_clip_timestamps_limit_the_windows():
    model = FakeModel(replies([Reply([ts(0), HELLO, ts(2)])], [Reply([ts(0), WORLD, ts(1)])]))
    result = transcribe(model, seconds_of_audio(60), clip_timestamps="5,8,40")
    assert segment_summary(result) == [
        (0, 500, 5.0, 7.0, " Hello"),
        (1, 4000, 40.0, 41.0, " world"),
    ]


@pytest.mark.usefixtures("fake_mel")
def test_blank_segments_keep_their_place_without_text():
    model = FakeModel(replies([Reply([ts(0), HELLO, ts(1), ts(1), BLANK, ts(2)])]))
    result = transcribe(model, seconds_of_audio(5))
    assert [(s["start"], s["end"], s["text"], s["tokens"]) for s in result["segments"]] == [
        (0.0, 1.0, " Hello", [ts(0), HELLO, ts(1)]),
        (1.0, 2.0, "", []),
    ]
    assert "words" not in result["segments"][1]


@pytest.mark.usefixtures("fake_mel")
def test_english_only_model_refuses_other_languages_and_translation():
    model = FakeModel(tree({}))
    with pytest.raises(ValueError, match="English-only"):
        transcribe(model, seconds_of_audio(1), language="de")
    with pytest.raises(ValueError, match="cannot translate"):
        transcribe(model, seconds_of_audio(1), task="translate")
    assert model.n_encoded == 0


@pytest.mark.usefixtures("fake_mel")
def test_word_timestamps_need_cross_attention_weights():
    model = FakeModel(replies([Reply([ts(0), HELLO, ts(1)])]))
    with pytest.raises(NotImplementedError, match="cross-attention"):
        transcribe(model, seconds_of_audio(2), word_timestamps=True)


@pytest.mark.usefixtures("fake_mel")
def test_multilingual_transcribe_detects_the_language_once(multilingual_dir):
    model, _, prompt = german_model(multilingual_dir)
    result = transcribe(model, seconds_of_audio(5))
    assert result["language"] == "de"
    assert model.n_encoded == 2  # the detection window, then the decoded one
    assert model.inferences[-1].fed[0][0].tolist() == prompt


def test_transcribe_with_the_log_mel_kernel():
    model = FakeModel(replies([Reply([ts(0), HELLO, ts(1)])]))
    result = transcribe(model, seconds_of_audio(3))
    assert segment_summary(result) == [(0, 0, 0.0, 1.0, " Hello")]
