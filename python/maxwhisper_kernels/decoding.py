"""Decoding 30-second windows into tokens: openai-whisper's ``whisper/decoding.py`` in NumPy.

The model is reached only through the interface described by `WhisperModel` and `Inference`:
the encoder output stays in the model's own buffers (an opaque `AudioFeatures` handle) and the
decoder hands back NumPy logits, on which every search and filtering step below runs.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from .audio import CHUNK_LENGTH
from .tokenizer import Tokenizer, get_tokenizer

# Whatever model.encode returns: only the model looks inside, but for its n_audio (batch size).
AudioFeatures = Any


class Inference(Protocol):
    """The decoder of one batch of audio features, with its key/value cache."""

    def logits(self, tokens: np.ndarray, positions: Sequence[int] | None = None) -> np.ndarray:
        """Logits [rows, len(positions), n_vocab] at the given positions of tokens [rows, n_ctx]
        (negative ones from the end), which must not be in the cache yet; by default every new
        position: all on the first call, then only the last one (the others are cached)."""

    def rearrange_kv_cache(self, source_indices: list[int]) -> None:
        """Makes cache row i a copy of row source_indices[i] (beam search reorders beams)."""

    def cleanup_caching(self) -> None:
        """Frees the cache."""

    def cross_attention_weights(self) -> list[np.ndarray] | None:
        """Per decoder layer, the softmax cross-attention [rows, n_head, n_new, n_audio_ctx] of
        the last logits() call, or None when the model does not record them."""


class WhisperModel(Protocol):
    dims: Any  # ModelDimensions
    is_multilingual: bool
    num_languages: int
    alignment_heads: list[tuple[int, int]] | None
    tokenizer_dir: Any  # str | os.PathLike | None

    def encode(self, mel: np.ndarray) -> AudioFeatures: ...

    def new_inference(self, audio_features: AudioFeatures, n_group: int = 1) -> Inference: ...


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """log_softmax over the last axis in float64; -inf logits (suppressed tokens) stay -inf."""
    x = logits.astype(np.float64)
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def logsumexp(x: np.ndarray) -> float:
    """log(sum(exp(x))) of a 1-D array; -inf when every entry is -inf."""
    peak = x.max()
    if peak == -np.inf:
        return -np.inf
    return float(peak + np.log(np.exp(x - peak).sum()))


def compression_ratio(text: str) -> float:
    """How well zlib compresses the text: repetition loops compress far better than speech."""
    text_bytes = text.encode("utf-8")
    return len(text_bytes) / len(zlib.compress(text_bytes))


def get_model_tokenizer(
    model: WhisperModel, language: str | None = None, task: str | None = None
) -> Tokenizer:
    return get_tokenizer(
        model.is_multilingual,
        num_languages=model.num_languages,
        language=language,
        task=task,
        vocab_dir=model.tokenizer_dir,
    )


def check_language_and_task(model: WhisperModel, language: str | None, task: str) -> None:
    """English-only models know neither language tokens nor translation; openai-whisper would
    quietly transcribe in English instead, which hides a user's mistake."""
    if model.is_multilingual:
        return
    if task == "translate":
        raise ValueError("this is an English-only model: it cannot translate (task='translate')")
    if language is not None and language.lower() not in ("en", "english"):
        raise ValueError(
            f"this is an English-only model: it cannot transcribe language {language!r}; "
            "use a multilingual model or language='en'"
        )


def _encode(model: WhisperModel, mel: np.ndarray | AudioFeatures) -> tuple[AudioFeatures, int]:
    """Audio features of a batch of mels [n_audio, n_mels, n_frames], or the features given."""
    if not isinstance(mel, np.ndarray):
        return mel, mel.n_audio
    return model.encode(np.ascontiguousarray(mel, dtype=np.float32)), mel.shape[0]


def _detect_language(
    model: WhisperModel, audio_features: AudioFeatures, n_audio: int, tokenizer: Tokenizer
) -> tuple[np.ndarray, list[dict[str, float]]]:
    if tokenizer.language is None or tokenizer.language_token not in tokenizer.sot_sequence:
        raise ValueError("This model doesn't have language tokens so it can't perform lang id")

    # A pass of its own over <|startoftranscript|> alone, so as not to disturb any decoding
    # cache; the next token's distribution over language tokens is the answer.
    inference = model.new_inference(audio_features, n_group=1)
    try:
        logits = inference.logits(np.full((n_audio, 1), tokenizer.sot, dtype=np.int64))[:, 0]
    finally:
        inference.cleanup_caching()

    language_tokens = np.array(tokenizer.all_language_tokens)
    language_logprobs = log_softmax(logits[:, language_tokens])
    best = language_tokens[language_logprobs.argmax(axis=-1)]
    probs = [
        dict(zip(tokenizer.all_language_codes, np.exp(row).tolist())) for row in language_logprobs
    ]
    return best, probs


