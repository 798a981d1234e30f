"""Repetition loops cut short (decoding/loops.py, stop_loops): loop_periods against its
definition, and decode / transcribe with stop_loops against the same scripted fake model
decoded without it."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from decoding_script import (
    AGAIN,
    EOT,
    HELLO,
    ONE,
    PERIOD,
    SOT,
    TOKENIZER,
    WORLD,
    FakeModel,
    Reply,
    Script,
    replies,
    seconds_of_audio,
    segment_summary,
    tree,
    ts,
)
from decoding_script import fake_mel  # noqa: F401 (a fixture)
from maxwhisper_kernels.decoding import decode
from maxwhisper_kernels.decoding.loops import LOOP_TOKENS, MAX_PERIOD, MIN_LOOP_TOKENS, loop_periods
from maxwhisper_kernels.transcribe import transcribe


def _shortest_period(row: list[int]) -> int:
    """From the definition: the least p <= MAX_PERIOD such that the last max(24, 4p) tokens,
    at most 48, repeat a block of p (tail[k] == tail[k - p] for every k)."""
    for p in range(1, MAX_PERIOD + 1):
        tail = row[-min(LOOP_TOKENS, max(MIN_LOOP_TOKENS, 4 * p)) :]
        if all(tail[k] == tail[k - p] for k in range(p, len(tail))):
            return p
    return 0


@given(st.lists(st.lists(st.integers(0, 2), min_size=1, max_size=20), min_size=1, max_size=6), st.data())
def test_loop_periods_match_the_definition(blocks, data):
    rows = []
    for block in blocks:  # a repeated block, sometimes with one token changed
        row = (block * (LOOP_TOKENS + 5))[: LOOP_TOKENS + 5]
        if data.draw(st.booleans()):
            row[data.draw(st.integers(0, len(row) - 1))] = 7
        rows.append(row)
    assert loop_periods(np.array(rows)).tolist() == [_shortest_period(row) for row in rows]


def _loop_reply(breaks_after: int | None = None) -> list[Reply]:
    """ " Hello" then " world" over and over, with rivals (so each step's log probability is
    well below 0); if breaks_after, the loop ends after that many " world"s."""
    words = [WORLD] * (breaks_after or 400)
    ending = [PERIOD, ts(2)] if breaks_after else []
    return [Reply([ts(0), HELLO, *words, *ending], rivals=3)]


def test_a_loop_that_goes_on_stops_early_with_the_same_result():
    loop, short = _loop_reply(), [Reply([ts(0), HELLO, ts(1)])]
    mel = np.zeros((2, 80, 3000), dtype=np.float32)
    full_model, stopped_model = FakeModel(replies(loop, short)), FakeModel(replies(loop, short))
    full = decode(full_model, mel)
    stopped = decode(stopped_model, mel, stop_loops=True)
    assert len(full[0].tokens) == 224  # written to the limit
    for a, b in zip(full, stopped):
        assert a.tokens == b.tokens and a.text == b.text
        assert a.compression_ratio == b.compression_ratio
        assert b.avg_logprob == pytest.approx(a.avg_logprob, rel=1e-12)
    assert stopped[0].compression_ratio > 2.4 and stopped[0].avg_logprob < -0.5  # still fails
    # the loop (" world" over and over, after <|0.00|> Hello) is caught once 24 written tokens
    # repeat it
    assert len(stopped_model.inferences[-1].fed) == MIN_LOOP_TOKENS + 2 < len(full_model.inferences[-1].fed)


def test_a_loop_that_would_break_off_is_written_out_as_a_loop():
    """The documented cost: a row that would have left its loop by itself is judged as if it
    had not (it falls back at a higher temperature, where the loop may well not start)."""
    mel = np.zeros((1, 80, 3000), dtype=np.float32)
    full = decode(FakeModel(replies(_loop_reply(breaks_after=60))), mel)[0]
    stopped = decode(FakeModel(replies(_loop_reply(breaks_after=60))), mel, stop_loops=True)[0]
    assert full.tokens[-2:] == [PERIOD, ts(2)] and len(full.tokens) == 64
    assert len(stopped.tokens) == 224 and set(stopped.tokens[2:]) == {WORLD}


def _closed_then_loop(after_pair: dict[int, float]) -> Script:
    """<|0.00|> Hello <|2.00|><|2.00|>, each with a known probability, then after_pair; in the
    loop's place (after_pair {WORLD: 0.9, ...}) " world" stays the likeliest for good."""
    closed = (ts(0), HELLO, ts(2), ts(2))
    branches = {(): {ts(0): 1.0}, closed[:1]: {HELLO: 0.8, WORLD: 0.2}, closed[:2]: {ts(2): 0.7, EOT: 0.3}}
    branches[closed[:3]] = {ts(2): 0.6, EOT: 0.4}
    for k in range(230):
        branches[closed + (WORLD,) * k] = after_pair
    return tree(branches)


