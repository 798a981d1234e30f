"""openai-whisper's PyTorch model holding one of our checkpoints' tensors: the contender
of the end-to-end and GPU benchmarks and of the parity recording, built from the same
weights maxwhisper runs and without whisper.load_model's download. torch and whisper are
imported only when a model is built, so importing this module costs nothing."""

from __future__ import annotations

import dataclasses


def openai_whisper_model(checkpoint):
    """An eval-mode whisper.model.Whisper on the CPU with float32 parameters (float16
    tensors are widened as load_state_dict copies them) and, where the checkpoint names
    them, its alignment heads (openai-whisper's word timestamps read those)."""
    import torch
    from whisper.model import ModelDimensions, Whisper

    model = Whisper(ModelDimensions(**dataclasses.asdict(checkpoint.dims)))
    model.load_state_dict({name: torch.from_numpy(array) for name, array in checkpoint.tensors.items()}, strict=True)
    if checkpoint.alignment_heads:
        mask = torch.zeros(checkpoint.dims.n_text_layer, checkpoint.dims.n_text_head, dtype=torch.bool)
        for layer, head in checkpoint.alignment_heads:
            mask[layer, head] = True
        model.register_buffer("alignment_heads", mask.to_sparse(), persistent=False)
    return model.eval()