def detect_language(
    model: WhisperModel, mel: np.ndarray | AudioFeatures, tokenizer: Tokenizer | None = None
) -> tuple[int | np.ndarray, dict[str, float] | list[dict[str, float]]]:
    """The most probable language token and the probability of every language, for one mel
    [n_mels, n_frames] (then an int and a dict), a batch [n_audio, n_mels, n_frames] or the
    audio features of a batch (then an array and a list of dicts)."""
    if tokenizer is None:
        tokenizer = get_model_tokenizer(model)
    single = isinstance(mel, np.ndarray) and mel.ndim == 2
    audio_features, n_audio = _encode(model, mel[None] if single else mel)
    tokens, probs = _detect_language(model, audio_features, n_audio, tokenizer)
    if single:
        return int(tokens[0]), probs[0]
    return tokens, probs


@dataclass(frozen=True)
class DecodingOptions:
    # whether to perform X->X "transcribe" or X->English "translate"
    task: str = "transcribe"

    # language that the audio is in; uses detected language if None
    language: str | None = None

    # sampling-related options
    temperature: float = 0.0
    sample_len: int | None = None  # maximum number of tokens to sample
    best_of: int | None = None  # number of independent sample trajectories, if t > 0
    beam_size: int | None = None  # number of beams in beam search, if t == 0
    patience: float | None = None  # patience in beam search (arxiv:2204.05424)

    # "alpha" in Google NMT, or None for length norm, when ranking generations
    # to select which to return among the beams or best-of-N samples
    length_penalty: float | None = None

    # text or tokens to feed as the prompt (previous context) or the prefix (of this window)
    prompt: str | list[int] | None = None
    prefix: str | list[int] | None = None

    # token ids (or comma-separated ids) to suppress; "-1" stands for the tokenizer's
    # non_speech_tokens (symbols and speaker-tag punctuation)
    suppress_tokens: str | Iterable[int] | None = "-1"
    suppress_blank: bool = True  # suppress a blank or <|endoftext|> first token

    # timestamp sampling options
    without_timestamps: bool = False  # use <|notimestamps|> to sample text tokens only
    max_initial_timestamp: float | None = 1.0

    # seed of the generator that samples at temperature > 0; None draws fresh entropy
    seed: int | None = None


@dataclass(frozen=True)
class DecodingResult:
    language: str
    language_probs: dict[str, float] | None = None
    tokens: list[int] = field(default_factory=list)
    text: str = ""
    avg_logprob: float = np.nan
    no_speech_prob: float = np.nan
    temperature: float = np.nan
    compression_ratio: float = np.nan


class LogitFilter:
    def apply(self, logits: np.ndarray, tokens: np.ndarray) -> None:
        """Masks logits [n_batch, n_vocab] in place, given the tokens [n_batch, n_ctx] so far
        (initial tokens included)."""
        raise NotImplementedError


class SuppressBlank(LogitFilter):
    """A window's text must not start with a space or end before it starts."""

    def __init__(self, tokenizer: Tokenizer, sample_begin: int):
        self.suppressed = [*tokenizer.encode(" "), tokenizer.eot]
        self.sample_begin = sample_begin

    def apply(self, logits: np.ndarray, tokens: np.ndarray) -> None:
        if tokens.shape[1] == self.sample_begin:
            logits[:, self.suppressed] = -np.inf


class SuppressTokens(LogitFilter):
    def __init__(self, suppress_tokens: Sequence[int]):
        self.suppress_tokens = list(suppress_tokens)

    def apply(self, logits: np.ndarray, tokens: np.ndarray) -> None:
        logits[:, self.suppress_tokens] = -np.inf


