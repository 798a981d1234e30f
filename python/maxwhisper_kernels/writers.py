"""Transcript files: txt, vtt, srt, tsv and json, byte for byte in openai-whisper's layouts.

Each format is an entry of FORMATS: a file extension and a function writing a result to an open
file. The subtitle formats share one cue iterator, which yields (start, end, text) per
segment, or, when the result has word timings, per group of words regrouped by the line options
(max_line_width, max_line_count, max_words_per_line, highlight_words).
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TextIO

LINE_OPTIONS = ("max_line_width", "max_line_count", "highlight_words", "max_words_per_line")


def format_timestamp(
    seconds: float, always_include_hours: bool = False, decimal_marker: str = "."
) -> str:
    """[HH:]MM:SS.mmm to the nearest millisecond; hours shown when non-zero or when asked."""
    if seconds < 0:
        raise ValueError(f"non-negative timestamp expected, got {seconds}")
    total_ms = round(seconds * 1000.0)
    h, rest = divmod(total_ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1_000)
    hours = f"{h:02d}:" if h > 0 or always_include_hours else ""
    return f"{hours}{m:02d}:{s:02d}{decimal_marker}{ms:03d}"


def get_start(segments: list[dict]) -> float | None:
    """Start of speech: the first word's start if there are words, else the first segment's."""
    fallback = segments[0]["start"] if segments else None
    return next((word["start"] for seg in segments for word in seg["words"]), fallback)


def get_end(segments: list[dict]) -> float | None:
    """End of speech: the last word's end if there are words, else the last segment's."""
    fallback = segments[-1]["end"] if segments else None
    backwards = (word["end"] for seg in segments[::-1] for word in seg["words"][::-1])
    return next(backwards, fallback)


def _word_groups(
    segments: list[dict], width: int | None, count: int | None, per_line: int | None
) -> Iterator[list[dict]]:
    """Copies of the word timings, grouped into subtitles. A word that starts a new line inside
    a subtitle carries a leading "\\n"; words starting a line lose their spaces."""
    # Only when both line limits are given may a subtitle span segments.
    keep_segments = width is None or count is None
    width, per_line = width or 1000, per_line or 1000
    line_chars, lines = 0, 1
    group: list[dict] = []
    previous_start = get_start(segments) or 0.0
    for segment in segments:
        words = segment["words"]
        for chunk in range(0, len(words), per_line):
            for position, source in enumerate(words[chunk : chunk + per_line]):
                word = dict(source)
                pause = not keep_segments and word["start"] - previous_start > 3.0
                fits = line_chars + len(word["word"]) <= width
                new_segment = keep_segments and position == 0 and bool(group)
                if line_chars > 0 and fits and not pause and not new_segment:
                    line_chars += len(word["word"])  # same line
                else:
                    word["word"] = word["word"].strip()
                    full = count is not None and (pause or lines >= count)
                    if new_segment or (group and full):
                        yield group  # same word opens the next subtitle
                        group, lines = [], 1
                    elif line_chars > 0:
                        lines += 1  # next line of this subtitle
                        word["word"] = "\n" + word["word"]
                    line_chars = len(word["word"].strip())
                group.append(word)
                previous_start = word["start"]
    if group:
        yield group


def _underline(text: str) -> str:
    """The word underlined, leading whitespace (a line break) left outside the tags."""
    return re.sub(r"^(\s*)(.*)$", r"\1<u>\2</u>", text)


def _group_cues(
    group: list[dict], stamp: Callable[[float], str], highlight: bool
) -> Iterator[tuple[str, str, str]]:
    start, end = stamp(group[0]["start"]), stamp(group[-1]["end"])
    texts = [word["word"] for word in group]
    plain = "".join(texts)
    if not highlight:
        yield start, end, plain
        return
    # a cue per word, with that word underlined; between words, the plain text
    shown_until = start
    for k, word in enumerate(group):
        word_start, word_end = stamp(word["start"]), stamp(word["end"])
        if word_start != shown_until:
            yield shown_until, word_start, plain
        yield word_start, word_end, "".join(texts[:k] + [_underline(texts[k])] + texts[k + 1 :])
        shown_until = word_end


def cues(
    result: dict,
    stamp: Callable[[float], str],
    options: dict | None = None,
    **line_options,
) -> Iterator[tuple[str, str, str]]:
    """(start, end, text) of each subtitle. line_options (keywords) win over options (the
    CLI's dict); both take LINE_OPTIONS."""
    merged = {name: line_options.get(name) or (options or {}).get(name) for name in LINE_OPTIONS}
    segments = result["segments"]
    if segments and "words" in segments[0]:
        groups = _word_groups(
            segments,
            merged["max_line_width"],
            merged["max_line_count"],
            merged["max_words_per_line"],
        )
        for group in groups:
            yield from _group_cues(group, stamp, bool(merged["highlight_words"]))
        return
    for segment in segments:
        # an arrow inside the text would read as a timing line
        text = segment["text"].strip().replace("-->", "->")
        yield stamp(segment["start"]), stamp(segment["end"]), text


def _txt(result: dict, file: TextIO, options: dict | None = None, **_) -> None:
    for segment in result["segments"]:
        file.write(segment["text"].strip() + "\n")


def _vtt(result: dict, file: TextIO, options: dict | None = None, **line_options) -> None:
    file.write("WEBVTT\n\n")
    for start, end, text in cues(result, format_timestamp, options, **line_options):
        file.write(f"{start} --> {end}\n{text}\n\n")


def _srt(result: dict, file: TextIO, options: dict | None = None, **line_options) -> None:
    stamp = functools.partial(format_timestamp, always_include_hours=True, decimal_marker=",")
    for number, (start, end, text) in enumerate(cues(result, stamp, options, **line_options), 1):
        file.write(f"{number}\n{start} --> {end}\n{text}\n\n")


def _tsv(result: dict, file: TextIO, options: dict | None = None, **_) -> None:
    """Whole milliseconds, tab-separated: read the same under every locale."""
    file.write("start\tend\ttext\n")
    for segment in result["segments"]:
        start_ms, end_ms = round(segment["start"] * 1000), round(segment["end"] * 1000)
        file.write(f"{start_ms}\t{end_ms}\t{segment['text'].strip().replace(chr(9), ' ')}\n")


def _json(result: dict, file: TextIO, options: dict | None = None, **_) -> None:
    json.dump(result, file)


FORMATS: dict[str, Callable[..., None]] = {
    "txt": _txt,
    "vtt": _vtt,
    "srt": _srt,
    "tsv": _tsv,
    "json": _json,
}
WRITERS = FORMATS  # the CLI's --output_format choices


@dataclass
class ResultWriter:
    """Writes results in one format into output_dir, each file named after its audio."""

    extension: str
    output_dir: str | os.PathLike[str] | None

    def write_result(self, result: dict, file: TextIO, options: dict | None = None, **kwargs):
        FORMATS[self.extension](result, file, options, **kwargs)

    def __call__(self, result: dict, audio_path: str, options: dict | None = None, **kwargs):
        stem = os.path.splitext(os.path.basename(audio_path))[0]
        path = os.path.join(self.output_dir, f"{stem}.{self.extension}")
        with open(path, "w", encoding="utf-8") as file:
            self.write_result(result, file, options, **kwargs)


# openai-whisper's writer names, e.g. WriteSRT(output_dir)
WriteTXT = functools.partial(ResultWriter, "txt")
WriteVTT = functools.partial(ResultWriter, "vtt")
WriteSRT = functools.partial(ResultWriter, "srt")
WriteTSV = functools.partial(ResultWriter, "tsv")
WriteJSON = functools.partial(ResultWriter, "json")


def get_writer(output_format: str, output_dir: str | os.PathLike[str]) -> Callable[..., None]:
    """writer(result, audio_path, options=None, **line_options) for one format or "all"."""
    if output_format == "all":
        every = [ResultWriter(name, output_dir) for name in FORMATS]

        def write_all(result: dict, audio_path: str, options: dict | None = None, **kwargs):
            for writer in every:
                writer(result, audio_path, options, **kwargs)

        return write_all
    if output_format not in FORMATS:
        raise ValueError(
            f"unknown output format {output_format!r}: expected one of {', '.join(FORMATS)} or all"
        )
    return ResultWriter(output_format, output_dir)
