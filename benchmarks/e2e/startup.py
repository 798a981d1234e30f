"""Start-up: what a person waits for beyond the transcription itself, for one file.

    benchmarks/e2e/.venv/bin/python benchmarks/e2e/startup.py [--repeats 5] [--cold]

Three programs on jfk.flac, each a whole new process per run, alternating: maxwhisper's CLI
(`python -m maxwhisper_kernels.cli jfk.flac --model tiny.en`, its defaults: beam 5), the same
with `--compute_type int8` (the like-for-like row for peak memory) and the faster-whisper
script a user would write (load the same CTranslate2 tiny.en directory, int8, transcribe with
its defaults: beam 5, print the text). Wall time is measured around the
process; the transcription itself is measured inside one long-lived process per system (after
a warm-up run, median of the repeats), so overhead = median wall - median transcription: the
imports, the model load, the first call's one-time work and the interpreter's exit.

"warm" means every cache filled (MAX's compiled graphs, maxwhisper's graph store, the OS file
cache). `--cold` adds one maxwhisper run with empty MAX and graph-store caches (the graphs are
compiled: minutes) and one faster-whisper run, its first in this benchmark (it compiles
nothing). Writes benchmarks/results/startup-<isa>.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common

JFK = common.SHARED_AUDIO / "jfk.flac"

FASTER_WHISPER_SCRIPT = """
import sys
from faster_whisper import WhisperModel
model = WhisperModel(sys.argv[1], device="cpu", compute_type=sys.argv[2])
segments, _ = model.transcribe(sys.argv[3])
print("".join(segment.text for segment in segments).strip())
"""

# Times model.transcribe in one process: argv = system, model_dir, repeats; prints JSON.
INSIDE_SCRIPT = """
import json, statistics, sys, time
system, model_dir, repeats, clip = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
if system.startswith("maxwhisper"):
    import maxwhisper_kernels as mw
    model = mw.load_model("tiny.en", compute_type="int8" if system.endswith("int8") else "default")
    # the CLI's defaults, as openai-whisper's CLI: beam 5, best of 5
    run = lambda: model.transcribe(clip, beam_size=5, best_of=5, verbose=None, progress=False)["text"]
else:
    from faster_whisper import WhisperModel
    model = WhisperModel(model_dir, device="cpu", compute_type="int8")
    run = lambda: "".join(s.text for s in model.transcribe(clip)[0])  # its default: beam 5
run()
times = []
for _ in range(repeats):
    start = time.perf_counter()
    text = run()
    times.append(time.perf_counter() - start)
print(json.dumps({"median_s": statistics.median(times), "times": times, "text": text.strip()}))
"""


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MiB, stdout) of one whole process, run under GNU time."""
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        start = time.perf_counter()
        done = subprocess.run(
            ["/usr/bin/time", "-f", "%M", "-o", rss.name, *command],
            env=env,
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"{command[:3]} failed ({done.returncode}):\n{done.stderr[-2000:]}")
        return wall, int(rss.read().split()[-1]) / 1024, done.stdout


def commands(model_dir: Path, out_dir: str) -> dict[str, list[str]]:
    return {
        "maxwhisper CLI": [
            sys.executable, "-m", "maxwhisper_kernels.cli", str(JFK), "--model", "tiny.en",
            "--output_dir", out_dir, "--output_format", "txt",
        ],
        "maxwhisper CLI, int8": [
            sys.executable, "-m", "maxwhisper_kernels.cli", str(JFK), "--model", "tiny.en",
            "--compute_type", "int8", "--output_dir", out_dir, "--output_format", "txt",
        ],
        "faster-whisper script (int8)": [
            sys.executable, "-c", FASTER_WHISPER_SCRIPT, str(model_dir), "int8", str(JFK),
        ],
    }


