"""maxwhisper: Whisper on Modular MAX with custom Mojo kernels.

    import maxwhisper_kernels as mw
    model = mw.load_model("tiny.en")
    result = model.transcribe("speech.flac")   # {"text", "segments", "language"}
"""

from __future__ import annotations

import os

from . import os_memory
from .runtime_options import set_thread_busy_wait

set_thread_busy_wait()
os_memory.install()  # before MAX's libraries load: see os_memory

# Storage of the decoder's weight matrices (model.decoder_matrix_dtype); here,
# not in model.py, so the CLI can offer them without importing MAX.
COMPUTE_TYPES = ("default", "float32", "float16", "int8")


def load_model(
    name_or_path: str | os.PathLike = "tiny.en",
    device: str = "cpu",
    num_threads: int | None = None,
    compute_type: str = "default",
):
    """A Whisper model compiled for MAX; see maxwhisper_kernels.model.load_model."""
    from .model import load_model as _load_model

    return _load_model(name_or_path, device=device, num_threads=num_threads, compute_type=compute_type)


def transcribe(audio, model="tiny.en", **options) -> dict:
    """Transcribes a path or a 16 kHz float32 array with a model or model name,
    taking openai-whisper's transcribe() options."""
    if isinstance(model, (str, os.PathLike)):
        model = load_model(model)
    return model.transcribe(audio, **options)


__all__ = ["load_model", "transcribe"]
