"""Long-form transcription: openai-whisper's ``whisper/transcribe.py`` on this project's model.

The audio is cut into 30-second windows. Each window is decoded with timestamps; the segments
it closes (between timestamp pairs) are kept and the next window starts where the last complete
segment ended, so speech cut off by a window's end is decoded again in full. A window whose
decoding looks wrong (too repetitive, too improbable) is decoded again at a higher temperature.

Several audios can go through this together (transcribe_batch): each keeps its own windows and
seek, in lockstep with the others, and their current windows are encoded and decoded as a batch.
"""

from __future__ import annotations

import functools
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import tqdm

from .audio import (
    FRAMES_PER_SECOND,
    HOP_LENGTH,
    N_FRAMES,
    N_SAMPLES,
    SAMPLE_RATE,
    check_audio_array,
    load_audio,
    pad_or_trim,
)
from .decoding import (
    AudioFeatures,
    DecodingOptions,
    DecodingResult,
    WhisperModel,
    check_language_and_task,
    decode_batch,
    detect_language,
    get_model_tokenizer,
)
from .ops import log_mel_spectrogram
from .timing import APPEND_PUNCTUATIONS, PREPEND_PUNCTUATIONS, add_word_timestamps
from .tokenizer import LANGUAGES, Tokenizer
from .writers import format_timestamp, get_end

# Words that are only punctuation do not count when judging whether a segment is a hallucination.
PUNCTUATION = PREPEND_PUNCTUATIONS + APPEND_PUNCTUATIONS


def make_safe(text: str) -> str:
    """`text` with the characters the console's encoding cannot show replaced by "?"."""
    encoding = sys.stdout.encoding or "utf-8"
    return text.encode(encoding, errors="replace").decode(encoding)


def _waveform(audio: str | os.PathLike[str] | np.ndarray) -> np.ndarray:
    if isinstance(audio, np.ndarray):
        return check_audio_array(audio)
    return load_audio(audio)


def _seek_clips(
    clip_timestamps: str | Sequence[float], content_frames: int
) -> list[tuple[int, int]]:
    """(start, end) mel frames of the clips "start,end,start,end,..." (seconds); the last end
    defaults to the end of the audio."""
    if isinstance(clip_timestamps, str):
        clip_timestamps = [float(ts) for ts in clip_timestamps.split(",") if ts.strip()]
    seek_points = [round(ts * FRAMES_PER_SECOND) for ts in clip_timestamps] or [0]
    if len(seek_points) % 2 == 1:
        seek_points.append(content_frames)
    return list(zip(seek_points[::2], seek_points[1::2]))


@dataclass(frozen=True)
class FallbackThresholds:
    compression_ratio: float | None
    logprob: float | None
    no_speech: float | None

    def needs_fallback(self, result: DecodingResult) -> bool:
        if self.is_silence(result):
            return False  # a low log probability is expected of silence
        too_repetitive = (
            self.compression_ratio is not None and result.compression_ratio > self.compression_ratio
        )
        too_improbable = self.logprob is not None and result.avg_logprob < self.logprob
        return too_repetitive or too_improbable

    def is_silence(self, result: DecodingResult) -> bool:
        """Probably no speech, and the text decoded from it improbable."""
        return (
            self.no_speech is not None
            and result.no_speech_prob > self.no_speech
            and self.logprob is not None
            and result.avg_logprob < self.logprob
        )

    def should_skip(self, result: DecodingResult) -> bool:
        """The window holds no speech: the no-speech probability is high and the text's log
        probability not high enough to overrule it."""
        if self.no_speech is None or result.no_speech_prob <= self.no_speech:
            return False
        return self.logprob is None or result.avg_logprob <= self.logprob


class EncodedWindows:
    """The mels of a batch of windows [n, n_mels, N_FRAMES], encoded together once. Audio
    features are opaque to all but the model, so a part of the batch (the windows that fall back
    to a higher temperature, one window's word alignment) is encoded again on its own."""

    def __init__(self, model: WhisperModel, mels: np.ndarray):
        self.model = model
        self.mels = mels
        self._features: dict[tuple[int, ...], AudioFeatures] = {}

    def features(self, indices: Sequence[int]) -> AudioFeatures:
        key = tuple(indices)
        if key not in self._features:
            self._features[key] = self.model.encode(self.mels[list(key)])
        return self._features[key]


