"""A Whisper model on MAX: the checkpoint, its compiled encoder and decoder
graphs, and the per-window decoding state (KV cache) kept in MAX buffers."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from max.driver import CPU, Buffer, Device
from max.dtype import DType
from max.engine import InferenceSession, Model
from max.graph import DeviceRef

from . import COMPUTE_TYPES, os_memory
from .audio import HOP_LENGTH
from .cpu_device import cpu_session
from .graph import (
    build_decoder_step,
    build_encoder,
    decoder_matrices,
    decoder_parameters,
    encoder_parameters,
    exact_in_float16,
)
from .devices import DeviceUnavailableError, gpu_device, to_device, to_host  # noqa: F401 - callers catch it here
from .graph_store import compile_in_child, load_graph
from .ops import log_mel_spectrogram
from .weights import Checkpoint, load_checkpoint


@dataclass
class AudioFeatures:
    """Encoder output for a batch of windows, left in MAX buffers."""

    encoded: Buffer  # [n_audio, n_audio_ctx, d]
    # per decoder layer: keys, values [n_audio, n_head, n_audio_ctx, d_head] (int8 mode: each
    # followed by its row scales [n_audio, n_head, n_audio_ctx], graph.layers.cross_kv)
    cross_kv: list[Buffer]
    n_audio: int

    def subset(self, audios: np.ndarray) -> AudioFeatures:
        """Copies of some windows' cross-attention keys and values (for a batch that shrank)."""
        kept = [to_device(to_host(kv)[audios], kv.device) for kv in self.cross_kv]
        return AudioFeatures(self.encoded, kept, len(audios))


