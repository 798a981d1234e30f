"""Decoding a batch of 30-second windows: the prompt layout, then the step loop that asks the
model for logits, applies the token rules and lets the search pick, then the choice of text.

    plan = plan_decoding(model, options)        # fixed before the first token
    results = run_plan(model, plan, mel)        # one DecodingResult per window
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..audio import CHUNK_LENGTH
from ..tokenizer import Tokenizer
from .interface import (
    AudioFeatures,
    Inference,
    WhisperModel,
    check_language_and_task,
    features_of,
    get_model_tokenizer,
)
from .language import language_scores
from .loops import LoopStopper
from .options import DecodingOptions, DecodingResult, compression_ratio, validate
from .rules import TokenRules, token_rules
from .search import BeamSearch, Ranked, Sampler, best_candidates, log_softmax


# Seconds before a window's speech end (DecodingOptions.speech_end) within which the text may
# still end on an opened segment. On the batched pipeline's long clips (tiny.en int8) 0.5, 1
# and 2 s all lowered the WER; 1 s did best (BUILD.md).
UNSAID_MARGIN = 1.0


@dataclass(frozen=True)
class DecodingPlan:
    """What one DecodingOptions fixes before the first token is written."""

    options: DecodingOptions
    tokenizer: Tokenizer
    initial_tokens: tuple[int, ...]  # [<|startofprev|> prompt] sot sequence [prefix]
    sample_begin: int  # len(initial_tokens): where written tokens start
    sot_index: int  # position of <|startoftranscript|>; its logits give no-speech
    n_group: int  # rows per window: beams, or draws for best_of
    sample_len: int  # most tokens to write
    n_ctx: int  # the decoder's text context
    rules: TokenRules


def _as_tokens(text_or_ids: str | list[int], tokenizer: Tokenizer) -> list[int]:
    if isinstance(text_or_ids, str):
        return tokenizer.encode(" " + text_or_ids.strip())
    return list(text_or_ids)


def _initial_tokens(
    options: DecodingOptions, tokenizer: Tokenizer, n_ctx: int, sample_len: int
) -> tuple[int, ...]:
    if options.without_timestamps:
        tokens = list(tokenizer.sot_sequence_including_notimestamps)
    else:
        tokens = list(tokenizer.sot_sequence)
    if options.prefix:
        # the forced prefix and the written text share the second half of the context
        room = n_ctx // 2 - sample_len
        prefix = _as_tokens(options.prefix, tokenizer)
        tokens += prefix[-room:] if room > 0 else prefix
    if options.prompt:
        # the prompt keeps its most recent tokens, up to the first half with <|startofprev|>
        previous = _as_tokens(options.prompt, tokenizer)[-(n_ctx // 2 - 1) :]
        tokens = [tokenizer.sot_prev, *previous, *tokens]
    return tuple(tokens)


def _timestamp_steps(model: WhisperModel, seconds: float) -> int:
    """seconds into a window as timestamp tokens past <|0.00|> (0.02 s each)."""
    return round(seconds / (CHUNK_LENGTH / model.dims.n_audio_ctx))


def plan_decoding(model: WhisperModel, options: DecodingOptions) -> DecodingPlan:
    check_language_and_task(model, options.language, options.task)
    validate(options)
    # a multilingual prompt needs a language token; detection overwrites this placeholder
    tokenizer = get_model_tokenizer(model, language=options.language or "en", task=options.task)
    n_ctx = model.dims.n_text_ctx
    sample_len = options.sample_len or n_ctx // 2
    initial = _initial_tokens(options, tokenizer, n_ctx, sample_len)

    latest_start = None
    if options.max_initial_timestamp:
        latest_start = _timestamp_steps(model, options.max_initial_timestamp)
    rules = token_rules(
        tokenizer,
        len(initial),
        suppress_blank=options.suppress_blank,
        suppress_tokens=options.suppress_tokens,
        timestamps=not options.without_timestamps,
        latest_start=latest_start,
    )
    return DecodingPlan(
        options=options,
        tokenizer=tokenizer,
        initial_tokens=initial,
        sample_begin=len(initial),
        sot_index=initial.index(tokenizer.sot),
        n_group=options.beam_size or options.best_of or 1,
        sample_len=sample_len,
        n_ctx=n_ctx,
        rules=rules,
    )


def _write(
    plan: DecodingPlan,
    inference: Inference,
    search: Sampler | BeamSearch,
    tokens: np.ndarray,
    last_open_end: np.ndarray | None,
    group: int,
) -> tuple[np.ndarray, np.ndarray, list[float], set[int]]:
    """The step loop: (tokens, sum of log probabilities, no-speech probability) per row, and
    the rows stopped in a loop after a closed segment (loops.py). Rows that ended are padded
    with <|endoftext|> to the longest. last_open_end: per row, see rules.timestamp_bars.
    group: rows per audio."""
    eot = plan.tokenizer.eot
    sums = np.zeros(len(tokens))
    no_speech = [np.nan] * len(tokens)
    written = np.full((len(tokens), plan.n_ctx + 1), eot, dtype=tokens.dtype)
    live = np.arange(len(tokens))  # the rows still stepped, as rows of the whole batch
    loops = None
    if plan.options.stop_loops and isinstance(search, Sampler):
        # the length a row that never ends reaches: the step limit or the context, first
        full_length = min(plan.sample_begin + plan.sample_len, plan.n_ctx + 1)
        stamps = None if plan.options.without_timestamps else plan.tokenizer.timestamp_begin
        loops = LoopStopper(plan.sample_begin, full_length, eot, stamps)
    in_graph = getattr(inference, "applies_rules", False)  # token rules in the decoder graph
    barred, first_timestamp = plan.rules.barred_everywhere, plan.rules.first_timestamp or -1
    scratch = None
    for step in range(plan.sample_len):
        # the first call also reads the prediction after <|sot|>: the no-speech odds
        positions = [plan.sot_index, -1] if step == 0 else [-1]
        ends = None if last_open_end is None else last_open_end[live]
        ranked = None
        if in_graph:
            bars = plan.rules.bars(tokens, ends)
            logits, ruled, top, stats = inference.ruled_logits(tokens, positions, bars, barred, first_timestamp)
            ranked = Ranked(top, stats[:, 0], stats[:, 1])
        else:
            logits = inference.logits(tokens, positions)
            # a copy in the model's own float32 for the rules to write into; the same memory
            # every step: fresh memory this size (0.2 MB a row) costs page faults
            if scratch is None:
                scratch = np.empty((len(tokens), logits.shape[-1]), dtype=logits.dtype)
            ruled = scratch[: len(logits)]
            np.copyto(ruled, logits[:, -1])
            plan.rules.apply(ruled, tokens, ends)
        if step == 0:
            no_speech = np.exp(log_softmax(logits[:, 0]))[:, plan.tokenizer.no_speech].tolist()
        live_sums = sums[live]
        tokens, finished = search.step(tokens, ruled, live_sums, ranked)
        sums[live] = live_sums
        if loops is not None:
            finished = loops.check(live, tokens, sums) or finished
        if finished or tokens.shape[-1] > plan.n_ctx:
            break
        if isinstance(search, Sampler):  # beam search keeps its finished lists by audio index
            live, tokens = _drop_ended(inference, search, group, eot, live, tokens, written)
    written[live, : tokens.shape[-1]] = tokens
    width = tokens.shape[-1]
    if loops is None:
        return written[:, :width], sums, no_speech, set()
    width = max(width, loops.write_out(written))
    return written[:, :width], sums, no_speech, loops.cut


def _drop_ended(
    inference: Inference,
    search: Sampler,
    group: int,
    eot: int,
    live: np.ndarray,
    tokens: np.ndarray,
    written: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Takes the audios whose rows all wrote <|endoftext|> out of the batch once they are at
    least half of it: each later step then costs fewer rows (a batch of windows runs as long as
    its longest text). Leaving costs a copy of the others' cross-attention inputs, hence the
    halving. A sampled row that ended only repeats <|endoftext|>, so nothing else changes."""
    ended = (tokens[:, -1] == eot).reshape(-1, group).all(axis=1)
    if ended.sum() * 2 < len(ended):
        return live, tokens
    keep = np.repeat(~ended, group)
    gone = live[~keep]
    written[gone, : tokens.shape[-1]] = tokens[~keep]
    inference.keep_rows(np.flatnonzero(keep))
    search.keep(np.flatnonzero(keep))
    return live[keep], tokens[keep]


