"""Corpus transcription on Ray Data: many files, one machine or a cluster, resumable.

    from maxwhisper_kernels.corpus import transcribe_corpus
    summary = transcribe_corpus(["archive/"], "out/", workers=2)

Needs the `ray` extra (pip install ".[ray]").
"""

from .inputs import InputError, list_inputs
from .pipeline import transcribe_corpus

__all__ = ["InputError", "list_inputs", "transcribe_corpus"]
