"""Loading audio with PyAV: real speech, synthesised files in several containers, bad inputs."""

import hashlib
import wave
from pathlib import Path

import av
import numpy as np
import pytest

from maxwhisper_kernels.audio import (
    N_FRAMES,
    N_SAMPLES,
    RESAMPLE_BATCH,
    SAMPLE_RATE,
    AudioError,
    check_audio_array,
    load_audio,
    pad_or_trim,
)

JFK = Path(__file__).resolve().parents[1].parent / "shared" / "audio" / "jfk.flac"


def sine(freq: float, seconds: float, rate: int, amplitude: float = 0.5) -> np.ndarray:
    return (amplitude * np.sin(2 * np.pi * freq * np.arange(int(seconds * rate)) / rate)).astype(
        np.float32
    )


def peak_frequency(audio: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(audio))
    return float(np.fft.rfftfreq(len(audio), 1 / SAMPLE_RATE)[spectrum.argmax()])


def write_wav(path: Path, channels: np.ndarray, rate: int) -> None:
    """Writes float channels [n_channels, n] as 16-bit PCM with the standard library."""
    pcm = np.round(channels.T * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels.shape[0])
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())


def encode(path: Path, audio: np.ndarray, rate: int, codec: str) -> None:
    """Encodes mono float audio with PyAV, frame by frame as the codec wants it."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.layout = "mono"
        step = stream.codec_context.frame_size or 1024
        for start in range(0, len(audio), step):
            frame = av.AudioFrame.from_ndarray(
                audio[None, start : start + step], format="fltp", layout="mono"
            )
            frame.sample_rate = rate
            frame.pts = start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def test_constants():
    assert (SAMPLE_RATE, N_SAMPLES, N_FRAMES) == (16000, 480000, 3000)


def test_jfk_loads_at_16_khz():
    audio = load_audio(JFK)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) - 11.0 * SAMPLE_RATE) <= 0.01 * 11.0 * SAMPLE_RATE
    assert np.isfinite(audio).all()
    assert 0.1 < np.abs(audio).max() <= 1.0
    assert load_audio(str(JFK), sr=8000).shape == (len(audio) // 2,)


def test_stereo_wav_is_averaged_to_mono(tmp_path):
    rate = 44100
    left = sine(440, 2.5, rate, amplitude=0.5)
    path = tmp_path / "stereo.wav"
    write_wav(path, np.stack([left, np.zeros_like(left)]), rate)

    audio = load_audio(path)
    assert abs(len(audio) - 2.5 * SAMPLE_RATE) <= 0.01 * 2.5 * SAMPLE_RATE
    assert peak_frequency(audio) == pytest.approx(440, abs=1)
    # The mean of a 0.5 sine and silence: amplitude 0.25.
    assert np.abs(audio[1000:-1000]).max() == pytest.approx(0.25, abs=0.01)


@pytest.mark.parametrize(
    ("suffix", "codec", "rate"), [("mp3", "libmp3lame", 22050), ("ogg", "libopus", 48000)]
)
def test_compressed_files(tmp_path, suffix, codec, rate):
    path = tmp_path / f"tone.{suffix}"
    encode(path, sine(1000, 1.5, rate), rate, codec)

    audio = load_audio(path)
    assert abs(len(audio) - 1.5 * SAMPLE_RATE) <= 0.01 * 1.5 * SAMPLE_RATE
    assert peak_frequency(audio) == pytest.approx(1000, abs=1)
    assert np.abs(audio[2000:-2000]).max() == pytest.approx(0.5, abs=0.05)


def frame_by_frame(path: Path) -> np.ndarray:
    """The reference for load_audio's batched resampling: every decoded frame through one
    resampler as it comes (what ffmpeg's filter graph is given), then the flush."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    chunks = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return np.concatenate(chunks).astype(np.float32) / 32768


@pytest.mark.parametrize(
    ("suffix", "codec", "rate", "channels"),
    [("mp3", "libmp3lame", 44100, 1), ("ogg", "libopus", 48000, 1), ("wav", None, 22050, 2), ("wav", None, 8000, 1)],
)
def test_batched_resampling_gives_the_frame_by_frame_samples(tmp_path, suffix, codec, rate, channels):
    """Frames are joined before resampling (RESAMPLE_BATCH samples at a time, across many
    codec frames here): the resampler streams, so the samples are exactly those of feeding
    it one frame at a time."""
    path = tmp_path / f"noise.{suffix}"
    n = 4 * RESAMPLE_BATCH + 999  # source samples: several batches and a short last one
    noise = np.random.default_rng(rate).standard_normal((channels, n)).clip(-3, 3).astype(np.float32) / 4
    if codec is None:
        write_wav(path, noise, rate)
    else:
        encode(path, noise[0], rate, codec)
    audio = load_audio(path)
    assert abs(len(audio) - n * SAMPLE_RATE / rate) < 0.01 * len(audio)
    np.testing.assert_array_equal(audio, frame_by_frame(path))


@pytest.mark.filterwarnings("ignore:.*undecodable")
def test_sample_rate_change_midway(tmp_path):
    # Two MP3s back to back at different rates: the decoder switches rate mid-stream.
    parts = []
    for rate in (44100, 22050):
        encode(tmp_path / "part.mp3", sine(500, 1.0, rate), rate, "libmp3lame")
        parts.append((tmp_path / "part.mp3").read_bytes())
    path = tmp_path / "joined.mp3"
    path.write_bytes(b"".join(parts))

    audio = load_audio(path)
    assert 1.95 * SAMPLE_RATE < len(audio) < 2.15 * SAMPLE_RATE
    assert peak_frequency(audio) == pytest.approx(500, abs=1)


def test_truncated_file_gives_what_it_holds(tmp_path):
    data = JFK.read_bytes()
    path = tmp_path / "truncated.flac"
    path.write_bytes(data[: len(data) // 2])
    with pytest.warns(UserWarning, match="truncated.flac: skipped"):
        audio = load_audio(path)
    assert 4 * SAMPLE_RATE < len(audio) < 7 * SAMPLE_RATE


def test_the_file_is_left_untouched(tmp_path):
    path = tmp_path / "tone.wav"
    write_wav(path, sine(300, 0.5, 8000)[None], 8000)
    before = hashlib.sha256(path.read_bytes()).digest(), path.stat().st_mtime_ns
    load_audio(path)
    assert (hashlib.sha256(path.read_bytes()).digest(), path.stat().st_mtime_ns) == before


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        # FFmpeg's probe decides: some text reads as a teletype screen (no audio stream).
        ("notes.txt", b"this is not audio\n" * 20, "not a readable audio file|no audio stream"),
        ("empty.wav", b"", "empty"),
        ("noise.mp3", bytes(range(256)) * 64, "not a readable audio file"),
    ],
)
def test_bad_files_raise_naming_the_file(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(AudioError, match=reason) as raised:
        load_audio(path)
    assert name in str(raised.value) and raised.value.source == str(path)


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match="missing.wav: No such file"):
        load_audio(tmp_path / "missing.wav")


def test_video_without_audio(tmp_path):
    path = tmp_path / "video.mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=1)
        stream.width = stream.height = 16
        stream.pix_fmt = "yuv420p"
        frame = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    with pytest.raises(AudioError, match="video.mkv: no audio stream"):
        load_audio(path)


def test_audio_stream_without_samples(tmp_path):
    path = tmp_path / "silent.wav"
    write_wav(path, np.zeros((1, 0), np.float32), 16000)
    with pytest.raises(AudioError, match="silent.wav: the audio stream is empty"):
        load_audio(path)


def test_check_audio_array():
    assert check_audio_array(np.zeros((1, 5))).dtype == np.float32
    assert check_audio_array(np.zeros(10)[::2]).flags.c_contiguous
    assert check_audio_array(np.zeros((1, 5))).shape == (5,)
    samples = np.linspace(-1, 1, 7, dtype=np.float32)
    assert check_audio_array(samples) is samples

    for bad, reason in [
        (np.zeros((2, 5), np.float32), "1-D"),
        (np.zeros(5, np.int16), "floating-point"),
        (np.array([0.0, np.nan]), "NaN"),
        (np.array([0.0, np.inf]), "infinite"),
        (np.zeros(0, np.float32), "empty"),
        (np.zeros((1, 0), np.float32), "empty"),
    ]:
        with pytest.raises(AudioError, match=reason):
            check_audio_array(bad)


def test_pad_or_trim():
    audio = np.arange(1, 11, dtype=np.float32)
    assert pad_or_trim(audio, 4).tolist() == [1, 2, 3, 4]
    assert pad_or_trim(audio, 12).tolist() == [*range(1, 11), 0, 0]
    assert pad_or_trim(audio, 10) is audio
    assert pad_or_trim(np.ones(100, np.float32)).shape == (N_SAMPLES,)

    batch = np.ones((3, 5), np.float32)
    assert pad_or_trim(batch, 2, axis=0).shape == (2, 5)
    assert pad_or_trim(batch, 7).shape == (3, 7)
    assert pad_or_trim(batch, 7)[:, 5:].sum() == 0