def _last_open_ends(model: WhisperModel, speech_ends: Sequence[float | None]) -> np.ndarray | None:
    """Per audio, the timestamp step before which an opened segment must get its text (-1:
    none). The last second of speech is left out: a segment opened there may hold only a
    breath or the tail of the VAD's padding, and its text is decoded again as before."""
    if all(end is None for end in speech_ends):
        return None
    return np.array([-1 if end is None else _timestamp_steps(model, end - UNSAID_MARGIN) for end in speech_ends])


def run_plan(
    model: WhisperModel,
    plan: DecodingPlan,
    mel: np.ndarray | AudioFeatures,
    initial_tokens: Sequence[Sequence[int]] | None = None,
    speech_ends: Sequence[float | None] | None = None,
    temperatures: Sequence[float] | None = None,
) -> list[DecodingResult]:
    """Decodes mels [n_audio, n_mels, n_frames] (or their features). initial_tokens, one row
    per audio, stand in for the plan's own (each window its own prompt); all rows must have the
    plan's length, since the rows of a batch sit at the same text positions. speech_ends, one
    per audio, stand in for the options' speech_end. temperatures (sampling only) stand in for
    the options' one: each audio is then decoded at every one of them, its rows sharing its
    features, and the results come per audio, per temperature."""
    options, tokenizer = plan.options, plan.tokenizer
    temperatures = [options.temperature] if temperatures is None else list(temperatures)
    if options.beam_size is not None and len(temperatures) > 1:
        raise ValueError("beam search decodes at one temperature at a time")
    n_temps = len(temperatures)
    group = plan.n_group * n_temps  # rows per audio: a group of draws per temperature
    audio_features, n_audio = features_of(model, mel)
    rows = [plan.initial_tokens] * n_audio if initial_tokens is None else initial_tokens
    if len(rows) != n_audio or any(len(row) != plan.sample_begin for row in rows):
        raise ValueError(
            f"expected {n_audio} rows of {plan.sample_begin} initial tokens, one per audio"
        )
    tokens = np.array(rows, dtype=np.int64)

    languages: list[str] = [options.language or "en"] * n_audio
    language_probs = None
    if options.language is None and model.is_multilingual:
        found, language_probs = language_scores(model, audio_features, n_audio, tokenizer)
        tokens[:, plan.sot_index + 1] = found  # the placeholder language token
        languages = [max(probs, key=probs.get) for probs in language_probs]

    last_open_end = _last_open_ends(model, speech_ends or [options.speech_end] * n_audio)
    if last_open_end is not None:
        last_open_end = np.repeat(last_open_end, group)
    inference = model.new_inference(audio_features, n_group=group)
    rng = np.random.default_rng(options.seed)
    if options.beam_size is not None:
        search = BeamSearch(options.beam_size, tokenizer.eot, inference, options.patience)
    elif n_temps == 1:
        search = Sampler(temperatures[0], tokenizer.eot, rng)
    else:  # audio-major, then temperature, then the draws of one temperature
        row_temperatures = np.tile(np.repeat(temperatures, plan.n_group), n_audio)
        search = Sampler(row_temperatures, tokenizer.eot, rng)
    try:
        tokens, sums, no_speech, loop_cut = _write(
            plan, inference, search, np.repeat(tokens, group, 0), last_open_end, group
        )
    finally:
        inference.cleanup_caching()

    # each (audio, temperature) chooses among its own draws
    sequences, totals = search.candidates(
        tokens.reshape(n_audio * n_temps, plan.n_group, -1), sums.reshape(n_audio * n_temps, plan.n_group)
    )
    # keep only the written text: from sample_begin up to the first <|endoftext|>
    sequences = [
        [seq[plan.sample_begin : seq.index(tokenizer.eot, plan.sample_begin)] for seq in found]
        for found in sequences
    ]
    picked = best_candidates(sequences, totals, options.length_penalty)

    results = []
    for index, best in enumerate(picked):
        audio, which = divmod(index, n_temps)  # which temperature of the audio's
        text_tokens = sequences[index][best]
        text = tokenizer.decode(text_tokens).strip()
        results.append(
            DecodingResult(
                language=languages[audio],
                language_probs=None if language_probs is None else language_probs[audio],
                tokens=text_tokens,
                text=text,
                # the <|endoftext|> counts: its log probability is part of the sum
                avg_logprob=totals[index][best] / (len(text_tokens) + 1),
                no_speech_prob=no_speech[audio * group],  # every row of an audio has the same
                temperature=temperatures[which],
                compression_ratio=compression_ratio(text),
                loop_cut=index * plan.n_group + best in loop_cut,
            )
        )
    return results


