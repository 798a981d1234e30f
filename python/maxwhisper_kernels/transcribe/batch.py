"""Transcribing audios together: each follows its own windows and seek, in lockstep with the
others, and the current windows of all are encoded and decoded as one batch.

    transcriptions = start_transcriptions(model, audios, **options)   # log-mel, language
    while not all(t.done for t in transcriptions):
        decode_next_windows(model, transcriptions)                     # one window each
    results = [t.result() for t in transcriptions]

transcribe_batch and transcribe run exactly this; a server may add transcriptions between
rounds.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import tqdm

from ..audio import (
    HOP_LENGTH,
    N_FRAMES,
    N_SAMPLES,
    SAMPLE_RATE,
    check_audio_array,
    load_audio,
    pad_or_trim,
)
from ..decoding import WhisperModel, check_language_and_task, detect_language, get_model_tokenizer
from .. import os_memory
from ..ops import log_mel_spectrogram
from ..tokenizer import LANGUAGES
from .session import AudioTranscription
from .settings import FallbackThresholds, Settings, split_options
from .windows import EncodedWindows, decode_with_fallback

Audio = str | os.PathLike[str] | np.ndarray


def _waveform(audio: Audio) -> np.ndarray:
    return check_audio_array(audio) if isinstance(audio, np.ndarray) else load_audio(audio)


def _detect_languages(
    model: WhisperModel, mels: list[np.ndarray], verbose: bool | None, labels: list[str]
) -> list[str]:
    """Each audio's language, judged on its first 30 seconds; "en" on English-only models."""
    if not model.is_multilingual:
        return ["en"] * len(mels)
    if verbose:
        print("Detecting the language from the first 30 seconds (--language skips this)")
    _, probs = detect_language(model, np.stack([pad_or_trim(mel, N_FRAMES) for mel in mels]))
    languages = [max(p, key=p.get) for p in probs]
    if verbose is not None:
        for label, code in zip(labels, languages):
            print(f"{label}Detected language: {LANGUAGES[code].title()}")
    return languages


def _batches(transcriptions: Sequence[AudioTranscription]) -> list[list[tuple]]:
    """The current windows and their options, grouped into what can be decoded as one batch:
    equal settings, same language, prompts of the same length (a batch's rows share positions),
    the same search (a window resuming after a loop may use beams, TranscribeOptions).
    Settings are compared by value (they hold a dict, so they cannot be dictionary keys):
    audios started by separate calls with the same options share batches too."""
    groups: list[tuple[Settings, tuple[str, int], list]] = []
    for t in transcriptions:
        options = t.decode_options()
        key = (options["language"], len(options["prompt"]), options.get("beam_size"))
        for settings, group_key, members in groups:
            if group_key == key and settings == t.settings:
                members.append((t, options))
                break
        else:
            groups.append((t.settings, key, [(t, options)]))
    return [members for _, _, members in groups]


def _decode_batch(model: WhisperModel, batch: list[tuple]) -> int:
    """Decodes one batch of windows and moves each audio on; returns the frames covered."""
    transcriptions, options = zip(*batch)
    settings: Settings = transcriptions[0].settings
    windows = EncodedWindows(model, np.stack([t.window() for t in transcriptions]))
    temperatures = settings.options.temperatures
    parallel = settings.options.parallel_fallback
    results = decode_with_fallback(model, windows, temperatures, settings.thresholds, options, parallel)
    return sum(
        t.advance(result, functools.partial(windows.features, [k]))
        for k, (t, result) in enumerate(zip(transcriptions, results))
    )


def decode_next_windows(model: WhisperModel, transcriptions: Sequence[AudioTranscription]) -> int:
    """One lockstep round: the current window of every unfinished audio, in as few batches as
    their options allow. Each audio keeps its own seek, so audios may be added or dropped
    between rounds. Returns the frames covered."""
    unfinished = [t for t in transcriptions if not t.done]
    return sum(_decode_batch(model, batch) for batch in _batches(unfinished))


