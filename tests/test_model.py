"""The MAX graphs of real tiny.en against the NumPy reference forward pass
(tests/whisper_reference.py), and the decoder's KV cache against full
recomputation. fp32 in the graph, float64 in the reference."""

import numpy as np
import pytest

import whisper_reference as reference
from clips import SHARED_AUDIO
from max.dtype import DType
from maxwhisper_kernels.audio import N_SAMPLES, load_audio
from maxwhisper_kernels.decoding import log_softmax
from maxwhisper_kernels.graph.parameters import quantize_rows
from maxwhisper_kernels.model import load_model
from maxwhisper_kernels.ops import log_mel_spectrogram
from maxwhisper_kernels.weights import load_checkpoint

SOT, NO_TIMESTAMPS = 50257, 50362  # tiny.en's vocabulary
TOL = 5e-4  # absolute; encoder outputs reach ~12, logits ~20


@pytest.fixture(scope="module")
def jfk_mel():
    audio = load_audio(SHARED_AUDIO / "jfk.flac")
    return log_mel_spectrogram(audio, padding=N_SAMPLES)[:, :3000]


@pytest.fixture(scope="module")
def tiny_en_checkpoint(tiny_en):
    # The model keeps no float32 copy of its tensors; the reference reads the file again.
    return load_checkpoint(tiny_en.checkpoint.source)


@pytest.fixture(scope="module")
def encoded(tiny_en, jfk_mel):
    return tiny_en.encode(jfk_mel[None])


@pytest.fixture(scope="module")
def reference_audio(tiny_en_checkpoint, jfk_mel):
    return reference.encoder(tiny_en_checkpoint, jfk_mel)


def test_encoder_matches_reference(encoded, reference_audio):
    np.testing.assert_allclose(encoded.encoded.to_numpy()[0], reference_audio, rtol=0, atol=TOL)


def test_first_step_logits_match_reference(tiny_en, tiny_en_checkpoint, encoded, reference_audio):
    tokens = [SOT, NO_TIMESTAMPS]
    logits = tiny_en.new_inference(encoded).logits(np.array([tokens]))[0]
    expected = reference.decoder_logits(tiny_en_checkpoint, tokens, reference_audio)
    np.testing.assert_allclose(logits, expected, rtol=0, atol=TOL)


def test_kv_cache_steps_match_one_full_pass(tiny_en, encoded):
    tokens = [SOT, NO_TIMESTAMPS, 400, 370, 616, 7174, 5334]
    full = tiny_en.new_inference(encoded).logits(np.array([tokens]))[0]
    stepped = tiny_en.new_inference(encoded)
    rows = [stepped.logits(np.array([tokens[:3]]))[0]]
    for n in range(4, len(tokens) + 1):
        rows.append(stepped.logits(np.array([tokens[:n]]))[0])
    np.testing.assert_allclose(np.concatenate(rows), full, rtol=0, atol=1e-4)


def test_rearranged_cache_follows_its_rows(tiny_en, encoded):
    # Two rows of one audio diverge; swapping them must swap their logits.
    prompts = np.array([[SOT, NO_TIMESTAMPS, 400], [SOT, NO_TIMESTAMPS, 7174]])
    inference = tiny_en.new_inference(encoded, n_group=2)
    inference.logits(prompts)
    inference.rearrange_kv_cache([1, 0])
    swapped = inference.logits(np.concatenate([prompts[::-1], [[220], [220]]], axis=1))
    plain = tiny_en.new_inference(encoded, n_group=2)
    plain.logits(prompts[::-1])
    expected = plain.logits(np.concatenate([prompts[::-1], [[220], [220]]], axis=1))
    np.testing.assert_allclose(swapped, expected, rtol=0, atol=1e-5)


def test_logits_at_chosen_positions_are_those_of_the_full_pass(tiny_en, encoded):
    tokens = np.array([[SOT, NO_TIMESTAMPS, 400, 370, 616]])
    full = tiny_en.new_inference(encoded).logits(tokens)
    picked = tiny_en.new_inference(encoded).logits(tokens, positions=[0, -1, 2])
    np.testing.assert_array_equal(picked, full[:, [0, 4, 2]])
    inference = tiny_en.new_inference(encoded)
    inference.logits(tokens[:, :3], positions=[-1])
    with pytest.raises(ValueError, match="already in the cache"):
        inference.logits(tokens, positions=[1])


