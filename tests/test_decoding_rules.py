"""Token rules (decoding/rules.py): what the timestamp grammar, suppress_blank and
suppress_tokens bar after a given prefix, and how a known speech end keeps a window's text
going; checked against openai-whisper's rules worked out by hand on the scripted fake model,
and each row of a batch against the same row masked alone."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from decoding_script import (
    EOT,
    HELLO,
    MEL,
    NO_SPEECH,
    NO_TIMESTAMPS,
    N_VOCAB,
    SOT,
    TOKENIZER,
    TS,
    WORLD,
    FakeModel,
    Script,
    seconds_of_audio,
    segment_summary,
    tree,
    ts,
)
from decoding_script import fake_mel  # noqa: F401 (a fixture)
from maxwhisper_kernels.decoding import (
    DecodingOptions,
    TokenRules,
    decode,
    decode_batch,
    plan_decoding,
    suppressed_tokens,
)
from maxwhisper_kernels.decoding.rules import token_rules
from maxwhisper_kernels.transcribe import transcribe


def masked(filter_, sampled: list[int], logits: np.ndarray | None = None) -> np.ndarray:
    """Which tokens `filter_` masks after `sampled`, behind a one-token prompt (<|sot|>)."""
    logits = np.zeros((1, N_VOCAB)) if logits is None else logits[None].copy()
    filter_.apply(logits, np.array([[SOT, *sampled]]))
    return np.isneginf(logits[0])


def rules(*, blank: bool = False, timestamps: bool = False) -> TokenRules:
    return token_rules(
        TOKENIZER,
        1,
        suppress_blank=blank,
        suppress_tokens=None,
        timestamps=timestamps,
        latest_start=50,
    )


def timestamp_rules() -> TokenRules:
    return rules(timestamps=True)


def test_first_token_is_a_timestamp_within_max_initial_timestamp():
    mask = masked(timestamp_rules(), [])
    allowed = np.flatnonzero(~mask)
    assert allowed.tolist() == list(range(TS, TS + 51))  # <|0.00|> .. <|1.00|>


def test_after_a_lone_first_timestamp_text_must_follow():
    mask = masked(timestamp_rules(), [ts(0.5)])
    assert mask[TS:].all()  # no timestamp: a pair cannot start the text
    assert mask[NO_TIMESTAMPS]
    assert not mask[:EOT].any() and not mask[EOT]


def test_after_text_timestamps_must_move_forward():
    logits = np.zeros(N_VOCAB)
    logits[HELLO] = 20.0  # so that the timestamps' total probability does not win
    mask = masked(timestamp_rules(), [ts(0.5), HELLO], logits)
    assert mask[TS : ts(0.5) + 1].all()  # up to and including the segment's start
    assert not mask[ts(0.5) + 1 :].any()
    assert not mask[:EOT].any() and not mask[EOT]


def test_after_a_closing_timestamp_only_timestamps_or_end_of_text():
    logits = np.zeros(N_VOCAB)
    logits[EOT] = 20.0
    mask = masked(timestamp_rules(), [ts(0.5), HELLO, ts(1.0)], logits)
    assert mask[:EOT].all()  # no text
    assert not mask[EOT]
    assert mask[TS : ts(1.0)].all()  # the next segment may start where this one ended
    assert not mask[ts(1.0) :].any()


def test_after_a_timestamp_pair_text_must_follow():
    logits = np.zeros(N_VOCAB)
    logits[WORLD] = 20.0
    mask = masked(timestamp_rules(), [ts(0.5), HELLO, ts(1.0), ts(1.0)], logits)
    assert mask[TS:].all()
    assert not mask[:EOT].any()


def test_known_speech_end_bars_ending_on_a_segment_opened_well_before_it():
    """With a speech end (VAD-cut windows), <|endoftext|> may not follow a pair that opens a
    segment before last_open_end (timestamp steps); later, at the lone start, or with no
    limit (-1), it may."""
    logits = np.zeros(N_VOCAB)
    logits[EOT] = 20.0
    pair = [ts(0.5), HELLO, ts(1.0), ts(1.0)]  # a segment opened at 1.0 s = step 50
    filter_ = timestamp_rules()

    def eot_barred(sampled: list[int], limit: int) -> bool:
        masks = logits[None].copy()
        filter_.apply(masks, np.array([[SOT, *sampled]]), np.array([limit]))
        return bool(np.isneginf(masks[0, EOT]))

    assert eot_barred(pair, 51)
    assert not eot_barred(pair, 50) and not eot_barred(pair, -1)
    assert not eot_barred([ts(0.5)], 1000)  # an empty window may still end at once
    assert not eot_barred([ts(0.5), HELLO, ts(1.0)], 1000)  # a closed segment may end the text
    assert not masked(filter_, pair, logits)[EOT]  # no limit given: openai-whisper's rule


def _unsaid_tail() -> Script:
    """A window whose likeliest ending opens a segment at 2 s and stops: what the model does
    when it takes the rest of the speech for cut off by the window's edge."""
    opened = (ts(0), HELLO, ts(2), ts(2))
    return tree({
        (): {ts(0): 1.0},
        (ts(0),): {HELLO: 1.0},
        (ts(0), HELLO): {ts(2): 1.0},
        (ts(0), HELLO, ts(2)): {ts(2): 1.0},
        opened: {EOT: 0.9, WORLD: 0.1},
        (*opened, WORLD): {ts(3): 1.0},
    })  # fmt: skip


