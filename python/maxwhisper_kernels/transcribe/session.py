"""One audio's way through long-form transcription, a window at a time.

The audio's log-mel is cut into 30-second windows. Each is decoded with timestamps; the segments
it closes are kept, and the next window starts where the last complete segment ended, so speech
cut off by a window's end is decoded again whole.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from ..audio import FRAMES_PER_SECOND, HOP_LENGTH, N_FRAMES, SAMPLE_RATE, pad_or_trim
from ..decoding import AudioFeatures, DecodingResult, WhisperModel
from ..timing import add_word_timestamps
from ..tokenizer import Tokenizer
from ..writers import format_timestamp, get_end
from .hallucination import WindowSpan, skip_hallucinated_silence
from .settings import Settings
from .windows import clip_ranges, cut_window

RESULT_FIELDS = ("temperature", "avg_logprob", "compression_ratio", "no_speech_prob")


def make_safe(text: str) -> str:
    """text with what the console's encoding cannot print turned into "?"."""
    encoding = sys.stdout.encoding or "utf-8"
    return text.encode(encoding, errors="replace").decode(encoding)


def frames_to_seconds(frames: int) -> float:
    return float(frames * HOP_LENGTH / SAMPLE_RATE)


class AudioTranscription:
    """An audio being transcribed: `window()` is the mel to decode next, with
    `decode_options()`; `advance()` takes the result, keeps its segments and moves `seek`.
    decode_next_windows drives many of these in lockstep; `result()` reads one out."""

    def __init__(
        self,
        model: WhisperModel,
        mel: np.ndarray,
        language: str,
        tokenizer: Tokenizer,
        settings: Settings,
        label: str = "",
    ):
        self.model = model
        self.mel = mel  # followed by 30 s of silence: the last window is always whole
        self.language = language
        self.tokenizer = tokenizer
        self.settings = settings
        self.label = label  # what verbose output puts before this audio's lines
        self.content_frames = mel.shape[-1] - N_FRAMES
        self.clips = clip_ranges(settings.options.clip_timestamps, self.content_frames)
        self.clip = 0
        self.seek = self.clips[0][0]

        self.all_tokens: list[int] = []
        self.all_segments: list[dict] = []
        self.prompt_reset_since = 0  # all_tokens before this are not prompted with
        self.loop_text_since: int | None = None  # all_tokens kept from a window cut at a loop
        self.last_speech_timestamp = 0.0
        self.max_prompt_length = model.dims.n_text_ctx // 2 - 1
        initial = settings.options.initial_prompt
        self.initial_prompt_tokens: list[int] = []
        if initial is not None:
            self.initial_prompt_tokens = tokenizer.encode(" " + initial.strip())
        self.all_tokens += self.initial_prompt_tokens
        self._skip_finished_clips()

    def _skip_finished_clips(self) -> None:
        """Once the seek passes a clip's end, on to the next clip's start (or to done)."""
        while not self.done and self.seek >= self.clips[self.clip][1]:
            self.clip += 1
            if not self.done:
                self.seek = self.clips[self.clip][0]

    @property
    def done(self) -> bool:
        return self.clip == len(self.clips)

    @property
    def segment_size(self) -> int:
        """Frames of audio in the current window."""
        clip_end = self.clips[self.clip][1]
        return min(N_FRAMES, self.content_frames - self.seek, clip_end - self.seek)

    def window(self) -> np.ndarray:
        return pad_or_trim(self.mel[:, self.seek : self.seek + self.segment_size], N_FRAMES)

    def prompt(self) -> list[int]:
        """The text the next window is decoded after; a window resuming where a loop began
        is prompted with the text kept before the loop even where prompts were reset."""
        fixed = self.initial_prompt_tokens
        reset = self.prompt_reset_since
        if self.loop_text_since is not None:
            reset = min(reset, self.loop_text_since)
        if self.settings.options.carry_initial_prompt:
            since = max(len(fixed), reset)
            recent = self.all_tokens[since:][-(self.max_prompt_length - len(fixed)) :]
            tokens = fixed + recent
        else:
            tokens = self.all_tokens[reset:]
        # decoding would cut it to this length anyway; cut here, since the length decides
        # which windows may share a batch
        return tokens[-self.max_prompt_length :]

    def decode_options(self) -> dict[str, Any]:
        options = {**self.settings.decode_options, "language": self.language, "prompt": self.prompt()}
        if self.loop_text_since is not None:  # resuming where a loop began: see TranscribeOptions
            options["beam_size"] = self.settings.options.resume_beam_size
        if self.settings.options.vad_cut and self.seek + self.segment_size >= self.content_frames:
            options["speech_end"] = frames_to_seconds(self.segment_size)
        return options

    def advance(self, result: DecodingResult, audio_features: Callable[[], AudioFeatures]) -> int:
        """Takes the current window's decoding (audio_features gives its features, for word
        timing). Returns the frames newly covered, for the progress bar."""
        before = self.seek
        covered = 0
        self.loop_text_since = None
        if self.settings.thresholds.should_skip(result):
            self.seek += self.segment_size  # silence: on to the next window
        elif self._keep_segments(result, audio_features):
            covered = min(self.content_frames, self.seek) - before
        self._skip_finished_clips()
        return covered

    def _segments(self, result: DecodingResult, cut_segments: list, seek: int) -> list[dict]:
        decode, eot = self.tokenizer.decode, self.tokenizer.eot
        shared = {name: getattr(result, name) for name in RESULT_FIELDS}
        return [
            {
                "seek": seek,
                "start": start,
                "end": end,
                "text": decode([t for t in tokens if t < eot]),
                "tokens": tokens,
                **shared,
            }
            for start, end, tokens in cut_segments
        ]

    def _keep_segments(
        self, result: DecodingResult, audio_features: Callable[[], AudioFeatures]
    ) -> bool:
        """Keeps the window's segments and moves the seek past them. False: they were dropped
        (hallucinated over silence) and the window is decoded again from the new seek."""
        settings, options = self.settings, self.settings.options
        start_seek, size = self.seek, self.segment_size
        offset = frames_to_seconds(self.seek)

        cut = cut_window(
            result.tokens,
            self.tokenizer,
            offset,
            size,
            settings.input_stride,
            settings.time_precision,
        )
        self.seek += cut.seek_advance
        segments = self._segments(result, cut.segments, start_seek)

        if options.word_timestamps:
            add_word_timestamps(
                segments=segments,
                model=self.model,
                tokenizer=self.tokenizer,
                audio_features=audio_features(),
                num_frames=size,
                prepend_punctuations=options.prepend_punctuations,
                append_punctuations=options.append_punctuations,
                last_speech_timestamp=self.last_speech_timestamp,
            )
            if not cut.single_timestamp_ending:
                # with word times, the next window starts right after the last word
                word_end = get_end(segments)
                if word_end is not None and word_end > offset:
                    self.seek = round(word_end * FRAMES_PER_SECOND)

            silence_limit = options.hallucination_silence_threshold
            if silence_limit is not None:
                span = WindowSpan(
                    previous_seek=start_seek,
                    segment_size=size,
                    time_offset=offset,
                    window_end_time=frames_to_seconds(start_seek + N_FRAMES),
                    segment_duration=size * HOP_LENGTH / SAMPLE_RATE,
                    content_duration=frames_to_seconds(self.content_frames),
                    content_frames=self.content_frames,
                )
                skip = skip_hallucinated_silence(
                    segments,
                    span,
                    threshold=silence_limit,
                    single_timestamp_ending=cut.single_timestamp_ending,
                    seek=self.seek,
                    last_speech_timestamp=self.last_speech_timestamp,
                )
                self.seek = skip.seek
                if skip.retry_window:
                    return False

            word_end = get_end(segments)
            if word_end is not None:
                self.last_speech_timestamp = word_end

        if options.verbose:
            for s in segments:
                when = f"[{format_timestamp(s['start'])} --> {format_timestamp(s['end'])}]"
                print(make_safe(f"{self.label}{when} {s['text']}"))

        # a segment of no duration or no text keeps its place and times, but not its text
        for s in segments:
            if s["start"] == s["end"] or not s["text"].strip():
                s["text"], s["tokens"] = "", []
                if options.word_timestamps:
                    s["words"] = []

        first_id = len(self.all_segments)
        self.all_segments += [{"id": first_id + k, **s} for k, s in enumerate(segments)]
        if result.loop_cut and options.resume_beam_size is not None:
            self.loop_text_since = len(self.all_tokens)
        self.all_tokens += [t for s in segments for t in s["tokens"]]

        if not options.condition_on_previous_text or result.temperature > 0.5:
            # text drawn at a high temperature would make a misleading prompt
            self.prompt_reset_since = len(self.all_tokens)
        return True

    def result(self) -> dict:
        """openai-whisper's result: {"text", "segments", "language"}."""
        text = self.tokenizer.decode(self.all_tokens[len(self.initial_prompt_tokens) :])
        return {"text": text, "segments": self.all_segments, "language": self.language}
