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
    add("audio", nargs="+", type=str, help="the audio files; anything ffmpeg reads")
    add("--model", default="tiny.en", help="a model name (tiny.en, base...) or a checkpoint path")
    add(
        "--model_dir", type=str, default=None, help="folder holding the checkpoint named by --model"
    )
    add("--device", default="cpu", help="where the model runs: cpu, or gpu / cuda (the first GPU MAX finds)")
    add("--output_dir", "-o", type=str, default=".", help="where the transcript files go")
    add(
        "--output_format",
        "-f",
        type=str,
        default="all",
        choices=[*WRITERS, "all"],
        help="transcript file format; all writes one file of each",
    )
    add(
        "--verbose",
        type=str2bool,
        default=True,
        help="print each segment as it is decoded (False: a progress bar)",
    )

    add(
        "--task",
        type=str,
        default="transcribe",
        choices=["transcribe", "translate"],
        help="transcribe: text in the spoken language; translate: English text from any "
        "language",
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

    add(
        "--temperature",
        type=float,
        default=0,
        help="0 decodes the likeliest text; above 0, tokens are drawn at random",
    )
    add(
        "--best_of",
        type=optional_int,
        default=5,
        help="draws per window when decoding at a temperature above 0; the likeliest wins",
    )
    add(
        "--beam_size",
        type=optional_int,
        default=5,
        help="beams searched per window at temperature 0 (None: greedy)",
    )
    add(
        "--patience",
        type=float,
        default=None,
        help="beam search waits for patience x beam_size finished beams before it stops "
        "(https://arxiv.org/abs/2204.05424); unset means 1.0, plain beam search",
    )
    add(
        "--length_penalty",
        type=float,
        default=None,
        help="alpha of Google NMT's length penalty (https://arxiv.org/abs/1609.08144) when "
        "comparing candidates; unset divides the log probability by the length",
    )

    add(
        "--suppress_tokens",
        type=str,
        default="-1",
        help="token ids never to write, comma-separated; -1 stands for the symbols of "
        "speaker tags and sound annotations (ordinary punctuation stays)",
    )
    add(
        "--initial_prompt",
        type=str,
        default=None,
        help="text the first window is prompted with: names, spellings, style",
    )
    add(
        "--carry_initial_prompt",
        type=str2bool,
        default=False,
        help="prompt every window with initial_prompt, before the text so far",
    )
    add(
        "--condition_on_previous_text",
        type=str2bool,
        default=True,
        help="prompt each window with the text decoded so far: a consistent style, but a "
        "repetition loop may carry over from window to window (False avoids that)",
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
        help="step up the temperature by this much and decode a window again when its "
        "text fails the compression or log-probability threshold",
    )
    add(
        "--compression_ratio_threshold",
        type=optional_float,
        default=2.4,
        help="text that compresses better than this (zlib ratio) is taken for a repetition "
        "loop and decoded again",
    )
    add(
        "--logprob_threshold",
        type=optional_float,
        default=-1.0,
        help="text whose mean token log probability is below this is decoded again",
    )
    add(
        "--no_speech_threshold",
        type=optional_float,
        default=0.6,
        help="a window whose <|nospeech|> probability is above this, and whose text is "
        "below --logprob_threshold, is skipped as silence",
    )
    add(
        "--word_timestamps",
        type=str2bool,
        default=False,
        help="time every word (from cross-attention) and end windows on word boundaries",
    )
    add(
        "--prepend_punctuations",
        type=str,
        default=PREPEND_PUNCTUATIONS,
        help="with word timestamps: these marks join the word after them",
    )
    add(
        "--append_punctuations",
        type=str,
        default=APPEND_PUNCTUATIONS,
        help="with word timestamps: these marks join the word before them",
    )
    add(
        "--highlight_words",
        type=str2bool,
        default=False,
        help="srt/vtt: a cue per word, the word being spoken underlined (word timestamps)",
    )
    add(
        "--max_line_width",
        type=optional_int,
        default=None,
        help="srt/vtt: break lines at this many characters (word timestamps)",
    )
    add(
        "--max_line_count",
        type=optional_int,
        default=None,
        help="srt/vtt: lines per subtitle, with --max_line_width (word timestamps)",
    )
    add(
        "--max_words_per_line",
        type=optional_int,
        default=None,
        help="srt/vtt: words per line when --max_line_width is not given (word timestamps)",
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
        help="only these parts: start,end,start,end,... in seconds; a last start without "
        "an end runs to the end of the file",
    )
    add(
        "--hallucination_silence_threshold",
        type=optional_float,
        help="with word timestamps: around a segment that looks hallucinated, skip "
        "silences longer than this many seconds",
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
    needs_words = [option for option in WORD_OPTIONS if args[option]]
    if needs_words and not args["word_timestamps"]:
        parser.error(f"--{needs_words[0]} lays out words: it needs --word_timestamps True")
    width = args["max_line_width"]
    if args["max_line_count"] and not width:
        warnings.warn("--max_line_count is ignored without --max_line_width", stacklevel=1)
    if args["max_words_per_line"] and width:
        warnings.warn("--max_words_per_line is ignored along with --max_line_width", stacklevel=1)
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
    if pipeline_batch:  # the file is read as a stream, never whole
        return _transcribe_long_file(model, paths[0], writer, writer_args, options, pipeline_batch)
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
        results = transcribe_batch(model, [audio for _, audio in loaded], names=names, **options)
    except (ValueError, OSError) as error:
        print(f"error: {', '.join(names)}: {error}", file=sys.stderr)
        return False
    elapsed = time.perf_counter() - started
    duration = sum(len(audio) for _, audio in loaded) / SAMPLE_RATE
    return _write(names, results, writer, writer_args, options, duration, elapsed) and ok


def _transcribe_long_file(model, path: str, writer, writer_args: dict, options: dict, batch_size: int) -> bool:
    """One file through the batched pipeline (VAD, <= 30 s windows, batch_size at a time)."""
    from .audio import AudioStream
    from .pipeline import transcribe_batched

    started = time.perf_counter()
    try:
        result = transcribe_batched(model, path, batch_size, **options)
        duration = AudioStream(path, 1).seconds or 0.0  # the container's own figure
    except AudioError as error:  # its message names the file already
        print(f"error: {error}", file=sys.stderr)
        return False
    except (ValueError, OSError) as error:
        print(f"error: {path}: {error}", file=sys.stderr)
        return False
    return _write([path], [result], writer, writer_args, options, duration, time.perf_counter() - started)


def _write(names, results, writer, writer_args: dict, options: dict, duration: float, elapsed: float) -> bool:
    """Writes each transcript, prints its text (unless verbose showed it) and the real-time
    factor; False when a transcript could not be written."""
    ok = True
    for path, result in zip(names, results):
        try:
            writer(result, path, **writer_args)
        except (ValueError, OSError) as error:
            print(f"error: {path}: {error}", file=sys.stderr)
            ok = False
            continue
        if not options["verbose"]:  # verbose output has shown the segments already
            print(result["text"].strip())
    print(
        f"{', '.join(names)}: {duration:.1f} s of audio in {elapsed:.2f} s, "
        f"real-time factor {duration / elapsed:.1f}x",
        file=sys.stderr,
    )
    return ok


if __name__ == "__main__":
    sys.exit(main())
