"""Word error rate between transcripts, after normalising away differences of style.

The normaliser follows Whisper's BasicTextNormalizer (case, bracketed asides, punctuation and
symbols, diacritics) plus the simplest parts of its English normaliser (apostrophes, fillers). It
does not spell out numbers or unify British and American spelling as the full English
normaliser does, so "fifteen" against "15" still counts as an error.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

# Letters NFKD does not split into a base letter and a combining mark.
_ADDITIONAL_DIACRITICS = {
    "œ": "oe",
    "ø": "o",
    "æ": "ae",
    "ß": "ss",
    "đ": "d",
    "ð": "d",
    "þ": "th",
    "ł": "l",
}

# Dropped without a space so that "don't", "don’t" and "dont" all read "dont".
_APOSTROPHES = "'\u2018\u2019\u02bc"

_BRACKETED = re.compile(r"[<\[][^>\]]*[>\]]|\(([^)]+?)\)")
_FILLERS = re.compile(r"\b(?:hmm|mm|mhm|mmm|uh|um)\b")


def _strip_symbols_and_diacritics(text: str) -> str:
    characters = []
    for c in unicodedata.normalize("NFKD", text):
        category = unicodedata.category(c)
        if c in _APOSTROPHES or category == "Mn":
            continue
        if c in _ADDITIONAL_DIACRITICS:
            characters.append(_ADDITIONAL_DIACRITICS[c])
        elif category[0] in "MSP":  # other marks, symbols, punctuation
            characters.append(" ")
        else:
            characters.append(c)
    return "".join(characters)


def normalize_text(text: str) -> str:
    """Lower-cases `text` and reduces it to words separated by single spaces: drops text in
    brackets or parentheses (speaker tags, sound descriptions), diacritics, apostrophes and
    hesitation fillers (uh, um, hmm), and turns other punctuation and symbols into spaces."""
    text = _BRACKETED.sub("", text.lower())
    # Lower-cased again: compatibility forms can decompose to capitals ("ℌ" to "H").
    text = _strip_symbols_and_diacritics(text).lower()
    text = _FILLERS.sub("", text)
    return " ".join(text.split())


def _edit_distance(reference: list[str], hypothesis: list[str]) -> int:
    """Levenshtein distance between word lists (substitutions, insertions, deletions)."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref_word in enumerate(reference, start=1):
        current = [i]
        for j, hyp_word in enumerate(hypothesis, start=1):
            current.append(
                min(
                    previous[j] + 1,  # reference word deleted
                    current[j - 1] + 1,  # hypothesis word inserted
                    previous[j - 1] + (ref_word != hyp_word),  # substituted or matched
                )
            )
        previous = current
    return previous[-1]


def word_error_rate(reference: str | Sequence[str], hypothesis: str | Sequence[str]) -> float:
    """(substitutions + insertions + deletions) / reference words, on normalised text.

    Given lists of utterances, returns the corpus WER: errors and reference words are summed
    over the pairs before dividing, so long utterances weigh more than short ones. Raises
    ValueError if the references hold no words or the lists differ in length.
    """
    references = [reference] if isinstance(reference, str) else list(reference)
    hypotheses = [hypothesis] if isinstance(hypothesis, str) else list(hypothesis)
    if len(references) != len(hypotheses):
        raise ValueError(
            f"{len(references)} references but {len(hypotheses)} hypotheses: they must pair up"
        )

    errors = 0
    words = 0
    for ref, hyp in zip(references, hypotheses):
        ref_words = normalize_text(ref).split()
        errors += _edit_distance(ref_words, normalize_text(hyp).split())
        words += len(ref_words)
    if words == 0:
        raise ValueError("the reference has no words: word error rate is undefined")
    return errors / words