def inside_seconds(system: str, model_dir: Path, repeats: int) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", INSIDE_SCRIPT, system, str(model_dir), str(repeats), str(JFK)],
        capture_output=True, text=True, check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="warm runs per program (default 5)")
    parser.add_argument("--cold", action="store_true", help="also one run with empty caches (minutes)")
    args = parser.parse_args(argv)

    from maxwhisper_kernels.weights import load_checkpoint

    model_dir = load_checkpoint("tiny.en").source.parent
    machine = common.machine()
    # with MAXWHISPER_CPU_TARGET, faster-whisper is held to the target's vectors too (run.py)
    os.environ.update(common.provenance.peers_held_to_target())
    env = dict(os.environ)
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as out_dir:
        programs = commands(model_dir, out_dir)
        cold: dict[str, dict] = {}
        if args.cold:
            with tempfile.TemporaryDirectory() as caches:
                cold_env = env | {"XDG_CACHE_HOME": caches, "MAXWHISPER_GRAPH_CACHE": f"{caches}/graphs"}
                for name, command in programs.items():
                    wall, rss, _ = timed(command, cold_env if name.startswith("maxwhisper") else env)
                    cold[name] = {"wall_s": wall, "peak_rss_mib": rss}
                    print(f"cold {name}: {wall:.2f} s, {rss:.0f} MiB", flush=True)
        for name, command in programs.items():  # one untimed run each fills every cache
            timed(command, env)
        walls: dict[str, list[float]] = {name: [] for name in programs}
        peaks: dict[str, list[float]] = {name: [] for name in programs}
        for _ in range(args.repeats):
            for name, command in programs.items():
                wall, rss, _ = timed(command, env)
                walls[name].append(wall)
                peaks[name].append(rss)
        inside = {
            "maxwhisper CLI": inside_seconds("maxwhisper", model_dir, args.repeats),
            "maxwhisper CLI, int8": inside_seconds("maxwhisper-int8", model_dir, args.repeats),
            "faster-whisper script (int8)": inside_seconds("faster-whisper", model_dir, args.repeats),
        }
    for name in programs:
        wall = statistics.median(walls[name])
        rows[name] = {
            "warm_wall_s": wall,
            "warm_walls": walls[name],
            "transcription_s": inside[name]["median_s"],
            "overhead_s": wall - inside[name]["median_s"],
            "peak_rss_mib": statistics.median(peaks[name]),
            "text": inside[name]["text"],
            **({"cold": cold[name]} if name in cold else {}),
        }
        print(f"{name}: warm {wall:.2f} s, transcription {inside[name]['median_s']:.2f} s, "
              f"overhead {rows[name]['overhead_s']:.2f} s, peak RSS {rows[name]['peak_rss_mib']:.0f} MiB")
    report = {
        "machine": machine | {"loadavg_end": list(os.getloadavg())},
        "isa": common.provenance.isa_tag(),
        "commit": common.git("rev-parse", "HEAD"),
        "repeats": args.repeats,
        "rows": rows,
    }
    stem = common.RESULTS / f"startup-{common.provenance.isa_tag()}"
    common.write_json(stem.with_suffix(".json"), report)
    stem.with_suffix(".md").write_text(markdown(report))
    print(f"wrote {stem}.md")
    return 0


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [
        f"# Start-up on jfk.flac [{report['isa']}]",
        "",
        f"- Machine: {m['cpu']} ({m['cpu_flags']}), {m['cores']} cores; {m['date']}; "
        f"load average {m['loadavg_start'][0]:.1f} at the start, {m['loadavg_end'][0]:.1f} at the end.",
        *common.emulation_note(m),
        f"- maxwhisper {report['commit'][:12]}; {report['repeats']} warm runs per program, alternating; "
        "medians. Overhead = whole-process wall time - the same transcription timed inside a warm process.",
        "- Command: `benchmarks/e2e/.venv/bin/python benchmarks/e2e/startup.py`",
        "",
        "| program | warm wall s | transcription s | overhead s | peak RSS MiB | cold wall s |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in report["rows"].items():
        cold = f"{r['cold']['wall_s']:.1f}" if "cold" in r else "-"
        lines.append(
            f"| {name} | {r['warm_wall_s']:.2f} | {r['transcription_s']:.2f} | {r['overhead_s']:.2f} "
            f"| {r['peak_rss_mib']:.0f} | {cold} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
