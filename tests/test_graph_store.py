"""The compiled-graph store: a graph compiled once is loaded from its MEF file
afterwards, gives the same results as the graph it was exported from, and a
damaged file is replaced rather than trusted."""

import os
import time

import numpy as np
import pytest
from max.driver import Buffer
from max.dtype import DType
from max.graph import DeviceRef, Graph, TensorType, ops

from maxwhisper_kernels import graph_store
from maxwhisper_kernels.ops import session


def _affine_graph(calls: list[int]):
    def build() -> Graph:
        calls.append(1)
        x_type = TensorType(DType.float32, ["n"], DeviceRef.CPU())
        with Graph("store_test_affine", input_types=[x_type]) as graph:
            (x,) = graph.inputs
            graph.output(ops.mul(x.tensor, 3.0) + 1.0)
        return graph

    return build


def _run(model, x: np.ndarray) -> np.ndarray:
    return model.execute(Buffer.from_numpy(x))[0].to_numpy()


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("MAXWHISPER_GRAPH_CACHE", str(tmp_path))
    return tmp_path


def test_second_load_builds_nothing_and_agrees(store):
    calls: list[int] = []
    x = np.arange(7, dtype=np.float32)
    first, compiled_first = graph_store.load_graph(session(), "affine", "v1", _affine_graph(calls))
    second, compiled_second = graph_store.load_graph(session(), "affine", "v1", _affine_graph(calls))
    assert (compiled_first, compiled_second) == (True, False)
    assert calls == [1]  # the second load never built the graph
    assert len(list(store.glob("affine-*.mef"))) == 1
    np.testing.assert_array_equal(_run(second, x), 3 * x + 1)
    np.testing.assert_array_equal(_run(first, x), _run(second, x))


def test_description_is_part_of_the_key(store):
    calls: list[int] = []
    graph_store.load_graph(session(), "affine", "v1", _affine_graph(calls))
    graph_store.load_graph(session(), "affine", "v2", _affine_graph(calls))
    assert calls == [1, 1]
    assert len(list(store.glob("affine-*.mef"))) == 2


def test_damaged_file_is_compiled_again(store):
    calls: list[int] = []
    graph_store.load_graph(session(), "affine", "v1", _affine_graph(calls))
    (path,) = store.glob("affine-*.mef")
    path.write_bytes(path.read_bytes()[:100])
    model, compiled_now = graph_store.load_graph(session(), "affine", "v1", _affine_graph(calls))
    assert compiled_now and calls == [1, 1]
    x = np.linspace(-1, 1, 5, dtype=np.float32)
    np.testing.assert_array_equal(_run(model, x), 3 * x + 1)
    assert path.stat().st_size > 100  # replaced by a whole file


def test_empty_setting_turns_the_store_off(monkeypatch, tmp_path):
    monkeypatch.setenv("MAXWHISPER_GRAPH_CACHE", "")
    calls: list[int] = []
    for _ in range(2):
        assert graph_store.load_graph(session(), "affine", "v1", _affine_graph(calls))[1]
    assert calls == [1, 1]


def test_warm_model_load_compiles_nothing(tiny_en):
    # tiny_en was loaded first, so every graph of the model is in the store now.
    from maxwhisper_kernels.model import load_model

    again = load_model("tiny.en")
    assert again.compiled_now == []
    mel = np.random.default_rng(0).standard_normal((1, 80, 3000)).astype(np.float32)
    np.testing.assert_array_equal(
        again.encode(mel).encoded.to_numpy(), tiny_en.encode(mel).encoded.to_numpy()
    )


