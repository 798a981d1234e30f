"""What transcribing several files together buys on CPU: transcribe_batch over 4 audios at once
(the current windows of the 4 encoded and decoded as one batch) against one audio at a time,
greedy and with beam search, timed round-robin (batch 1, batch 4, batch 1, ...) so that load
from other processes hits both alike. Writes benchmarks/results/batching.md.

Run: .venv/bin/python benchmarks/bench_batching.py [--model tiny.en] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

import maxwhisper_kernels.transcribe.windows as windows_module
from maxwhisper_kernels.audio import SAMPLE_RATE, load_audio
from maxwhisper_kernels.model import load_model
from maxwhisper_kernels.transcribe import transcribe_batch

import provenance  # benchmarks/, the script's own folder

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_AUDIO = REPO_ROOT.parent / "shared" / "audio"
TEXTS = REPO_ROOT / "benchmarks" / "e2e" / "texts"
RESULT = Path(__file__).resolve().parent / "results" / "batching.md"

DEV_CLIPS = ["1089-134686-0002", "1221-135766-0001", "1221-135766-0002", "2830-3980-0043"]
LONG_FORM_WORDS = 160  # about a minute of espeak-ng speech at 160 words per minute: 3 windows

# Fallback sampling is seeded, so that batch 4 can be held to batch 1's texts: they are the same
# unless windows fall back together (then their rows share the generator).
GREEDY = dict(beam_size=None, best_of=None, seed=0)
BEAM_5 = dict(beam_size=5, best_of=5, seed=0)
# (audio set, mode, transcribe options)
CASES = [
    ("jfk.flac x4", "greedy", GREEDY),
    ("jfk.flac x4", "beam 5", BEAM_5),
    ("4 dev clips", "greedy", GREEDY),
    ("4 dev clips", "beam 5", BEAM_5),
    ("4 long-form clips", "greedy", GREEDY),
    ("4 long-form clips", "beam 5", BEAM_5),
    # no prompts: every window of every clip can share a batch
    ("4 long-form clips", "greedy, no prompt", {**GREEDY, "condition_on_previous_text": False}),
]
BATCH_SIZES = (1, 4)
NOTES = [
    "Every row of a batch is decoded until the batch's longest window ends (beam search until "
    "every window has its candidates): with windows of different lengths (the dev clips, 2 to "
    "17 s) the extra steps eat most of the gain, and with 5 beams a window more than all of it.",
    "Windows share a batch only when their prompts (the previous text) are as long, so with "
    "condition_on_previous_text the long-form clips batch little but their first windows; "
    "without prompts, every round is one batch.",
]


def long_form_clips(folder: Path) -> list[np.ndarray]:
    """Four different minutes of espeak-ng speech, from the end-to-end benchmark's texts."""
    texts = [TEXTS.joinpath(f"{name}.txt").read_text() for name in ("declaration", "lincoln")]
    words = " ".join(texts).split()
    clips = []
    for i in range(4):
        path = folder / f"long_form_{i}.wav"
        text = " ".join(words[i * LONG_FORM_WORDS : (i + 1) * LONG_FORM_WORDS])
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "160", "-w", str(path), text], check=True)
        clips.append(load_audio(path))
    return clips


def audio_sets(folder: Path) -> dict[str, list[np.ndarray]]:
    jfk = load_audio(SHARED_AUDIO / "jfk.flac")
    return {
        "jfk.flac x4": [jfk] * 4,
        "4 dev clips": [load_audio(SHARED_AUDIO / "dev" / f"{name}.flac") for name in DEV_CLIPS],
        "4 long-form clips": long_form_clips(folder),
    }


def count_batches(sizes: list[int]) -> Callable[[], None]:
    """Records the number of windows of each first-temperature decoder batch; returns the undo."""
    decode_batch = windows_module.decode_batch

    def counting(model, features, options):
        if options[0].temperature == 0:
            sizes.append(len(options))
        return decode_batch(model, features, options)

    windows_module.decode_batch = counting
    return lambda: setattr(windows_module, "decode_batch", decode_batch)


def transcribe_all(model, audios: list[np.ndarray], batch_size: int, options: dict) -> list[str]:
    texts = []
    for start in range(0, len(audios), batch_size):
        results = transcribe_batch(model, audios[start : start + batch_size], **options)
        texts.extend(result["text"] for result in results)
    return texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    model = load_model(args.model)
    with tempfile.TemporaryDirectory() as folder:
        sets = audio_sets(Path(folder))
    rows = []
    load = []
    for set_name, mode, options in CASES:
        audios = sets[set_name]
        seconds = sum(len(audio) for audio in audios) / SAMPLE_RATE
        batch_sizes: list[int] = []
        undo = count_batches(batch_sizes)
        transcribe_all(model, audios, max(BATCH_SIZES), options)  # warm-up, and the batch sizes
        undo()
        times: dict[int, list[float]] = {size: [] for size in BATCH_SIZES}
        texts: dict[int, list[str]] = {}
        for _ in range(args.repeats):
            for size in BATCH_SIZES:
                start = time.perf_counter()
                texts[size] = transcribe_all(model, audios, size, options)
                times[size].append(time.perf_counter() - start)
            load.append(os.getloadavg()[0])
        medians = {size: statistics.median(t) for size, t in times.items()}
        same = all(texts[size] == texts[BATCH_SIZES[0]] for size in BATCH_SIZES)
        windows = f"{len(batch_sizes)} batches of {statistics.mean(batch_sizes):.1f}"
        rows.append((set_name, seconds, mode, windows, medians, same))
        print(set_name, mode, windows, medians, "same text" if same else "TEXT DIFFERS", flush=True)

    commit = provenance.commit()
    lines = [
        "# Batching several files (transcribe_batch)",
        "",
        f"`.venv/bin/python benchmarks/bench_batching.py --model {args.model} "
        f"--repeats {args.repeats}` at {commit}, {time.strftime('%Y-%m-%d')}; "
        f"{os.cpu_count()} cores ({platform.machine()}), 1-minute load average "
        f"{min(load):.1f} to {max(load):.1f} during the runs (other processes share the machine).",
        "",
        f"Total seconds to transcribe 4 files (median of {args.repeats}, round-robin), one at a "
        "time and 4 at once, and how much faster 4 at once is; default temperature fallback. "
        "Windows per batch: the decoder batches of 4 at once, at the first temperature (windows "
        "share a batch only when their prompts are as long). The long-form clips are four "
        f"different {LONG_FORM_WORDS}-word pieces of benchmarks/e2e/texts spoken by espeak-ng.",
        "",
        "| audio | mode | windows per batch | batch 1 (s) | batch 4 (s) | batch 1 / batch 4 "
        "| same text |",
        "|---|---|---|---|---|---|---|",
    ]
    for set_name, seconds, mode, windows, medians, same in rows:
        one, four = medians[1], medians[4]
        lines.append(
            f"| {set_name} ({seconds:.0f} s) | {mode} | {windows} | {one:.2f} | {four:.2f} | "
            f"{one / four:.2f}x | {'yes' if same else 'no'} |"
        )
    lines += ["", *(f"- {note}" for note in NOTES)]
    RESULT.write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULT}")

if __name__ == "__main__":
    main()
