"""Byte-level BPE, the encoding of Whisper's vocabularies, in Python.

Encoding splits text into pieces with a pre-tokenizer pattern (GPT-2's, vocabulary.py), then
each piece's UTF-8 bytes into tokens: a piece that is a token is that token; otherwise start
from single bytes and, while some adjacent pair of parts joins into a token, join the pair
whose joined bytes rank lowest (the leftmost on a tie). A token's rank is its id, so a
vocabulary listed in id order is all it takes. Special tokens ("<|endoftext|>") never come
out of ordinary text; encode() refuses text that spells one unless the caller allows it.
Decoding joins the tokens' bytes and reads them as UTF-8 (a broken sequence as U+FFFD).

The same ids and text as tiktoken, which this replaces (tests/test_tokenizer.py checks it on
the dev transcripts and random text, both vocabularies; lone surrogates become U+FFFD first,
as there). tiktoken holds a vocabulary three more times in its Rust core: 28.9 MB resident
for tiny.en's against 12.0 here, and 0.32 s to build and first encode against 0.07 s. Its
encoding is faster, 0.06 against 0.2 ms per 1000 characters, which the few hundred
characters of a prompt never show.
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Collection, Iterable

import regex


class BytePairEncoding:
    """ranks: every ordinary token's bytes -> its id; special_tokens: name -> id; n_vocab:
    one more than the largest id. The method and attribute names are tiktoken.Encoding's
    (openai-whisper's Tokenizer.encoding is one)."""

    def __init__(self, name: str, pattern: str, ranks: dict[bytes, int], special_tokens: dict[str, int], n_vocab: int):
        self.name = name
        self._ranks = ranks
        self._pieces = regex.compile(pattern)
        self._special_tokens = dict(special_tokens)
        self.n_vocab = n_vocab
        # id -> bytes, ordinary tokens and special ones alike (decode writes a special's name)
        self._bytes: list[bytes] = [b""] * n_vocab
        for token, rank in ranks.items():
            self._bytes[rank] = token
        for name_, rank in special_tokens.items():
            self._bytes[rank] = name_.encode()
        self._special_pattern: regex.Pattern | None = None  # compiled on first need
        # text without the specials' common opening ("<|" for Whisper's) spells none of them
        self._special_opening = os.path.commonprefix(list(special_tokens))

    @property
    def eot_token(self) -> int:
        return self._special_tokens["<|endoftext|>"]

    @property
    def special_tokens_set(self) -> set[str]:
        return set(self._special_tokens)

    def encode_ordinary(self, text: str) -> list[int]:
        return self._encode_text(_without_lone_surrogates(text))

    def _encode_text(self, text: str) -> list[int]:
        """encode_ordinary of text that has no lone surrogates."""
        out: list[int] = []
        for piece in self._pieces.findall(text):
            self._encode_piece(piece.encode("utf-8"), out)
        return out

    def _encode_piece(self, piece: bytes, out: list[int]) -> None:
        """Appends piece's tokens to out. Parts are runs of piece[start:end[start]]; a heap
        holds every adjacent pair that joins into a token, by (rank, start), and an entry
        whose parts have changed since it was pushed is skipped when it comes up. Most
        pieces are one token; the heap keeps a long one (a run of symbols, a line of
        Chinese, a prompt's spaces) at n log n where rescanning every pair is n squared."""
        ranks = self._ranks
        rank = ranks.get(piece)
        if rank is not None:
            out.append(rank)
            return
        n = len(piece)
        end = list(range(1, n + 1))  # end[s]: where the part starting at s ends (live parts)
        before = list(range(-1, n - 1))  # before[s]: where the part ending at s starts
        pairs: list[tuple[int, int, int, int]] = []

        def offer(left: int, middle: int) -> None:
            stop = end[middle]
            joined = ranks.get(piece[left:stop])
            if joined is not None:
                heapq.heappush(pairs, (joined, left, middle, stop))

        for s in range(n - 1):
            offer(s, s + 1)
        while pairs:
            _, left, middle, stop = heapq.heappop(pairs)
            # stale: a part it names has been joined to another since it was pushed
            if end[left] != middle or end[middle] != stop:
                continue
            end[left] = stop
            end[middle] = -1
            before[middle] = -1
            if stop < n:
                before[stop] = left
                offer(left, stop)
            if left > 0:
                offer(before[left], left)
        s = 0
        while s < n:
            out.append(ranks[piece[s : end[s]]])
            s = end[s]

    def encode(
        self,
        text: str,
        *,
        allowed_special: Collection[str] | str = frozenset(),
        disallowed_special: Collection[str] | str = "all",
    ) -> list[int]:
        """Token ids of text; special tokens spelled in it become those tokens where
        allowed_special lists them ("all": every one), and anything else that
        disallowed_special lists (by default every special not allowed) raises ValueError."""
        text = _without_lone_surrogates(text)
        specials = self._specials_in(text)
        if not specials:  # the usual case: nothing to allow or refuse
            return self._encode_text(text)
        allowed = set(self._special_tokens) if allowed_special == "all" else set(allowed_special)
        if disallowed_special == "all":
            disallowed = set(self._special_tokens) - allowed
        else:
            disallowed = set(disallowed_special)
        for found in specials:
            if found.group() in disallowed:
                raise ValueError(
                    f"the text spells the special token {found.group()!r}: pass it in allowed_special "
                    "to encode it as that token, or disallowed_special=() to encode it as plain text"
                )
        out: list[int] = []
        start = 0
        for found in specials:
            if found.group() in allowed:
                out += self._encode_text(text[start : found.start()])
                out.append(self._special_tokens[found.group()])
                start = found.end()
        out += self._encode_text(text[start:])
        return out

    def _specials_in(self, text: str) -> list[regex.Match]:
        """Where text spells special tokens, left to right (the longest where two start at
        one place; Whisper's never do)."""
        if self._special_opening not in text:
            return []
        if self._special_pattern is None:
            names = sorted(self._special_tokens, key=len, reverse=True)
            self._special_pattern = regex.compile("|".join(map(regex.escape, names)))
        return list(self._special_pattern.finditer(text))

    def encode_single_token(self, text_or_bytes: str | bytes) -> int:
        """The id of the one token (special or ordinary) text_or_bytes is; KeyError if none."""
        if isinstance(text_or_bytes, str):
            if text_or_bytes in self._special_tokens:
                return self._special_tokens[text_or_bytes]
            text_or_bytes = text_or_bytes.encode()
        rank = self._ranks.get(text_or_bytes)
        if rank is None:
            raise KeyError(text_or_bytes)
        return rank

    def decode_bytes(self, tokens: Iterable[int]) -> bytes:
        """The bytes of tokens joined (a special token's are its name's)."""
        table, n = self._bytes, self.n_vocab
        return b"".join(table[t] if 0 <= t < n else _unknown(t) for t in tokens)

    def decode_single_token_bytes(self, token: int) -> bytes:
        return self.decode_bytes([token])

    def decode(self, tokens: Iterable[int], errors: str = "replace") -> str:
        """The text of tokens; errors: how bytes that are not UTF-8 read (str.decode's)."""
        return self.decode_bytes(tokens).decode("utf-8", errors)


def _unknown(token: int) -> bytes:
    raise KeyError(f"token id {token} is not in the vocabulary")


def _without_lone_surrogates(text: str) -> str:
    """text with each unpaired UTF-16 surrogate (which has no UTF-8 form) as U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text
