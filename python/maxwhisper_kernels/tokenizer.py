"""Whisper's tokenizer: text <-> token ids, the special tokens by name, and word splitting.

The encoding comes from the checkpoint's vocabulary files (vocabulary.py); the attribute and
method names are openai-whisper's, since decoding and word timing code everywhere uses them.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path

from .byte_pairs import BytePairEncoding
from .languages import LANGUAGES, TO_LANGUAGE_CODE, language_code
from .vocabulary import build_encoding, default_vocab_dir

__all__ = ["LANGUAGES", "TO_LANGUAGE_CODE", "TASKS", "Tokenizer", "default_vocab_dir"]
__all__ += ["get_tokenizer"]

TASKS = ("transcribe", "translate")

# Languages written without spaces between words.
_UNSPACED_LANGUAGES = {"zh", "ja", "th", "lo", "my", "yue"}

# attribute -> the special token it holds the id of
_SPECIAL_IDS = {
    "sot": "<|startoftranscript|>",
    "sot_prev": "<|startofprev|>",
    "sot_lm": "<|startoflm|>",
    "transcribe": "<|transcribe|>",
    "translate": "<|translate|>",
    "no_speech": "<|nospeech|>",
    "no_timestamps": "<|notimestamps|>",
    "timestamp_begin": "<|0.00|>",
}

# Symbols that mark speaker tags and sound annotations rather than speech ("[DAVID] Hey",
# "( SPEAKING FOREIGN LANGUAGE )", "♪♪"); commas, periods and question marks stay allowed.
_TAG_SYMBOLS = [*'"#()*+/:;<=>@[\\]^_`{|}~「」『』']
_TAG_SYMBOLS += "<< >> <<< >>> -- --- -( -[ (' (\" (( )) ((( ))) [[ ]] {{ }} ♪♪ ♪♪♪".split()
# Musical signs, U+2669..U+266F. Where a vocabulary splits one into several tokens, barring
# the first is enough: all of U+2640..U+267F share their first two UTF-8 bytes.
_MUSIC_SIGNS = "♩♪♫♬♭♮♯"


@dataclass
class Tokenizer:
    encoding: BytePairEncoding
    num_languages: int
    language: str | None = None
    task: str | None = None
    sot_sequence: tuple[int, ...] = ()
    special_tokens: dict[str, int] = field(default_factory=dict)

    # ids of the special tokens, filled in from _SPECIAL_IDS
    eot: int = field(init=False)
    sot: int = field(init=False)
    sot_prev: int = field(init=False)
    sot_lm: int = field(init=False)
    transcribe: int = field(init=False)
    translate: int = field(init=False)
    no_speech: int = field(init=False)
    no_timestamps: int = field(init=False)
    timestamp_begin: int = field(init=False)

    def __post_init__(self) -> None:
        by_name = self.encoding.encode_single_token
        specials = {name: by_name(name) for name in self.encoding.special_tokens_set}
        self.special_tokens.update(specials)
        self.eot = self.encoding.eot_token
        for attribute, name in _SPECIAL_IDS.items():
            setattr(self, attribute, specials[name])
        prompt = [self.sot]
        if self.language is not None:
            prompt.append(self.to_language_token(self.language))
        if self.task is not None:
            prompt.append(self.translate if self.task == "translate" else self.transcribe)
        self.sot_sequence = tuple(prompt)

    def encode(self, text: str, **kwargs) -> list[int]:
        """Token ids of text; text that spells a special token is refused unless kwargs
        (allowed_special, disallowed_special) allow it, as tiktoken does."""
        return self.encoding.encode(text, **kwargs)

    def decode(self, token_ids: list[int], **kwargs) -> str:
        """Text of token ids; timestamp tokens are left out (decode_with_timestamps keeps
        them)."""
        return self.encoding.decode([t for t in token_ids if t < self.timestamp_begin], **kwargs)

    def decode_with_timestamps(self, token_ids: list[int], **options) -> str:
        """Text of token ids, timestamp tokens written as "<|1.08|>"."""
        return self.encoding.decode(token_ids, **options)

    @cached_property
    def language_token(self) -> int:
        """Id of this tokenizer's language token."""
        language = self.language
        if language is None:
            raise ValueError("This tokenizer does not have a language token configured")
        return self.to_language_token(language)

    def to_language_token(self, language: str) -> int:
        token = self.special_tokens.get(f"<|{language}|>")
        if token is None:
            # a KeyError, as openai-whisper raises for it
            raise KeyError(f"Language {language} not found in tokenizer (it has no <|{language}|>)")
        return token

    @cached_property
    def all_language_codes(self) -> tuple[str, ...]:
        return tuple(LANGUAGES)[: self.num_languages]

    @cached_property
    def all_language_tokens(self) -> tuple[int, ...]:
        return tuple(self.to_language_token(code) for code in self.all_language_codes)

    @cached_property
    def sot_sequence_including_notimestamps(self) -> tuple[int, ...]:
        return (*self.sot_sequence, self.no_timestamps)

    @cached_property
    def non_speech_tokens(self) -> tuple[int, ...]:
        """Ids barred by suppress_tokens="-1": whatever starts a speaker tag or sound
        annotation. A symbol counts where it is a single token, alone or after a space; a
        musical sign always counts, by its first token."""
        ordinary = self.encoding.encode_ordinary  # fixed texts: no special-token check needed
        # a hyphen or quote may join words, but not open one
        barred = {ordinary(" -")[0], ordinary(" '")[0]}
        for symbol in [*_TAG_SYMBOLS, *_MUSIC_SIGNS]:
            for ids in (ordinary(symbol), ordinary(" " + symbol)):
                if len(ids) == 1 or symbol in _MUSIC_SIGNS:
                    barred.add(ids[0])
        return tuple(sorted(barred))

    def split_to_word_tokens(self, tokens: list[int]) -> tuple[list[str], list[list[int]]]:
        """(words, the tokens of each word) of a text's tokens."""
        # without spaces to split at (and no word segmenter here), each whole character is a word
        if self.language in _UNSPACED_LANGUAGES:
            split = self.split_tokens_on_unicode
        else:
            split = self.split_tokens_on_spaces
        return split(tokens)

    def split_tokens_on_unicode(self, tokens: list[int]) -> tuple[list[str], list[list[int]]]:
        """Groups tokens so that each group decodes to whole characters."""
        whole_text = self.decode_with_timestamps(tokens)
        broken = "\ufffd"  # what decoding yields for a partial UTF-8 sequence
        pieces: list[str] = []
        groups: list[list[int]] = []
        group: list[int] = []
        offset = 0  # characters of whole_text covered by the finished groups
        for token in tokens:
            group.append(token)
            text = self.decode_with_timestamps(group)
            # a U+FFFD that the whole text also has at that place was really there
            if broken not in text or whole_text[offset + text.index(broken)] == broken:
                pieces.append(text)
                groups.append(group)
                group = []
                offset += len(text)
        return pieces, groups

    def split_tokens_on_spaces(self, tokens: list[int]) -> tuple[list[str], list[list[int]]]:
        """Groups tokens into words: a new word at a leading space, at punctuation and at a
        special token; anything else is glued to the word before."""
        words: list[str] = []
        groups: list[list[int]] = []
        for piece, ids in zip(*self.split_tokens_on_unicode(tokens)):
            starts_word = ids[0] >= self.eot or piece.startswith(" ")
            if starts_word or piece.strip() in string.punctuation or not words:
                words.append(piece)
                groups.append(ids)
            else:
                words[-1] += piece
                groups[-1].extend(ids)
        return words, groups


