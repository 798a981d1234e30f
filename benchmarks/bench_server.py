"""maxwhisper-server under concurrent openai clients: requests per minute and audio seconds per
second at 1, 4 and 16 clients, with batching on (--max-batch 16: up to 16 requests' windows per
round) and off (--max-batch 1: one window per round, the requests taking turns), on one tiny.en
model in one run. Each client sends its share of the same list of short dev clips; the
two servers answer the same requests, and their texts are checked equal before any figure is kept.
Writes benchmarks/results/server.md.

Run: .venv/bin/python benchmarks/bench_server.py [--requests 16] [--clients 1,4,16] [--repeats 3]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import datetime
import os
import statistics
import sys
import time
from pathlib import Path

import openai

from maxwhisper_kernels.model import load_model
from maxwhisper_kernels.server import ServerConfig

import provenance  # benchmarks/, the script's own folder

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests"))
from serving import running_server  # noqa: E402

DEV = REPO_ROOT.parent / "shared" / "audio" / "dev"
RESULT = Path(__file__).resolve().parent / "results" / "server.md"


def short_clips(count: int) -> list[tuple[Path, float]]:
    rows = [line.split("\t") for line in (DEV / "transcripts.tsv").read_text().splitlines()[1:]]
    rows.sort(key=lambda row: float(row[2]))
    return [(DEV / row[0], float(row[2])) for row in rows[:count]]


def load(url: str, clips: list[tuple[Path, float]], clients: int) -> tuple[float, list[float], dict]:
    """Wall seconds to answer every clip with `clients` concurrent clients, the latencies, texts."""
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=600)

    def one(item):
        path, _ = item
        started = time.monotonic()
        with open(path, "rb") as audio:
            text = client.audio.transcriptions.create(model="tiny.en", file=audio).text
        return path.name, text, time.monotonic() - started

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        answers = list(pool.map(one, clips))
    wall = time.monotonic() - started
    return wall, [latency for _, _, latency in answers], {name: text for name, text, _ in answers}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=16, help="requests per measurement")
    parser.add_argument("--clients", default="1,4,16", help="concurrent clients, comma-separated")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per row (median)")
    args = parser.parse_args()
    clients_list = [int(c) for c in args.clients.split(",")]
    clips = short_clips(args.requests)
    audio_seconds = sum(seconds for _, seconds in clips)
    model = load_model("tiny.en")

    # both servers up at once and measured in turns, so that the machine's load drifting
    # during the run weighs on batching on and off alike
    with contextlib.ExitStack() as stack:
        urls = {
            max_batch: stack.enter_context(running_server(
                model, ServerConfig(model_name="tiny.en", max_batch=max_batch, max_queue=256)
            ))
            for max_batch in (16, 1)
        }  # fmt: skip
        for url in urls.values():
            load(url, clips[:2], 2)  # a first round, untimed: the model's memory paged in
        runs = {(max_batch, clients): [] for max_batch in urls for clients in clients_list}
        for repeat in range(args.repeats):
            for clients in clients_list:
                for max_batch, url in urls.items():
                    load_before = os.getloadavg()[0]
                    wall, latencies, texts = load(url, clips, clients)
                    runs[max_batch, clients].append(
                        (wall, latencies, texts, load_before, os.getloadavg()[0])
                    )
                    print(f"repeat {repeat}, max_batch {max_batch:2d}, {clients:2d} clients: "
                          f"{wall:.1f} s", flush=True)  # fmt: skip
    rows = []
    for (max_batch, clients), measured in runs.items():
        walls = [m[0] for m in measured]
        latencies = [latency for m in measured for latency in m[1]]
        loads = [value for m in measured for value in m[3:]]
        load_during = f"{min(loads):.1f}-{max(loads):.1f}"
        rows.append((max_batch, clients, walls, latencies, [m[2] for m in measured], load_during))

    reference = rows[-1][4][0]  # batching off, most clients: each clip decoded alone
    same = all(texts == reference for row in rows for texts in row[4])
    commit = provenance.commit()
    lines = [
        "# maxwhisper-server under concurrent clients",
        "",
        f"`.venv/bin/python benchmarks/bench_server.py --requests {args.requests} "
        f"--clients {args.clients} --repeats {args.repeats}` at {commit}, "
        f"{datetime.date.today()}; {os.cpu_count()} cores, shared with other processes (lowest "
        "and highest 1-minute load average seen at the start and end of a row's measurements). "
        f"tiny.en, {len(clips)} requests of the shortest dev clips ({audio_seconds:.1f} s of audio), "
        "openai client, servers in the benchmark's process; batching on and off measured in "
        "turns, wall = median of the repeats, p50/p95 over every request of the repeats.",
        "",
        "| batching | clients | wall (s) | requests/min | audio s/s | p50 (s) | p95 (s) "
        "| walls (s) | load avg |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for max_batch, clients, walls, latencies, _, load_during in rows:
        wall = statistics.median(walls)
        ordered = sorted(latencies)
        p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
        batching = f"on (max {max_batch})" if max_batch > 1 else "off (1)"
        lines.append(
            f"| {batching} | {clients} | {wall:.1f} | {60 * len(clips) / wall:.1f} | "
            f"{audio_seconds / wall:.2f} | {statistics.median(ordered):.2f} | {p95:.2f} | "
            f"{' / '.join(f'{w:.1f}' for w in walls)} | {load_during} |"
        )
    lines += ["", f"Every row's texts equal batching off's: {'yes' if same else 'NO'}.", ""]
    RESULT.write_text("\n".join(lines))
    print(RESULT.read_text())


if __name__ == "__main__":
    main()
