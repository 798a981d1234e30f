"""Long-form transcription with VAD and batching, tiny.en, greedy, every system in turn in one
run, each in a process of its own (as a user runs one of them: another library's threads
spinning in the same process, or ours in theirs, would time the neighbours, not the system):

- maxwhisper sequential (openai-whisper's algorithm, no VAD) and ``vad_filter=True``;
- maxwhisper's batched pipeline, ``transcribe(path, batch_size=N)``, default (exact weights) and
  ``compute_type="int8"``;
- faster-whisper's ``BatchedInferencePipeline`` at the same N, int8 and float32 (CTranslate2),
  on the CTranslate2 directory of the same weights package maxwhisper reads;
- faster-whisper sequential (``WhisperModel.transcribe``, no VAD), int8 and float32.

Clips: the e2e harness's long-form espeak-ng clips (declaration, lincoln), a recording of at
least 10 minutes made of all dev clips joined by pauses of near-silence and faint noise, and
the hallucination check: jfk, 60 s of silence and noise, a dev clip. WER with Whisper's
English normaliser (benchmarks/e2e/common.py); for the hallucination clip also the words any
segment places inside the 60 s gap. Then maxwhisper's batched pipeline at several batch sizes
on the long recording. Times are from path to text (audio decoding included), medians of the
repeats; the load average is recorded before and after.

Run from the e2e venv (faster-whisper, openai-whisper's normaliser, maxwhisper editable):
    bash benchmarks/e2e/setup.sh
    benchmarks/e2e/.venv/bin/python benchmarks/bench_pipeline.py [--repeats 2] [--batch-size 8]
Writes benchmarks/results/pipeline.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import wave
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent / "e2e"))
import common  # noqa: E402

from maxwhisper_kernels.audio import SAMPLE_RATE, load_audio  # noqa: E402

DEV = common.SHARED_AUDIO / "dev"
GAP_SECONDS = 60


def write_wav(path: Path, audio: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(np.round(np.clip(audio, -1, 32767 / 32768) * 32768).astype("<i2").tobytes())


def quiet(rng: np.random.Generator, seconds: float, level: float) -> np.ndarray:
    return (level * rng.standard_normal(int(seconds * SAMPLE_RATE))).astype(np.float32)


def long_recording() -> common.Clip:
    """All dev clips in order, between them 0.5-2 s of near-silence, every twentieth gap 15 s of
    louder noise: pauses of every length the VAD has to close or bridge (about 11 minutes)."""
    rng = np.random.default_rng(14)
    rows = list(csv.DictReader(open(DEV / "transcripts.tsv"), delimiter="\t"))
    parts = []
    for i, row in enumerate(rows):
        parts.append(load_audio(DEV / row["file"]))
        parts.append(quiet(rng, 15, 0.01) if i % 20 == 19 else quiet(rng, rng.uniform(0.5, 2), 0.002))
    audio = np.concatenate(parts)
    path = common.CACHE / "audio" / "dev_joined_with_pauses.wav"
    write_wav(path, audio)
    reference = " ".join(row["text"] for row in rows)
    seconds = len(audio) / SAMPLE_RATE
    return common.Clip(f"dev joined ({seconds / 60:.0f} min)", str(path), seconds, reference,
                       "82 dev clips, 0.5-2 s near-silence between, 15 s noise every twentieth gap")


def hallucination_clip() -> tuple[common.Clip, float, float]:
    rng = np.random.default_rng(60)
    first = load_audio(common.SHARED_AUDIO / "jfk.flac")
    second_row = "1221-135766-0001.flac"
    second = load_audio(DEV / second_row)
    gap = np.concatenate([np.zeros(30 * SAMPLE_RATE, np.float32), quiet(rng, GAP_SECONDS - 30, 0.01)])
    audio = np.concatenate([first, gap, second])
    path = common.CACHE / "audio" / "jfk_gap60_dev.wav"
    write_wav(path, audio)
    rows = {r["file"]: r["text"] for r in csv.DictReader(open(DEV / "transcripts.tsv"), delimiter="\t")}
    clip = common.Clip("jfk + 60 s silence/noise + dev", str(path), len(audio) / SAMPLE_RATE,
                       common.JFK_TEXT + " " + rows[second_row], "hallucination check")
    gap_start = len(first) / SAMPLE_RATE
    return clip, gap_start, gap_start + GAP_SECONDS


class MaxWhisper:
    def __init__(self, compute_type: str = "default", **options):
        from maxwhisper_kernels.model import load_model

        self.model = load_model("tiny.en", compute_type=compute_type)
        self.options = options

    def __call__(self, path: str) -> list[tuple[float, float, str]]:
        result = self.model.transcribe(path, beam_size=None, best_of=None, verbose=None, progress=False, **self.options)
        return [(s["start"], s["end"], s["text"]) for s in result["segments"]]


class FasterWhisper:
    def __init__(self, compute_type: str, batch_size: int | None, model_dir: str):
        import faster_whisper

        self.model = faster_whisper.WhisperModel(model_dir, device="cpu", compute_type=compute_type,
                                                 cpu_threads=os.cpu_count(), num_workers=1)
        self.batch_size = batch_size
        if batch_size:
            self.pipeline = faster_whisper.BatchedInferencePipeline(self.model)

    def __call__(self, path: str) -> list[tuple[float, float, str]]:
        if self.batch_size:  # its defaults otherwise: VAD on, one segment per chunk
            segments, _ = self.pipeline.transcribe(path, batch_size=self.batch_size, beam_size=1)
        else:
            segments, _ = self.model.transcribe(path, beam_size=1, best_of=1, vad_filter=False)
        return [(s.start, s.end, s.text) for s in segments]


def words_in_gap(segments, gap_start: float, gap_end: float) -> int:
    """Words of the segments that lie inside the gap (0.5 s of padding allowed at its edges).
    A segment across the gap (faster-whisper's batched pipeline gives one per <= 30 s window,
    which may hold both utterances) is judged by the WER, where invented words are insertions."""
    return sum(len(common.normalize(text).split()) for start, end, text in segments
               if start >= gap_start + 0.5 and end <= gap_end - 0.5)


def systems(n: int, model_dir: str) -> dict:
    return {
        "maxwhisper sequential": lambda: MaxWhisper(),
        "maxwhisper vad_filter": lambda: MaxWhisper(vad_filter=True),
        f"maxwhisper batched {n}": lambda: MaxWhisper(batch_size=n),
        f"maxwhisper batched {n} int8": lambda: MaxWhisper("int8", batch_size=n),
        f"fw batched {n} int8": lambda: FasterWhisper("int8", n, model_dir),
        f"fw batched {n} fp32": lambda: FasterWhisper("float32", n, model_dir),
        "fw sequential int8": lambda: FasterWhisper("int8", None, model_dir),
        "fw sequential fp32": lambda: FasterWhisper("float32", None, model_dir),
    }


def serve(name: str, n: int, model_dir: str) -> None:
    """Worker process: builds one system, warms it up on jfk, then answers jobs from stdin
    ({"path", "options"}) with {"seconds", "segments"}, timing path to text."""
    out, sys.stdout = sys.stdout, sys.stderr  # what the libraries print stays off the protocol
    run = systems(n, model_dir)[name]()
    run(str(common.SHARED_AUDIO / "jfk.flac"))  # graphs, VAD, first-call costs
    print(json.dumps({"ready": True}), file=out, flush=True)
    for line in sys.stdin:
        job = json.loads(line)
        if job.get("options"):
            run.options = job["options"]
        started = time.perf_counter()
        segments = run(job["path"])
        print(json.dumps({"seconds": time.perf_counter() - started, "segments": segments}), file=out, flush=True)


class Worker:
    """One system in its own process (serve), driven over a pipe, and stopped (SIGSTOP) while
    the others run: an idle MAX process still takes ~5 % of a core (a timed-wait thread inside
    libmax), which three idle maxwhisper workers would take from every other system's run."""

    def __init__(self, name: str, n: int, model_dir: str):
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", name, "--batch-size", str(n), "--model-dir", model_dir],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        self.name = name

    def _reply(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.name}: the worker process ended (its stderr is above)")
        return json.loads(line)

    def wait_ready(self) -> None:
        self._reply()
        self.proc.send_signal(signal.SIGSTOP)

    def __call__(self, path: str, options: dict | None = None) -> tuple[float, list]:
        self.proc.send_signal(signal.SIGCONT)
        self.proc.stdin.write(json.dumps({"path": path, "options": options}) + "\n")
        self.proc.stdin.flush()
        reply = self._reply()
        self.proc.send_signal(signal.SIGSTOP)
        return reply["seconds"], [tuple(s) for s in reply["segments"]]

    def close(self) -> None:
        self.proc.send_signal(signal.SIGCONT)
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--sweep", type=int, nargs="*", default=[1, 2, 4, 8, 16], help="batch sizes tried on the long recording")
    parser.add_argument("--quick", action="store_true", help="the hallucination clip only, once, no sweep (a smoke test)")
    parser.add_argument("--serve", help=argparse.SUPPRESS)  # a worker process (serve)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.batch_size, args.model_dir)
        return
    if args.quick:
        args.repeats, args.sweep = 1, []
    n = args.batch_size

    from maxwhisper_kernels.weights import load_checkpoint

    model_dir = str(load_checkpoint("tiny.en").source.parent)
    long_clip = long_recording()
    gap_clip, gap_start, gap_end = hallucination_clip()
    clips = [common.synthesise(name) for name in common.LONG_CLIPS] + [long_clip, gap_clip]
    if args.quick:
        clips = [gap_clip]
    runners = {name: Worker(name, n, model_dir) for name in systems(n, model_dir)}
    for worker in runners.values():
        worker.wait_ready()
    print(f"{common.cpu_model()}, {os.cpu_count()} cores; load {os.getloadavg()}", flush=True)

    load_start = os.getloadavg()
    times: dict[str, dict[str, list[float]]] = {c.name: {s: [] for s in runners} for c in clips}
    texts: dict[str, dict[str, list]] = {c.name: {} for c in clips}
    for repeat in range(args.repeats):
        for clip in clips:
            for name, run in runners.items():  # each system in turn, same round
                seconds, segments = run(clip.path)
                times[clip.name][name].append(seconds)
                texts[clip.name][name] = segments
                print(f"  [{repeat}] {clip.name} {name}: {seconds:.2f} s", flush=True)
        save(args, clips, runners, times, texts, gap_clip, gap_start, gap_end, {}, load_start)  # so far
    sweep = {}
    batched = runners[f"maxwhisper batched {n}"]
    for size in args.sweep:  # the same model, warm, at each batch size
        seconds, segments = batched(long_clip.path, {"batch_size": size})
        sweep[size] = {"seconds": seconds,
                       "wer": common.wer(long_clip.reference, "".join(t for _, _, t in segments))}
        print(f"  sweep {size}: {sweep[size]['seconds']:.2f} s", flush=True)
    for worker in runners.values():
        worker.close()
    save(args, clips, runners, times, texts, gap_clip, gap_start, gap_end, sweep, load_start)


