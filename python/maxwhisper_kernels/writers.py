"""Writing transcripts as txt, vtt, srt, tsv or json, byte for byte as openai-whisper does."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from typing import TextIO


def format_timestamp(
    seconds: float, always_include_hours: bool = False, decimal_marker: str = "."
) -> str:
    """[HH:]MM:SS.mmm, rounded to the millisecond; hours only when needed unless asked for."""
    if seconds < 0:
        raise ValueError(f"non-negative timestamp expected, got {seconds}")
    milliseconds = round(seconds * 1000.0)

    hours, milliseconds = divmod(milliseconds, 3_600_000)
    minutes, milliseconds = divmod(milliseconds, 60_000)
    seconds, milliseconds = divmod(milliseconds, 1_000)

    hours_marker = f"{hours:02d}:" if always_include_hours or hours > 0 else ""
    return f"{hours_marker}{minutes:02d}:{seconds:02d}{decimal_marker}{milliseconds:03d}"


def get_start(segments: list[dict]) -> float | None:
    """When speech starts: the first word's start, else the first segment's."""
    return next(
        (w["start"] for s in segments for w in s["words"]),
        segments[0]["start"] if segments else None,
    )


def get_end(segments: list[dict]) -> float | None:
    """When speech ends: the last word's end, else the last segment's."""
    return next(
        (w["end"] for s in reversed(segments) for w in reversed(s["words"])),
        segments[-1]["end"] if segments else None,
    )


class ResultWriter:
    extension: str

    def __init__(self, output_dir: str | os.PathLike[str]):
        self.output_dir = output_dir

    def __call__(
        self, result: dict, audio_path: str, options: dict | None = None, **kwargs
    ) -> None:
        """Writes `result` to the output folder, named after the audio file."""
        audio_basename = os.path.splitext(os.path.basename(audio_path))[0]
        output_path = os.path.join(self.output_dir, f"{audio_basename}.{self.extension}")
        with open(output_path, "w", encoding="utf-8") as file:
            self.write_result(result, file=file, options=options, **kwargs)

    def write_result(
        self, result: dict, file: TextIO, options: dict | None = None, **kwargs
    ) -> None:
        raise NotImplementedError


class WriteTXT(ResultWriter):
    extension: str = "txt"

    def write_result(
        self, result: dict, file: TextIO, options: dict | None = None, **kwargs
    ) -> None:
        for segment in result["segments"]:
            print(segment["text"].strip(), file=file, flush=True)


class SubtitlesWriter(ResultWriter):
    always_include_hours: bool
    decimal_marker: str

    def iterate_result(
        self,
        result: dict,
        options: dict | None = None,
        *,
        max_line_width: int | None = None,
        max_line_count: int | None = None,
        highlight_words: bool = False,
        max_words_per_line: int | None = None,
    ) -> Iterator[tuple[str, str, str]]:
        """(start, end, text) of each subtitle: one per segment, or with word timestamps,
        words regrouped into lines and subtitles by the line options."""
        options = options or {}
        max_line_width = max_line_width or options.get("max_line_width")
        max_line_count = max_line_count or options.get("max_line_count")
        highlight_words = highlight_words or options.get("highlight_words", False)
        max_words_per_line = max_words_per_line or options.get("max_words_per_line")

        if len(result["segments"]) > 0 and "words" in result["segments"][0]:
            subtitles = self._iterate_subtitles(
                result["segments"], max_line_width, max_line_count, max_words_per_line
            )
            for subtitle in subtitles:
                yield from self._subtitle_lines(subtitle, highlight_words)
        else:
            for segment in result["segments"]:
                segment_start = self.format_timestamp(segment["start"])
                segment_end = self.format_timestamp(segment["end"])
                # "-->" in the text would read as a timing line
                segment_text = segment["text"].strip().replace("-->", "->")
                yield segment_start, segment_end, segment_text

    @staticmethod
    def _iterate_subtitles(
        segments: list[dict],
        max_line_width: int | None,
        max_line_count: int | None,
        max_words_per_line: int | None,
    ) -> Iterator[list[dict]]:
        """Groups word timings into subtitles; a word's text gains a leading "\\n" where a
        line breaks inside a subtitle."""
        # without both line limits, each segment stays one subtitle
        preserve_segments = max_line_count is None or max_line_width is None
        max_line_width = max_line_width or 1000
        max_words_per_line = max_words_per_line or 1000

        line_len = 0
        line_count = 1
        subtitle: list[dict] = []
        last: float = get_start(segments) or 0.0
        for segment in segments:
            chunk_index = 0
            words_count = max_words_per_line
            while chunk_index < len(segment["words"]):
                remaining_words = len(segment["words"]) - chunk_index
                if max_words_per_line > remaining_words:
                    words_count = remaining_words
                for i, original_timing in enumerate(
                    segment["words"][chunk_index : chunk_index + words_count]
                ):
                    timing = original_timing.copy()
                    long_pause = not preserve_segments and timing["start"] - last > 3.0
                    has_room = line_len + len(timing["word"]) <= max_line_width
                    seg_break = i == 0 and len(subtitle) > 0 and preserve_segments
                    if line_len > 0 and has_room and not long_pause and not seg_break:
                        line_len += len(timing["word"])  # the line goes on
                    else:
                        timing["word"] = timing["word"].strip()
                        # counted lines: a pause or the last line ends the subtitle
                        line_limit = max_line_count is not None and (
                            long_pause or line_count >= max_line_count
                        )
                        if (len(subtitle) > 0 and line_limit) or seg_break:
                            yield subtitle  # a new subtitle
                            subtitle = []
                            line_count = 1
                        elif line_len > 0:
                            line_count += 1  # a new line in this subtitle
                            timing["word"] = "\n" + timing["word"]
                        line_len = len(timing["word"].strip())
                    subtitle.append(timing)
                    last = timing["start"]
                chunk_index += max_words_per_line
        if len(subtitle) > 0:
            yield subtitle

    def _subtitle_lines(
        self, subtitle: list[dict], highlight_words: bool
    ) -> Iterator[tuple[str, str, str]]:
        subtitle_start = self.format_timestamp(subtitle[0]["start"])
        subtitle_end = self.format_timestamp(subtitle[-1]["end"])
        subtitle_text = "".join(word["word"] for word in subtitle)
        if not highlight_words:
            yield subtitle_start, subtitle_end, subtitle_text
            return

        # one cue per word, that word underlined; gaps between words show the plain text
        last = subtitle_start
        all_words = [timing["word"] for timing in subtitle]
        for i, this_word in enumerate(subtitle):
            start = self.format_timestamp(this_word["start"])
            end = self.format_timestamp(this_word["end"])
            if last != start:
                yield last, start, subtitle_text
            yield (
                start,
                end,
                "".join(
                    re.sub(r"^(\s*)(.*)$", r"\1<u>\2</u>", word) if j == i else word
                    for j, word in enumerate(all_words)
                ),
            )
            last = end

    def format_timestamp(self, seconds: float) -> str:
        return format_timestamp(
            seconds,
            always_include_hours=self.always_include_hours,
            decimal_marker=self.decimal_marker,
        )


class WriteVTT(SubtitlesWriter):
    extension: str = "vtt"
    always_include_hours: bool = False
    decimal_marker: str = "."

    def write_result(
        self, result: dict, file: TextIO, options: dict | None = None, **kwargs
    ) -> None:
        print("WEBVTT\n", file=file)
        for start, end, text in self.iterate_result(result, options, **kwargs):
            print(f"{start} --> {end}\n{text}\n", file=file, flush=True)


class WriteSRT(SubtitlesWriter):
    extension: str = "srt"
    always_include_hours: bool = True
    decimal_marker: str = ","

    def write_result(
        self, result: dict, file: TextIO, options: dict | None = None, **kwargs
    ) -> None:
        for i, (start, end, text) in enumerate(
            self.iterate_result(result, options, **kwargs), start=1
        ):
            print(f"{i}\n{start} --> {end}\n{text}\n", file=file, flush=True)


class WriteTSV(ResultWriter):
    """Tab-separated lines "<start ms>\\t<end ms>\\t<text>" after a header: integer
    milliseconds read the same under every locale."""

    extension: str = "tsv"

    def write_result(
        self, result: dict, file: TextIO, options: dict | None = None, **kwargs
    ) -> None:
        print("start", "end", "text", sep="\t", file=file)
        for segment in result["segments"]:
            print(round(1000 * segment["start"]), file=file, end="\t")
            print(round(1000 * segment["end"]), file=file, end="\t")
            print(segment["text"].strip().replace("\t", " "), file=file, flush=True)


class WriteJSON(ResultWriter):
    extension: str = "json"

    def write_result(
        self, result: dict, file: TextIO, options: dict | None = None, **kwargs
    ) -> None:
        json.dump(result, file)


WRITERS: dict[str, type[ResultWriter]] = {
    "txt": WriteTXT,
    "vtt": WriteVTT,
    "srt": WriteSRT,
    "tsv": WriteTSV,
    "json": WriteJSON,
}


def get_writer(output_format: str, output_dir: str | os.PathLike[str]) -> Callable[..., None]:
    """A writer(result, audio_path, options=None, **kwargs) for one format, or for all of them."""
    if output_format == "all":
        all_writers = [writer(output_dir) for writer in WRITERS.values()]

        def write_all(result: dict, audio_path: str, options: dict | None = None, **kwargs) -> None:
            for writer in all_writers:
                writer(result, audio_path, options, **kwargs)

        return write_all

    if output_format not in WRITERS:
        raise ValueError(
            f"unknown output format {output_format!r}: expected one of {', '.join(WRITERS)} or all"
        )
    return WRITERS[output_format](output_dir)