def decode_batch(
    model: WhisperModel,
    mel: np.ndarray | AudioFeatures,
    options: Sequence[DecodingOptions],
    temperatures: Sequence[float] | None = None,
) -> list[DecodingResult]:
    """Decodes windows (mels [n_audio, n_mels, 3000] or their features) with one options set
    each. The sets may differ in their prompts and speech ends only, and the prompts must come
    to the same number of tokens: a single decoder run serves all windows, at shared text
    positions. temperatures: as run_plan's (len(temperatures) results per window)."""
    plans = [plan_decoding(model, o) for o in options]
    shared = [replace(o, prompt=None, speech_end=None) for o in options]
    if any(o != shared[0] for o in shared):
        raise ValueError("the options of a batch may differ only in their prompts and speech ends")
    speech_ends = [o.speech_end for o in options]
    initial = [plan.initial_tokens for plan in plans]
    return run_plan(model, plans[0], mel, initial, speech_ends, temperatures)


def decode(
    model: WhisperModel,
    mel: np.ndarray | AudioFeatures,
    options: DecodingOptions = DecodingOptions(),  # frozen, so one default is safe to share
    **overrides: Any,
) -> DecodingResult | list[DecodingResult]:
    """Decodes 30-second windows: a mel [n_mels, 3000] gives one DecodingResult, a batch
    [n_audio, n_mels, 3000] (or model.encode's features of one) a list. Keyword arguments
    replace fields of options."""
    if overrides:
        options = replace(options, **overrides)
    one = isinstance(mel, np.ndarray) and mel.ndim == 2
    results = run_plan(model, plan_decoding(model, options), mel[None] if one else mel)
    return results[0] if one else results
