"""maxwhisper-corpus: the command-line face of transcribe_corpus."""

from __future__ import annotations

import argparse
import json
import sys

from .. import COMPUTE_TYPES


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="maxwhisper-corpus",
        description="Transcribe a corpus of audio files on Ray Data (local or a cluster), resumably.",
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="audio files, folders (recursive), globs, or CSV/Parquet/JSONL manifests with a 'path' column")
    parser.add_argument("--output", required=True, help="output folder (Parquet shards, _SUCCESS summary)")
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--compute_type", default="default", choices=COMPUTE_TYPES)
    parser.add_argument("--device", default="cpu", choices=("cpu", "gpu"),
                        help="gpu: one GPU per actor (Ray num_gpus=1)")
    parser.add_argument("--address", default=None, help="Ray cluster (auto or ray://host:port); default: a local runtime")
    parser.add_argument("--workers", type=int, default=1, help="actors, one model each")
    parser.add_argument("--threads_per_worker", type=int, default=1, help="MAX CPU threads (= Ray CPUs) per actor")
    parser.add_argument("--batch_size", type=int, default=4, help="files an actor transcribes together")
    parser.add_argument("--language", default=None)
    parser.add_argument("--formats", default="parquet", help="comma list of parquet, jsonl, srt, vtt, json, txt, tsv")
    parser.add_argument("--retry-failed", dest="retry_failed", action="store_true",
                        help="re-run files that failed in an earlier run")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from .inputs import InputError
    from .pipeline import transcribe_corpus

    try:
        summary = transcribe_corpus(
            args.inputs, args.output, model=args.model, compute_type=args.compute_type,
            device=args.device, address=args.address, workers=args.workers, threads_per_worker=args.threads_per_worker,
            batch_size=args.batch_size, language=args.language,
            formats=tuple(f.strip() for f in args.formats.split(",") if f.strip()),
            retry_failed=args.retry_failed,
        )
    except (InputError, ValueError) as exc:
        print(f"maxwhisper-corpus: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
