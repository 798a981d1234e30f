"""Sequential vs VAD-filtered vs batched transcription of 8 dev clips joined by 4 s of faint
noise (tiny.en): WER against the LibriSpeech references and wall time, in one run.
Run: .venv/bin/python benchmarks/bench_pipeline.py"""

import csv, time, numpy as np
from pathlib import Path
from maxwhisper_kernels.model import load_model
from maxwhisper_kernels.audio import load_audio
from maxwhisper_kernels.text import word_error_rate
dev = Path("../shared/audio/dev")
rows = list(csv.DictReader(open(dev / "transcripts.tsv"), delimiter="\t"))[:8]
rng = np.random.default_rng(1)
parts, refs = [], []
for r in rows:
    parts += [load_audio(dev / r["file"]), (0.003 * rng.standard_normal(16000 * 4)).astype(np.float32)]
    refs.append(r["text"])
audio = np.concatenate(parts); ref = " ".join(refs)
m = load_model("tiny.en")
print(f"{len(audio)/16000:.1f} s, {len(rows)} clips with 4 s noise gaps")
for name, kw in [("sequential", {}), ("sequential+vad", {"vad_filter": True}), ("batched 4", {"batch_size": 4}), ("batched 8", {"batch_size": 8})]:
    t = time.perf_counter(); r = m.transcribe(audio, **kw); el = time.perf_counter() - t
    print(f"{name}: WER {word_error_rate(ref, r['text']):.3f}, {el:.1f} s, {len(r['segments'])} segments")