def _options_at(decode_options: dict[str, Any], temperature: float) -> DecodingOptions:
    options = {**decode_options}
    if temperature > 0:  # sampling: beam search does not apply
        options.pop("beam_size", None)
        options.pop("patience", None)
    else:  # greedy or beam search: nothing to choose the best of
        options.pop("best_of", None)
    return DecodingOptions(**options, temperature=temperature)


def decode_with_fallback(
    model: WhisperModel,
    windows: EncodedWindows,
    temperatures: Sequence[float],
    thresholds: FallbackThresholds,
    decode_options: Sequence[dict[str, Any]],
) -> list[DecodingResult]:
    """Decodes each window (with its own options) at each temperature in turn until its result
    passes the thresholds, or the temperatures run out, when its last result is kept. The
    windows that fail are decoded again together, without the others."""
    results: dict[int, DecodingResult] = {}
    pending = list(range(len(decode_options)))
    for t in temperatures:
        options = [_options_at(decode_options[i], t) for i in pending]
        results.update(zip(pending, decode_batch(model, windows.features(pending), options)))
        pending = [i for i in pending if thresholds.needs_fallback(results[i])]
        if not pending:
            break
    return [results[i] for i in range(len(decode_options))]


@dataclass(frozen=True)
class WindowCut:
    """How a window's tokens split into segments, and how far the next window moves on."""

    segments: list[tuple[float, float, list[int]]]  # (start, end, tokens)
    seek_advance: int  # mel frames
    single_timestamp_ending: bool


def cut_window(
    tokens: list[int],
    tokenizer: Tokenizer,
    time_offset: float,
    segment_size: int,
    input_stride: int,
    time_precision: float,
) -> WindowCut:
    """Splits a window's tokens into segments at each pair of consecutive timestamps."""
    timestamp_begin = tokenizer.timestamp_begin
    is_timestamp = [token >= timestamp_begin for token in tokens]
    single_timestamp_ending = is_timestamp[-2:] == [False, True]
    consecutive = [i + 1 for i in range(len(tokens) - 1) if is_timestamp[i] and is_timestamp[i + 1]]

    if not consecutive:
        # one segment for the whole window, ending at its last timestamp if it has one
        duration = segment_size * HOP_LENGTH / SAMPLE_RATE
        timestamps = [token for token in tokens if token >= timestamp_begin]
        if timestamps and timestamps[-1] != timestamp_begin:
            duration = (timestamps[-1] - timestamp_begin) * time_precision
        segment = (time_offset, time_offset + duration, tokens)
        return WindowCut([segment], segment_size, single_timestamp_ending)

    slices = consecutive + [len(tokens)] if single_timestamp_ending else consecutive
    segments = []
    last_slice = 0
    for current_slice in slices:
        sliced = tokens[last_slice:current_slice]
        start = time_offset + (sliced[0] - timestamp_begin) * time_precision
        end = time_offset + (sliced[-1] - timestamp_begin) * time_precision
        segments.append((start, end, sliced))
        last_slice = current_slice

    if single_timestamp_ending:
        # a lone timestamp at the end: no speech after it, the whole window is done
        seek_advance = segment_size
    else:
        # the text after the last pair is unfinished: the next window starts at that pair
        seek_advance = (tokens[last_slice - 1] - timestamp_begin) * input_stride
    return WindowCut(segments, seek_advance, single_timestamp_ending)


def word_anomaly_score(word: dict) -> float:
    """How unlike speech a word looks: improbable, very short or very long."""
    probability = word.get("probability", 0.0)
    duration = word["end"] - word["start"]
    score = 0.0
    if probability < 0.15:
        score += 1.0
    if duration < 0.133:
        score += (0.133 - duration) * 15
    if duration > 2.0:
        score += duration - 2.0
    return score


def is_segment_anomaly(segment: dict | None) -> bool:
    """Whether a segment's first words look like a hallucination."""
    if segment is None or not segment["words"]:
        return False
    words = [w for w in segment["words"] if w["word"] not in PUNCTUATION][:8]
    score = sum(word_anomaly_score(w) for w in words)
    return score >= 3 or score + 0.01 >= len(words)