class Inference:
    """Decoding state of one batch of windows. The self-attention keys and
    values live in cache buffers that the step graph fills in place; each
    token row's history is a lineage table naming, per position, the cache
    row that holds it, so beam search reorders that table, not the cache."""

    def __init__(self, model: Whisper, audio: AudioFeatures, n_group: int = 1):
        self.model = model
        self.audio = audio
        self.n_rows = audio.n_audio * n_group
        self.caches: list[Buffer] | None = None
        self.cleanup_caching()

    def cleanup_caching(self) -> None:
        self.caches = None  # allocated by the next logits() call
        self.cache_length = 0
        self.slots = np.arange(self.n_rows, dtype=np.int64)  # the cache row each row writes to
        self.lineage = np.zeros((self.n_rows, self.model.dims.n_text_ctx), np.int64)
        self.fed_tokens = np.zeros((self.n_rows, 0), np.int64)
        self.last_fed = 0

    def _new_caches(self) -> list[Buffer]:
        dims = self.model.dims
        shape = (self.n_rows, dims.n_text_head, dims.n_text_ctx, dims.n_text_state // dims.n_text_head)
        # Never read before written (the lineage only names stored positions).
        return [Buffer(DType.float32, shape, self.model.device) for _ in range(2 * dims.n_text_layer)]

    def rearrange_kv_cache(self, source_indices) -> None:
        source_indices = np.asarray(source_indices, dtype=np.int64)
        self.lineage = self.lineage[source_indices]
        self.fed_tokens = self.fed_tokens[source_indices]

    def keep_rows(self, rows) -> None:
        """Steps after this feed only these rows (whole audio groups): each keeps its cache
        row, and the cross-attention inputs shrink to their audios (one copy, so callers drop
        rows in few, large steps)."""
        rows = np.asarray(rows, dtype=np.int64)
        group = self.n_rows // self.audio.n_audio
        audios = rows[::group] // group
        if len(rows) != len(audios) * group or not np.array_equal(rows, (audios[:, None] * group + np.arange(group)).ravel()):
            raise ValueError(f"rows {rows.tolist()} are not whole groups of {group}")
        self.audio = self.audio.subset(audios)
        self.slots, self.lineage, self.fed_tokens = self.slots[rows], self.lineage[rows], self.fed_tokens[rows]
        self.n_rows = len(rows)

    @property
    def applies_rules(self) -> bool:
        """Whether ruled_logits can run the token rules in the step graph (the CPU's can)."""
        return self.model.device.is_host

    def logits(self, tokens: np.ndarray, positions=None) -> np.ndarray:
        """Logits [rows, len(positions), n_vocab] at the given positions of
        tokens [rows, n_ctx] (negative ones count from the end), which must
        not be in the cache yet; by default at every new one (the whole
        prompt first, then the last token of each row)."""
        return self._logits(tokens, positions, None)[0]

    def ruled_logits(self, tokens: np.ndarray, positions, bars: np.ndarray, barred: np.ndarray, first_timestamp: int):
        """(logits as logits() gives them, and for the last position the logits with the token
        rules applied [rows, n_vocab], the ids of the best of those [rows, TOP_K] best first, and
        (peak, log normaliser) per row [rows, 2]); bars [rows, n, 2], barred and first_timestamp
        as graph/decoder.py takes them. CPU only (applies_rules)."""
        return self._logits(tokens, positions, (bars, barred, np.array([first_timestamp], np.int64)))

    def _logits(self, tokens: np.ndarray, positions, rules: tuple | None) -> list[np.ndarray]:
        tokens = np.asarray(tokens, dtype=np.int64)
        if tokens.shape[0] != self.n_rows:
            raise ValueError(f"expected {self.n_rows} token rows, got {tokens.shape[0]}")
        if tokens.shape[1] > self.model.dims.n_text_ctx:
            raise ValueError(f"{tokens.shape[1]} tokens exceed the text context of {self.model.dims.n_text_ctx}")
        past, total = self.cache_length, tokens.shape[1]
        new = tokens[:, past:]
        if positions is None:
            picked = np.arange(total - past, dtype=np.int64)
        else:
            picked = np.asarray(positions, dtype=np.int64) % total - past
            if picked.min(initial=0) < 0:
                raise ValueError(f"positions {positions} are already in the cache ({past} tokens)")
        if self.caches is None:
            self.caches = self._new_caches()

        group = self.n_rows // self.audio.n_audio
        fed, rows = new, np.arange(self.n_rows)
        if past == 0 and group > 1 and np.array_equal(new, np.repeat(new[::group], group, axis=0)):
            # The rows of a group (beams, best-of samples) start from one
            # prompt: run it once per audio, into the group's first row (the
            # rules of rows with one history are the same too).
            fed, rows = new[::group], rows[::group]
        if rules is not None:
            rules = (rules[0][rows], *rules[1:])
        slots = self.slots[rows]
        self.lineage[:, past:total] = np.repeat(slots, self.n_rows // len(slots))[:, None]
        outputs = self._step(self.model.decoder, fed, past, picked, slots, self.lineage[rows, :total], self.caches, rules)
        self.fed_tokens = np.concatenate([self.fed_tokens, new], axis=1)
        self.last_fed = total - past
        self.cache_length = total
        outputs = [to_host(out) for out in (outputs[:1] if rules is None else outputs)]
        if len(slots) < self.n_rows:
            outputs = [np.repeat(out, self.n_rows // len(slots), axis=0) for out in outputs]
        return outputs

    def _step(self, graph: Model, fed, past: int, picked, slots, lineage, caches, rules=None) -> list[Buffer]:
        """rules: (bars, barred, first_timestamp) for the CPU graph's token_scores (None: no bars)."""
        positions = np.arange(past, past + fed.shape[1], dtype=np.int64)
        put = self.model.to_device
        rule_inputs = []
        if self.applies_rules:
            if rules is None:  # no bars, no barred ids, no timestamp rule
                rules = np.zeros((len(fed), 0, 2), np.int64), np.zeros(0, np.int64), np.array([-1], np.int64)
            rule_inputs = [put(a) for a in rules]
        return graph.execute(
            put(fed),
            put(positions),
            put(np.asarray(picked, dtype=np.int64)),
            put(slots),
            put(lineage),
            *caches,
            *self.audio.cross_kv,
            *rule_inputs,
        )

    def cross_attention_weights(self) -> list[np.ndarray]:
        """Cross-attention softmax weights [rows, n_head, n_new, n_audio_ctx]
        per decoder layer for the tokens of the last logits() call. The
        stepping graph does not keep them (that would slow every token), so
        the tokens fed so far run once more through the alignment graph."""
        if self.audio.n_audio != self.n_rows:
            raise ValueError("cross-attention weights need one token row per audio (n_group=1)")
        n_tokens = self.fed_tokens.shape[1]
        rows = np.arange(self.n_rows, dtype=np.int64)
        lineage = np.repeat(rows[:, None], n_tokens, axis=1)
        picked = np.arange(n_tokens, dtype=np.int64)
        outputs = self._step(
            self.model.alignment_decoder, self.fed_tokens, 0, picked, rows, lineage, self._new_caches()
        )
        n_layer = self.model.dims.n_text_layer
        return [to_host(w)[:, :, -self.last_fed :] for w in outputs[1 : 1 + n_layer]]


class Whisper:
    """A loaded checkpoint with its encoder and decoder compiled for MAX."""

    def __init__(
        self,
        checkpoint: Checkpoint,
        session: InferenceSession | None = None,
        compute_type: str = "default",
        device: Device | None = None,
    ):
        # The graphs get their own rearranged copies of the tensors, so the
        # model keeps the checkpoint's description without its arrays (about
        # 100 MB less resident for tiny.en when the caller drops its copy).
        self.checkpoint = replace(checkpoint, tensors={})
        self.dims = checkpoint.dims
        # Where the graphs run and their weights, KV caches and cross K/V
        # live; only token ids, positions and the picked logits cross to
        # the host per step.
        self.device = device or CPU()
        self.device_ref = DeviceRef.from_device(self.device)
        device = self.device_ref
        self.session = session or InferenceSession(devices=[CPU()] if self.device.is_host else [CPU(), self.device])
        self.load_seconds: dict[str, float] = {}
        self.compiled_now: list[str] = []  # graphs this load missed in the store and compiled (or had compiled)
        self.compute_type = compute_type
        self._compiled_in_child: bool | None = None  # not tried yet (_compile_in_child)
        int8 = compute_type == "int8"
        self.encoder = self._load(
            "encoder",
            lambda: build_encoder(self.dims, device, int8),
            "int8" if int8 else "",
            encoder_parameters(checkpoint, int8),
            self._compile_in_child,
        )
        self.matrix_dtype = decoder_matrix_dtype(checkpoint, compute_type)
        self._decoder_parameters = decoder_parameters(checkpoint, self.matrix_dtype.to_numpy())
        self.decoder = self._load("decoder", self._decoder_graph, "", self._decoder_parameters, self._compile_in_child)
        self._alignment_decoder: Model | None = None
        # Load the log-mel graph now, so the first transcription does not pay for it.
        start = time.perf_counter()
        log_mel_spectrogram(np.zeros(HOP_LENGTH, np.float32), self.dims.n_mels)
        self.load_seconds["log_mel"] = time.perf_counter() - start

    def _compile_in_child(self) -> bool:
        """On this load's first miss in the graph store: the model's graphs compiled by a
        child process (graph_store.compile_in_child), once. CPU models only: a child would
        open the GPU a second time."""
        if self._compiled_in_child is None:
            self._compiled_in_child = self.device.is_host and compile_in_child(
                self.checkpoint.source, self.compute_type
            )
        return self._compiled_in_child

    def _load(self, name: str, build, flags: str, parameters: dict[str, np.ndarray], compile_elsewhere=None) -> Model:
        def build_announced():
            # Said only when a compile really happens: a warm start is silent.
            print(f"maxwhisper: compiling the {name} graph (a minute or two, once per machine)", file=sys.stderr)
            return build()

        start = time.perf_counter()
        description = f"{self.dims!r} matrices={getattr(self, 'matrix_dtype', None)} {flags}"
        if not self.device.is_host:  # a stored graph runs only where it was compiled for
            description += f" device={self.device.api}:{self.device.architecture_name}"
        model, compiled_now = load_graph(
            self.session, f"whisper_{name}", description, build_announced, parameters, compile_elsewhere
        )
        if compiled_now:
            self.compiled_now.append(name)
        self.load_seconds[name] = time.perf_counter() - start
        return model

    @property
    def alignment_decoder(self) -> Model:
        """The decoder graph that also returns cross-attention weights, for
        word timestamps; compiled on first use."""
        if self._alignment_decoder is None:
            self._alignment_decoder = self._load(
                "alignment_decoder",
                lambda: self._decoder_graph(cross_attention_weights=True),
                "cross_attention_weights",
                self._decoder_parameters,
            )
        return self._alignment_decoder

    def _decoder_graph(self, cross_attention_weights: bool = False):
        return build_decoder_step(self.dims, self.device_ref, self.matrix_dtype, cross_attention_weights)

    def to_device(self, array: np.ndarray) -> Buffer:
        return to_device(array, self.device)

    @property
    def is_multilingual(self) -> bool:
        return self.checkpoint.is_multilingual

    @property
    def num_languages(self) -> int:
        # Whisper's vocabularies: 51765 ordinary + control tokens, then one per language.
        return self.dims.n_vocab - 51765 - int(self.is_multilingual)

    @property
    def alignment_heads(self):
        return self.checkpoint.alignment_heads

    @property
    def tokenizer_dir(self) -> Path | None:
        return self.checkpoint.tokenizer_dir

    def encode(self, mel: np.ndarray) -> AudioFeatures:
        """Encodes log-mel windows [n_audio, n_mels, 2 * n_audio_ctx]."""
        mel = np.ascontiguousarray(mel, dtype=np.float32)
        expected = (self.dims.n_mels, 2 * self.dims.n_audio_ctx)
        if mel.ndim == 2:
            mel = mel[None]
        if mel.ndim != 3 or mel.shape[1:] != expected:
            raise ValueError(f"mel must be [n_audio, {expected[0]}, {expected[1]}], got {mel.shape}")
        encoded, *cross_kv = self.encoder.execute(self.to_device(mel))
        return AudioFeatures(encoded, cross_kv, mel.shape[0])

    def new_inference(self, audio: AudioFeatures, n_group: int = 1) -> Inference:
        return Inference(self, audio, n_group)

    def transcribe(
        self, audio, vad_filter: bool = False, vad_parameters: dict | None = None, batch_size: int | None = None, **options
    ):
        """openai-whisper's transcribe; vad_filter=True decodes only the speech Silero VAD
        finds (vad_parameters: faster-whisper's VadOptions fields), times as in the original;
        batch_size=N runs the batched pipeline (VAD, <= 30 s windows, N decoded at once)."""
        with os_memory.transcription():
            if batch_size is not None:
                from .pipeline import transcribe_batched

                return transcribe_batched(self, audio, batch_size, vad_parameters, **options)
            if vad_filter:
                from .pipeline import transcribe_speech

                return transcribe_speech(self, audio, vad_parameters, **options)
            from .transcribe import transcribe

            return transcribe(self, audio, **options)


def check_compute_type(compute_type: str) -> None:
    if compute_type not in COMPUTE_TYPES:
        raise ValueError(f"unknown compute_type {compute_type!r}; choose one of {', '.join(COMPUTE_TYPES)}")


def decoder_matrix_dtype(checkpoint: Checkpoint, compute_type: str) -> DType:
    """The storage type of the decoder's weight matrices. Decoder steps are
    bound by reading weights, so "default" keeps them in float16 when that
    loses nothing (checkpoints stored in float16), else float32; "int8"
    quantizes them per row (smaller and faster, not bit-exact)."""
    check_compute_type(compute_type)
    if compute_type == "default":
        return DType.float16 if exact_in_float16(decoder_matrices(checkpoint)) else DType.float32
    return {"float32": DType.float32, "float16": DType.float16, "int8": DType.int8}[compute_type]


def load_model(
    name_or_path: str | os.PathLike = "tiny.en",
    device: str = "cpu",
    num_threads: int | None = None,
    compute_type: str = "default",
) -> Whisper:
    """Loads a checkpoint by model name (an installed weights package), a
    directory or a file, and compiles its graphs (once per machine: MAX keeps
    compiled graphs in its cache, so later processes start in seconds).
    num_threads sets MAX's CPU worker threads (default: one per core; see
    cpu_device for when it can take effect);
    compute_type sets the decoder's weight matrices (decoder_matrix_dtype);
    the encoder computes in float32, except with "int8": then its linear
    layers are int8 GEMMs (weights per channel, activations per row)."""
    check_compute_type(compute_type)
    if device in ("gpu", "cuda"):
        if compute_type == "int8":
            # the int8 encoder GEMM (matmul_int8) is a CPU kernel; the GPU's float matmuls are
            # MAX's own
            raise ValueError("compute_type='int8' runs on the CPU only; on a GPU use the default")
        accelerator = gpu_device(device)
    elif device == "cpu":
        accelerator = None
    else:
        raise ValueError(f"device {device!r} is not supported: use 'cpu', 'gpu' or 'cuda'")
    # Importing MAX left ~110 MB of its libraries' start-up code resident; dropped before the
    # weights arrive, it is not part of the load's peak (os_memory.release_file_pages).
    os_memory.release_file_pages()
    checkpoint = load_checkpoint(name_or_path)
    if accelerator is None:
        session = cpu_session(num_threads)
    else:
        # num_threads is not passed: MAX 26.7 aborts on it (see cpu_device); the host side of
        # a GPU run does little.
        session = InferenceSession(devices=[CPU(), accelerator])
    model = Whisper(checkpoint, session, compute_type, accelerator)
    del checkpoint  # the graphs hold their own copies of its arrays: free them before the trim
    # Loading freed many heap chunks (the checkpoint's arrays, quantization and packing
    # temporaries) that glibc would keep: 42 MB (int8) or 23 MB (default) for tiny.en; and
    # initialising the graphs read ~36 MB of library pages that transcribing does not use.
    os_memory.release()
    return model