def save(args, clips, runners, times, texts, gap_clip, gap_start, gap_end, sweep, load_start) -> None:
    """Writes the record of the runs done so far and prints its tables."""
    rows = []
    for clip in clips:
        for name in runners:
            if not times[clip.name][name]:
                continue
            segments = texts[clip.name][name]
            text = "".join(t for _, _, t in segments)
            row = {"clip": clip.name, "seconds": clip.seconds, "system": name,
                   "median_s": statistics.median(times[clip.name][name]), "runs_s": times[clip.name][name],
                   "wer": common.wer(clip.reference, text)}
            if clip is gap_clip:
                row["words_in_gap"] = words_in_gap(segments, gap_start, gap_end)
                row["text"] = text
            rows.append(row)
    record = {"machine": common.machine(), "batch_size": args.batch_size, "repeats": args.repeats,
              "load_start": load_start, "load_end": os.getloadavg(), "rows": rows, "sweep": sweep,
              "clips": [c.__dict__ for c in clips]}
    common.write_json(common.CACHE / "pipeline-quick.json" if args.quick else common.RESULTS / "pipeline.json", record)
    print_table(record, args.batch_size)


def print_table(record: dict, n: int) -> None:
    reference = {r["clip"]: r["median_s"] for r in record["rows"] if r["system"] == f"fw batched {n} int8"}
    print(f"\n| clip | system | median s | x realtime | fw batched {n} int8 / this | WER % | words in gap |")
    print("|---|---|---|---|---|---|---|")
    for r in record["rows"]:
        if r["clip"] not in reference:
            continue
        gap = r.get("words_in_gap", "")
        print(f"| {r['clip']} | {r['system']} | {r['median_s']:.2f} | {r['seconds'] / r['median_s']:.1f} | "
              f"{reference[r['clip']] / r['median_s']:.2f} | {100 * r['wer']:.1f} | {gap} |")
    print("\n| batch size | seconds | WER % |\n|---|---|---|")
    for size, s in record["sweep"].items():
        print(f"| {size} | {s['seconds']:.2f} | {100 * s['wer']:.1f} |")
    print(f"\nload average {record['load_start']} -> {record['load_end']}")


if __name__ == "__main__":
    main()
