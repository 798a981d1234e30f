"""compute_type="int8" against the default mode on the whole model: encoder
time per 30 s window (both encoders in one process, interleaved) and word
error rate on the dev clips (/work/shared/audio/dev or $MAXWHISPER_DEV).
Writes benchmarks/results/int8_model-<isa>.json with every hypothesis, so
the WER can be recomputed with Whisper's English normaliser (the e2e venv:
benchmarks/e2e/.venv/bin/python benchmarks/bench_int8_model.py --rescore).
Run: .venv/bin/python benchmarks/bench_int8_model.py [--clips N] [--repeats N]"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
DEV = Path(os.environ.get("MAXWHISPER_DEV", "/work/shared/audio/dev"))
MODES = ("default", "int8")


def encoder_times(models: dict, repeats: int) -> dict[str, list[float]]:
    import numpy as np

    mel = np.random.default_rng(0).standard_normal((1, 80, 3000)).astype(np.float32)
    times: dict[str, list[float]] = {mode: [] for mode in models}
    for model in models.values():
        model.encode(mel)  # first call: allocation, thread start
    for _ in range(repeats):
        for mode, model in models.items():
            time.sleep(0.02)
            start = time.perf_counter()
            model.encode(mel)
            times[mode].append(time.perf_counter() - start)
    return times


def measure(args) -> dict:
    from harness import isa_tag, machine_info
    from maxwhisper_kernels.model import load_model
    from maxwhisper_kernels.text import word_error_rate

    rows = [line.split("\t") for line in (DEV / "transcripts.tsv").read_text().splitlines()[1:]]
    rows = rows[: args.clips] if args.clips else rows
    models = {mode: load_model("tiny.en", compute_type=mode) for mode in MODES}
    times = encoder_times(models, args.repeats)
    hypotheses: dict[str, list[str]] = {mode: [] for mode in MODES}
    for row in rows:
        for mode, model in models.items():
            hypotheses[mode].append(model.transcribe(str(DEV / row[0]), temperature=0.0)["text"])
    references = [row[4] for row in rows]
    return {
        "machine": machine_info(),
        "isa": isa_tag(),
        "model": "tiny.en",
        "clips": [row[0] for row in rows],
        "audio_seconds": sum(float(row[2]) for row in rows),
        "references": references,
        "hypotheses": hypotheses,
        "encoder_s": {mode: {"median": statistics.median(t), "min": min(t), "samples": t} for mode, t in times.items()},
        "wer_project_normaliser": {mode: word_error_rate(references, hypotheses[mode]) for mode in MODES},
    }


def rescore(path: Path) -> None:
    """Adds corpus WER under Whisper's English normaliser (needs openai-whisper and jiwer)."""
    import jiwer
    from whisper.normalizers import EnglishTextNormalizer

    normalise = EnglishTextNormalizer()
    payload = json.loads(path.read_text())
    refs = [normalise(r) for r in payload["references"]]
    payload["wer_whisper_normaliser"] = {
        mode: jiwer.wer(refs, [normalise(h) for h in hyps]) for mode, hyps in payload["hypotheses"].items()
    }
    path.write_text(json.dumps(payload, indent=1) + "\n")
    print(payload["wer_whisper_normaliser"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, help="first N dev clips only (default: all)")
    parser.add_argument("--repeats", type=int, default=15, help="encoder timing samples per mode")
    parser.add_argument("--rescore", action="store_true", help="add Whisper-normaliser WER to the results file")
    args = parser.parse_args()
    if args.rescore:
        for path in sorted(RESULTS.glob("int8_model-*.json")):
            rescore(path)
        return 0
    payload = measure(args)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"int8_model-{payload['isa']}.json").write_text(json.dumps(payload, indent=1) + "\n")
    enc = payload["encoder_s"]
    print(f"[{payload['isa']}] encoder per 30 s window, median: default {enc['default']['median'] * 1e3:.0f} ms, "
          f"int8 {enc['int8']['median'] * 1e3:.0f} ms; WER (project normaliser) {payload['wer_project_normaliser']} "
          f"over {len(payload['clips'])} clips", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
