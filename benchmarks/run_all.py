"""Runs every kernel microbenchmark, each in its own process (as when run
alone), then regenerates benchmarks/results/README.md.
Run: .venv/bin/python benchmarks/run_all.py [--repeats N] [--quick]"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from harness import write_summary

BENCHMARKS = [
    "bench_log_mel.py", "bench_layernorm.py", "bench_attention.py", "bench_linear.py", "bench_kv_cache.py",
    "bench_matmul_int8.py", "bench_lstm.py", "bench_decoder_layer.py", "bench_token_scores.py",
]


def main(argv: list[str]) -> int:
    here = Path(__file__).resolve().parent
    failed = [
        name for name in BENCHMARKS
        if subprocess.run([sys.executable, str(here / name), *argv]).returncode != 0
    ]
    write_summary()
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
