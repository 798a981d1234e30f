"""Long-form transcription on top of window decoding.

    settings.py       TranscribeOptions (openai-whisper's names), fallback thresholds
    windows.py        clips, temperature fallback, cutting a window's tokens into segments
    hallucination.py  suspect segments over silence (hallucination_silence_threshold)
    session.py        AudioTranscription: one audio, window by window
    batch.py          start_transcriptions / decode_next_windows, transcribe_batch, transcribe
"""

from .batch import decode_next_windows, start_transcriptions, transcribe, transcribe_batch
from .session import AudioTranscription
from .settings import TranscribeOptions

__all__ = [
    "AudioTranscription",
    "TranscribeOptions",
    "decode_next_windows",
    "start_transcriptions",
    "transcribe",
    "transcribe_batch",
]