def test_a_loop_after_a_closed_segment_keeps_the_text_before_it():
    """The row keeps its tokens up to the segment boundary before the loop, with the log
    probability it had there: what a row ending right at that boundary gets."""
    mel = np.zeros((1, 80, 3000), dtype=np.float32)
    looping = FakeModel(_closed_then_loop({WORLD: 0.9, EOT: 0.1}))
    stopped = decode(looping, mel, stop_loops=True)[0]
    ending_there = decode(FakeModel(_closed_then_loop({EOT: 1.0})), mel)[0]
    assert stopped.tokens == ending_there.tokens == [ts(0), HELLO, ts(2), ts(2)]
    assert stopped.avg_logprob == pytest.approx(ending_there.avg_logprob, rel=1e-12)
    assert stopped.text == "Hello" and stopped.compression_ratio < 2.4
    assert len(looping.inferences[-1].fed) == 4 + MIN_LOOP_TOKENS  # caught after 24 " world"s
    # not asked to stop, the loop runs to the limit
    assert len(decode(FakeModel(_closed_then_loop({WORLD: 0.9, EOT: 0.1})), mel)[0].tokens) == 224


@pytest.mark.usefixtures("fake_mel")
def test_transcribe_resumes_greedy_where_a_loop_began():
    """A window looping after a closed segment is not decoded again warmer: its closed segment
    stands and the next window starts at the boundary, at the first temperature."""
    model = FakeModel(
        replies(
            [Reply([ts(0), HELLO, ts(2), ts(2), *[WORLD] * 300])],
            [Reply([ts(0), AGAIN, ts(1)])],
        )
    )
    result = transcribe(model, seconds_of_audio(10), stop_loops=True)
    assert segment_summary(result) == [(0, 0, 0.0, 2.0, " Hello"), (1, 200, 2.0, 3.0, " again")]
    assert [s["temperature"] for s in result["segments"]] == [0.0, 0.0]
    assert model.attempts == {0: 1, 1: 1}
    # without stop_loops the loop runs to the limit, fails, and is drawn again warmer
    plain = FakeModel(replies([Reply([ts(0), HELLO, ts(2), ts(2), *[WORLD] * 300])], [Reply([ts(0), AGAIN, ts(1)])]))
    transcribe(plain, seconds_of_audio(10))
    assert plain.attempts[0] == 6


@pytest.mark.usefixtures("fake_mel")
def test_after_a_loop_the_audio_is_read_with_beams_prompted_by_the_text_before_it():
    """resume_beam_size: the window resuming where a loop began uses beam search, prompted with
    the closed segment kept before the loop even though the windows are otherwise unprompted;
    the window after it is decoded like any other again."""
    model = FakeModel(
        replies(
            [Reply([ts(0), HELLO, ts(2), ts(2), *[WORLD] * 300])],
            [Reply([ts(0), AGAIN, ts(1)])],  # a lone final timestamp: on to 30 s later
            [Reply([ts(0), ONE, ts(1)])],
        )
    )
    options = {"stop_loops": True, "resume_beam_size": 2, "condition_on_previous_text": False}
    result = transcribe(model, seconds_of_audio(40), **options)
    assert [s["text"] for s in result["segments"]] == [" Hello", " again", " one"]
    assert [s["seek"] for s in result["segments"]] == [0, 200, 3200]
    assert [inference.n_group for inference in model.inferences] == [1, 2, 1]
    prompts = [inference.fed[0][0].tolist() for inference in model.inferences]
    assert prompts == [[SOT], [TOKENIZER.sot_prev, ts(0), HELLO, ts(2), SOT], [SOT]]


@pytest.mark.parametrize("bad", [0, -1, 2.0, "2"])
def test_resume_beam_size_must_be_a_positive_whole_number(bad):
    with pytest.raises(ValueError, match="resume_beam_size"):
        transcribe(FakeModel(replies([Reply([ts(0), HELLO, ts(1)])])), seconds_of_audio(1), resume_beam_size=bad)


def test_beam_search_ignores_stop_loops():
    mel = np.zeros((1, 80, 3000), dtype=np.float32)
    plain = decode(FakeModel(replies(_loop_reply())), mel, beam_size=2)[0]
    asked = decode(FakeModel(replies(_loop_reply())), mel, beam_size=2, stop_loops=True)[0]
    assert asked.tokens == plain.tokens and len(asked.tokens) == 224