def next_words_segment(segments: list[dict]) -> dict | None:
    return next((s for s in segments if s["words"]), None)


@dataclass(frozen=True)
class _Settings:
    """transcribe's options, which every audio of a batch follows alike."""

    temperatures: tuple[float, ...]
    thresholds: FallbackThresholds
    decode_options: dict[str, Any]  # DecodingOptions fields but language and prompt
    condition_on_previous_text: bool
    initial_prompt: str | None
    carry_initial_prompt: bool
    word_timestamps: bool
    prepend_punctuations: str
    append_punctuations: str
    clip_timestamps: str | Sequence[float]
    hallucination_silence_threshold: float | None
    verbose: bool | None
    input_stride: int  # mel frames per audio token: 2
    time_precision: float  # seconds per timestamp token: 0.02


class AudioTranscription:
    """One audio's way through the algorithm, a window at a time: `window()` is the mel to decode
    next, with `decode_options()`, and `advance()` takes its decoding, keeps the segments and
    moves the seek on. transcribe_batch runs several of these in lockstep."""

    def __init__(
        self,
        model: WhisperModel,
        mel: np.ndarray,
        language: str,
        tokenizer: Tokenizer,
        settings: _Settings,
        label: str = "",
    ):
        self.model = model
        self.mel = mel  # ends with 30 s of silence, so the last window can be sliced whole
        self.language = language
        self.tokenizer = tokenizer
        self.settings = settings
        self.label = label  # put before each line verbose prints
        self.content_frames = mel.shape[-1] - N_FRAMES
        self.clips = _seek_clips(settings.clip_timestamps, self.content_frames)
        self.clip = 0
        self.seek = self.clips[0][0]

        self.all_tokens: list[int] = []
        self.all_segments: list[dict] = []
        self.prompt_reset_since = 0
        self.last_speech_timestamp = 0.0
        self.max_prompt_length = model.dims.n_text_ctx // 2 - 1
        self.initial_prompt_tokens: list[int] = []
        if settings.initial_prompt is not None:
            self.initial_prompt_tokens = tokenizer.encode(" " + settings.initial_prompt.strip())
            self.all_tokens.extend(self.initial_prompt_tokens)
        self._next_clip()

    def _next_clip(self) -> None:
        """Moves on to the next clip (or to the end) once the seek has passed this one's end."""
        while not self.done and self.seek >= self.clips[self.clip][1]:
            self.clip += 1
            if not self.done:
                self.seek = self.clips[self.clip][0]

    @property
    def done(self) -> bool:
        return self.clip == len(self.clips)

    @property
    def segment_size(self) -> int:
        """Mel frames of the audio in the current window."""
        clip_end = self.clips[self.clip][1]
        return min(N_FRAMES, self.content_frames - self.seek, clip_end - self.seek)

    def window(self) -> np.ndarray:
        return pad_or_trim(self.mel[:, self.seek : self.seek + self.segment_size], N_FRAMES)

    def prompt(self) -> list[int]:
        """The text so far, which the next window is decoded after."""
        if self.settings.carry_initial_prompt:
            n_ignored = max(len(self.initial_prompt_tokens), self.prompt_reset_since)
            remaining_length = self.max_prompt_length - len(self.initial_prompt_tokens)
            remaining = self.all_tokens[n_ignored:][-remaining_length:]
            prompt = self.initial_prompt_tokens + remaining
        else:
            prompt = self.all_tokens[self.prompt_reset_since :]
        # Decoding keeps no more than this either; cut here, the length is what tells which
        # windows can share a batch.
        return prompt[-self.max_prompt_length :]

    def decode_options(self) -> dict[str, Any]:
        return {**self.settings.decode_options, "language": self.language, "prompt": self.prompt()}

    def advance(self, result: DecodingResult, audio_features: Callable[[], AudioFeatures]) -> int:
        """Takes the decoding of the current window; audio_features gives the window's (for word
        timing). Returns the mel frames newly done, for the progress bar."""
        previous_seek = self.seek
        done = 0
        if self.settings.thresholds.should_skip(result):
            self.seek += self.segment_size  # fast-forward to the next window
        elif self._add_segments(result, audio_features):
            done = min(self.content_frames, self.seek) - previous_seek
        self._next_clip()
        return done

    def _add_segments(
        self, result: DecodingResult, audio_features: Callable[[], AudioFeatures]
    ) -> bool:
        """Keeps the window's segments and moves the seek past them; False when it drops them
        to decode again from the new seek instead (a hallucination over silence)."""
        settings, tokenizer = self.settings, self.tokenizer
        previous_seek = self.seek
        segment_size = self.segment_size
        time_offset = float(self.seek * HOP_LENGTH / SAMPLE_RATE)
        window_end_time = float((self.seek + N_FRAMES) * HOP_LENGTH / SAMPLE_RATE)

        cut = cut_window(
            result.tokens,
            tokenizer,
            time_offset,
            segment_size,
            settings.input_stride,
            settings.time_precision,
        )
        self.seek += cut.seek_advance
        current_segments = [
            {
                "seek": previous_seek,
                "start": start,
                "end": end,
                "text": tokenizer.decode([t for t in tokens if t < tokenizer.eot]),
                "tokens": tokens,
                "temperature": result.temperature,
                "avg_logprob": result.avg_logprob,
                "compression_ratio": result.compression_ratio,
                "no_speech_prob": result.no_speech_prob,
            }
            for start, end, tokens in cut.segments
        ]

        if settings.word_timestamps:
            add_word_timestamps(
                segments=current_segments,
                model=self.model,
                tokenizer=tokenizer,
                audio_features=audio_features(),
                num_frames=segment_size,
                prepend_punctuations=settings.prepend_punctuations,
                append_punctuations=settings.append_punctuations,
                last_speech_timestamp=self.last_speech_timestamp,
            )

            # the next window starts where the last word ended
            if not cut.single_timestamp_ending:
                last_word_end = get_end(current_segments)
                if last_word_end is not None and last_word_end > time_offset:
                    self.seek = round(last_word_end * FRAMES_PER_SECOND)

            if settings.hallucination_silence_threshold is not None:
                skip_from = _skip_hallucination_silence(
                    current_segments,
                    threshold=settings.hallucination_silence_threshold,
                    single_timestamp_ending=cut.single_timestamp_ending,
                    seek=self.seek,
                    previous_seek=previous_seek,
                    segment_size=segment_size,
                    time_offset=time_offset,
                    window_end_time=window_end_time,
                    segment_duration=segment_size * HOP_LENGTH / SAMPLE_RATE,
                    content_duration=float(self.content_frames * HOP_LENGTH / SAMPLE_RATE),
                    content_frames=self.content_frames,
                    last_speech_timestamp=self.last_speech_timestamp,
                )
                self.seek = skip_from.seek
                if skip_from.retry_window:
                    return False

            last_word_end = get_end(current_segments)
            if last_word_end is not None:
                self.last_speech_timestamp = last_word_end

        if settings.verbose:
            for segment in current_segments:
                start, end, text = segment["start"], segment["end"], segment["text"]
                line = f"[{format_timestamp(start)} --> {format_timestamp(end)}] {text}"
                print(make_safe(self.label + line))

        # an instantaneous or blank segment keeps its place and times, without text
        for segment in current_segments:
            if segment["start"] == segment["end"] or segment["text"].strip() == "":
                segment["text"] = ""
                segment["tokens"] = []
                if settings.word_timestamps:
                    segment["words"] = []

        self.all_segments.extend(
            {"id": i, **segment}
            for i, segment in enumerate(current_segments, start=len(self.all_segments))
        )
        self.all_tokens.extend(token for segment in current_segments for token in segment["tokens"])

        if not settings.condition_on_previous_text or result.temperature > 0.5:
            # text sampled at a high temperature makes a poor prompt
            self.prompt_reset_since = len(self.all_tokens)
        return True

    def result(self) -> dict:
        return dict(
            text=self.tokenizer.decode(self.all_tokens[len(self.initial_prompt_tokens) :]),
            segments=self.all_segments,
            language=self.language,
        )


