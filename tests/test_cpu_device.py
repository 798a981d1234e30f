"""MAX's CPU worker-thread count (cpu_device.cpu_session): each case runs in a fresh
process, since a process holds one MAX CPU device for its whole life."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

JFK = Path(__file__).resolve().parents[1].parent / "shared" / "audio" / "jfk.flac"
if not JFK.is_file():
    JFK = Path("/work/shared/audio/jfk.flac")


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 cores to tell 1 thread from the default")
def test_one_thread_then_a_conflicting_request():
    code = """
import os
from maxwhisper_kernels.cpu_device import cpu_session, max_worker_threads
assert max_worker_threads() == 0
import time
session = cpu_session(1)
# a worker names itself once it runs, which can come a moment after the session exists
deadline = time.monotonic() + 10
while max_worker_threads() == 0 and time.monotonic() < deadline:
    time.sleep(0.01)
def worker_names():
    # name -> thread id; a thread can end between the listing and the read (CI saw it)
    found = {}
    for t in os.listdir('/proc/self/task'):
        try:
            name = open(f'/proc/self/task/{t}/comm').read().strip()
        except OSError:
            continue
        if name.startswith('🔥 Thread'):
            found[name] = int(t)
    return found
workers = worker_names()
# one MAX worker, free to run on every core the process may use
assert list(workers) == ['🔥 Thread0'] and max_worker_threads() == 1, workers
assert os.sched_getaffinity(workers['🔥 Thread0']) == os.sched_getaffinity(0), workers
assert len(os.sched_getaffinity(0)) >= 2
cpu_session(1)  # the same count again is fine
try:
    cpu_session(2)
except ValueError as exc:
    print('refused:', exc)
"""
    done = run_python(code)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "already exists in this process with 1 threads" in done.stdout


def test_default_is_one_thread_per_core():
    done = run_python(
        "from maxwhisper_kernels.cpu_device import cpu_session, max_worker_threads\n"
        "cpu_session(); print(max_worker_threads())"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout.split()[-1]) == len(os.sched_getaffinity(0))


def test_too_many_threads_is_refused():
    from maxwhisper_kernels.cpu_device import cpu_session

    with pytest.raises(ValueError, match="may run on"):
        cpu_session(len(os.sched_getaffinity(0)) + 1)


def test_load_model_with_one_thread_transcribes_like_the_default(tiny_en):
    """load_model(num_threads=1) (the CLI's --threads) used to abort the process."""
    done = run_python(
        "from maxwhisper_kernels import load_model\n"
        "from maxwhisper_kernels.cpu_device import max_worker_threads\n"
        f"model = load_model('tiny.en', num_threads=1)\n"
        f"print(max_worker_threads()); print(model.transcribe({str(JFK)!r})['text'])"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    count, text = done.stdout.strip().split("\n")[-2:]
    assert count == "1"
    assert text == tiny_en.transcribe(str(JFK))["text"]


def test_worker_threads_sleep_once_a_transcription_returns():
    """MAX's default busy-wait kept both workers spinning for seconds after a job
    (runtime_options); with maxwhisper's setting they sleep once the job ends."""
    done = run_python(
        "import os, time\n"
        "import maxwhisper_kernels\n"
        "from maxwhisper_kernels import load_model\n"
        "def workers_cpu():\n"
        "    total = 0\n"
        "    for t in os.listdir('/proc/self/task'):\n"
        "        try:\n"
        "            if not open(f'/proc/self/task/{t}/comm').read().startswith('🔥 Thread'):\n"
        "                continue\n"
        "            fields = open(f'/proc/self/task/{t}/stat').read().rsplit(')', 1)[1].split()\n"
        "        except OSError:\n"
        "            continue\n"
        "        total += (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')\n"
        "    return total\n"
        "import numpy as np\n"
        "from maxwhisper_kernels.audio import load_audio\n"
        "model = load_model('tiny.en')\n"
        # 44 s of speech: with MAX's default, workers spun for about a second after this
        f"model.transcribe(np.concatenate([load_audio({str(JFK)!r})] * 4))\n"
        "before = workers_cpu(); time.sleep(1.0)\n"
        "print(os.environ['MODULAR_THREAD_BUSY_WAIT_US'], workers_cpu() - before)\n"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    setting, spent = done.stdout.split()[-2:]
    assert setting == "10"
    # with MAX's default the two workers spent 1.7-1.9 s of CPU in that second; here 0.0
    assert float(spent) < 0.3, spent


def test_a_busy_wait_chosen_by_the_user_is_kept_and_mirrored():
    """Setting only one of MAX's two busy-wait variables used to abort the process."""
    env = dict(os.environ, MODULAR_THREAD_BUSY_WAIT_US="50")
    env.pop("MODULAR_RUNTIME_THREAD_BUSY_WAIT_TIME_US", None)
    done = subprocess.run(
        [sys.executable, "-c",
         "import os, maxwhisper_kernels\n"
         "from maxwhisper_kernels.cpu_device import cpu_session\n"
         "cpu_session(); print(os.environ['MODULAR_RUNTIME_THREAD_BUSY_WAIT_TIME_US'])"],
        capture_output=True, text=True, timeout=600, env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-1] == "50"