class ApplyTimestampRules(LogitFilter):
    """Keeps the sampled text in Whisper's segment grammar:
    <|t0|> text <|t1|> <|t1'|> text <|t2|> ... [<|tn|>] <|endoftext|>."""

    def __init__(
        self, tokenizer: Tokenizer, sample_begin: int, max_initial_timestamp_index: int | None
    ):
        self.tokenizer = tokenizer
        self.sample_begin = sample_begin
        self.max_initial_timestamp_index = max_initial_timestamp_index

    def apply(self, logits: np.ndarray, tokens: np.ndarray) -> None:
        timestamp_begin = self.tokenizer.timestamp_begin
        eot = self.tokenizer.eot

        # <|notimestamps|> is chosen up front through without_timestamps, never sampled
        logits[:, self.tokenizer.no_timestamps] = -np.inf

        for k in range(tokens.shape[0]):
            sampled = tokens[k, self.sample_begin :]
            is_timestamp = sampled >= timestamp_begin
            last_was_timestamp = len(sampled) >= 1 and is_timestamp[-1]
            penultimate_was_timestamp = len(sampled) < 2 or is_timestamp[-2]

            # timestamps come in pairs (end of one segment, start of the next), except that a
            # lone one may end the text
            if last_was_timestamp:
                if penultimate_was_timestamp:  # a pair just closed: text must follow
                    logits[k, timestamp_begin:] = -np.inf
                else:  # a segment just ended: the next start, or the end of text
                    logits[k, :eot] = -np.inf

            timestamps = sampled[is_timestamp]
            if len(timestamps) > 0:
                # timestamps never decrease; and a segment must last at least one step, or
                # the model could loop on empty segments forever
                if last_was_timestamp and not penultimate_was_timestamp:
                    timestamp_last = timestamps[-1]
                else:
                    timestamp_last = timestamps[-1] + 1
                logits[k, timestamp_begin:timestamp_last] = -np.inf

        if tokens.shape[1] == self.sample_begin:
            # the text starts with a timestamp, no later than max_initial_timestamp
            logits[:, :timestamp_begin] = -np.inf
            if self.max_initial_timestamp_index is not None:
                last_allowed = timestamp_begin + self.max_initial_timestamp_index
                logits[:, last_allowed + 1 :] = -np.inf

        # when the timestamps together are likelier than any single text token, take a
        # timestamp: their probability is spread over many tokens and would otherwise lose
        # (compared on logits: the softmax's normaliser is common to both sides)
        for k in range(tokens.shape[0]):
            timestamp_logit = logsumexp(logits[k, timestamp_begin:])
            if timestamp_logit > logits[k, :timestamp_begin].max():
                logits[k, :timestamp_begin] = -np.inf


class SequenceRanker:
    def rank(self, tokens: list[list[list[int]]], sum_logprobs: list[list[float]]) -> list[int]:
        """The index of the sample to keep in each audio's group of candidates."""
        raise NotImplementedError


class MaximumLikelihoodRanker(SequenceRanker):
    """Highest log probability, divided by the length (length_penalty None) or by Google NMT's
    length penalty ((5 + length) / 6) ** alpha."""

    def __init__(self, length_penalty: float | None):
        self.length_penalty = length_penalty

    def _penalty(self, length: int) -> float:
        if self.length_penalty is None:
            return length
        return ((5 + length) / 6) ** self.length_penalty

    def rank(self, tokens: list[list[list[int]]], sum_logprobs: list[list[float]]) -> list[int]:
        return [
            int(np.argmax([lp / self._penalty(len(t)) for t, lp in zip(group, logprobs)]))
            for group, logprobs in zip(tokens, sum_logprobs)
        ]


class TokenDecoder:
    def reset(self) -> None:
        """Forgets the state of the previous decoding."""

    def update(
        self, tokens: np.ndarray, logits: np.ndarray, sum_logprobs: np.ndarray
    ) -> tuple[np.ndarray, bool]:
        """Appends the next token to tokens [n_batch, n_ctx] given the filtered logits
        [n_batch, n_vocab]; adds its log probability to sum_logprobs [n_batch] in place.
        Returns the longer tokens and whether every sequence is complete."""
        raise NotImplementedError

    def finalize(
        self, tokens: np.ndarray, sum_logprobs: np.ndarray
    ) -> tuple[list[list[list[int]]], list[list[float]]]:
        """The candidate sequences of each audio, each ending in <|endoftext|>, and their log
        probabilities, from tokens [n_audio, n_group, n_ctx] and sum_logprobs [n_audio, n_group]."""
        raise NotImplementedError


