"""Corpus transcription on Ray Data: a local runtime, resume, a two-node
cluster, and an actor killed mid-run. Every good text is checked against the
single-process model.transcribe() of the same file."""

import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")
pq = pytest.importorskip("pyarrow.parquet")

from maxwhisper_kernels.corpus import InputError, list_inputs, transcribe_corpus  # noqa: E402
from maxwhisper_kernels.corpus.cli import main as corpus_main  # noqa: E402

DEV = Path(__file__).resolve().parents[1].parent / "shared" / "audio" / "dev"
if not DEV.is_dir():
    DEV = Path("/work/shared/audio/dev")
CLIPS = ["2830-3980-0043.flac", "1221-135766-0002.flac", "1089-134686-0002.flac"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    for name in CLIPS:
        shutil.copy(DEV / name, folder / name)
    (folder / "sub").mkdir()
    (folder / "sub" / "corrupt.flac").write_bytes(b"fLaC not really a flac stream" * 10)
    (folder / "empty.wav").write_bytes(b"")
    return folder


@pytest.fixture(scope="module")
def expected(corpus, tiny_en):
    return {str((corpus / n).resolve()): tiny_en.transcribe(str(corpus / n))["text"] for n in CLIPS}


def rows(output):
    table = [pq.read_table(p).to_pylist() for p in sorted(Path(output).glob("run-*/*.parquet"))]
    return [row for shard in table for row in shard]


def check_run(output, expected, corpus):
    got = rows(output)
    paths = [row["path"] for row in got]
    assert len(paths) == len(set(paths)) == len(expected) + 2  # each file exactly once
    for row in got:
        if row["path"] in expected:
            assert row["error"] is None
            assert row["text"] == expected[row["path"]]
            assert json.loads(row["segments"])[0]["text"]
            assert row["duration"] > 1.0 and row["model"] == "tiny.en"
        else:
            assert row["text"] is None and row["error"], row
            assert Path(row["path"]).name in {"corrupt.flac", "empty.wav"}
    summary = json.loads((Path(output) / "_SUCCESS").read_text())
    assert summary["done"] == len(expected) and summary["failed"] == 2
    return summary


def test_list_inputs_folder_glob_manifest(corpus, tmp_path):
    from_folder = [item["path"] for item in list_inputs([corpus])]
    assert len(from_folder) == 5 and from_folder == sorted(from_folder)
    assert [i["path"] for i in list_inputs([str(corpus / "*.flac")])] == [
        str((corpus / n).resolve()) for n in sorted(CLIPS)
    ]
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"path,language\n{corpus / CLIPS[0]},en\n{corpus / CLIPS[0]},fr\n")
    assert list_inputs([manifest]) == [{"path": str((corpus / CLIPS[0]).resolve()), "language": "en"}]
    jsonl = tmp_path / "m.jsonl"
    jsonl.write_text(json.dumps({"file": "x"}) + "\n")
    with pytest.raises(InputError, match="no 'path' column"):
        list_inputs([jsonl])
    with pytest.raises(InputError, match="no such file"):
        list_inputs([tmp_path / "missing"])


def test_local_run_then_resume(corpus, expected, tmp_path):
    output = tmp_path / "out"
    stop, seen = threading.Event(), {}
    watcher = threading.Thread(target=_watch_max_threads, args=(stop, seen), daemon=True)
    watcher.start()
    summary = transcribe_corpus([corpus], output, workers=1, threads_per_worker=1, batch_size=2)
    stop.set()
    watcher.join(5)
    assert not ray.is_initialized()  # the local runtime it started is stopped
    # The actor's MAX CPU device has as many workers as the one Ray CPU it holds
    # (MAX's default on this machine would be one per core).
    assert seen and set(seen.values()) == {1}, seen
    check_run(output, expected, corpus)
    assert summary["skipped"] == 0 and summary["rtf"] > 0

    # Second run: nothing to do, Ray not even started.
    again = transcribe_corpus([corpus], output)
    assert (again["done"], again["failed"], again["skipped"]) == (0, 0, 5)

    # A changed file (new content hash) is done again; --retry-failed re-runs the bad ones.
    (corpus / "empty.wav").write_bytes(b"\0" * 10)
    assert corpus_main([str(corpus), "--output", str(output), "--retry-failed"]) == 0
    retried = json.loads((output / "_SUCCESS").read_text())
    assert (retried["done"], retried["failed"], retried["skipped"]) == (0, 2, 3)
    (corpus / "empty.wav").write_bytes(b"")