def test_beams_sharing_a_prompt_match_separately_run_rows(tiny_en, encoded):
    # The prompt runs once for the group; the rows then diverge from that cache row.
    prompt = np.array([[SOT, NO_TIMESTAMPS, 400, 370]] * 3)
    beams = tiny_en.new_inference(encoded, n_group=3)
    first = beams.logits(prompt, positions=[-1])
    beams.rearrange_kv_cache([2, 0, 1])
    grown = np.concatenate([prompt, [[616], [7174], [220]]], axis=1)
    second = beams.logits(grown)
    for row in range(3):
        alone = tiny_en.new_inference(encoded)
        np.testing.assert_allclose(first[row], alone.logits(prompt[:1], positions=[-1])[0], rtol=0, atol=1e-5)
        np.testing.assert_allclose(second[row], alone.logits(grown[row : row + 1])[0], rtol=0, atol=1e-5)


def test_encoder_rejects_wrong_mel_shape(tiny_en):
    with pytest.raises(ValueError, match="mel must be"):
        tiny_en.encode(np.zeros((1, 80, 100), np.float32))


def test_cross_attention_weights_match_reference(tiny_en, tiny_en_checkpoint, encoded, reference_audio):
    tokens = [SOT, NO_TIMESTAMPS, 400, 370, 616]
    inference = tiny_en.new_inference(encoded)
    inference.logits(np.array([tokens[:3]]))
    inference.logits(np.array([tokens]))
    weights = inference.cross_attention_weights()
    assert len(weights) == tiny_en.dims.n_text_layer
    expected = reference.cross_attention_weights(tiny_en_checkpoint, tokens, reference_audio)
    for layer, w in enumerate(weights):
        assert w.shape == (1, tiny_en.dims.n_text_head, 2, 1500)  # the last call fed 2 tokens
        np.testing.assert_allclose(w[0], expected[layer][:, -2:], rtol=0, atol=1e-4)


def test_quantize_rows_keeps_every_value_within_half_a_step():
    rng = np.random.default_rng(5)
    matrix = rng.standard_normal((6, 40)) * np.array([1e-3, 0.1, 1, 10, 0, 3])[:, None]
    values, scale = quantize_rows(matrix)
    assert values.dtype == np.int8 and scale.dtype == np.float32
    assert np.abs(values).max() <= 127
    assert (np.abs(values).max(axis=1)[[0, 1, 2, 3, 5]] == 127).all()  # each row's peak maps to 127
    error = np.abs(values * scale[:, None].astype(np.float64) - matrix)
    assert (error <= scale[:, None] / 2 * (1 + 1e-6)).all()
    assert (values[4] == 0).all()


@pytest.fixture(scope="module")
def encoded_int8(tiny_en_int8, jfk_mel):
    return tiny_en_int8.encode(jfk_mel[None])


def test_int8_encoder_stays_near_the_reference(encoded_int8, reference_audio):
    """The int8 encoder (int8 GEMMs in every linear layer but the attention
    output projection) against the float64 reference: 2.7 % relative error
    in the NumPy simulation of the same quantization, every frame's feature
    vector pointing the same way (cosine 0.997 at worst on jfk)."""
    got = encoded_int8.encoded.to_numpy()[0].astype(np.float64)
    assert np.linalg.norm(got - reference_audio) / np.linalg.norm(reference_audio) < 0.04
    cosine = (got * reference_audio).sum(-1) / np.linalg.norm(got, axis=-1) / np.linalg.norm(reference_audio, axis=-1)
    assert cosine.min() > 0.99
    assert np.abs(got - reference_audio).max() < 1.0  # outputs reach ~12


def test_int8_model_stays_near_the_reference(tiny_en_int8, encoded_int8, reference_audio):
    assert tiny_en_int8.matrix_dtype == DType.int8
    tokens = [SOT, NO_TIMESTAMPS, 400, 370, 616, 7174, 5334]
    encoded = encoded_int8
    logits = tiny_en_int8.new_inference(encoded).logits(np.array([tokens]))[0]
    expected = reference.decoder_logits(load_checkpoint(tiny_en_int8.checkpoint.source), tokens, reference_audio)
    # the same next token everywhere, and nearly the same distribution over all of them;
    # every decoder activation is quantized per row too (as CTranslate2's int8), so the top
    # token's log-probability moves by up to ~0.21 here (dev-set WER 6.3 % vs 6.2 % default)
    top = expected.argmax(axis=-1)
    assert (logits.argmax(axis=-1) == top).all()
    p, q = log_softmax(expected), log_softmax(logits.astype(np.float64))
    rows = np.arange(len(tokens))
    assert np.abs(q[rows, top] - p[rows, top]).max() < 0.3  # log-probability of the top token
    assert (np.exp(p) * (p - q)).sum(axis=-1).max() < 0.05  # KL(reference || int8), nats


def test_unknown_compute_type_is_refused_before_loading():
    with pytest.raises(ValueError, match="unknown compute_type 'int4'"):
        load_model("no-such-model", compute_type="int4")
