#!/usr/bin/env bash
# Installs what `make run` and `make test` need on a fresh Debian machine:
# Debian packages through apt (when root), a virtualenv in .venv, the package
# in editable mode. Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

# Runtime: libopus0 (opuslib looks it up at import), libasound2-dev (pyalsaaudio
# builds from source). Test tools: opus-tools (opusinfo validates Ogg Opus),
# ffmpeg, sox and espeak-ng (test audio), libspandsp-dev + gcc (independent
# DSP reference), alsa-utils, chromium (browser tests of the staff web service,
# driven by Playwright through Debian's own browser; a Japanese font so its
# screenshots are legible).
RUN_PKGS="libopus0 libasound2-dev gcc"
TEST_PKGS="opus-tools ffmpeg sox espeak-ng libspandsp-dev alsa-utils pkg-config chromium chromium-driver fonts-ipafont-gothic"
want="$RUN_PKGS"
[ "${1:-}" = "test" ] && want="$RUN_PKGS $TEST_PKGS"

missing=""
for p in $want; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "bootstrap: installing Debian packages:$missing"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends $missing >/dev/null
    else
        echo "bootstrap: missing Debian packages:$missing" >&2
        echo "bootstrap: run as root, or: sudo apt-get install$missing" >&2
        exit 1
    fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "bootstrap: creating .venv"
    "$PY" -m venv .venv
fi
stamp=.venv/.installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "bootstrap: installing the appliance package into .venv"
    .venv/bin/pip install -q --upgrade pip >/dev/null
    .venv/bin/pip install -q -e '.[test]'
    touch "$stamp"
fi
