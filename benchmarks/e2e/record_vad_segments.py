"""Records faster-whisper's VAD as test data for tests/test_vad.py: its speech probabilities
(its own Silero v6 ONNX model, run as faster-whisper runs it) on dev clips and synthetic
signals, and the speech segments its ``get_speech_timestamps`` finds in them under several
``VadOptions``, plus segments of synthetic probability sequences fed to it in place of its
model's. The project's tests have no faster-whisper (it brings CTranslate2, PyAV, tokenizers,
onnxruntime and huggingface_hub); this runs in the benchmark venv:

    bash benchmarks/e2e/setup.sh
    benchmarks/e2e/.venv/bin/python benchmarks/e2e/record_vad_segments.py

Writes tests/data/faster_whisper_vad.npz (probabilities) and faster_whisper_vad.json.
"""

from __future__ import annotations

import csv
import json
from unittest import mock

import numpy as np

import common
from faster_whisper import __version__ as fw_version
from faster_whisper import vad as fw_vad
from maxwhisper_kernels.audio import load_audio

OUT = common.REPO / "tests" / "data" / "faster_whisper_vad"
DEV = common.SHARED_AUDIO / "dev"
N_CLIPS = 20  # the longest dev clips: they hold the most pauses

# Each a dict of VadOptions fields; the second is faster-whisper's batched pipeline's.
OPTION_SETS = [
    {},
    {"min_silence_duration_ms": 160, "max_speech_duration_s": 30},
    {"threshold": 0.6, "neg_threshold": 0.3, "min_speech_duration_ms": 250, "min_silence_duration_ms": 500, "speech_pad_ms": 100},
    {"min_silence_duration_ms": 300, "max_speech_duration_s": 5, "speech_pad_ms": 200},
    {"min_silence_duration_ms": 100, "max_speech_duration_s": 3, "speech_pad_ms": 0},
    {"threshold": 0.3, "min_speech_duration_ms": 100, "min_silence_duration_ms": 1000, "max_speech_duration_s": 8, "speech_pad_ms": 30},
]


def synthetic_signals(rng: np.random.Generator) -> dict[str, np.ndarray]:
    t = np.arange(16000 * 6) / 16000
    tones = sum(0.2 * np.sin(2 * np.pi * f * t) * (1 + np.sin(2 * np.pi * 0.5 * t)) for f in (220, 277, 330))
    return {
        "silence": np.zeros(16000 * 5 + 77, np.float32),
        "white_noise": (0.1 * rng.standard_normal(16000 * 5)).astype(np.float32),
        "tone_mix": tones.astype(np.float32),
    }


def probability_patterns(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Runs of probabilities, including the thresholds' own values and values between the two
    thresholds, long enough for several max_speech_duration_s cuts."""
    levels = np.array([0.01, 0.2, 0.3, 0.34, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7, 0.95], np.float32)
    patterns = {}
    for k, mean_run in enumerate((3, 12, 40)):
        runs = []
        while sum(len(r) for r in runs) < 6000:
            runs.append(np.full(rng.geometric(1 / mean_run), rng.choice(levels), np.float32))
        patterns[f"random_runs_{k}"] = np.concatenate(runs)[:6000]
    # Long speech with dips shorter than 98 ms (no place to cut) and with longer ones.
    speech = np.full(4000, 0.9, np.float32)
    speech[rng.choice(4000, 60, replace=False)] = 0.1
    for start in rng.choice(np.arange(200, 3800), 12, replace=False):
        speech[start : start + rng.integers(4, 20)] = 0.05
    patterns["long_speech_with_dips"] = speech
    return patterns


def dev_clips() -> dict[str, np.ndarray]:
    rows = list(csv.DictReader(open(DEV / "transcripts.tsv"), delimiter="\t"))
    rows.sort(key=lambda r: -float(r["seconds"]))
    return {r["file"]: load_audio(DEV / r["file"]) for r in rows[:N_CLIPS]}


def main() -> None:
    rng = np.random.default_rng(20261202)
    model = fw_vad.get_vad_model()
    probs, lengths, sources = {}, {}, {}
    for name, audio in {**dev_clips(), **synthetic_signals(rng)}.items():
        padded = np.pad(audio, (0, 512 - len(audio) % 512))  # as get_speech_timestamps pads
        probs[name] = np.asarray(model(padded), np.float32).reshape(-1)
        lengths[name] = len(audio)
        sources[name] = "audio"
    for name, pattern in probability_patterns(rng).items():
        probs[name] = pattern
        lengths[name] = len(pattern) * 512 - 300  # a tail that is not a whole window
        sources[name] = "pattern"

    segments = {}
    for name in probs:
        fixed = mock.Mock(return_value=probs[name])  # get_speech_timestamps runs this "model"
        with mock.patch.object(fw_vad, "get_vad_model", return_value=fixed):
            segments[name] = [
                fw_vad.get_speech_timestamps(np.zeros(lengths[name], np.float32), fw_vad.VadOptions(**options))
                for options in OPTION_SETS
            ]
    np.savez_compressed(OUT.with_suffix(".npz"), **probs)
    record = {
        "faster_whisper": fw_version,
        "option_sets": OPTION_SETS,
        # per signal, per option set: [[start, end], ...] in samples
        "signals": {
            name: {
                "n_samples": lengths[name],
                "source": sources[name],
                "segments": [[[s["start"], s["end"]] for s in found] for found in segments[name]],
            }
            for name in probs
        },
    }
    OUT.with_suffix(".json").write_text(json.dumps(record) + "\n")
    n = sum(len(s) for per in segments.values() for s in per)
    print(f"{len(probs)} signals x {len(OPTION_SETS)} option sets, {n} segments -> {OUT}.json/.npz")


if __name__ == "__main__":
    main()