class GreedyDecoder(TokenDecoder):
    """The most probable token at temperature 0, otherwise a sample at that temperature."""

    def __init__(self, temperature: float, eot: int, rng: np.random.Generator):
        self.temperature = temperature
        self.eot = eot
        self.rng = rng

    def update(
        self, tokens: np.ndarray, logits: np.ndarray, sum_logprobs: np.ndarray
    ) -> tuple[np.ndarray, bool]:
        if self.temperature == 0:
            next_tokens = logits.argmax(axis=-1)
        else:
            # one uniform per row against the cumulative softmax(logits / T): cheaper than
            # Gumbel-max noise over the whole vocabulary (two logs per token), 4.5 vs 6.4 ms
            # for 5 rows
            scaled = logits.astype(np.float64) / self.temperature
            cdf = np.cumsum(np.exp(scaled - scaled.max(axis=-1, keepdims=True)), axis=-1)
            total = cdf[:, -1]
            u = np.minimum(self.rng.random(len(cdf)) * total, np.nextafter(total, 0))
            next_tokens = (cdf > u[:, None]).argmax(axis=-1)  # zero-probability tokens never win

        logprobs = log_softmax(logits)
        rows = np.arange(len(next_tokens))
        finished = tokens[:, -1] == self.eot
        sum_logprobs += np.where(finished, 0.0, logprobs[rows, next_tokens])

        next_tokens[finished] = self.eot
        tokens = np.concatenate([tokens, next_tokens[:, None]], axis=-1)
        return tokens, bool((tokens[:, -1] == self.eot).all())

    def finalize(
        self, tokens: np.ndarray, sum_logprobs: np.ndarray
    ) -> tuple[list[list[list[int]]], list[list[float]]]:
        # sequences cut off by sample_len get the <|endoftext|> they never sampled
        eot = np.full((*tokens.shape[:-1], 1), self.eot, dtype=tokens.dtype)
        return np.concatenate([tokens, eot], axis=-1).tolist(), sum_logprobs.tolist()