def _actor_pids() -> list[int]:
    # Ray titles an actor's worker process after its class ("ray::MapWorker(...)").
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if entry.name.isdigit() and b"ray::MapWorker" in cmdline and b"Transcriber" in cmdline:
            pids.append(int(entry.name))
    return pids


def _max_threads(pid: int) -> int:
    """MAX's CPU workers ("🔥 Thread0", ...) in process `pid`."""
    count = 0
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            count += (task / "comm").read_text(errors="replace").startswith("🔥 Thread")
        except OSError:
            continue
    return count


def _watch_max_threads(stop: threading.Event, seen: dict):
    """Records each actor's MAX worker count as last seen (its model loaded, transcribing)."""
    while not stop.is_set():
        for pid in _actor_pids():
            try:
                count = _max_threads(pid)
            except OSError:
                continue
            if count:
                # the latest count: while a graph compiles (a cold cache) MAX runs extra
                # threads of the same name for a while, the worker pool stays
                seen[pid] = count
        time.sleep(0.2)


def test_unavailable_device_fails_before_ray(corpus, tmp_path, capsys):
    from maxwhisper_kernels.model import DeviceUnavailableError

    with pytest.raises(DeviceUnavailableError, match="no GPU on this machine"):
        transcribe_corpus([corpus], tmp_path / "gpu", device="gpu")
    assert not ray.is_initialized() and not (tmp_path / "gpu").exists()
    assert corpus_main([str(corpus), "--output", str(tmp_path / "gpu"), "--device", "gpu"]) == 2
    assert "no GPU on this machine" in capsys.readouterr().err
    with pytest.raises(ValueError, match="threads_per_worker=.*the cores here"):
        transcribe_corpus([corpus], tmp_path / "cpu", threads_per_worker=len(os.sched_getaffinity(0)) + 1)
    assert not ray.is_initialized()


def _kill_first_actor(stop: threading.Event, killed: list):
    while not stop.is_set():
        pids = _actor_pids()
        if pids:
            time.sleep(2.0)  # let it load the model and take a batch
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])
            return
        time.sleep(0.2)


@pytest.fixture(autouse=True)
def time_limit():
    """Fails a test that runs past 5 minutes instead of hanging the suite."""
    def expire(signum, frame):
        raise TimeoutError("corpus test ran past its 300 s limit")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(300)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def test_two_node_cluster_with_a_killed_actor(corpus, expected, tmp_path):
    from ray.cluster_utils import Cluster

    from maxwhisper_kernels.model import DeviceUnavailableError

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes(timeout=60)
        ray.init(address=cluster.address, log_to_driver=False)
        assert len([n for n in ray.nodes() if n["Alive"]]) == 2
        # A GPU run on a cluster without GPUs stops before any actor starts.
        assert ray.cluster_resources().get("GPU", 0) == 0
        with pytest.raises(DeviceUnavailableError, match="need 1 GPUs, the Ray cluster .* has 0"):
            transcribe_corpus([corpus], tmp_path / "gpu", address=cluster.address, device="gpu")
        assert not list((tmp_path / "gpu").glob("run-*"))
        stop, killed = threading.Event(), []
        killer = threading.Thread(target=_kill_first_actor, args=(stop, killed), daemon=True)
        killer.start()
        output = tmp_path / "out"
        transcribe_corpus([corpus], output, address=cluster.address, workers=1, batch_size=1)
        stop.set()
        killer.join(5)
        assert killed, "no actor was found to kill"
        check_run(output, expected, corpus)
    finally:
        ray.shutdown()
        cluster.shutdown()
