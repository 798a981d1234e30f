"""Text normalisation and word error rate."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from maxwhisper_kernels.text import normalize_text, word_error_rate


@pytest.mark.parametrize(
    ("text", "normalized"),
    [
        ("And so, my fellow Americans: ask not!", "and so my fellow americans ask not"),
        ("AND SO MY FELLOW AMERICANS ASK NOT", "and so my fellow americans ask not"),
        ("[MUSIC] Hello (laughs) there <unk>", "hello there"),
        ("Don't, don’t, dont", "dont dont dont"),
        ("the Kennedys' house, Kennedy's speech", "the kennedys house kennedys speech"),
        ("Ça va? Très bien, naïve façade", "ca va tres bien naive facade"),
        ("Ærø, Straße, Łódź", "aero strasse lodz"),
        ("lower-case letters; psalters, etc., made", "lower case letters psalters etc made"),
        ("Um, I think, uh, hmm... yes", "i think yes"),
        ("  tabs\tand\n\nnewlines  ", "tabs and newlines"),
        ("ＦＵＬＬ width ﬁne ℌ", "full width fine h"),
        ("$5 & 10% ♪♪", "5 10"),
        ("", ""),
    ],
)
def test_normalize_text(text, normalized):
    assert normalize_text(text) == normalized


@given(st.text(max_size=100))
def test_normalize_text_is_idempotent(text):
    once = normalize_text(text)
    assert normalize_text(once) == once
    assert "  " not in once and once == once.strip()


@pytest.mark.parametrize(
    ("reference", "hypothesis", "wer"),
    [
        ("the cat sat on the mat", "the cat sat on the mat", 0.0),
        ("the cat sat on the mat", "the bat sat on the mat", 1 / 6),  # one substitution
        ("the cat sat on the mat", "the cat sat down on the mat", 1 / 6),  # one insertion
        ("the cat sat on the mat", "the cat on the mat", 1 / 6),  # one deletion
        ("the cat sat on the mat", "a cat sat in a hat today", 5 / 6),  # 4 subs + 1 insertion
        ("one two three", "", 1.0),  # everything deleted
        ("one two", "one two three four five", 1.5),  # insertions can exceed 100 %
        ("Ask not what your country can do.", "ask not what your country can do", 0.0),
    ],
)
def test_word_error_rate(reference, hypothesis, wer):
    assert word_error_rate(reference, hypothesis) == pytest.approx(wer)


def test_corpus_word_error_rate_pools_words():
    references = ["one two three four", "five six"]
    hypotheses = ["one two three four", "five seven"]
    # 1 error over 6 reference words, not the mean of 0 and 1/2.
    assert word_error_rate(references, hypotheses) == pytest.approx(1 / 6)


def test_word_error_rate_errors():
    with pytest.raises(ValueError, match="no words"):
        word_error_rate("[MUSIC]", "hello")
    with pytest.raises(ValueError, match="pair up"):
        word_error_rate(["a", "b"], ["a"])