def test_speech_end_per_window_keeps_the_text_going_after_an_early_pair():
    """Rows of one batch differ in speech_end: the window whose speech runs on past the pair
    must transcribe it; the one whose speech ends within a second of the pair may stop."""
    mels = np.zeros((2, 80, 3000), dtype=np.float32)
    late, early = (DecodingOptions(speech_end=end) for end in (10.0, 2.5))
    results = decode_batch(FakeModel(_unsaid_tail()), mels, [late, early])
    assert results[0].tokens == [ts(0), HELLO, ts(2), ts(2), WORLD, ts(3)]
    assert results[1].tokens == [ts(0), HELLO, ts(2), ts(2)]
    plain = decode(FakeModel(_unsaid_tail()), MEL)
    assert plain.tokens == [ts(0), HELLO, ts(2), ts(2)]


@pytest.mark.usefixtures("fake_mel")
def test_vad_cut_audio_is_transcribed_to_its_end_in_one_window():
    """vad_cut: the window that reaches the audio's end gets the speech end, so the unsaid
    tail is decoded in that window instead of as a window of its own from 2 s."""
    model = FakeModel(_unsaid_tail())
    result = transcribe(model, seconds_of_audio(10), vad_cut=True, temperature=0.0)
    assert segment_summary(result) == [(0, 0, 0.0, 2.0, " Hello"), (1, 0, 2.0, 3.0, " world")]
    assert len(model.inferences) == 1
    plain = FakeModel(_unsaid_tail())
    transcribe(plain, seconds_of_audio(10), temperature=0.0)
    assert len(plain.inferences) > 1  # the sequential rule decodes again from the pair


def test_timestamps_win_when_their_total_beats_every_text_token():
    # 1500 allowed timestamps at logit 0 add up to log(1500) = 7.31 (relative to one of them)
    weak, strong = np.zeros(N_VOCAB), np.zeros(N_VOCAB)
    weak[HELLO], strong[HELLO] = 7.2, 7.4
    assert masked(timestamp_rules(), [ts(0.0), WORLD], weak)[:TS].all()
    mask = masked(timestamp_rules(), [ts(0.0), WORLD], strong)
    assert not mask[:EOT].any()


def test_suppress_blank_only_at_the_first_token():
    blank = rules(blank=True)
    assert np.flatnonzero(masked(blank, [])).tolist() == [220, EOT]  # " " and <|endoftext|>
    assert not masked(blank, [HELLO]).any()


def test_suppress_tokens_expands_minus_one_and_adds_control_tokens():
    model = FakeModel(tree({}))
    controls = {SOT, TOKENIZER.sot_prev, TOKENIZER.sot_lm, NO_SPEECH}
    controls |= {TOKENIZER.transcribe, TOKENIZER.translate}
    default = suppressed_tokens(DecodingOptions().suppress_tokens, TOKENIZER)
    assert set(default) == set(TOKENIZER.non_speech_tokens) | controls
    listed = suppressed_tokens("13, 11", TOKENIZER)
    assert set(listed) == {11, 13} | controls
    none = plan_decoding(model, DecodingOptions(suppress_tokens="")).rules
    # the blank-start rule and the timestamp grammar, but no suppressed ids
    assert [none.blank_start is not None, none.suppressed is not None] == [True, False]
    assert none.first_timestamp == TS


WRITTEN = st.sampled_from([HELLO, WORLD, ts(0.0), ts(0.5), ts(1.0), ts(2.0)])


@given(
    # rows of one length (a batch's rows have written as many tokens)
    st.integers(0, 4).flatmap(
        lambda n: st.lists(st.lists(WRITTEN, min_size=n, max_size=n), min_size=2, max_size=5)
    ),
    st.integers(0, 2**32 - 1),
)
def test_timestamp_rules_treat_each_row_of_a_batch_as_if_alone(rows, seed):
    # the rules run over all rows at once; a row's mask must not depend on its neighbours
    logits = np.random.default_rng(seed).normal(0.0, 3.0, (len(rows), N_VOCAB))
    batch = logits.copy()
    timestamp_rules().apply(batch, np.array([[SOT, *row] for row in rows]))
    for k, row in enumerate(rows):
        alone = logits[k : k + 1].copy()
        timestamp_rules().apply(alone, np.array([[SOT, *row]]))
        np.testing.assert_array_equal(batch[k], alone[0])
