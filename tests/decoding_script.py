"""The scripted fake model that drives the decoding and long-form transcription tests
(test_decoding_*.py, test_batch.py), with the tokens, fixtures and helpers they share.

The fake model answers each decoder call with fixed logits chosen from the tokens written so
far, so every expectation in those tests follows by hand from openai-whisper's algorithm.
"""

from __future__ import annotations

import collections
import importlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

from maxwhisper_kernels.tokenizer import default_vocab_dir, get_tokenizer
from maxwhisper_kernels.weights import ModelDimensions

# The module whose log_mel_spectrogram start_transcriptions calls (replaced by a fake below).
transcribe_module = importlib.import_module("maxwhisper_kernels.transcribe.batch")

EN_DIR = default_vocab_dir(multilingual=False)
TOKENIZER = get_tokenizer(False)
N_VOCAB = 51864  # tiny.en
SOT, EOT, TS = TOKENIZER.sot, TOKENIZER.eot, TOKENIZER.timestamp_begin
NO_SPEECH, NO_TIMESTAMPS = TOKENIZER.no_speech, TOKENIZER.no_timestamps
HELLO, WORLD, PERIOD, THE, AGAIN, ONE, TWO, AND, THEN = 18435, 995, 13, 262, 757, 530, 734, 290, 788
BLANK = 220  # " "

# Text tokens a scripted step can make nearly as likely as its own token, to lower the average
# log probability of a reply without changing what greedy decoding picks.
RIVALS = [t for t in range(1000, 2000) if t not in TOKENIZER.non_speech_tokens][:400]

Script = Callable[[int, int, list[int]], np.ndarray]


def ts(seconds: float) -> int:
    return TS + round(seconds / 0.02)


def dims(n_vocab: int = N_VOCAB) -> ModelDimensions:
    return ModelDimensions(
        n_mels=80,
        n_audio_ctx=1500,
        n_audio_state=8,
        n_audio_head=1,
        n_audio_layer=1,
        n_vocab=n_vocab,
        n_text_ctx=448,
        n_text_state=8,
        n_text_head=1,
        n_text_layer=1,
    )


class Features:
    """Audio features of a batch: the numbers of the windows encoded."""

    def __init__(self, windows: list[int]):
        self.windows = windows
        self.n_audio = len(windows)

    def subset(self, audios) -> Features:
        return Features([self.windows[a] for a in audios])


class FakeModel:
    """model.encode numbers the windows it sees; each decoder row's logits come from
    script(window, attempt, tokens so far), attempt counting the passes over that window.
    With draws_per_attempt, a pass's rows of one window count as consecutive attempts, that
    many rows each (a window decoded at several temperatures at once, parallel_fallback)."""

    def __init__(
        self,
        script: Script,
        *,
        multilingual: bool = False,
        tokenizer_dir=EN_DIR,
        n_vocab: int = N_VOCAB,
        draws_per_attempt: int | None = None,
    ):
        self.dims = dims(n_vocab)
        self.draws_per_attempt = draws_per_attempt
        self.is_multilingual = multilingual
        self.num_languages = 99
        self.alignment_heads = None
        self.tokenizer_dir = tokenizer_dir
        self.script = script
        self.n_encoded = 0
        self.attempts: collections.Counter[int] = collections.Counter()
        self.inferences: list[FakeInference] = []

    def encode(self, mel: np.ndarray) -> Features:
        assert mel.dtype == np.float32 and mel.shape[1:] == (80, 3000), mel.shape
        windows = list(range(self.n_encoded, self.n_encoded + len(mel)))
        self.n_encoded += len(mel)
        return Features(windows)

    def new_inference(self, audio_features: Features, n_group: int = 1) -> FakeInference:
        inference = FakeInference(self, audio_features.windows, n_group)
        self.inferences.append(inference)
        return inference


