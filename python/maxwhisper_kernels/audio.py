"""Reading audio the way Whisper expects it: mono float32 at 16 kHz, padded or cut to 30 s.

openai-whisper shells out to the ffmpeg CLI; here PyAV (the same libraries, linked in) decodes
any container or codec and its resampler (libswresample, as the CLI's ``-ac 1 -ar 16000``) mixes
down and resamples, to 16-bit samples as openai-whisper's pipe does, so the audio matches.
"""

from __future__ import annotations

import os
import stat
import warnings
from collections.abc import Iterator

import av
import numpy as np

SAMPLE_RATE = 16000
N_FFT = 400
HOP_LENGTH = 160
CHUNK_LENGTH = 30
N_SAMPLES = CHUNK_LENGTH * SAMPLE_RATE  # 480000 samples in a 30-second chunk
N_FRAMES = N_SAMPLES // HOP_LENGTH  # 3000 frames in a mel spectrogram input

N_SAMPLES_PER_TOKEN = HOP_LENGTH * 2  # the encoder's second convolution has stride 2
FRAMES_PER_SECOND = SAMPLE_RATE // HOP_LENGTH  # 10 ms per audio frame
TOKENS_PER_SECOND = SAMPLE_RATE // N_SAMPLES_PER_TOKEN  # 20 ms per audio token


