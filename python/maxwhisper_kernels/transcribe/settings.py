"""transcribe's own options (openai-whisper's names and defaults) and the thresholds that judge
a window's decoding."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

from ..decoding import DecodingResult
from ..timing import APPEND_PUNCTUATIONS, PREPEND_PUNCTUATIONS


@dataclass(frozen=True)
class TranscribeOptions:
    """What transcribe takes besides DecodingOptions' fields. Every audio started together
    follows one of these."""

    # True: print each segment as it is decoded; False: a progress bar; None: silence
    verbose: bool | None = None
    # decode at the first; each next one is the fallback when a result fails the thresholds
    temperature: float | Sequence[float] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    # a result compressing better than this (zlib) is taken for a repetition loop
    compression_ratio_threshold: float | None = 2.4
    # a result whose mean token log probability is lower than this is retried
    logprob_threshold: float | None = -1.0
    # <|nospeech|> more probable than this, with an improbable text, means: skip the window
    no_speech_threshold: float | None = 0.6
    # the text so far prompts the next window: consistent style, but loops can carry over
    condition_on_previous_text: bool = True
    # text (names, spelling, style) the first window is prompted with
    initial_prompt: str | None = None
    carry_initial_prompt: bool = False  # every window's prompt starts with initial_prompt
    word_timestamps: bool = False  # time each word; windows then end where a word ends
    prepend_punctuations: str = PREPEND_PUNCTUATIONS  # joined to the word after them
    append_punctuations: str = APPEND_PUNCTUATIONS  # joined to the word before them
    # "start,end,start,end,..." in seconds: the parts to transcribe; an odd list runs to the end
    clip_timestamps: str | Sequence[float] = "0"
    # with word timestamps: silences longer than this (s) around a suspect segment are skipped
    hallucination_silence_threshold: float | None = None
    # the audio is speech that VAD cut out (the batched pipeline's windows): in the window that
    # reaches its end, an opened segment is speech left unsaid, never speech cut off by the
    # window's edge, so the text may not stop there (DecodingOptions.speech_end)
    vad_cut: bool = False
    # after the first temperature, a failing window is drawn at up to this many of the next ones
    # at once, and the lowest that passes is kept (windows.decode_with_fallback); either way the
    # same rule picks the result. 1 tries them in turn, as openai-whisper does, and is the
    # faster on 2 CPU cores, where each extra row's NumPy work and step cost more than the
    # retries they spare (BUILD.md); more pays where extra rows of a step are nearly free
    parallel_fallback: int = 1
    # after a window whose text stopped where a loop began (DecodingOptions.stop_loops), the
    # audio from there is decoded with beam search of this width, prompted with the text before
    # the loop: greedy decoding just went wrong on that audio, and the few words it got right
    # are the best guide to the rest. None: the next window is decoded like any other
    resume_beam_size: int | None = None

    def __post_init__(self):
        if not isinstance(self.parallel_fallback, int) or self.parallel_fallback < 1:
            wrong = self.parallel_fallback
            raise ValueError(f"parallel_fallback must be a whole number of at least 1, got {wrong!r}")
        beam = self.resume_beam_size
        if beam is not None and (not isinstance(beam, int) or beam < 1):
            raise ValueError(f"resume_beam_size must be a whole number of at least 1 or None, got {beam!r}")

    @property
    def temperatures(self) -> tuple[float, ...]:
        t = self.temperature
        return (t,) if isinstance(t, (int, float)) else tuple(t)


NAMES = frozenset(f.name for f in fields(TranscribeOptions))


def split_options(options: dict[str, Any]) -> tuple[TranscribeOptions, dict[str, Any]]:
    """(transcribe's options, the rest: DecodingOptions fields)."""
    own = {k: v for k, v in options.items() if k in NAMES}
    return TranscribeOptions(**own), {k: v for k, v in options.items() if k not in NAMES}


@dataclass(frozen=True)
class FallbackThresholds:
    compression_ratio: float | None
    logprob: float | None
    no_speech: float | None

    @classmethod
    def of(cls, options: TranscribeOptions) -> FallbackThresholds:
        return cls(
            options.compression_ratio_threshold,
            options.logprob_threshold,
            options.no_speech_threshold,
        )

    def _improbable(self, result: DecodingResult) -> bool:
        return self.logprob is not None and result.avg_logprob < self.logprob

    def is_silence(self, result: DecodingResult) -> bool:
        """Likely no speech, and the text found in it improbable."""
        likely_silent = self.no_speech is not None and result.no_speech_prob > self.no_speech
        return likely_silent and self._improbable(result)

    def needs_fallback(self, result: DecodingResult) -> bool:
        """Decode again, warmer: the text loops or is improbable. Not for silence, whose text
        is improbable by nature."""
        if self.is_silence(result):
            return False
        ratio = self.compression_ratio
        return (ratio is not None and result.compression_ratio > ratio) or self._improbable(
            result
        )

    def should_skip(self, result: DecodingResult) -> bool:
        """The window is silence: <|nospeech|> is likely and the text's log probability is not
        high enough to overrule it (note <=: the fallback test above uses <)."""
        if self.no_speech is None or result.no_speech_prob <= self.no_speech:
            return False
        return self.logprob is None or result.avg_logprob <= self.logprob


@dataclass(frozen=True)
class Settings:
    """One start_transcriptions call's options, shared by its audios; audios with equal
    Settings (from any call) have their windows decoded in shared batches."""

    options: TranscribeOptions
    decode_options: dict[str, Any]  # DecodingOptions fields but language and prompt
    thresholds: FallbackThresholds
    input_stride: int  # mel frames per audio token: 2
    time_precision: float  # seconds per timestamp token: 0.02