def _detect_languages(
    model: WhisperModel, mels: list[np.ndarray], verbose: bool | None, labels: list[str]
) -> list[str]:
    """The language of each audio, from its first 30 seconds ("en" for English-only models)."""
    if not model.is_multilingual:
        return ["en"] * len(mels)
    if verbose:
        print(
            "Detecting language using up to the first 30 seconds. "
            "Use `--language` to specify the language"
        )
    _, probs = detect_language(model, np.stack([pad_or_trim(mel, N_FRAMES) for mel in mels]))
    languages = [max(p, key=p.get) for p in probs]
    if verbose is not None:
        for label, language in zip(labels, languages):
            print(f"{label}Detected language: {LANGUAGES[language].title()}")
    return languages


def _batches(
    transcriptions: Sequence[AudioTranscription],
) -> list[list[tuple[AudioTranscription, dict[str, Any]]]]:
    """The current windows, with their options, in batches that can be decoded together: the
    same settings and language, and prompts of the same length (the rows of a batch share their
    positions)."""
    batches: dict[tuple[int, str, int], list] = {}
    for transcription in transcriptions:
        options = transcription.decode_options()
        key = (id(transcription.settings), options["language"], len(options["prompt"]))
        batches.setdefault(key, []).append((transcription, options))
    return list(batches.values())


