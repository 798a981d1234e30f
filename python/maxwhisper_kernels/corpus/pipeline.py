"""The Ray Data pipeline: items -> decode in CPU tasks -> transcribe in an actor
pool (one model per actor) -> Parquet shards, plus the driver that runs it."""

from __future__ import annotations

import json
import os
import time

import numpy as np

from ..audio import SAMPLE_RATE, AudioError, load_audio
from ..model import DeviceUnavailableError
from .bookkeeping import ROW_COLUMNS, existing_rows, new_run_dir, pending
from .inputs import content_hash, list_inputs
from .summary import summarize, write_summary

SUBTITLE_FORMATS = ("srt", "vtt", "json", "txt", "tsv")


def decode(item: dict) -> dict:
    """One item's waveform, or its error: a bad file is data, never a failed task."""
    try:
        audio = load_audio(item["path"])
        error = None
    except (AudioError, OSError) as exc:
        audio, error = np.zeros(0, np.float32), str(exc)
    return {**item, "audio": audio, "duration": len(audio) / SAMPLE_RATE, "error": error}


def _text(value) -> str | None:
    # A numpy batch turns an all-None string column into NaN floats.
    return value if isinstance(value, str) else None


class Transcriber:
    """A Ray Data actor: loads the model once, then transcribes each batch of
    decoded files together with transcribe_batch."""

    def __init__(self, model: str, compute_type: str, device: str, num_threads: int,
                 options: dict, formats: tuple[str, ...], output: str):
        import maxwhisper_kernels as mw

        self.model_name = model
        # As many MAX CPU workers as the Ray CPUs this actor holds, so that actors
        # sharing a node do not oversubscribe its cores.
        self.model = mw.load_model(model, device=device, compute_type=compute_type,
                                   num_threads=num_threads if device == "cpu" else None)
        self.options = options
        self.options_json = json.dumps(options, sort_keys=True)
        self.output = output
        self.formats = formats

    def _transcribe(self, audios: list[np.ndarray], language: str | None) -> list:
        """Results (or error strings) for files sharing a language, batched together;
        if the batch fails, each file alone, so the error lands on the file that caused it."""
        from ..transcribe import transcribe_batch

        options = {**self.options, "language": language} if language else self.options
        try:
            return transcribe_batch(self.model, audios, progress=False, **options)
        except (AudioError, ValueError) as exc:
            if len(audios) == 1:
                return [str(exc)]
            return [self._transcribe([audio], language)[0] for audio in audios]

    def __call__(self, batch: dict) -> dict:
        from ..writers import get_writer

        n = len(batch["path"])
        results: list = [_text(batch["error"][i]) for i in range(n)]
        languages = [_text(batch["language"][i]) for i in range(n)]
        seconds = [0.0] * n
        groups: dict = {}
        for i in range(n):
            if results[i] is None:
                groups.setdefault(languages[i], []).append(i)
        for language, indices in groups.items():
            start = time.perf_counter()
            audios = [np.asarray(batch["audio"][i], np.float32) for i in indices]
            for i, result in zip(indices, self._transcribe(audios, language)):
                results[i] = result
            # A batch's time is shared among its files by their length.
            elapsed = time.perf_counter() - start
            total = sum(len(a) for a in audios) or 1
            for i, audio in zip(indices, audios):
                seconds[i] = elapsed * len(audio) / total
        rows = {name: [] for name in ROW_COLUMNS}
        for i in range(n):
            result = results[i] if isinstance(results[i], dict) else None
            for fmt in self.formats if result else ():
                get_writer(fmt, self.output)(result, batch["path"][i])
            rows["path"].append(batch["path"][i])
            rows["sha256"].append(batch["sha256"][i])
            rows["duration"].append(float(batch["duration"][i]))
            rows["language"].append(result["language"] if result else languages[i])
            rows["text"].append(result["text"] if result else None)
            rows["segments"].append(json.dumps(result["segments"]) if result else None)
            rows["model"].append(self.model_name)
            rows["options"].append(self.options_json)
            rows["error"].append(None if result else results[i])
            rows["seconds"].append(seconds[i])
        return rows


def _init_ray(address: str | None, num_cpus: int) -> bool:
    """Connects to `address`, or starts a local runtime bounded to `num_cpus`;
    True when this call started (and so must stop) it."""
    import ray

    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    return True


