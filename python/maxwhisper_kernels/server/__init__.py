"""maxwhisper-server: an OpenAI-compatible transcription server that batches concurrent requests.

    maxwhisper-server --model tiny.en --port 8000
    OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="x").audio.transcriptions.create(...)

Layers, top down: app (routes) -> request (parsing) / formats (responses) / errors ->
scheduler (the queue and the batching worker) -> maxwhisper_kernels.transcribe.
"""

from .app import ServerConfig, create_app
from .main import main

__all__ = ["ServerConfig", "create_app", "main"]