def _decode_windows(
    model: WhisperModel, batch: list[tuple[AudioTranscription, dict[str, Any]]]
) -> int:
    """Decodes the windows of a batch together and moves each audio on; returns the mel frames
    done."""
    transcriptions, options = zip(*batch)
    settings = transcriptions[0].settings
    windows = EncodedWindows(model, np.stack([t.window() for t in transcriptions]))
    results = decode_with_fallback(
        model, windows, settings.temperatures, settings.thresholds, options
    )
    return sum(
        transcription.advance(result, functools.partial(windows.features, [i]))
        for i, (transcription, result) in enumerate(zip(transcriptions, results))
    )


def decode_next_windows(model: WhisperModel, transcriptions: Sequence[AudioTranscription]) -> int:
    """One round of the lockstep: the current window of every unfinished audio, decoded in as
    few batches as their options allow. Audios may join or leave between rounds (the server
    adds requests here), since each keeps its own seek. Returns the mel frames done."""
    unfinished = [t for t in transcriptions if not t.done]
    return sum(_decode_windows(model, batch) for batch in _batches(unfinished))


def start_transcriptions(
    model: WhisperModel,
    audios: Sequence[str | os.PathLike[str] | np.ndarray],
    *,
    names: Sequence[str] | None = None,
    verbose: bool | None = None,
    temperature: float | Sequence[float] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0),
    compression_ratio_threshold: float | None = 2.4,
    logprob_threshold: float | None = -1.0,
    no_speech_threshold: float | None = 0.6,
    condition_on_previous_text: bool = True,
    initial_prompt: str | None = None,
    carry_initial_prompt: bool = False,
    word_timestamps: bool = False,
    prepend_punctuations: str = PREPEND_PUNCTUATIONS,
    append_punctuations: str = APPEND_PUNCTUATIONS,
    clip_timestamps: str | Sequence[float] = "0",
    hallucination_silence_threshold: float | None = None,
    **decode_options: Any,
) -> list[AudioTranscription]:
    """Sets each audio on its way (log-mel, language) without decoding anything yet: the
    returned transcriptions are driven by decode_next_windows until done, then read with
    result(). Options as transcribe_batch; transcriptions started together share one settings
    object, which is what lets their windows share a batch."""
    # Precision is the model's own choice; the option is accepted as openai-whisper accepts it.
    decode_options.pop("fp16", None)
    task: str = decode_options.get("task", "transcribe")
    language: str | None = decode_options.pop("language", None)
    check_language_and_task(model, language, task)
    if N_FRAMES % model.dims.n_audio_ctx != 0:
        raise ValueError(f"n_audio_ctx {model.dims.n_audio_ctx} does not divide {N_FRAMES} frames")
    input_stride = N_FRAMES // model.dims.n_audio_ctx

    if names is None:
        names = [
            os.fspath(audio) if not isinstance(audio, np.ndarray) else f"audio {i + 1}"
            for i, audio in enumerate(audios)
        ]
    labels = [f"{name}: " if len(audios) > 1 else "" for name in names]

    # 30 seconds of silence after the audio, so that the last window can always be sliced whole
    mels = [
        log_mel_spectrogram(_waveform(audio), model.dims.n_mels, padding=N_SAMPLES)
        for audio in audios
    ]
    if language is None:
        languages = _detect_languages(model, mels, verbose, labels)
    else:
        languages = [language] * len(mels)

    if word_timestamps and task == "translate":
        warnings.warn("Word-level timestamps on translations may not be reliable.", stacklevel=2)

    if isinstance(temperature, (int, float)):
        temperature = (temperature,)
    settings = _Settings(
        temperatures=tuple(temperature),
        thresholds=FallbackThresholds(
            compression_ratio_threshold, logprob_threshold, no_speech_threshold
        ),
        decode_options=decode_options,
        condition_on_previous_text=condition_on_previous_text,
        initial_prompt=initial_prompt,
        carry_initial_prompt=carry_initial_prompt,
        word_timestamps=word_timestamps,
        prepend_punctuations=prepend_punctuations,
        append_punctuations=append_punctuations,
        clip_timestamps=clip_timestamps,
        hallucination_silence_threshold=hallucination_silence_threshold,
        verbose=verbose,
        input_stride=input_stride,
        time_precision=input_stride * HOP_LENGTH / SAMPLE_RATE,
    )
    return [
        AudioTranscription(
            model, mel, language, get_model_tokenizer(model, language, task), settings, label
        )
        for mel, language, label in zip(mels, languages, labels)
    ]


