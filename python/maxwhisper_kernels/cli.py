"""The ``maxwhisper`` command: openai-whisper's ``whisper`` command line on this project's model."""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from collections.abc import Sequence

import numpy as np

from . import COMPUTE_TYPES
from .audio import SAMPLE_RATE, AudioError, load_audio
from .decoding import check_language_and_task
from .timing import APPEND_PUNCTUATIONS, PREPEND_PUNCTUATIONS
from .tokenizer import LANGUAGES, TO_LANGUAGE_CODE
from .transcribe import transcribe_batch
from .writers import WRITERS, get_writer

# Subtitle layout options, which only apply to word-level timestamps.
WORD_OPTIONS = ("highlight_words", "max_line_count", "max_line_width", "max_words_per_line")


def str2bool(string: str) -> bool:
    values = {"True": True, "False": False}
    if string not in values:
        raise argparse.ArgumentTypeError(f"expected True or False, got {string!r}")
    return values[string]


def optional_int(string: str) -> int | None:
    # openai-whisper's CLI spells "no value" as the word None
    return int(string) if string != "None" else None


def optional_float(string: str) -> float | None:
    return float(string) if string != "None" else None


def build_parser() -> argparse.ArgumentParser:
    """openai-whisper's arguments, names and defaults (except the model, tiny.en here)."""
    parser = argparse.ArgumentParser(
        prog="maxwhisper", formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    add = parser.add_argument
    add("audio", nargs="+", type=str, help="audio file(s) to transcribe")
    add("--model", default="tiny.en", help="name of the Whisper model to use, or a checkpoint path")
    add(
        "--model_dir", type=str, default=None, help="folder holding the checkpoint named by --model"
    )
    add("--device", default="cpu", help="device to run the model on")
    add("--output_dir", "-o", type=str, default=".", help="directory to save the outputs")
    add(
        "--output_format",
        "-f",
        type=str,
        default="all",
        choices=[*WRITERS, "all"],
        help="format of the output file; if not specified, all available formats will be produced",
    )
    add(
        "--verbose",
        type=str2bool,
        default=True,
        help="whether to print out the progress and debug messages",
    )

    add(
        "--task",
        type=str,
        default="transcribe",
        choices=["transcribe", "translate"],
        help="whether to perform X->X speech recognition ('transcribe') or X->English "
        "translation ('translate')",
    )
    add(
        "--language",
        type=str,
        default=None,
        choices=sorted(LANGUAGES) + sorted(k.title() for k in TO_LANGUAGE_CODE),
        metavar="LANGUAGE",
        help="language spoken in the audio, a code or a name (en, fr, German...); detected when "
        "not given",
    )

    add("--temperature", type=float, default=0, help="temperature to use for sampling")
    add(
        "--best_of",
        type=optional_int,
        default=5,
        help="number of candidates when sampling with non-zero temperature",
    )
    add(
        "--beam_size",
        type=optional_int,
        default=5,
        help="number of beams in beam search, only applicable when temperature is zero",
    )
    add(
        "--patience",
        type=float,
        default=None,
        help="optional patience value to use in beam decoding, as in "
        "https://arxiv.org/abs/2204.05424, the default (1.0) is equivalent to conventional "
        "beam search",
    )
    add(
        "--length_penalty",
        type=float,
        default=None,
        help="optional token length penalty coefficient (alpha) as in "
        "https://arxiv.org/abs/1609.08144, uses simple length normalization by default",
    )

    add(
        "--suppress_tokens",
        type=str,
        default="-1",
        help="comma-separated list of token ids to suppress during sampling; '-1' will suppress "
        "most special characters except common punctuations",
    )
    add(
        "--initial_prompt",
        type=str,
        default=None,
        help="optional text to provide as a prompt for the first window.",
    )
    add(
        "--carry_initial_prompt",
        type=str2bool,
        default=False,
        help="if True, prepend initial_prompt to every internal decode() call",
    )
    add(
        "--condition_on_previous_text",
        type=str2bool,
        default=True,
        help="if True, provide the previous output of the model as a prompt for the next window; "
        "disabling may make the text inconsistent across windows, but the model becomes less "
        "prone to getting stuck in a failure loop",
    )
    add(
        "--fp16",
        type=str2bool,
        default=True,
        help="accepted for compatibility with openai-whisper; the model sets its own precision",
    )

    add(
        "--temperature_increment_on_fallback",
        type=optional_float,
        default=0.2,
        help="temperature to increase when falling back when the decoding fails to meet either "
        "of the thresholds below",
    )
    add(
        "--compression_ratio_threshold",
        type=optional_float,
        default=2.4,
        help="if the gzip compression ratio is higher than this value, treat the decoding as "
        "failed",
    )
    add(
        "--logprob_threshold",
        type=optional_float,
        default=-1.0,
        help="if the average log probability is lower than this value, treat the decoding as "
        "failed",
    )
    add(
        "--no_speech_threshold",
        type=optional_float,
        default=0.6,
        help="if the probability of the <|nospeech|> token is higher than this value AND the "
        "decoding has failed due to `logprob_threshold`, consider the segment as silence",
    )
    add(
        "--word_timestamps",
        type=str2bool,
        default=False,
        help="(experimental) extract word-level timestamps and refine the results based on them",
    )
    add(
        "--prepend_punctuations",
        type=str,
        default=PREPEND_PUNCTUATIONS,
        help="if word_timestamps is True, merge these punctuation symbols with the next word",
    )
    add(
        "--append_punctuations",
        type=str,
        default=APPEND_PUNCTUATIONS,
        help="if word_timestamps is True, merge these punctuation symbols with the previous word",
    )
    add(
        "--highlight_words",
        type=str2bool,
        default=False,
        help="(requires --word_timestamps True) underline each word as it is spoken in srt and vtt",
    )
    add(
        "--max_line_width",
        type=optional_int,
        default=None,
        help="(requires --word_timestamps True) the maximum number of characters in a line "
        "before breaking the line",
    )
    add(
        "--max_line_count",
        type=optional_int,
        default=None,
        help="(requires --word_timestamps True) the maximum number of lines in a segment",
    )
    add(
        "--max_words_per_line",
        type=optional_int,
        default=None,
        help="(requires --word_timestamps True, no effect with --max_line_width) the maximum "
        "number of words in a segment",
    )
    add(
        "--threads",
        type=optional_int,
        default=0,
        help="number of threads used for CPU inference (0: the runtime's default)",
    )
    add(
        "--compute_type",
        default="default",
        choices=COMPUTE_TYPES,
        help="storage of the decoder's weight matrices: default is float16 when the checkpoint "
        "is stored in float16 (exact), else float32; int8 (decoder matrices and encoder matmuls "
        "in int8) is faster and not bit-exact",
    )
    add(
        "--batch_size",
        type=int,
        default=1,
        help="with several files: number of files transcribed together, their windows encoded "
        "and decoded as one batch; with one file and N > 1: the batched pipeline (Silero VAD, "
        "speech packed into <= 30 s windows, N windows decoded at once, no previous-text prompt)",
    )
    add(
        "--clip_timestamps",
        type=str,
        default="0",
        help="comma-separated list start,end,start,end,... timestamps (in seconds) of clips to "
        "process, where the last end timestamp defaults to the end of the file",
    )
    add(
        "--hallucination_silence_threshold",
        type=optional_float,
        help="(requires --word_timestamps True) skip silent periods longer than this threshold "
        "(in seconds) when a possible hallucination is detected",
    )
    return parser


def _temperatures(start: float, increment: float | None) -> tuple[float, ...]:
    if increment is None:
        return (start,)
    return tuple(np.arange(start, 1.0 + 1e-6, increment).tolist())


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = vars(parser.parse_args(argv))
    model_name: str = args.pop("model")
    model_dir: str | None = args.pop("model_dir")
    output_dir, output_format = args.pop("output_dir"), args.pop("output_format")
    device: str = args.pop("device")
    threads: int | None = args.pop("threads")
    audio_paths: list[str] = args.pop("audio")
    batch_size: int = args.pop("batch_size")
    compute_type: str = args.pop("compute_type")
    temperature = _temperatures(
        args.pop("temperature"), args.pop("temperature_increment_on_fallback")
    )

    if batch_size < 1:
        parser.error(f"--batch_size must be at least 1, got {batch_size}")
    if not args["word_timestamps"]:
        for option in WORD_OPTIONS:
            if args[option]:
                parser.error(f"--{option} requires --word_timestamps True")
    if args["max_line_count"] and not args["max_line_width"]:
        warnings.warn("--max_line_count has no effect without --max_line_width", stacklevel=1)
    if args["max_words_per_line"] and args["max_line_width"]:
        warnings.warn("--max_words_per_line has no effect with --max_line_width", stacklevel=1)
    writer_args = {option: args.pop(option) for option in WORD_OPTIONS}

    # imported here so that --help and argument errors do not wait for MAX to load
    from .model import load_model

    model_path = os.path.join(model_dir, model_name) if model_dir else model_name
    try:
        options = {"device": device, "compute_type": compute_type}
        if threads:
            options["num_threads"] = threads  # for MAX's InferenceSession
        model = load_model(model_path, **options)
        check_language_and_task(model, args["language"], args["task"])
    except ValueError as error:  # weights errors name the checkpoint themselves
        print(f"error: {error}", file=sys.stderr)
        return 1

    os.makedirs(output_dir, exist_ok=True)
    writer = get_writer(output_format, output_dir)  # one writer for every file
    options = dict(args, temperature=temperature)
    failed = False
    pipeline_batch = batch_size if len(audio_paths) == 1 and batch_size > 1 else None
    for start in range(0, len(audio_paths), batch_size):
        batch = audio_paths[start : start + batch_size]
        failed |= not _transcribe_files(model, batch, writer, writer_args, options, pipeline_batch)
    return 1 if failed else 0


def _transcribe_files(
    model, paths: list[str], writer, writer_args: dict, options: dict, pipeline_batch: int | None = None
) -> bool:
    """Transcribes the files as one batch (or one file by the batched pipeline, pipeline_batch
    windows at a time), writes their transcripts and reports the real-time factor; False when
    any of them failed."""
    started = time.perf_counter()
    ok = True
    loaded: list[tuple[str, np.ndarray]] = []
    for path in paths:
        try:
            loaded.append((path, load_audio(path)))
        except AudioError as error:  # its message names the file already
            print(f"error: {error}", file=sys.stderr)
            ok = False
    if not loaded:
        return ok

    names = [path for path, _ in loaded]
    try:
        if pipeline_batch:
            from .pipeline import transcribe_batched

            results = [transcribe_batched(model, loaded[0][1], pipeline_batch, **options)]
        else:
            results = transcribe_batch(model, [audio for _, audio in loaded], names=names, **options)
    except (ValueError, OSError) as error:
        print(f"error: {', '.join(names)}: {error}", file=sys.stderr)
        return False
    elapsed = time.perf_counter() - started

    for path, result in zip(names, results):
        try:
            writer(result, path, **writer_args)
        except (ValueError, OSError) as error:
            print(f"error: {path}: {error}", file=sys.stderr)
            ok = False
            continue
        if not options["verbose"]:  # verbose output has shown the segments already
            print(result["text"].strip())
    duration = sum(len(audio) for _, audio in loaded) / SAMPLE_RATE
    print(
        f"{', '.join(names)}: {duration:.1f} s of audio in {elapsed:.2f} s, "
        f"real-time factor {duration / elapsed:.1f}x",
        file=sys.stderr,
    )
    return ok


if __name__ == "__main__":
    sys.exit(main())
