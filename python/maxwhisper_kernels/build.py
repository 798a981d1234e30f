"""Builds the Mojo kernel package and finds it again.

`kernels/*.mojo` is precompiled with `mojo precompile` into
`build/<hash>/maxwhisper_kernels.mojoc`, where the hash covers every kernel
source and the compiler version: an edited kernel gets a new file, an
unchanged tree reuses the old one. The file name itself must stay a valid
Mojo identifier: MAX imports the package under its file name. Run `python -m maxwhisper_kernels.build`
to build ahead of time; `kernel_library()` builds on first use otherwise.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .runtime_options import apply_cpu_target

REPO_ROOT = Path(__file__).resolve().parents[2]
KERNELS_DIR = Path(os.environ.get("MAXWHISPER_KERNELS_DIR", REPO_ROOT / "kernels"))
BUILD_DIR = Path(os.environ.get("MAXWHISPER_BUILD_DIR", REPO_ROOT / "build"))
LIBRARY_NAME = "maxwhisper_kernels.mojoc"


class KernelBuildError(RuntimeError):
    """The Mojo kernels could not be built; the message holds the reason."""


def find_mojo() -> Path:
    # The venv's bin/ is not on PATH when python is run without activating it.
    beside_python = Path(sys.executable).parent / "mojo"
    if beside_python.exists():
        return beside_python
    on_path = shutil.which("mojo")
    if on_path:
        return Path(on_path)
    raise KernelBuildError(
        "the `mojo` compiler was not found next to this Python or on PATH; "
        "install it with `pip install mojo==1.2.0` (see README.md)"
    )


def _sources() -> list[Path]:
    sources = sorted(KERNELS_DIR.glob("*.mojo"))
    if not sources:
        raise KernelBuildError(f"no kernel sources (*.mojo) found in {KERNELS_DIR}")
    return sources


@functools.lru_cache(maxsize=1)
def _compiler_version(mojo: Path) -> str:
    done = subprocess.run([str(mojo), "--version"], capture_output=True, text=True)
    return done.stdout.strip()


def source_hash(mojo: Path) -> str:
    digest = hashlib.sha256(_compiler_version(mojo).encode())
    for path in _sources():
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _compile(mojo: Path, target: Path) -> None:
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    # mojo bakes the output's file name into the package, so compile under
    # the final name inside a private folder and rename the folder: a
    # concurrent reader never sees a half-written library.
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=BUILD_DIR))
    try:
        done = subprocess.run(
            [str(mojo), "precompile", str(KERNELS_DIR), "-o", str(staging / target.name)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise KernelBuildError(
                f"`mojo precompile {KERNELS_DIR}` failed:\n"
                + (done.stderr or done.stdout).strip()
            )
        try:
            staging.rename(target.parent)
        except OSError:
            if not target.exists():  # lost a race only if the winner left a library
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def build(force: bool = False) -> Path:
    """Returns the compiled kernel library, compiling it if the sources changed."""
    mojo = find_mojo()
    target = BUILD_DIR / source_hash(mojo) / LIBRARY_NAME
    if force or not target.exists():
        _compile(mojo, target)
        for stale in BUILD_DIR.glob(f"*/{LIBRARY_NAME}"):
            if stale != target:
                shutil.rmtree(stale.parent, ignore_errors=True)
    return target


@functools.lru_cache(maxsize=1)
def kernel_library() -> Path:
    """The kernel library for this process (built once, then reused). Every graph with our
    kernels asks for it before it compiles, so this is where MAX is pointed at
    MAXWHISPER_CPU_TARGET (runtime_options.apply_cpu_target)."""
    apply_cpu_target()
    return build()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the maxwhisper Mojo kernels.")
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    args = parser.parse_args(argv)
    try:
        path = build(force=args.force)
    except KernelBuildError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