def start_transcriptions(
    model: WhisperModel,
    audios: Sequence[Audio],
    *,
    names: Sequence[str] | None = None,
    **options: Any,
) -> list[AudioTranscription]:
    """Prepares each audio (log-mel, language) without decoding any window; decode_next_windows
    then drives them until done. Options as transcribe_batch. Audios whose Settings are equal
    (the same options) have their windows decoded in shared batches."""
    own, decode_options = split_options(options)
    decode_options.pop("fp16", None)  # precision is the model's; accepted for compatibility
    language = decode_options.pop("language", None)
    task = decode_options.get("task", "transcribe")
    check_language_and_task(model, language, task)
    if N_FRAMES % model.dims.n_audio_ctx:
        raise ValueError(f"n_audio_ctx {model.dims.n_audio_ctx} does not divide {N_FRAMES} frames")
    stride = N_FRAMES // model.dims.n_audio_ctx

    if names is None:
        names = [
            f"audio {k + 1}" if isinstance(audio, np.ndarray) else os.fspath(audio)
            for k, audio in enumerate(audios)
        ]
    labels = [f"{name}: " if len(audios) > 1 else "" for name in names]

    # 30 s of silence after each audio: the last window can always be sliced whole
    mels = [
        log_mel_spectrogram(_waveform(audio), model.dims.n_mels, padding=N_SAMPLES)
        for audio in audios
    ]
    if language is None:
        languages = _detect_languages(model, mels, own.verbose, labels)
    else:
        languages = [language] * len(mels)

    if own.word_timestamps and task == "translate":
        message = "word timestamps of a translation may not line up with the speech"
        warnings.warn(message, stacklevel=2)

    settings = Settings(
        options=own,
        decode_options=decode_options,
        thresholds=FallbackThresholds.of(own),
        input_stride=stride,
        time_precision=stride * HOP_LENGTH / SAMPLE_RATE,
    )
    return [
        AudioTranscription(
            model, mel, code, get_model_tokenizer(model, code, task), settings, label
        )
        for mel, code, label in zip(mels, languages, labels)
    ]


def transcribe_batch(
    model: WhisperModel,
    audios: Sequence[Audio],
    *,
    names: Sequence[str] | None = None,
    progress: bool = True,
    **options: Any,
) -> list[dict]:
    """Transcribes (or translates) audio files or 16 kHz waveforms of any length, together:
    each goes through its own windows, in lockstep with the others, and the current windows of
    all are encoded and decoded as one batch. At temperature 0 each result is exactly what
    transcribe gives for that audio alone.

    options: openai-whisper's transcribe options (TranscribeOptions: verbose, temperature,
    compression_ratio_threshold, logprob_threshold, no_speech_threshold,
    condition_on_previous_text, initial_prompt, carry_initial_prompt, word_timestamps,
    prepend_punctuations, append_punctuations, clip_timestamps,
    hallucination_silence_threshold) and DecodingOptions' fields (language, task, beam_size,
    best_of, patience, ...).
    names: how verbose output calls each audio (default: its path, or "audio N").
    progress: False hides the progress bar that verbose=False shows.

    Returns per audio {"text", "segments", "language"}, as openai-whisper's transcribe does.
    """
    transcriptions = start_transcriptions(model, audios, names=names, **options)
    # with verbose=True the printed segments show the progress
    quiet = options.get("verbose") is not False or not progress
    total = sum(t.content_frames for t in transcriptions)
    with os_memory.transcription(), tqdm.tqdm(total=total, unit="frames", disable=quiet) as bar:
        while not all(t.done for t in transcriptions):
            bar.update(decode_next_windows(model, transcriptions))
    return [t.result() for t in transcriptions]


def transcribe(model: WhisperModel, audio: Audio, **options: Any) -> dict:
    """Transcribes (or translates) one audio file or 16 kHz waveform of any length; options
    and result as transcribe_batch."""
    return transcribe_batch(model, [audio], **options)[0]