def get_tokenizer(
    multilingual: bool,
    *,
    num_languages: int = 99,
    language: str | None = None,
    task: str | None = None,
    vocab_dir: str | Path | None = None,
) -> Tokenizer:
    """The tokenizer of the vocabulary in vocab_dir (a checkpoint folder; None: the installed
    weights package). Multilingual tokenizers default to English transcription; English-only
    ones have no language or task and ignore both, as openai-whisper's do."""
    if language is not None:
        language = language_code(language)
        if list(LANGUAGES).index(language) >= num_languages:
            raise ValueError(
                f"Unsupported language: {language} (not among the model's {num_languages})"
            )
    if task is not None and task not in TASKS:
        raise ValueError(f"Unsupported task: {task} (expected one of {', '.join(TASKS)})")
    if multilingual:
        language, task = language or "en", task or "transcribe"
    else:
        language, task = None, None
    # resolved, so that one folder named two ways gives one cached tokenizer
    folder = Path(vocab_dir if vocab_dir is not None else default_vocab_dir(multilingual))
    return _tokenizer(folder.resolve(), multilingual, num_languages, language, task)


@cache
def _tokenizer(
    vocab_dir: Path, multilingual: bool, num_languages: int, language: str | None, task: str | None
) -> Tokenizer:
    encoding = build_encoding(vocab_dir, multilingual, num_languages)
    return Tokenizer(encoding=encoding, num_languages=num_languages, language=language, task=task)
