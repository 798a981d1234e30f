"""Decoding 30-second windows into tokens, in NumPy over the model's logits.

    options.py    DecodingOptions (openai-whisper's fields), DecodingResult
    interface.py  what decoding needs of a model; tokenizer and checks that depend on it
    language.py   language detection
    rules.py      token rules: which tokens may come next, as id ranges per row
    search.py     sampling / greedy, beam search, choice among candidates
    window.py     prompt layout and the step loop; decode, decode_batch
"""

from .interface import (
    AudioFeatures,
    Inference,
    WhisperModel,
    check_language_and_task,
    get_model_tokenizer,
)
from .language import detect_language
from .options import DecodingOptions, DecodingResult, compression_ratio
from .rules import TokenRules, suppressed_tokens, timestamp_bars
from .search import BeamSearch, Sampler, best_candidates, chosen_log_probs, log_softmax, top_tokens
from .window import DecodingPlan, decode, decode_batch, plan_decoding, run_plan

__all__ = [
    "AudioFeatures",
    "BeamSearch",
    "DecodingOptions",
    "DecodingPlan",
    "DecodingResult",
    "Inference",
    "Sampler",
    "TokenRules",
    "WhisperModel",
    "best_candidates",
    "check_language_and_task",
    "compression_ratio",
    "decode",
    "decode_batch",
    "detect_language",
    "get_model_tokenizer",
    "chosen_log_probs",
    "log_softmax",
    "plan_decoding",
    "run_plan",
    "suppressed_tokens",
    "timestamp_bars",
    "top_tokens",
]