class BeamSearchDecoder(TokenDecoder):
    """Beam search keeping beam_size open beams per audio, until round(beam_size * patience)
    sequences have finished (patience as in arxiv:2204.05424)."""

    def __init__(
        self, beam_size: int, eot: int, inference: Inference, patience: float | None = None
    ):
        self.beam_size = beam_size
        self.eot = eot
        self.inference = inference
        self.patience = patience or 1.0
        self.max_candidates: int = round(beam_size * self.patience)
        self.finished_sequences: list[dict[tuple[int, ...], float]] | None = None
        if self.max_candidates <= 0:
            raise ValueError(f"Invalid beam size ({beam_size}) or patience ({patience})")

    def reset(self) -> None:
        self.finished_sequences = None

    def _top_tokens(self, logprobs: np.ndarray) -> np.ndarray:
        """The beam_size + 1 most probable tokens of each row [n_rows, beam_size + 1], best
        first, ties to the lower id. k argmax passes: argpartition takes 0.4 ms per row, and
        6 ms when most of the vocabulary is -inf (timestamp rules), against 10 us per argmax."""
        k = self.beam_size + 1
        work = logprobs.copy()
        rows = np.arange(len(work))
        top = np.empty((len(work), k), dtype=np.int64)
        for j in range(k):
            top[:, j] = work.argmax(axis=-1)
            last = work[rows, top[:, j]]
            work[rows, top[:, j]] = -np.inf
        # a row with fewer than k possible tokens would repeat its first -inf one
        for row in np.flatnonzero(last == -np.inf):
            order = np.lexsort((np.arange(logprobs.shape[-1]), -logprobs[row]))
            top[row] = order[:k]
        return top

    def update(
        self, tokens: np.ndarray, logits: np.ndarray, sum_logprobs: np.ndarray
    ) -> tuple[np.ndarray, bool]:
        if tokens.shape[0] % self.beam_size != 0:
            raise ValueError(f"{tokens.shape}[0] % {self.beam_size} != 0")

        n_audio = tokens.shape[0] // self.beam_size
        if self.finished_sequences is None:  # for the first update
            self.finished_sequences = [{} for _ in range(n_audio)]

        logprobs = log_softmax(logits)
        top_tokens = self._top_tokens(logprobs).tolist()
        next_tokens: list[tuple[int, ...]] = []
        source_indices: list[int] = []
        finished_sequences: list[dict[tuple[int, ...], float]] = []
        for i in range(n_audio):
            scores: dict[tuple[int, ...], float] = {}
            sources: dict[tuple[int, ...], int] = {}

            # every beam extended by each of its beam_size + 1 likeliest tokens: enough to keep
            # beam_size open beams even when one of them is <|endoftext|>
            for j in range(self.beam_size):
                idx = i * self.beam_size + j
                prefix = tuple(tokens[idx].tolist())
                for token in top_tokens[idx]:
                    sequence = (*prefix, token)
                    scores[sequence] = float(sum_logprobs[idx] + logprobs[idx, token])
                    sources[sequence] = idx

            # keep the beam_size best open sequences; finished ones met on the way are saved
            finished: dict[tuple[int, ...], float] = {}
            saved = 0
            for sequence in sorted(scores, key=scores.get, reverse=True):
                if sequence[-1] == self.eot:
                    finished[sequence] = scores[sequence]
                else:
                    sum_logprobs[len(next_tokens)] = scores[sequence]
                    next_tokens.append(sequence)
                    source_indices.append(sources[sequence])
                    saved += 1
                    if saved == self.beam_size:
                        break
            finished_sequences.append(finished)

        tokens = np.array(next_tokens, dtype=tokens.dtype)
        self.inference.rearrange_kv_cache(source_indices)

        for previously_finished, newly_finished in zip(self.finished_sequences, finished_sequences):
            for sequence in sorted(newly_finished, key=newly_finished.get, reverse=True):
                if len(previously_finished) >= self.max_candidates:
                    break  # the candidate list is full
                previously_finished[sequence] = newly_finished[sequence]

        completed = all(
            len(sequences) >= self.max_candidates for sequences in self.finished_sequences
        )
        return tokens, completed

    def finalize(
        self, tokens: np.ndarray, sum_logprobs: np.ndarray
    ) -> tuple[list[list[list[int]]], list[list[float]]]:
        # an audio with fewer than beam_size finished sequences (sample_len ran out) gets its
        # best open beams as candidates too
        for i, sequences in enumerate(self.finished_sequences):
            if len(sequences) < self.beam_size:
                for j in np.argsort(sum_logprobs[i])[::-1]:
                    sequence = (*tokens[i, j].tolist(), self.eot)
                    sequences[sequence] = float(sum_logprobs[i, j])
                    if len(sequences) >= self.beam_size:
                        break

        return (
            [[list(sequence) for sequence in sequences] for sequences in self.finished_sequences],
            [list(sequences.values()) for sequences in self.finished_sequences],
        )


