"""Records openai-whisper's transcripts (same tiny.en weights, converted by the
project's weights code) of the test clips into tests/data/openai_whisper_reference.json,
the independent reference tests/test_openai_parity.py holds maxwhisper to.

Run in the benchmark venv (it has torch and openai-whisper):
    benchmarks/e2e/.venv/bin/python benchmarks/e2e/record_openai_reference.py
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import whisper

from maxwhisper_kernels.audio import load_audio
from maxwhisper_kernels.weights import load_checkpoint

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "benchmarks"))
from clips import SHARED_AUDIO, synthesise_long_form  # noqa: E402
from openai_model import openai_whisper_model  # noqa: E402


def main() -> None:
    torch.set_num_threads(2)
    checkpoint = load_checkpoint("tiny.en")
    model = openai_whisper_model(checkpoint)
    with tempfile.TemporaryDirectory() as tmp:
        long_form = synthesise_long_form(Path(tmp))
        # Both systems get the same samples: maxwhisper's decoding of the file.
        clips = {"jfk": load_audio(SHARED_AUDIO / "jfk.flac"), "long_form": long_form}
        record = {
            "openai_whisper": whisper.__version__ if hasattr(whisper, "__version__") else "",
            "espeak_ng": subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True).stdout.strip(),
            "clips": {},
        }
        for name, audio in clips.items():
            audio = np.asarray(audio, np.float32)
            entry = {"sha256": hashlib.sha256(audio.tobytes()).hexdigest(), "results": {}}
            for label, options in (("greedy", dict(beam_size=None, best_of=None)), ("beam5", dict(beam_size=5, best_of=5))):
                result = model.transcribe(audio, verbose=None, fp16=False, **options)
                entry["results"][label] = [
                    {"start": s["start"], "end": s["end"], "text": s["text"]} for s in result["segments"]
                ]
            record["clips"][name] = entry
    out = REPO / "tests" / "data" / "openai_whisper_reference.json"
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(out)


if __name__ == "__main__":
    main()
