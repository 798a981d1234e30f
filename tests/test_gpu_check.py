"""GPU branches compile for sm_90 without a GPU; their PTX has the features
that decide speed. Nothing here runs on a GPU."""

import pytest
from max.driver import accelerator_count

from maxwhisper_kernels import gpu_check


def test_every_gpu_branch_compiles_for_sm_90(capsys):
    assert gpu_check.main(["--arch", "sm_90", "--kernels-only"]) == 0
    out = capsys.readouterr().out
    for op in ("layernorm", "attention", "cached_attention", "linear", "log_mel"):
        assert f"{op:18s} OK" in out


def test_whole_graphs_compile_for_sm_90():
    # The tiny.en graphs on DeviceRef.GPU() under MAX's compile-only virtual
    # device: custom ops as MAX instantiates them plus MAX's own GPU lowering.
    # Cold on 2 loaded cores: about 53 minutes wall (mostly MAX building its
    # own sm_90 matmul/conv kernels once); MAX's cache warm: 45 s; cached: ms.
    res = gpu_check.check_graphs("sm_90")
    assert res.ok, res.message
    for graph in ("encoder", "decoder_step", "decoder_step_int8", "alignment_decoder"):
        assert f"{graph} OK" in res.message


def _ptx(op: str) -> dict[str, str]:
    res = gpu_check.check(op, "sm_90")
    assert res.ok, res.message
    return {p.name: p.read_text() for p in gpu_check._kernel_files(res.asm_dir)}


def _count(text: str, needle: str) -> int:
    return text.count(needle)


def test_attention_ptx_has_what_decides_its_speed():
    kernels = _ptx("attention")
    rows = {n: t for n, t in kernels.items() if "_rows_" in n}
    split = {n: t for n, t in kernels.items() if "_split_" in n}
    # Three head widths (32, 64, 128) x causal or not, for each kernel.
    assert len(rows) == 6 and len(split) == 6
    for text in kernels.values():
        # .local is per-thread memory in DRAM: register spills, the first
        # thing that makes an attention kernel slow. Each kernel carries its
        # launch bound, which sets the register budget the compiler works to.
        assert ".local" not in text
        # 64-bit integer division is a long software sequence on the GPU:
        # index math is meant to stay in 32 bits.
        assert "div.s64" not in text and "rem.s64" not in text
    for text in rows.values():
        assert ".maxntid 64" in text
        # K/V tiles are staged in shared memory (declared, written, and
        # fenced by barriers) ...
        assert ".shared .align 16" in text and "st.shared.v4" in text and "bar.sync" in text
        # ... with 16-byte global loads into them, and every score and P V
        # product reads the tiles as 16-byte shared loads (4 FMAs per load).
        assert "ld.global.v4" in text or "ld.global.nc.v4" in text
        assert _count(text, "ld.shared.v4") >= 2 * 32 * 8  # BK keys x DK/4 loads, twice, DK >= 32
        # The online softmax is exp2 in hardware.
        assert "ex2.approx" in text
    for text in split.values():
        assert ".maxntid 128" in text
        # Scores are warp butterfly sums, the warps' partial results merge
        # through shared memory.
        assert "shfl.sync.bfly" in text and ".shared" in text
    # The head-size-64 split kernel (Whisper's) reads two adjacent floats per
    # lane per key: one 8-byte load, 256 contiguous bytes per warp.
    assert any("ld.global.v2" in t or "ld.global.nc.v2" in t for t in split.values())


def test_cached_attention_linear_and_log_mel_ptx():
    for op, bound in (("cached_attention", 128), ("linear", 128), ("log_mel", 128)):
        for name, text in _ptx(op).items():
            assert ".local" not in text, name
            assert f".maxntid {bound}" in text, name
    # The linear kernel streams weights in 16-byte loads for every weight
    # type (4 float32, 8 float16 or 16 int8 per load): it is bound by them.
    for name, text in _ptx("linear").items():
        assert "ld.global.v4" in text or "ld.global.nc.v4" in text, name


def test_layernorm_ptx_uses_shared_memory_and_no_spills():
    res = gpu_check.check("layernorm", "sm_90")
    assert res.ok, res.message
    ptx = [p.read_text() for p in gpu_check._kernel_files(res.asm_dir)]
    assert len(ptx) == 2  # layernorm and add_layernorm
    for text in ptx:
        # Block reductions go through shared memory between warps ...
        assert ".shared" in text and "bar.sync" in text
        # ... and warp shuffles within one; .local would mean register
        # spills to slow per-thread memory; .maxntid is the launch bound
        # that lets the compiler budget registers for 128 threads.
        assert "shfl.sync" in text
        assert ".local" not in text
        assert ".maxntid 128" in text


def test_unknown_op_is_a_clear_error():
    with pytest.raises(KeyError):
        gpu_check.check("no_such_op", "sm_90")


@pytest.mark.skipif(accelerator_count() > 0, reason="a GPU is present: tests/test_gpu_model.py loads the model on it")
@pytest.mark.parametrize("device", ["gpu", "cuda"])
def test_load_model_without_a_gpu_is_a_typed_error(device):
    from maxwhisper_kernels.model import DeviceUnavailableError, load_model

    with pytest.raises(DeviceUnavailableError, match="finds no GPU"):
        load_model("tiny.en", device=device)


def test_a_failing_gpu_driver_is_a_typed_error(monkeypatch):
    from maxwhisper_kernels import devices

    def broken():
        raise RuntimeError("libcuda.so.1: cannot open shared object file")

    monkeypatch.setattr(devices, "accelerator_count", broken)
    with pytest.raises(devices.DeviceUnavailableError, match="driver could not be queried.*libcuda"):
        devices.gpu_device("cuda")


def test_unknown_device_is_refused():
    from maxwhisper_kernels.model import load_model

    with pytest.raises(ValueError, match="'tpu' is not supported"):
        load_model("tiny.en", device="tpu")


@pytest.mark.skipif(accelerator_count() > 0, reason="a GPU is present: the CLI would transcribe on it")
def test_cli_device_cuda_without_a_gpu_says_why(tmp_path, capsys):
    from clips import SHARED_AUDIO
    from maxwhisper_kernels import cli

    status = cli.main([str(SHARED_AUDIO / "jfk.flac"), "--device", "cuda", "--output_dir", str(tmp_path)])
    assert status == 1
    assert "finds no GPU" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing written