class FakeInference:
    def __init__(self, model: FakeModel, windows: list[int], n_group: int):
        self.model = model
        self.windows = windows
        self.n_group = n_group
        self.attempts = [model.attempts[w] for w in windows]
        self.draws = min(model.draws_per_attempt or n_group, n_group)  # rows per attempt
        for _ in range(n_group // self.draws):
            model.attempts.update(windows)
        self.audios = list(range(len(windows)))  # the windows still stepped (keep_rows)
        self.fed: list[np.ndarray] = []
        self.rearrangements: list[list[int]] = []
        self.kept: list[list[int]] = []  # the rows of each keep_rows call
        self.cleaned_up = False

    def logits(self, tokens: np.ndarray, positions=None) -> np.ndarray:
        assert tokens.shape[0] == len(self.audios) * self.n_group
        new = range(tokens.shape[1]) if not self.fed else [tokens.shape[1] - 1]
        if positions is None:
            positions = new
        positions = [p % tokens.shape[1] for p in positions]
        assert set(positions) <= set(new), (positions, new)
        self.fed.append(tokens.copy())
        return np.array(
            [
                [
                    self.model.script(
                        self.windows[self.audios[row // self.n_group]],
                        self.attempts[self.audios[row // self.n_group]] + row % self.n_group // self.draws,
                        tokens[row, : p + 1].tolist(),
                    )
                    for p in positions
                ]
                for row in range(tokens.shape[0])
            ],
            dtype=np.float32,
        )

    def rearrange_kv_cache(self, source_indices: list[int]) -> None:
        self.rearrangements.append(list(source_indices))

    def keep_rows(self, rows) -> None:
        rows = list(rows)
        assert len(rows) % self.n_group == 0 and rows[:: self.n_group] == sorted(rows[:: self.n_group])
        self.audios = [self.audios[row // self.n_group] for row in rows[:: self.n_group]]
        self.kept.append(rows)

    def cleanup_caching(self) -> None:
        self.cleaned_up = True

    def cross_attention_weights(self) -> None:
        return None


def written(prefix: list[int], tokenizer=TOKENIZER) -> list[int]:
    """The tokens after the prompt: after the last control token (sot, language, task...)."""
    controls = [i for i, t in enumerate(prefix) if tokenizer.eot <= t < tokenizer.timestamp_begin]
    return prefix[controls[-1] + 1 :]


@dataclass
class Reply:
    tokens: list[int]  # written after the prompt, then <|endoftext|>
    rivals: int = 0  # text tokens nearly as likely at each step
    no_speech: float = -np.inf  # logit of <|nospeech|> after <|startoftranscript|>


def replies(*windows: list[Reply], tokenizer=TOKENIZER, language: int | None = None) -> Script:
    """A script answering window w's attempt a with windows[w][a] (its last reply after that)."""

    def script(window: int, attempt: int, prefix: list[int]) -> np.ndarray:
        reply = windows[window][min(attempt, len(windows[window]) - 1)]
        logits = np.zeros(tokenizer.encoding.n_vocab, dtype=np.float32)
        logits[RIVALS[: reply.rivals]] = 29.99
        done = written(prefix, tokenizer)
        next_token = reply.tokens[len(done)] if len(done) < len(reply.tokens) else tokenizer.eot
        logits[next_token] = 30.0
        if prefix[-1] == tokenizer.sot:
            logits[tokenizer.no_speech] = reply.no_speech
            if language is not None:
                logits[language] = 40.0
        return logits

    return script


def tree(branches: dict[tuple[int, ...], dict[int, float]]) -> Script:
    """Probabilities of the next token after each written sequence; <|endoftext|> elsewhere."""

    def script(window: int, attempt: int, prefix: list[int]) -> np.ndarray:
        logits = np.full(N_VOCAB, -np.inf, dtype=np.float32)
        for token, p in branches.get(tuple(written(prefix)), {EOT: 1.0}).items():
            logits[token] = math.log(p)
        return logits

    return script


MEL = np.zeros((80, 3000), dtype=np.float32)


# --- multilingual models -------------------------------------------------------------------


@pytest.fixture(scope="module")
def multilingual_dir(tmp_path_factory):
    """GPT-2's tokens plus the empty token that multilingual vocabularies have at 50256."""
    tokens = (EN_DIR / "vocabulary.txt").read_text(encoding="utf-8").split("\n")
    directory = tmp_path_factory.mktemp("multilingual")
    (directory / "vocabulary.json").write_text(json.dumps(tokens[:50256] + ["", "<|endoftext|>"]))
    return directory


def german_model(multilingual_dir) -> tuple["FakeModel", int, list[int]]:
    """A multilingual fake model that hears German and answers one segment,
    the German language token, and the start of transcript it should get."""
    tokenizer = get_tokenizer(True, vocab_dir=multilingual_dir)
    german = tokenizer.to_language_token("de")
    ts0 = tokenizer.timestamp_begin
    reply = [Reply([ts0, HELLO, ts0 + 50])]
    script = replies(reply, reply, tokenizer=tokenizer, language=german)
    model = FakeModel(script, multilingual=True, tokenizer_dir=multilingual_dir, n_vocab=51865)
    return model, german, [tokenizer.sot, german, tokenizer.transcribe]


# --- transcribe: a silent log-mel, audio of a given length, segments in brief ----------------


@pytest.fixture
def fake_mel(monkeypatch):
    """The log-mel kernel replaced by silence of the right shape: the fake model ignores it."""

    def log_mel_spectrogram(audio, n_mels=80, padding=0):
        return np.zeros((n_mels, (len(audio) + padding) // 160), dtype=np.float32)

    monkeypatch.setattr(transcribe_module, "log_mel_spectrogram", log_mel_spectrogram)


def seconds_of_audio(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * 16000), dtype=np.float32)


def segment_summary(result: dict) -> list[tuple]:
    return [(s["id"], s["seek"], s["start"], s["end"], s["text"]) for s in result["segments"]]