class DecodingTask:
    def __init__(self, model: WhisperModel, options: DecodingOptions):
        self.model = model
        self.options = self._verify_options(model, options)

        # Until detection fills it in, a multilingual prompt holds a placeholder language.
        language = options.language or "en"
        self.tokenizer = get_model_tokenizer(model, language=language, task=options.task)

        self.n_group: int = options.beam_size or options.best_of or 1
        self.n_ctx: int = model.dims.n_text_ctx
        self.sample_len: int = options.sample_len or model.dims.n_text_ctx // 2

        self.sot_sequence: tuple[int, ...] = self.tokenizer.sot_sequence
        if options.without_timestamps:
            self.sot_sequence = self.tokenizer.sot_sequence_including_notimestamps

        self.initial_tokens: tuple[int, ...] = self._get_initial_tokens()
        self.sample_begin: int = len(self.initial_tokens)
        self.sot_index: int = self.initial_tokens.index(self.tokenizer.sot)

        self.sequence_ranker: SequenceRanker = MaximumLikelihoodRanker(options.length_penalty)
        self.logit_filters: list[LogitFilter] = self._get_logit_filters()

    @staticmethod
    def _verify_options(model: WhisperModel, options: DecodingOptions) -> DecodingOptions:
        check_language_and_task(model, options.language, options.task)
        if options.beam_size is not None and options.best_of is not None:
            raise ValueError("beam_size and best_of can't be given together")
        if options.temperature == 0 and options.best_of is not None:
            raise ValueError("best_of with greedy sampling (T=0) is not compatible")
        if options.patience is not None and options.beam_size is None:
            raise ValueError("patience requires beam_size to be given")
        if options.length_penalty is not None and not 0 <= options.length_penalty <= 1:
            raise ValueError("length_penalty (alpha) should be a value between 0 and 1")
        for name in ("beam_size", "best_of", "sample_len"):
            if (value := getattr(options, name)) is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        return options

    def _get_initial_tokens(self) -> tuple[int, ...]:
        tokens = list(self.sot_sequence)

        if prefix := self.options.prefix:
            prefix_tokens = (
                self.tokenizer.encode(" " + prefix.strip()) if isinstance(prefix, str) else prefix
            )
            # the prefix and the sampled text share the second half of the context
            max_prefix_len = self.n_ctx // 2 - self.sample_len
            if max_prefix_len > 0:
                prefix_tokens = prefix_tokens[-max_prefix_len:]
            tokens = tokens + list(prefix_tokens)

        if prompt := self.options.prompt:
            prompt_tokens = (
                self.tokenizer.encode(" " + prompt.strip()) if isinstance(prompt, str) else prompt
            )
            # the prompt gets the first half of the context, <|startofprev|> included
            tokens = [self.tokenizer.sot_prev, *prompt_tokens[-(self.n_ctx // 2 - 1) :], *tokens]

        return tuple(tokens)

    def _get_suppress_tokens(self) -> tuple[int, ...]:
        suppress_tokens = self.options.suppress_tokens
        if isinstance(suppress_tokens, str):
            suppress_tokens = [int(t) for t in suppress_tokens.split(",") if t.strip()]
        suppress_tokens = list(suppress_tokens or [])

        if -1 in suppress_tokens:
            suppress_tokens = [t for t in suppress_tokens if t >= 0]
            suppress_tokens.extend(self.tokenizer.non_speech_tokens)

        # the prompt's control tokens are never text; no-speech is read off separately
        tokenizer = self.tokenizer
        suppress_tokens.extend(
            [
                tokenizer.transcribe,
                tokenizer.translate,
                tokenizer.sot,
                tokenizer.sot_prev,
                tokenizer.sot_lm,
                tokenizer.no_speech,
            ]
        )
        return tuple(sorted(set(suppress_tokens)))

    def _get_logit_filters(self) -> list[LogitFilter]:
        filters: list[LogitFilter] = []
        if self.options.suppress_blank:
            filters.append(SuppressBlank(self.tokenizer, self.sample_begin))
        if self.options.suppress_tokens:
            filters.append(SuppressTokens(self._get_suppress_tokens()))
        if not self.options.without_timestamps:
            precision = CHUNK_LENGTH / self.model.dims.n_audio_ctx  # seconds per timestamp: 0.02
            max_initial_timestamp_index = None
            if self.options.max_initial_timestamp:
                max_initial_timestamp_index = round(self.options.max_initial_timestamp / precision)
            filters.append(
                ApplyTimestampRules(self.tokenizer, self.sample_begin, max_initial_timestamp_index)
            )
        return filters

    def _get_decoder(self, inference: Inference) -> TokenDecoder:
        if self.options.beam_size is not None:
            return BeamSearchDecoder(
                self.options.beam_size, self.tokenizer.eot, inference, self.options.patience
            )
        rng = np.random.default_rng(self.options.seed)
        return GreedyDecoder(self.options.temperature, self.tokenizer.eot, rng)

    def _detect_language(
        self, audio_features: AudioFeatures, n_audio: int, tokens: np.ndarray
    ) -> tuple[list[str], list[dict[str, float]] | None]:
        """The language of each audio, written into the prompt when it was not given."""
        if self.options.language is not None or not self.model.is_multilingual:
            return [self.options.language or "en"] * n_audio, None

        language_tokens, language_probs = _detect_language(
            self.model, audio_features, n_audio, self.tokenizer
        )
        tokens[:, self.sot_index + 1] = language_tokens
        languages = [max(probs, key=probs.get) for probs in language_probs]
        return languages, language_probs

    def _main_loop(
        self, inference: Inference, decoder: TokenDecoder, tokens: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, list[float]]:
        sum_logprobs = np.zeros(tokens.shape[0])
        no_speech_probs = [np.nan] * tokens.shape[0]

        try:
            for i in range(self.sample_len):
                if i == 0:  # the no-speech probability is the prediction after <|sot|>
                    logits = inference.logits(tokens, positions=[self.sot_index, -1])
                    probs_at_sot = np.exp(log_softmax(logits[:, 0]))
                    no_speech_probs = probs_at_sot[:, self.tokenizer.no_speech].tolist()
                else:
                    logits = inference.logits(tokens, positions=[-1])

                # the filters mask in place: a float64 copy leaves the model's array alone
                logits = logits[:, -1].astype(np.float64)
                for logit_filter in self.logit_filters:
                    logit_filter.apply(logits, tokens)

                tokens, completed = decoder.update(tokens, logits, sum_logprobs)
                if completed or tokens.shape[-1] > self.n_ctx:
                    break
        finally:
            inference.cleanup_caching()

        return tokens, sum_logprobs, no_speech_probs

    def run(
        self,
        mel: np.ndarray | AudioFeatures,
        initial_tokens: Sequence[Sequence[int]] | None = None,
    ) -> list[DecodingResult]:
        """Decodes mels [n_audio, n_mels, n_frames] or the audio features of such a batch;
        initial_tokens, one row per audio, replace this task's own (each audio its prompt)."""
        tokenizer = self.tokenizer
        audio_features, n_audio = _encode(self.model, mel)
        if initial_tokens is None:
            initial_tokens = [self.initial_tokens] * n_audio
        # the rows of a batch share their positions in the text context, and sample_begin
        if len(initial_tokens) != n_audio or any(
            len(row) != self.sample_begin for row in initial_tokens
        ):
            raise ValueError(
                f"expected {n_audio} rows of {self.sample_begin} initial tokens, one per audio"
            )
        tokens = np.array(initial_tokens, dtype=np.int64)

        languages, language_probs = self._detect_language(audio_features, n_audio, tokens)

        # n_group rows per audio, for beam search or best-of-n sampling
        tokens = np.repeat(tokens, self.n_group, axis=0)
        inference = self.model.new_inference(audio_features, n_group=self.n_group)
        decoder = self._get_decoder(inference)
        tokens, sum_logprobs, no_speech_probs = self._main_loop(inference, decoder, tokens)

        no_speech_probs = no_speech_probs[:: self.n_group]
        tokens = tokens.reshape(n_audio, self.n_group, -1)
        sum_logprobs = sum_logprobs.reshape(n_audio, self.n_group)

        # the candidates of each group, from the first sampled token up to <|endoftext|>
        candidates, candidate_logprobs = decoder.finalize(tokens, sum_logprobs)
        candidates = [
            [t[self.sample_begin : t.index(tokenizer.eot, self.sample_begin)] for t in group]
            for group in candidates
        ]

        selected = self.sequence_ranker.rank(candidates, candidate_logprobs)
        results = []
        for i in range(n_audio):
            chosen = candidates[i][selected[i]]
            text = tokenizer.decode(chosen).strip()
            results.append(
                DecodingResult(
                    language=languages[i],
                    language_probs=None if language_probs is None else language_probs[i],
                    tokens=chosen,
                    text=text,
                    # + 1 for the <|endoftext|>, whose log probability is in the sum
                    avg_logprob=candidate_logprobs[i][selected[i]] / (len(chosen) + 1),
                    no_speech_prob=no_speech_probs[i],
                    temperature=self.options.temperature,
                    compression_ratio=compression_ratio(text),
                )
            )
        return results


def decode_batch(
    model: WhisperModel, mel: np.ndarray | AudioFeatures, options: Sequence[DecodingOptions]
) -> list[DecodingResult]:
    """Decodes a batch of windows, mels [n_audio, n_mels, 3000] or their audio features, each
    with its own options. These may differ only in their prompts, which must come to the same
    number of tokens: one decoder pass serves every window, at the same text positions."""
    tasks = [DecodingTask(model, o) for o in options]
    if any(replace(o, prompt=None) != replace(options[0], prompt=None) for o in options):
        raise ValueError("the options of a batch may differ only in their prompts")
    return tasks[0].run(mel, [task.initial_tokens for task in tasks])


def decode(
    model: WhisperModel,
    mel: np.ndarray | AudioFeatures,
    options: DecodingOptions = DecodingOptions(),
    **kwargs: Any,
) -> DecodingResult | list[DecodingResult]:
    """Decodes 30-second window(s): one mel [n_mels, 3000] gives one DecodingResult; a batch
    [n_audio, n_mels, 3000], or audio features from model.encode, a list of them.
    Keyword arguments override fields of `options`."""
    if kwargs:
        options = replace(options, **kwargs)
    single = isinstance(mel, np.ndarray) and mel.ndim == 2
    results = DecodingTask(model, options).run(mel[None] if single else mel)
    return results[0] if single else results
