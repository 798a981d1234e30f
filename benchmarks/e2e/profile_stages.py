"""Where maxwhisper's transcribe() spends its time, stage by stage.

    benchmarks/e2e/.venv/bin/python benchmarks/e2e/profile_stages.py [--quick] [--worktree]

writes benchmarks/results/e2e_stages-<isa>.{md,json}. The stages are timed by wrapping the model's
own functions from here (the project's code is not changed): audio.load_audio, the log-mel
op, Whisper.encode (and the encoder graph's execute inside it), decoding.decode, the
Inference.logits and Inference.ruled_logits of every model.new_inference (and the decoder graph's
execute inside them).
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

CONFIGS = {"greedy": dict(beam_size=None, best_of=None), "beam 5": dict(beam_size=5, best_of=5)}
# load_model's compute_type per profiled mode: the exact default and the int8 one
MODES = {"default": "default", "int8": "int8"}


class Timer:
    def __init__(self):
        self.seconds = 0.0
        self.calls = 0

    def wrap(self, fn):
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - t
                self.calls += 1

        return timed


class TimedGraph:
    """Stands in for a compiled max.engine.Model and times its execute()."""

    def __init__(self, graph, timer: Timer):
        self._graph, self._execute = graph, timer.wrap(graph.execute)

    def execute(self, *args):
        return self._execute(*args)

    def __getattr__(self, name):
        return getattr(self._graph, name)


def profile(model, path: str, options: dict) -> dict:
    # start_transcriptions loads audio and computes log-mels in transcribe.batch; the windows
    # are decoded by transcribe.windows
    import maxwhisper_kernels.transcribe.batch as transcribe_module
    import maxwhisper_kernels.transcribe.windows as windows_module

    timers = {k: Timer() for k in ("audio", "mel", "encode", "encoder_graph", "decode", "logits", "decoder_graph")}
    rows = []
    saved = {
        "load_audio": transcribe_module.load_audio,
        "log_mel_spectrogram": transcribe_module.log_mel_spectrogram,
    }
    # the decoding entry point transcribe() calls: decode (one window) or decode_batch
    entry_points = [n for n in ("decode", "decode_batch") if hasattr(windows_module, n)]
    for name in entry_points:
        saved[name] = getattr(windows_module, name)
    encoder, decoder = model.encoder, model.decoder
    cls = type(model)
    encode, new_inference = cls.encode, cls.new_inference

    def new_inference_timed(self, audio, n_group=1):
        inference = new_inference(self, audio, n_group)
        # a step is a call of either: ruled_logits where the step graph applies the token rules
        # (the CPU's), logits elsewhere and for language detection
        for name in ("logits", "ruled_logits"):
            if hasattr(inference, name):
                setattr(inference, name, timers["logits"].wrap(counted(getattr(inference, name))))
        return inference

    def counted(step):
        def step_counted(tokens, *args, **kwargs):
            rows.append(len(tokens))
            return step(tokens, *args, **kwargs)

        return step_counted

    transcribe_module.load_audio = timers["audio"].wrap(saved["load_audio"])
    transcribe_module.log_mel_spectrogram = timers["mel"].wrap(saved["log_mel_spectrogram"])
    for name in entry_points:
        setattr(windows_module, name, timers["decode"].wrap(saved[name]))
    model.encoder = TimedGraph(encoder, timers["encoder_graph"])
    model.decoder = TimedGraph(decoder, timers["decoder_graph"])
    cls.encode = timers["encode"].wrap(encode)
    cls.new_inference = new_inference_timed
    try:
        t = time.perf_counter()
        result = model.transcribe(path, verbose=None, progress=False, **options)
        total = time.perf_counter() - t
    finally:
        for name, fn in saved.items():
            setattr(windows_module if name in entry_points else transcribe_module, name, fn)
        model.encoder, model.decoder = encoder, decoder
        cls.encode, cls.new_inference = encode, new_inference

    steps = timers["logits"].calls
    s = {k: v.seconds for k, v in timers.items()}
    per_step = lambda x: 1000 * x / steps if steps else None  # noqa: E731
    return {
        "total_s": total,
        "audio_decode_s": s["audio"],
        "log_mel_s": s["mel"],
        "encoder_s": s["encode"],
        "encoder_windows": timers["encode"].calls,
        "encoder_ms_per_window": 1000 * s["encode"] / max(1, timers["encode"].calls),
        "encoder_graph_s": s["encoder_graph"],
        "decode_calls": timers["decode"].calls,
        "decode_s": s["decode"],
        "decoder_steps": steps,
        "token_rows": sum(rows),
        "mean_rows_per_step": sum(rows) / steps if steps else None,
        "decoder_graph_s": s["decoder_graph"],
        "logits_s": s["logits"],
        "ms_per_step": per_step(s["logits"]),
        "graph_ms_per_step": per_step(s["decoder_graph"]),
        # time in decoding.py (decode()) not spent in the decoder graph's execute, per step:
        "python_overhead_ms_per_step": per_step(s["decode"] - s["decoder_graph"]),
        #   of which inside logits() (input buffers, logits to NumPy) and outside it (filters, search)
        "logits_wrapper_ms_per_step": per_step(s["logits"] - s["decoder_graph"]),
        "decoding_loop_ms_per_step": per_step(s["decode"] - s["logits"]),
        "other_s": total - s["audio"] - s["mel"] - s["encode"] - s["decode"],
        "text": result["text"],
    }


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [
        "# maxwhisper, stage by stage (tiny.en, CPU)",
        "",
        f"- Date: {m['date']}; {m['cpu']}, {m['cores']} cores (shared machine)",
        f"- maxwhisper {report['maxwhisper_commit'][:12]} ({report['maxwhisper_code']}); "
        "model load / warm-up call: "
        + "; ".join(f"{m} {report['load_s'][m]:.2f} / {report['warmup_s'][m]:.2f} s" for m in report["load_s"]),
        "- One transcribe() per row after a warm-up call; stages timed by wrapping the model's "
        "functions from the benchmark (load_audio, log_mel_spectrogram, Whisper.encode and the "
        "encoder graph's execute, decoding.decode, Inference.logits and the decoder graph's execute).",
        "- Python overhead per step = (time in decoding.decode - time in the decoder graph's "
        "execute) / steps; it splits into the logits() wrapper (input buffers, copying the logits "
        "out) and the decoding loop around it (logit filters, token selection, beam bookkeeping).",
        "",
        "| mode | clip | setting | total s | audio decode s | log-mel s | encoder s (windows, ms/window) | decode s | other s | steps (rows/step) | ms/step | graph ms/step | Python overhead ms/step (logits wrapper + loop) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["profiles"]:
        lines.append(
            f"| {r['mode']} | {r['clip']} | {r['config']} | {r['total_s']:.2f} | {r['audio_decode_s']:.3f} | {r['log_mel_s']:.3f} "
            f"| {r['encoder_s']:.2f} ({r['encoder_windows']}, {r['encoder_ms_per_window']:.0f}) "
            f"| {r['decode_s']:.2f} | {r['other_s']:.2f} | {r['decoder_steps']} ({r['mean_rows_per_step']:.1f}) "
            f"| {r['ms_per_step']:.2f} | {r['graph_ms_per_step']:.2f} "
            f"| {r['python_overhead_ms_per_step']:.2f} ({r['logits_wrapper_ms_per_step']:.2f} + {r['decoding_loop_ms_per_step']:.2f}) |"
        )
    lines += ["", "Share of the total:", "", "| mode | clip | setting | audio | log-mel | encoder | decoder graph | Python in decoding | other |", "|---|---|---|---|---|---|---|---|---|"]
    for r in report["profiles"]:
        t = r["total_s"]
        pct = lambda x: f"{100 * x / t:.0f} %"  # noqa: E731
        lines.append(
            f"| {r['mode']} | {r['clip']} | {r['config']} | {pct(r['audio_decode_s'])} | {pct(r['log_mel_s'])} | {pct(r['encoder_s'])} "
            f"| {pct(r['decoder_graph_s'])} | {pct(r['decode_s'] - r['decoder_graph_s'])} | {pct(r['other_s'])} |"
        )
    lines += [
        "",
        "Reproduce: `benchmarks/e2e/.venv/bin/python benchmarks/e2e/profile_stages.py` (run.py runs it at the end).",
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="jfk only")
    parser.add_argument("--worktree", action="store_true", help="profile the working tree, not a snapshot of HEAD")
    parser.add_argument("--commit", default="HEAD", help="the commit of maxwhisper to profile (default HEAD)")
    parser.add_argument("--out", type=Path, help="results folder (default benchmarks/results; --quick: cache/quick)")
    args = parser.parse_args(argv)
    out_dir = args.out or (common.CACHE / "quick" if args.quick else common.RESULTS)
    if args.worktree:
        site, sha, dirty = None, common.git("rev-parse", "HEAD"), bool(common.git("status", "--porcelain"))
    else:
        site, sha, dirty = common.maxwhisper_snapshot(args.commit)
        os.environ.update({k: v for k, v in common.maxwhisper_env(site).items() if k == "MAXWHISPER_BUILD_DIR"})
        sys.path.insert(0, str(site))
    import maxwhisper_kernels as mw

    machine = common.machine()
    clips = common.clips(args.quick)
    clips = clips[:2]  # jfk and the first long clip
    profiles, load_s, warmup_s = [], {}, {}
    for mode, compute_type in MODES.items():
        t = time.perf_counter()
        model = mw.load_model("tiny.en", compute_type=compute_type)
        load_s[mode] = time.perf_counter() - t
        t = time.perf_counter()
        model.transcribe(clips[0].path, verbose=None, progress=False)
        warmup_s[mode] = time.perf_counter() - t
        for clip in clips:
            for config, options in CONFIGS.items():
                row = profile(model, clip.path, options)
                row.update(mode=mode, clip=clip.name, config=config, wer=common.wer(clip.reference, row["text"]))
                profiles.append(row)
                print(
                    f"{mode}, {clip.name}, {config}: {row['total_s']:.2f} s; encoder {row['encoder_s']:.2f} s "
                    f"({row['encoder_windows']} windows), {row['decoder_steps']} steps at {row['ms_per_step']:.2f} ms "
                    f"(graph {row['graph_ms_per_step']:.2f}, Python {row['python_overhead_ms_per_step']:.2f})",
                    flush=True,
                )
        del model
    report = {
        "machine": machine,
        "maxwhisper_commit": sha,
        "maxwhisper_code": "committed code (snapshot)" if site else "working tree",
        "working_tree_dirty": dirty,
        "load_s": load_s,
        "warmup_s": warmup_s,
        "profiles": profiles,
    }
    common.write_json(out_dir / f"e2e_stages-{common.provenance.isa_tag()}.json", report)
    (out_dir / f"e2e_stages-{common.provenance.isa_tag()}.md").write_text(markdown(report))
    print(f"wrote {out_dir}/e2e_stages-{common.provenance.isa_tag()}.md, .json")
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