def transcribe_corpus(
    inputs: list[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    model: str = "tiny.en",
    compute_type: str = "default",
    device: str = "cpu",
    address: str | None = None,
    workers: int = 1,
    threads_per_worker: int = 1,
    batch_size: int = 4,
    language: str | None = None,
    formats: tuple[str, ...] = ("parquet",),
    retry_failed: bool = False,
    **options,
) -> dict:
    """Transcribes every audio file the inputs name into Parquet rows under
    `output` (one folder per run), skipping files done before; returns the summary
    that is also written to output/_SUCCESS. device="gpu" gives each actor one
    GPU (Ray's num_gpus=1) and fails before any work where there is none."""
    import ray

    started = time.perf_counter()
    _check_local_device(device, address, threads_per_worker)
    output = os.path.abspath(os.fspath(output))
    os.makedirs(output, exist_ok=True)
    unknown = set(formats) - {"parquet", "jsonl", *SUBTITLE_FORMATS}
    if unknown:
        raise ValueError(f"unknown output formats {sorted(unknown)}: expected parquet, jsonl, "
                         + ", ".join(SUBTITLE_FORMATS))
    items = list_inputs(list(inputs))
    for item in items:
        item["sha256"] = content_hash(item["path"])
        item["language"] = item["language"] or language
    todo = pending(items, existing_rows(output), retry_failed)
    rows: list[dict] = []
    if todo:
        # One CPU beyond the actors' so decode tasks are never starved by the pool.
        own_runtime = _init_ray(address, workers * threads_per_worker + 1)
        try:
            gpus = ray.cluster_resources().get("GPU", 0)
            if device == "gpu" and gpus < workers:
                # Ray would wait for the missing GPUs forever.
                raise DeviceUnavailableError(
                    f"device 'gpu': {workers} actors need {workers} GPUs, the Ray cluster "
                    f"({address or 'local runtime'}) has {gpus:g}"
                )
            rows = _run(todo, output, model, compute_type, device, workers, threads_per_worker,
                        batch_size, tuple(f for f in formats if f in SUBTITLE_FORMATS),
                        "jsonl" in formats, options)
        finally:
            if own_runtime:
                ray.shutdown()
    summary = summarize(rows, len(items) - len(todo), time.perf_counter() - started)
    write_summary(output, summary)
    return summary


def _check_local_device(device: str, address: str | None, threads: int) -> None:
    """Fails before Ray starts when the device cannot be had: an unknown name, more
    MAX threads per actor than this machine's cores (local runs), or a GPU run
    without a cluster on a machine where MAX finds no GPU."""
    if device not in ("cpu", "gpu"):
        raise ValueError(f"device {device!r}: expected 'cpu' or 'gpu'")
    cores = len(os.sched_getaffinity(0))
    if address is None and not 1 <= threads <= cores:
        raise ValueError(f"threads_per_worker={threads}: expected 1 to {cores}, the cores here")
    if device == "gpu" and address is None:
        from max.driver import accelerator_count

        if accelerator_count() == 0:
            raise DeviceUnavailableError(
                "device 'gpu': MAX finds no GPU on this machine; use device 'cpu', or "
                "the address of a Ray cluster with GPU nodes"
            )


def _run(todo, output, model, compute_type, device, workers, threads, batch_size,
         subtitle_formats, jsonl, options) -> list[dict]:
    import ray.data

    run_dir = new_run_dir(output)
    dataset = (
        ray.data.from_items(todo, override_num_blocks=max(1, len(todo)))
        .map(decode, num_cpus=1)
        .map_batches(
            Transcriber,
            fn_constructor_kwargs=dict(
                model=model, compute_type=compute_type, device=device, num_threads=threads,
                options=options, formats=subtitle_formats, output=output,
            ),
            compute=ray.data.ActorPoolStrategy(size=workers),
            num_cpus=threads,
            num_gpus=1 if device == "gpu" else 0,
            batch_size=batch_size,
            batch_format="numpy",
        )
        .materialize()
    )
    dataset.write_parquet(run_dir)
    if jsonl:
        dataset.write_json(run_dir)
    return dataset.take_all()
