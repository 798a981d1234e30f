"""MAX Graph definitions of the Whisper encoder and decoder, built from the
project's custom ops (log-mel, layernorm, fused attention) and MAX's matmul."""

from .decoder import build_decoder_step
from .encoder import build_encoder
from .parameters import decoder_matrices, decoder_parameters, encoder_parameters, exact_in_float16

__all__ = [
    "build_decoder_step",
    "build_encoder",
    "decoder_matrices",
    "decoder_parameters",
    "encoder_parameters",
    "exact_in_float16",
]
