"""Voice-activity detection: Silero VAD v6 run as a MAX graph, and speech timestamps from it."""

from .timestamps import VadOptions, speech_timestamps

__all__ = ["VadOptions", "speech_timestamps"]
