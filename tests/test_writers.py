"""Transcript writers, byte for byte against openai-whisper's formats written out by hand."""

from __future__ import annotations

import io

import pytest

from maxwhisper_kernels.writers import (
    WriteJSON,
    WriteSRT,
    WriteTSV,
    WriteTXT,
    WriteVTT,
    format_timestamp,
    get_writer,
)

RESULT = {
    "text": " Hello world. It's --> here\tnow.",
    "segments": [
        {"id": 0, "start": 1.08, "end": 3.0, "text": " Hello world."},
        {"id": 1, "start": 3.0, "end": 3725.5, "text": " It's --> here\tnow."},
    ],
    "language": "en",
}

WORDS_RESULT = {
    "text": " Hello world. Bye",
    "segments": [
        {
            "start": 0.0,
            "end": 1.0,
            "text": " Hello world.",
            "words": [
                {"word": " Hello", "start": 0.0, "end": 0.5, "probability": 0.9},
                {"word": " world.", "start": 0.7, "end": 1.0, "probability": 0.8},
            ],
        },
        {
            "start": 2.0,
            "end": 2.5,
            "text": " Bye",
            "words": [{"word": " Bye", "start": 2.0, "end": 2.5, "probability": 0.7}],
        },
    ],
    "language": "en",
}


def written(writer_class, result: dict, **kwargs) -> str:
    file = io.StringIO()
    writer_class(".").write_result(result, file=file, **kwargs)
    return file.getvalue()


@pytest.mark.parametrize(
    ("seconds", "kwargs", "expected"),
    [
        (0.0, {}, "00:00.000"),
        (1.08, {}, "00:01.080"),
        (59.9996, {}, "01:00.000"),  # rounded to the millisecond, carried into the minutes
        (3725.5, {}, "01:02:05.500"),  # hours appear when there are some
        (1.08, dict(always_include_hours=True, decimal_marker=","), "00:00:01,080"),
    ],
)
def test_format_timestamp(seconds, kwargs, expected):
    assert format_timestamp(seconds, **kwargs) == expected


def test_format_timestamp_rejects_negative_times():
    with pytest.raises(ValueError, match="non-negative"):
        format_timestamp(-0.5)


def test_txt():
    assert written(WriteTXT, RESULT) == "Hello world.\nIt's --> here\tnow.\n"


def test_srt():
    assert written(WriteSRT, RESULT) == (
        "1\n00:00:01,080 --> 00:00:03,000\nHello world.\n\n"
        "2\n00:00:03,000 --> 01:02:05,500\nIt's -> here\tnow.\n\n"
    )


def test_vtt():
    assert written(WriteVTT, RESULT) == (
        "WEBVTT\n\n"
        "00:01.080 --> 00:03.000\nHello world.\n\n"
        "00:03.000 --> 01:02:05.500\nIt's -> here\tnow.\n\n"
    )


def test_tsv():
    assert written(WriteTSV, RESULT) == (
        "start\tend\ttext\n1080\t3000\tHello world.\n3000\t3725500\tIt's --> here now.\n"
    )


def test_json():
    result = {"text": " Café", "segments": [{"id": 0, "start": 0.0, "end": 1.5}], "language": "fr"}
    assert written(WriteJSON, result) == (
        '{"text": " Caf\\u00e9", "segments": [{"id": 0, "start": 0.0, "end": 1.5}], '
        '"language": "fr"}'
    )


def test_word_subtitles_keep_one_subtitle_per_segment_by_default():
    assert written(WriteSRT, WORDS_RESULT) == (
        "1\n00:00:00,000 --> 00:00:01,000\nHello world.\n\n"
        "2\n00:00:02,000 --> 00:00:02,500\nBye\n\n"
    )


def test_highlighted_words_fill_gaps_with_the_plain_line():
    assert written(WriteVTT, WORDS_RESULT, highlight_words=True) == (
        "WEBVTT\n\n"
        "00:00.000 --> 00:00.500\n<u>Hello</u> world.\n\n"
        "00:00.500 --> 00:00.700\nHello world.\n\n"
        "00:00.700 --> 00:01.000\nHello <u>world.</u>\n\n"
        "00:02.000 --> 00:02.500\n<u>Bye</u>\n\n"
    )


def test_line_width_and_count_regroup_words_across_segments():
    # "Hello" + " world." is 12 characters, over 11: with one line per subtitle, a new one
    assert written(WriteSRT, WORDS_RESULT, max_line_width=11, max_line_count=1) == (
        "1\n00:00:00,000 --> 00:00:00,500\nHello\n\n"
        "2\n00:00:00,700 --> 00:00:02,500\nworld. Bye\n\n"
    )
    # with two lines per subtitle, a line break instead
    assert written(WriteSRT, WORDS_RESULT, max_line_width=11, max_line_count=2) == (
        "1\n00:00:00,000 --> 00:00:02,500\nHello\nworld. Bye\n\n"
    )


def test_max_words_per_line_splits_segments():
    assert written(WriteVTT, WORDS_RESULT, max_words_per_line=1) == (
        "WEBVTT\n\n"
        "00:00.000 --> 00:00.500\nHello\n\n"
        "00:00.700 --> 00:01.000\nworld.\n\n"
        "00:02.000 --> 00:02.500\nBye\n\n"
    )


def test_options_dict_is_read_like_keyword_arguments():
    assert written(WriteSRT, WORDS_RESULT, options={"max_words_per_line": 1}) == written(
        WriteSRT, WORDS_RESULT, max_words_per_line=1
    )


def test_get_writer_all_writes_every_format_named_after_the_audio(tmp_path):
    get_writer("all", tmp_path)(RESULT, "/some/where/talk.take1.wav")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f"talk.take1.{ext}" for ext in ("json", "srt", "tsv", "txt", "vtt")]
    assert (tmp_path / "talk.take1.txt").read_text(encoding="utf-8") == written(WriteTXT, RESULT)


def test_get_writer_single_format_and_unknown_format(tmp_path):
    get_writer("srt", tmp_path)(RESULT, "talk.mp3")
    assert [p.name for p in tmp_path.iterdir()] == ["talk.srt"]
    with pytest.raises(ValueError, match="unknown output format 'doc'"):
        get_writer("doc", tmp_path)
