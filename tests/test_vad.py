"""Silero VAD on MAX: weights from the silero-vad package, probabilities against onnxruntime
running the package's own ONNX model, and speech segments against faster-whisper's
``get_speech_timestamps`` (recorded by benchmarks/e2e/record_vad_segments.py) and worked out by
hand.

The segments are compared on the same probabilities (faster-whisper's, recorded): faster-whisper
1.2.1 bundles an earlier v6 export whose probabilities differ from silero-vad 6.2's by up to
0.75 on the dev clips, so the two pipelines end to end would compare two models, not two
segmenters."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from clips import SHARED_AUDIO
from maxwhisper_kernels.audio import load_audio
from maxwhisper_kernels.vad import weights as vad_weights
from maxwhisper_kernels.vad.onnx_reader import read_onnx_initializers
from maxwhisper_kernels.vad.timestamps import SpeechSegmenter, VadOptions, speech_timestamps
from maxwhisper_kernels.weights.errors import CorruptWeightsError, ModelNotInstalledError

# float32 graph vs onnxruntime: the LSTM carries rounding differences forward over time.
PROB_ATOL = 1e-5


@pytest.fixture(scope="module")
def vad():
    from maxwhisper_kernels.vad.network import SileroVad

    return SileroVad()


def onnxruntime_probs(audio: np.ndarray) -> np.ndarray:
    """The reference: Silero's ONNX model, one 576-sample window per call, state carried."""
    ort = pytest.importorskip("onnxruntime")
    path = vad_weights.weights_path()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    n = -(-len(audio) // 512)
    padded = np.zeros(64 + n * 512, np.float32)
    padded[64 : 64 + len(audio)] = audio
    state = np.zeros((2, 1, 128), np.float32)
    probs = np.empty(n, np.float32)
    for i in range(n):
        feed = {"input": padded[None, i * 512 : i * 512 + 576], "state": state, "sr": np.array(16000)}
        out, state = session.run(None, feed)
        probs[i] = out[0, 0]
    return probs


def signals() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    t = np.arange(16000 * 4) / 16000
    tones = sum(0.2 * np.sin(2 * np.pi * f * t) * (1 + np.sin(2 * np.pi * 0.5 * t)) for f in (220, 277, 330))
    return {
        "jfk": load_audio(SHARED_AUDIO / "jfk.flac"),
        "silence": np.zeros(16000 * 3 + 77, np.float32),  # a tail that is not a whole window
        "white_noise": (0.1 * rng.standard_normal(16000 * 3)).astype(np.float32),
        "tone_mix": tones.astype(np.float32),
    }


@pytest.mark.parametrize("name", ["jfk", "silence", "white_noise", "tone_mix"])
def test_probabilities_match_onnxruntime(vad, name):
    audio = signals()[name]
    ours, reference = vad.speech_probs(audio), onnxruntime_probs(audio)
    assert ours.shape == reference.shape == (-(-len(audio) // 512),)
    np.testing.assert_allclose(ours, reference, atol=PROB_ATOL, rtol=0)
    if name == "jfk":  # the clip is mostly speech: the comparison is not of two near-zero curves
        assert (ours > 0.5).mean() > 0.5


def test_missing_package_names_it(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelNotInstalledError, match="pip install --no-deps silero-vad"):
        vad_weights.weights_path()


def test_corrupt_onnx_file_is_a_typed_error(tmp_path):
    path = tmp_path / "bad.onnx"
    path.write_bytes(b"\x3a\xff\xff\x01garbage")  # field 7 claims more bytes than there are
    with pytest.raises(CorruptWeightsError, match="bad.onnx"):
        read_onnx_initializers(path)


def probs_from(pattern: list[tuple[float, int]]) -> np.ndarray:
    """Probabilities from (value, number of 512-sample windows) runs."""
    return np.concatenate([np.full(n, p, np.float32) for p, n in pattern])


def test_segments_by_hand():
    # 1 s silence, 1 s speech (31.25 windows -> 32), 0.5 s pause, 1 s speech, 2 s silence.
    probs = probs_from([(0.0, 31), (0.9, 32), (0.0, 16), (0.9, 32), (0.0, 63)])
    n = len(probs) * 512
    o = VadOptions(min_silence_duration_ms=200, speech_pad_ms=0)
    # Speech runs from window 31 to 63 and 79 to 111; each closes where the quiet began.
    assert speech_timestamps(probs, n, o) == [
        {"start": 31 * 512, "end": 63 * 512},
        {"start": 79 * 512, "end": 111 * 512},
    ]
    # A pause shorter than min_silence keeps it one segment.
    o = VadOptions(min_silence_duration_ms=1000, speech_pad_ms=0)
    assert speech_timestamps(probs, n, o) == [{"start": 31 * 512, "end": 111 * 512}]
    # Padding: 400 ms = 6400 samples outside, half the 8192-sample gap between the two.
    o = VadOptions(min_silence_duration_ms=200, speech_pad_ms=400)
    assert speech_timestamps(probs, n, o) == [
        {"start": 31 * 512 - 6400, "end": 63 * 512 + 4096},
        {"start": 79 * 512 - 4096, "end": 111 * 512 + 6400},
    ]


def test_short_speech_dropped_and_hysteresis():
    # 0.4 lies between neg_threshold (0.35) and threshold: it neither opens nor closes speech.
    probs = probs_from([(0.0, 10), (0.9, 3), (0.0, 40), (0.9, 20), (0.4, 20), (0.9, 5), (0.0, 40)])
    n = len(probs) * 512
    o = VadOptions(min_speech_duration_ms=250, min_silence_duration_ms=300, speech_pad_ms=0)
    # The 3-window blip (96 ms) is under 250 ms; the 0.4 run does not break the second segment.
    assert speech_timestamps(probs, n, o) == [{"start": 53 * 512, "end": 98 * 512}]


def test_max_speech_cut_at_latest_pause():
    # 12 s of speech with a 0.2 s and a 0.5 s dip: a 10 s limit cuts at the later dip.
    probs = probs_from([(0.9, 100), (0.1, 7), (0.9, 100), (0.1, 16), (0.9, 152), (0.0, 80)])
    n = len(probs) * 512
    o = VadOptions(max_speech_duration_s=10, min_silence_duration_ms=2000, speech_pad_ms=0)
    segments = speech_timestamps(probs, n, o)
    assert segments[0] == {"start": 0, "end": 207 * 512}
    assert segments[1]["start"] == 223 * 512
    assert all(s["end"] - s["start"] <= 10 * 16000 for s in segments)


def test_no_speech_no_segments():
    assert speech_timestamps(np.zeros(100, np.float32), 51200, VadOptions()) == []


FASTER_WHISPER = Path(__file__).parent / "data" / "faster_whisper_vad"


@pytest.fixture(scope="module")
def recorded():
    """faster-whisper 1.2.1's probabilities and segments, per signal and option set."""
    record = json.loads(FASTER_WHISPER.with_suffix(".json").read_text())
    with np.load(FASTER_WHISPER.with_suffix(".npz")) as probs:
        for name, signal in record["signals"].items():
            signal["probs"] = probs[name]
    return record


def as_pairs(segments: list[dict]) -> list[list[int]]:
    return [[s["start"], s["end"]] for s in segments]


def test_segments_match_faster_whisper(recorded):
    """Exact sample boundaries on every signal and option set: the rule works on integers and
    compares the same float32 probabilities, so there is nothing to round."""
    assert recorded["faster_whisper"] == "1.2.1"
    checked = cuts = 0
    for name, signal in recorded["signals"].items():
        for options, expected in zip(recorded["option_sets"], signal["segments"]):
            ours = speech_timestamps(signal["probs"], signal["n_samples"], VadOptions(**options))
            assert as_pairs(ours) == expected, (name, options)
            checked += len(expected)
            limit = options.get("max_speech_duration_s")
            cuts += sum(1 for s, e in expected if limit and e - s > limit * 16000 * 0.8)
    assert checked > 1000 and cuts > 20  # the data holds many segments, and max-speech cuts


@pytest.mark.parametrize("seed", [0, 1])
def test_segments_found_as_the_probabilities_stream_in(recorded, seed):
    """Fed in random pieces, the segmenter gives the same segments, each as soon as it is final,
    and never one that starts before what it said could still be needed."""
    rng = np.random.default_rng(seed)
    for name in ("random_runs_0", "random_runs_1", "long_speech_with_dips", "1221-135766-0001.flac"):
        signal = recorded["signals"][name]
        for options, expected in zip(recorded["option_sets"], signal["segments"]):
            segmenter = SpeechSegmenter(VadOptions(**options))
            probs, found, keep_from, at = signal["probs"], [], 0, 0
            while at < len(probs):
                piece = probs[at : at + rng.integers(1, 400)]
                at += len(piece)
                new = segmenter.feed(piece)
                assert all(s["start"] >= keep_from for s in new)
                found += new
                keep_from = segmenter.earliest_start()
                assert keep_from <= at * 512
            found += segmenter.finish(signal["n_samples"])
            assert as_pairs(found) == expected, (name, options)
            assert any(len(s) > 0 for s in signal["segments"])


def test_probabilities_streamed_in_pieces_equal_the_whole(vad):
    audio = signals()["jfk"]
    stream, pieces, at = vad.stream(), [], 0
    for size in (100, 511, 513, 64, 30000, 1, 40000, 10**6):  # whole windows split anywhere
        pieces.append(stream.feed(audio[at : at + size]))
        at += size
    pieces.append(stream.finish())
    # Only how many windows share one graph execution differs (the matmul's blocking).
    np.testing.assert_allclose(np.concatenate(pieces), vad.speech_probs(audio), atol=1e-6, rtol=0)
