"""One system under test in a process of its own (so that its memory is its own).

    worker.py SYSTEM COMPUTE_TYPE THREADS MODEL_DIR

SYSTEM is maxwhisper, openai-whisper or faster-whisper. The worker imports and loads its
model, prints one JSON line {"event": "ready", ...}, then reads jobs as JSON lines on stdin
({"clip": path, "beam_size": 1 or 5}) and answers each with one JSON line holding the
processing time (path in, text out: audio decoding, features, encoder and decoder), the text
and the process's peak resident memory during the job. An empty line or EOF ends it.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
import traceback
import warnings

warnings.filterwarnings("ignore")
# benchmarks/: openai_model (the openai-whisper contender, built from our checkpoint)
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def peak_rss_reset() -> bool:
    """Resets the kernel's peak-RSS mark of this process (Linux 4.0+)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _status_mib(field: str) -> float | None:
    """A memory figure of /proc/self/status (Linux), in MiB."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def peak_rss_mib() -> float:
    peak = _status_mib("VmHWM")
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 if peak is None else peak


def file_rss_mib() -> float | None:
    """The resident pages this process maps from files (libraries' code, read-only data)."""
    return _status_mib("RssFile")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def whisper_options(beam_size: int) -> dict:
    """openai-whisper's transcribe() options for greedy (1) or beam-5 decoding;
    maxwhisper takes the same ones."""
    return dict(beam_size=None, best_of=None) if beam_size == 1 else dict(beam_size=5, best_of=5)


class MaxWhisper:
    """float32: maxwhisper's default (decoder matrices in float16 when that is exact, as for
    these weights, so the same numbers as fp32); int8: decoder matrices quantized per row."""

    def __init__(self, compute_type: str, threads: int, model_dir: str):
        assert compute_type in ("float32", "int8")
        t = time.perf_counter()
        import maxwhisper_kernels as mw
        import maxwhisper_kernels.model  # noqa: F401  (the package imports MAX lazily)

        self.import_s = time.perf_counter() - t
        t = time.perf_counter()
        compute = "default" if compute_type == "float32" else compute_type
        self.model = mw.load_model("tiny.en", compute_type=compute)  # its default: all cores
        self.load_s = time.perf_counter() - t
        self.where = os.path.dirname(mw.__file__)

    def transcribe(self, path: str, beam_size: int) -> str:
        options = whisper_options(beam_size)
        result = self.model.transcribe(path, verbose=None, progress=False, **options)
        return result["text"]


class OpenAIWhisper:
    """openai-whisper's model with the state dict converted from the same CTranslate2
    tensors by the project's weights code."""

    def __init__(self, compute_type: str, threads: int, model_dir: str):
        assert compute_type == "float32"
        t = time.perf_counter()
        import torch
        import whisper
        from openai_model import openai_whisper_model

        from maxwhisper_kernels.weights import load_checkpoint

        self.import_s = time.perf_counter() - t
        torch.set_num_threads(threads)
        t = time.perf_counter()
        checkpoint = load_checkpoint(os.path.join(model_dir, "model.bin"))
        self.model = openai_whisper_model(checkpoint)
        del checkpoint
        self.load_s = time.perf_counter() - t
        self.where = os.path.dirname(whisper.__file__)

    def transcribe(self, path: str, beam_size: int) -> str:
        options = whisper_options(beam_size)
        result = self.model.transcribe(path, verbose=None, fp16=False, **options)
        return result["text"]


class FasterWhisper:
    """faster-whisper on the CTranslate2 directory of the tiny.en package itself."""

    def __init__(self, compute_type: str, threads: int, model_dir: str):
        t = time.perf_counter()
        import faster_whisper

        self.import_s = time.perf_counter() - t
        t = time.perf_counter()
        self.model = faster_whisper.WhisperModel(
            model_dir, device="cpu", compute_type=compute_type, cpu_threads=threads, num_workers=1
        )
        self.load_s = time.perf_counter() - t
        self.where = os.path.dirname(faster_whisper.__file__)

    def transcribe(self, path: str, beam_size: int) -> str:
        segments, _info = self.model.transcribe(
            path,
            beam_size=beam_size,
            best_of=beam_size,  # greedy: 1 sample at fallback temperatures; beam 5: 5, as openai's CLI
            vad_filter=False,
            word_timestamps=False,
            condition_on_previous_text=True,
        )
        return "".join(segment.text for segment in segments)


SYSTEMS = {"maxwhisper": MaxWhisper, "openai-whisper": OpenAIWhisper, "faster-whisper": FasterWhisper}


def main() -> int:
    system, compute_type, threads, model_dir = sys.argv[1:5]
    out = sys.stdout
    sys.stdout = sys.stderr  # whatever the libraries print stays off the protocol
    try:
        runner = SYSTEMS[system](compute_type, int(threads), model_dir)
    except Exception:
        traceback.print_exc()
        print(json.dumps({"event": "error", "error": traceback.format_exc()}), file=out, flush=True)
        return 1
    print(
        json.dumps(
            {
                "event": "ready",
                "import_s": runner.import_s,
                "load_s": runner.load_s,
                "rss_after_load_mib": peak_rss_mib(),
                "where": runner.where,
                "pid": os.getpid(),
            }
        ),
        file=out,
        flush=True,
    )
    for line in sys.stdin:
        if not line.strip():
            break
        job = json.loads(line)
        exact_peak = peak_rss_reset()
        cpu0 = cpu_seconds()
        try:
            t = time.perf_counter()
            text = runner.transcribe(job["clip"], job["beam_size"])
            seconds = time.perf_counter() - t
        except Exception:
            traceback.print_exc()
            print(json.dumps({"event": "error", "error": traceback.format_exc()}), file=out, flush=True)
            return 1
        print(
            json.dumps(
                {
                    "event": "done",
                    "seconds": seconds,
                    "cpu_s": cpu_seconds() - cpu0,
                    "text": text,
                    "peak_rss_mib": peak_rss_mib(),
                    "peak_rss_exact": exact_peak,
                    "file_rss_mib": file_rss_mib(),
                    "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                }
            ),
            file=out,
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
