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
# screenshots are legible). The real servers the tests start on loopback
# (../shared/DESIGN-city.md): PostgreSQL (the centre's database), swtpm and
# tpm2-tools (a software TPM 2.0), openssl (an RFC 3161 time-stamping
# authority), rsyslog with TLS, snmptrapd, NUT (upsd/upsmon/dummy-ups), chrony
# (read only); libopus-dev for the benchmark's C ceiling.
RUN_PKGS="libopus0 libasound2-dev gcc"
TEST_PKGS="opus-tools ffmpeg sox espeak-ng libspandsp-dev alsa-utils pkg-config chromium chromium-driver fonts-ipafont-gothic
  postgresql swtpm swtpm-tools tpm2-tools libtss2-dev openssl rsyslog rsyslog-gnutls snmptrapd snmp
  nut-server nut-client chrony libopus-dev"
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
        # the lists can be empty after other apt runs: update every time we install
        apt-get update -qq
        # servers installed for the tests must not start as system services
        # (PostgreSQL's default cluster, rsyslog, chronyd): the tests start
        # their own on loopback. policy-rc.d is Debian's switch for that; ours
        # only while we install, and only if the machine has none of its own.
        own_policy=""
        if [ ! -e /usr/sbin/policy-rc.d ]; then
            printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
            chmod 755 /usr/sbin/policy-rc.d
            own_policy=1
        fi
        rc=0
        apt-get install -y -qq --no-install-recommends $missing >/dev/null || rc=$?
        [ -n "$own_policy" ] && rm -f /usr/sbin/policy-rc.d
        [ "$rc" = 0 ] || { echo "bootstrap: apt-get install failed ($rc)" >&2; exit "$rc"; }
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