def test_store_keeps_the_most_recently_used_files_within_its_limit(store):
    names = ["old", "older", "newest", "oldest"]
    ages = [20, 30, 0, 40]  # hours since each file was last used
    now = time.time()
    for name, age in zip(names, ages):
        path = store / f"{name}.mef"
        path.write_bytes(b"x" * 1000)
        os.utime(path, (now - age * 3600, now - age * 3600))
    writing = store / ".staging-other.mef"  # another process's export, not renamed yet
    writing.write_bytes(b"x" * 1000)
    os.utime(writing, (now - 50 * 3600, now - 50 * 3600))
    removed = graph_store.trim(store, 2500)
    assert sorted(p.name for p in removed) == ["older.mef", "oldest.mef"]
    assert sorted(p.name for p in store.glob("*.mef")) == [".staging-other.mef", "newest.mef", "old.mef"]


def test_a_load_marks_its_file_used_and_a_new_file_trims_the_store(store, monkeypatch):
    calls: list[int] = []
    graph_store.load_graph(session(), "affine", "v1", _affine_graph(calls))
    (kept,) = store.glob("affine-*.mef")
    long_ago = time.time() - 86400
    os.utime(kept, (long_ago, long_ago))
    graph_store.load_graph(session(), "affine", "v1", _affine_graph(calls))  # a hit
    assert kept.stat().st_mtime > long_ago + 3600
    stale = store / "stale-0.mef"
    stale.write_bytes(b"x" * 1000)
    os.utime(stale, (long_ago, long_ago))
    # room for two files: compiling v2 must push out the stale one, not the one just used
    monkeypatch.setattr(graph_store, "STORE_LIMIT_BYTES", 2 * kept.stat().st_size + 500)
    graph_store.load_graph(session(), "affine", "v2", _affine_graph(calls))
    assert calls == [1, 1]
    assert not stale.exists() and kept.exists() and len(list(store.glob("affine-*.mef"))) == 2


def test_a_miss_filled_by_another_process_is_loaded_not_built(store):
    calls: list[int] = []

    def elsewhere() -> bool:  # stands in for the child process: it stores the same graph
        graph_store.load_graph(session(), "affine", "v1", _affine_graph([]))
        return True

    model, compiled_now = graph_store.load_graph(
        session(), "affine", "v1", _affine_graph(calls), compile_elsewhere=elsewhere
    )
    assert compiled_now and calls == []  # compiled for this load, but not here
    x = np.arange(4, dtype=np.float32)
    np.testing.assert_array_equal(_run(model, x), 3 * x + 1)


def test_compiled_here_when_the_other_process_could_not(store):
    calls: list[int] = []
    model, compiled_now = graph_store.load_graph(
        session(), "affine", "v1", _affine_graph(calls), compile_elsewhere=lambda: False
    )
    assert compiled_now and calls == [1]


def test_a_cold_model_load_compiles_in_a_child_process(tiny_en, tmp_path, monkeypatch, capfd):
    # An empty store: the graphs come from a child process (quick: MAX's own cache holds
    # them), and this process never builds one.
    from maxwhisper_kernels import model as model_module

    monkeypatch.setenv("MAXWHISPER_GRAPH_CACHE", str(tmp_path))
    monkeypatch.delenv(graph_store.COMPILE_IN_PROCESS, raising=False)

    def built_here(*args, **kwargs):
        raise AssertionError("a graph was built in the calling process")

    monkeypatch.setattr(model_module, "build_encoder", built_here)
    monkeypatch.setattr(model_module, "build_decoder_step", built_here)
    cold = model_module.load_model("tiny.en")
    # the first miss started the child, which compiled the decoder too: it was then a hit
    assert cold.compiled_now == ["encoder"]
    # the child's messages reach the user on stderr; stdout (a CLI's transcript, a
    # worker's protocol) gets nothing from it
    out, err = capfd.readouterr()
    assert "compiling the decoder graph" in err and out == ""
    stored = {path.name.rsplit("-", 1)[0] for path in tmp_path.glob("*.mef")}
    assert {"whisper_encoder", "whisper_decoder"} <= stored
    mel = np.random.default_rng(1).standard_normal((1, 80, 3000)).astype(np.float32)
    np.testing.assert_array_equal(cold.encode(mel).encoded.to_numpy(), tiny_en.encode(mel).encoded.to_numpy())