def transcribe_batch(
    model: WhisperModel,
    audios: Sequence[str | os.PathLike[str] | np.ndarray],
    *,
    names: Sequence[str] | None = None,
    verbose: bool | None = None,
    temperature: float | Sequence[float] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0),
    compression_ratio_threshold: float | None = 2.4,
    logprob_threshold: float | None = -1.0,
    no_speech_threshold: float | None = 0.6,
    condition_on_previous_text: bool = True,
    initial_prompt: str | None = None,
    carry_initial_prompt: bool = False,
    word_timestamps: bool = False,
    prepend_punctuations: str = PREPEND_PUNCTUATIONS,
    append_punctuations: str = APPEND_PUNCTUATIONS,
    clip_timestamps: str | Sequence[float] = "0",
    hallucination_silence_threshold: float | None = None,
    progress: bool = True,
    **decode_options: Any,
) -> list[dict]:
    """Transcribes (or translates) audio files or 16 kHz waveforms of any length, together: each
    audio goes through the windows of the algorithm on its own, but in lockstep with the others,
    so that their current windows are encoded and decoded as a batch. With deterministic
    decoding (temperature 0), each result is the one transcribe gives for that audio alone.

    names: what verbose output calls each audio (default: its path, or its place in the list).
    verbose: True prints each segment as it is decoded, False shows a progress bar (unless
        progress is False), None prints nothing.
    temperature: the temperatures to decode a window at, each one a fallback for the one
        before when the result is too repetitive (compression ratio above
        compression_ratio_threshold) or too improbable (average log probability below
        logprob_threshold).
    no_speech_threshold: a window whose <|nospeech|> probability is above this, and whose
        text is improbable (below logprob_threshold), is taken as silence and skipped.
    condition_on_previous_text: give the previous windows' text as the prompt; switching it
        off makes the text less consistent between windows, but the model less prone to
        repetition loops.
    initial_prompt: text to prompt the first window with (vocabulary, names, style); with
        carry_initial_prompt, every window's prompt starts with it.
    word_timestamps: time each word (segments get "words") and cut windows at word ends.
    prepend_punctuations, append_punctuations: punctuation joined to the next or previous
        word when timing words.
    clip_timestamps: "start,end,start,end,..." seconds of the parts to transcribe; the last
        end defaults to the end of the audio.
    hallucination_silence_threshold: with word timestamps, skip silences longer than this
        (seconds) around a segment that looks like a hallucination.
    decode_options: DecodingOptions fields (language, task, beam_size, best_of, patience, ...).

    Returns, per audio, {"text", "segments", "language"}, as openai-whisper's transcribe does.
    """
    transcriptions = start_transcriptions(
        model,
        audios,
        names=names,
        verbose=verbose,
        temperature=temperature,
        compression_ratio_threshold=compression_ratio_threshold,
        logprob_threshold=logprob_threshold,
        no_speech_threshold=no_speech_threshold,
        condition_on_previous_text=condition_on_previous_text,
        initial_prompt=initial_prompt,
        carry_initial_prompt=carry_initial_prompt,
        word_timestamps=word_timestamps,
        prepend_punctuations=prepend_punctuations,
        append_punctuations=append_punctuations,
        clip_timestamps=clip_timestamps,
        hallucination_silence_threshold=hallucination_silence_threshold,
        **decode_options,
    )
    # with verbose=True the segments themselves show the progress
    total_frames = sum(t.content_frames for t in transcriptions)
    with tqdm.tqdm(
        total=total_frames, unit="frames", disable=verbose is not False or not progress
    ) as pbar:
        while not all(t.done for t in transcriptions):
            pbar.update(decode_next_windows(model, transcriptions))

    return [transcription.result() for transcription in transcriptions]


