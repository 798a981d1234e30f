"""GPU branches compile for sm_90 without a GPU; their PTX has the features
that decide speed. Nothing here runs on a GPU."""

import pytest

from maxwhisper_kernels import gpu_check


def test_every_gpu_branch_compiles_for_sm_90(capsys):
    assert gpu_check.main(["--arch", "sm_90"]) == 0
    assert "layernorm          OK" in capsys.readouterr().out


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


@pytest.mark.parametrize("device", ["gpu", "cuda"])
def test_load_model_on_gpu_is_a_typed_error(device):
    from maxwhisper_kernels.model import DeviceUnavailableError, load_model

    with pytest.raises(DeviceUnavailableError, match="compile-checked only"):
        load_model("tiny.en", device=device)
