"""kernels/decoder_layer.mojo: the decoder step built from one op per block must give the
logits of the same step built from the separate ops (graph/decoder.py, fused=False), for
float and int8 weights; with a team of workers (a few rows) and through MAX's pool (a long
prompt); for one row, beams reordered by their lineage, and a batch of audios.
Every phase runs the separate ops' arithmetic on the same rows, so the logits must be
bit-identical; in int8 mode one differing bit of an activation can move its quantized
value, so anything short of equality would hide real differences there."""

import copy

import numpy as np
import pytest

from maxwhisper_kernels.graph import build_decoder_step

SOT, NO_TIMESTAMPS = 50257, 50362  # tiny.en's vocabulary
rng = np.random.default_rng(7)


def separate_ops(model):
    """model with its decoder step built from the separate ops."""
    twin = copy.copy(model)
    twin.decoder = model._load(
        "decoder",
        lambda: build_decoder_step(model.dims, model.device_ref, model.matrix_dtype, fused=False),
        "separate_ops",
        model._decoder_parameters,
    )
    return twin


@pytest.fixture(scope="module", params=["default", "int8"])
def models(request, tiny_en, tiny_en_int8):
    model = tiny_en if request.param == "default" else tiny_en_int8
    return model, separate_ops(model)


@pytest.fixture(scope="module")
def audio(models):
    # Two windows of noise shaped like log-mel features: the cross-attention sees real ranges.
    mel = (rng.standard_normal((2, 80, 3000)) * 0.3).astype(np.float32)
    return [model.encode(mel) for model in models]


def both(models, audio, drive):
    """drive(model, features) for the fused and the separate step; returns both results."""
    return [drive(model, features) for model, features in zip(models, audio)]


def assert_same(fused, separate):
    assert len(fused) == len(separate)
    for a, b in zip(fused, separate):
        np.testing.assert_array_equal(a, b)


def text(n):
    return rng.integers(220, 50000, n).tolist()


def test_one_row_prompt_then_steps(models, audio):
    tokens = [SOT, NO_TIMESTAMPS, *text(8)]

    def drive(model, features):
        inference = model.new_inference(features.subset(np.array([0])))
        rows = [inference.logits(np.array([tokens[:4]]))]
        for n in range(5, len(tokens) + 1):
            rows.append(inference.logits(np.array([tokens[:n]])))
        return rows

    assert_same(*both(models, audio, drive))


@pytest.mark.parametrize("n_prompt", [20, 120])  # a team with dequantized int8 keys; MAX's pool
def test_long_prompts(models, audio, n_prompt):
    tokens = np.array([[SOT, NO_TIMESTAMPS, *text(n_prompt)]])

    def drive(model, features):
        inference = model.new_inference(features.subset(np.array([1])))
        return [inference.logits(tokens), inference.logits(np.concatenate([tokens, [[220]]], axis=1))]

    assert_same(*both(models, audio, drive))


def test_beams_of_a_batch_follow_their_lineage(models, audio):
    # 2 audios x 3 beams: the prompt runs once per audio, then the beams diverge and reorder.
    prompt = np.repeat([[SOT, NO_TIMESTAMPS, *text(3)]], 6, axis=0)
    orders = [[2, 0, 1, 3, 5, 4], [0, 0, 1, 4, 4, 5], [1, 2, 0, 3, 4, 5]]
    grown = [np.array(text(6))[:, None] for _ in orders]

    def drive(model, features):
        beams = model.new_inference(features, n_group=3)
        out = [beams.logits(prompt, positions=[-1])]
        tokens = prompt
        for order, new in zip(orders, grown):
            beams.rearrange_kv_cache(order)
            tokens = np.concatenate([tokens[order], new], axis=1)
            out.append(beams.logits(tokens))
        return out

    assert_same(*both(models, audio, drive))