def transcribe(
    model: WhisperModel, audio: str | os.PathLike[str] | np.ndarray, **options: Any
) -> dict:
    """Transcribes (or translates) an audio file or a 16 kHz waveform of any length, with
    openai-whisper's options (described at transcribe_batch, which this is for one audio).

    Returns {"text", "segments", "language"}, as openai-whisper's transcribe does.
    """
    return transcribe_batch(model, [audio], **options)[0]


@dataclass(frozen=True)
class _SilenceSkip:
    seek: int
    retry_window: bool  # drop this window's segments and decode again from seek


def _skip_hallucination_silence(
    current_segments: list[dict],
    *,
    threshold: float,
    single_timestamp_ending: bool,
    seek: int,
    previous_seek: int,
    segment_size: int,
    time_offset: float,
    window_end_time: float,
    segment_duration: float,
    content_duration: float,
    content_frames: int,
    last_speech_timestamp: float,
) -> _SilenceSkip:
    """Where to go on when a window's segments may be hallucinated over silence: past a long
    silence before a suspect segment, whose segments from there on are dropped (in place)."""
    if not single_timestamp_ending:
        last_word_end = get_end(current_segments)
        if last_word_end is not None and last_word_end > time_offset:
            remaining_duration = window_end_time - last_word_end
            if remaining_duration > threshold:
                seek = round(last_word_end * FRAMES_PER_SECOND)
            else:
                seek = previous_seek + segment_size

    # a suspect first segment after a long silence: decode again from the silence's end
    first_segment = next_words_segment(current_segments)
    if first_segment is not None and is_segment_anomaly(first_segment):
        gap = first_segment["start"] - time_offset
        if gap > threshold:
            return _SilenceSkip(previous_seek + round(gap * FRAMES_PER_SECOND), retry_window=True)

    # a suspect segment with silence (or more suspects) on both sides: drop it and what
    # follows, and go on from its start
    hal_last_end = last_speech_timestamp
    for si, segment in enumerate(current_segments):
        if not segment["words"]:
            continue
        if is_segment_anomaly(segment):
            next_segment = next_words_segment(current_segments[si + 1 :])
            if next_segment is not None:
                hal_next_start = next_segment["words"][0]["start"]
            else:
                hal_next_start = time_offset + segment_duration
            silence_before = (
                segment["start"] - hal_last_end > threshold
                or segment["start"] < threshold
                or segment["start"] - time_offset < 2.0
            )
            silence_after = (
                hal_next_start - segment["end"] > threshold
                or is_segment_anomaly(next_segment)
                or window_end_time - segment["end"] < 2.0
            )
            if silence_before and silence_after:
                seek = round(max(time_offset + 1, segment["start"]) * FRAMES_PER_SECOND)
                if content_duration - segment["end"] < threshold:
                    seek = content_frames
                del current_segments[si:]
                break
        hal_last_end = segment["end"]

    return _SilenceSkip(seek, retry_window=False)
