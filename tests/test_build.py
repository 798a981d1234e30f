"""The kernel build: cached by source hash, rebuilt on change, clear errors."""

import shutil

import pytest

from maxwhisper_kernels import build


@pytest.fixture
def kernel_tree(tmp_path, monkeypatch):
    """A private copy of kernels/ with its own build folder."""
    kernels = tmp_path / "kernels"
    shutil.copytree(build.KERNELS_DIR, kernels)
    monkeypatch.setattr(build, "KERNELS_DIR", kernels)
    monkeypatch.setattr(build, "BUILD_DIR", tmp_path / "build")
    return kernels


def test_unchanged_sources_reuse_the_library(kernel_tree):
    first = build.build()
    stamp = first.stat().st_mtime_ns
    assert build.build() == first
    assert first.stat().st_mtime_ns == stamp
    assert first.name == "maxwhisper_kernels.mojoc"  # MAX imports it under this name


def test_edited_source_gets_a_new_library(kernel_tree):
    first = build.build()
    source = kernel_tree / "layernorm.mojo"
    source.write_text(source.read_text() + "\n# edited\n")
    second = build.build()
    assert second != first and second.exists()
    assert not first.exists()  # the stale build is removed


def test_compile_error_carries_the_compiler_message(kernel_tree):
    (kernel_tree / "broken.mojo").write_text("def f() -> Int:\n    return undefined_name\n")
    with pytest.raises(build.KernelBuildError, match="broken.mojo") as error:
        build.build()
    assert "undefined_name" in str(error.value)


def test_missing_compiler_is_explained(kernel_tree, monkeypatch, tmp_path):
    monkeypatch.setattr(build.sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(build.KernelBuildError, match="pip install mojo"):
        build.build()


def test_cli_reports_failure_without_traceback(kernel_tree, capsys):
    (kernel_tree / "broken.mojo").write_text("this is not mojo\n")
    assert build.main([]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: `mojo precompile") and "Traceback" not in err