class AudioError(ValueError):
    """Audio that cannot be used: `source` names the file (or the array), `reason` says why."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


def _reason(error: Exception) -> str:
    # FFmpeg's errors carry errno-style text; without it str() repeats the file name.
    return getattr(error, "strerror", None) or str(error)


def _open(name: str) -> tuple[av.container.InputContainer, av.AudioStream]:
    """The file's container and its audio stream; AudioError for a missing, empty, unreadable
    or audio-less file."""
    try:
        info = os.stat(name)
    except OSError as error:
        raise AudioError(name, _reason(error)) from None
    if stat.S_ISREG(info.st_mode) and info.st_size == 0:
        raise AudioError(name, "the file is empty (0 bytes)")

    try:
        container = av.open(name, mode="r", metadata_errors="ignore")
    except (av.FFmpegError, OSError) as error:
        raise AudioError(name, f"not a readable audio file ({_reason(error)})") from None
    stream = container.streams.best("audio")
    if stream is None:
        read_as = container.format.long_name
        container.close()
        raise AudioError(name, f"no audio stream (FFmpeg reads it as {read_as})")
    return container, stream


def _check_decoded(name: str, decoded_any: bool, errors: list[Exception]) -> None:
    if errors:
        if not decoded_any:
            raise AudioError(name, f"no audio could be decoded ({_reason(errors[0])})")
        warnings.warn(
            f"{name}: skipped {len(errors)} undecodable part(s) ({_reason(errors[0])})",
            stacklevel=3,
        )
    if not decoded_any:
        raise AudioError(name, "the audio stream is empty (no samples)")


def load_audio(file: str | os.PathLike[str], sr: int = SAMPLE_RATE) -> np.ndarray:
    """Decodes an audio (or video) file to a mono float32 waveform in [-1, 1) at `sr` Hz.

    Channels are mixed down as ffmpeg does (stereo: the mean of the two). Packets that fail to
    decode are skipped with a warning, as the ffmpeg CLI skips them, so a truncated or partly
    damaged recording still gives the audio it holds. Raises AudioError for a missing, empty,
    unreadable or audio-less file, or one that decodes to no samples.
    """
    name = os.fspath(file)
    container, stream = _open(name)
    errors: list[Exception] = []
    with container:
        chunks = list(_decode_mono_s16(container, stream, sr, errors))
    _check_decoded(name, bool(chunks), errors)
    return _to_float(np.concatenate(chunks))


class AudioStream:
    """An audio file decoded a block at a time, for recordings too long to hold whole.

    ``seconds`` is the duration the container declares (None when it declares none); iterating
    yields float32 blocks of ``block_samples`` (the last one shorter), the same samples as
    load_audio's, with the same errors and warnings. The file is opened (and checked) at once.
    """

    def __init__(self, file: str | os.PathLike[str], block_samples: int, sr: int = SAMPLE_RATE):
        self.name = os.fspath(file)
        self.block_samples, self.sr = block_samples, sr
        self._container, self._stream = _open(self.name)
        duration = self._container.duration  # in av.time_base units (microseconds)
        self.seconds = duration / 1_000_000 if duration else None

    def __iter__(self) -> Iterator[np.ndarray]:
        errors: list[Exception] = []
        held: list[np.ndarray] = []
        n_held = 0
        decoded_any = False
        with self._container:
            for chunk in _decode_mono_s16(self._container, self._stream, self.sr, errors):
                held.append(chunk)
                n_held += len(chunk)
                decoded_any = True
                while n_held >= self.block_samples:
                    joined = np.concatenate(held)
                    yield _to_float(joined[: self.block_samples])
                    held, n_held = [joined[self.block_samples :]], len(joined) - self.block_samples
        _check_decoded(self.name, decoded_any, errors)
        if n_held:
            yield _to_float(np.concatenate(held))


def _to_float(samples: np.ndarray) -> np.ndarray:
    out = samples.astype(np.float32)
    out /= 32768.0  # in place: a long recording is not held twice as float32
    return out


# Decoded frames are joined into one of at least this many samples before resampling: a
# resampler call costs about 18 us whatever its size, and codecs decode frames of 1-4k
# samples (a 166 s WAV: 115 -> 57 ms, same samples; the resampler streams, so where the
# input is cut changes nothing).
RESAMPLE_BATCH = 32768


def _joined(frames: list[av.AudioFrame]) -> av.AudioFrame:
    """Frames of one format as one frame (planes or interleaved samples end to end)."""
    if len(frames) == 1:
        return frames[0]
    first = frames[0]
    joined = av.AudioFrame.from_ndarray(
        np.concatenate([f.to_ndarray() for f in frames], axis=1), format=first.format.name, layout=first.layout.name
    )
    joined.sample_rate = first.sample_rate
    return joined


def _decode_mono_s16(
    container: av.container.InputContainer, stream: av.AudioStream, sr: int, errors: list[Exception]
) -> Iterator[np.ndarray]:
    """The stream's samples as mono int16 arrays at `sr`; the errors met on the way are added
    to `errors`."""
    resampler: av.AudioResampler | None = None
    source_format: tuple[str, str, int] | None = None
    pending: list[av.AudioFrame] = []  # decoded, not yet resampled (all in source_format)

    def resampled(flush: bool) -> Iterator[np.ndarray]:
        frames = resampler.resample(_joined(pending)) if pending else []
        if flush:
            frames += resampler.resample(None)
        pending.clear()
        return (f.to_ndarray().reshape(-1) for f in frames if f.samples)

    try:
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.FFmpegError as error:
                errors.append(error)
                continue
            for frame in frames:
                # A resampler is fixed to one input format; streams can change rate or layout
                # midway (e.g. concatenated MP3s), which the ffmpeg CLI follows.
                frame_format = (frame.format.name, frame.layout.name, frame.sample_rate)
                if frame_format != source_format:
                    if resampler is not None:
                        yield from resampled(flush=True)
                    resampler = av.AudioResampler(format="s16", layout="mono", rate=sr)
                    source_format = frame_format
                pending.append(frame)
                if sum(f.samples for f in pending) >= RESAMPLE_BATCH:
                    yield from resampled(flush=False)
    except av.FFmpegError as error:  # the container itself is damaged past this point
        errors.append(error)
    if resampler is not None:
        yield from resampled(flush=True)


def check_audio_array(audio: np.ndarray) -> np.ndarray:
    """Validates a waveform given as an array and returns it as 1-D float32.

    Raises AudioError unless it is a non-empty, finite, floating-point, 1-D (or squeezable to
    1-D) array; samples are expected at 16 kHz in [-1, 1].
    """
    source = "audio array"
    array = np.asarray(audio)
    if array.ndim != 1:
        array = array.squeeze()
        if array.ndim != 1:
            raise AudioError(source, f"expected a 1-D mono waveform, got shape {np.shape(audio)}")
    if array.size == 0:
        raise AudioError(source, "the waveform is empty (no samples)")
    if not np.issubdtype(array.dtype, np.floating):
        raise AudioError(
            source,
            f"expected floating-point samples in [-1, 1], got {array.dtype} "
            "(divide 16-bit PCM by 32768)",
        )
    array = np.ascontiguousarray(array, dtype=np.float32)
    if not np.isfinite(array).all():
        raise AudioError(source, "the waveform has NaN or infinite samples")
    return array


def pad_or_trim(array: np.ndarray, length: int = N_SAMPLES, axis: int = -1) -> np.ndarray:
    """Pads with zeros or cuts `array` along `axis` to `length`, the encoder's input size."""
    size = array.shape[axis]
    if size > length:
        index = [slice(None)] * array.ndim
        index[axis] = slice(0, length)
        return array[tuple(index)]
    if size < length:
        widths = [(0, 0)] * array.ndim
        widths[axis] = (0, length - size)
        return np.pad(array, widths)
    return array
