#!/usr/bin/env bash
# Build the appliance's root tree with mmdebstrap, from Debian packages and this
# project's wheel (with its pinned dependencies from PyPI), and, for arm64, the
# SD-card image (mkdisk.sh). See image/README.md.
#
#   image/build.sh [--arch amd64|arm64] [--out DIR] [--disk]
#
# Environment (all optional; the defaults are the reproducible ones):
#   SUITE              Debian suite, pinned by name (bookworm = Python 3.11)
#   MIRROR             Debian mirror; a snapshot URL (…/archive/debian/YYYYMMDDTHHMMSSZ)
#                      pins every package version and makes two builds identical
#   SECURITY_MIRROR    the security archive (a snapshot of debian-security to pin)
#   SOURCE_DATE_EPOCH  timestamp of every file; default: the commit time of HEAD
#   APPLIANCE_CONFIG   the site's appliance.toml baked into /etc/appliance
#   CONSOLE_TTY        serial console port (default ttyS0 on amd64, ttyS1 on a Pi 4)
#   GIT_REF            which commit of this repository goes into the wheel (HEAD)
#   TECHNICIANS        site file of 'name:crypt-hash' technician accounts (README "Console")
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"

ARCH=arm64
OUT=""
DISK=0
while [ $# -gt 0 ]; do
    case "$1" in
        --arch) ARCH="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        --disk) DISK=1; shift ;;
        -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
        *) echo "build.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
case "$ARCH" in
    amd64) : "${CONSOLE_TTY:=ttyS0}"; PIPARCH=x86_64 ;;
    # Debian's kernel uses the mainline device tree: on a Pi 4 the GPIO 14/15 UART
    # (enable_uart=1) is the mini UART, ttyS1 (as on Debian's own Pi images).
    arm64) : "${CONSOLE_TTY:=ttyS1}"; PIPARCH=aarch64 ;;
    *) echo "build.sh: --arch must be amd64 or arm64" >&2; exit 2 ;;
esac

: "${SUITE:=bookworm}"
: "${MIRROR:=http://deb.debian.org/debian}"
: "${SECURITY_MIRROR:=http://deb.debian.org/debian-security}"
: "${GIT_REF:=HEAD}"
: "${SOURCE_DATE_EPOCH:=$(git -C "$REPO" log -1 --format=%ct "$GIT_REF")}"
: "${APPLIANCE_CONFIG:=$HERE/appliance.toml}"
: "${OUT:=/tmp/appliance-image/$ARCH}"
if [ -n "${TECHNICIANS:-}" ]; then TECHNICIANS="$(realpath "$TECHNICIANS")"; fi
export SOURCE_DATE_EPOCH ARCH CONSOLE_TTY APPLIANCE_CONFIG REPO TECHNICIANS
# Same locale and umask on every build machine: both leak into file contents and modes.
export LC_ALL=C.UTF-8 TZ=UTC
umask 022

[ "$(id -u)" = 0 ] || { echo "build.sh: run as root (mmdebstrap --mode=root, chroot)" >&2; exit 2; }
command -v mmdebstrap >/dev/null || { echo "build.sh: apt-get install mmdebstrap" >&2; exit 2; }

# The package lists must stay sorted: the list is part of what makes a build.
packages() {
    local f
    for f in "$@"; do
        local body; body="$(grep -v '^\s*#' "$f" | sed '/^\s*$/d')"
        if [ "$body" != "$(printf '%s\n' "$body" | LC_ALL=C sort -u)" ]; then
            echo "build.sh: $f is not sorted (LC_ALL=C sort -u)" >&2; exit 2
        fi
        printf '%s\n' "$body"
    done | LC_ALL=C sort -u | paste -sd, -
}
INCLUDE="$(packages "$HERE/packages.txt" "$HERE/packages-$ARCH.txt" "$HERE/packages-build.txt")"

WORK="$OUT.work"
rm -rf "$OUT" "$WORK"
mkdir -p "$WORK/wheelhouse" "$WORK/src" "$OUT.manifest"
export WORK

started=$(date +%s)

# 1. The wheel, from the committed source only (never the working tree, which
#    may hold someone's unfinished edits), and its pinned dependencies.
git -C "$REPO" archive --format=tar "$GIT_REF" | tar -x -C "$WORK/src"
python3 -m pip wheel --quiet --no-deps --no-cache-dir \
    -w "$WORK/wheelhouse" "$WORK/src"
# Binary wheels for the target's Python (Debian 12: CPython 3.11, glibc 2.36);
# the few projects with no wheel on PyPI (pyalsaaudio) come as sdists and are
# compiled inside the target tree, against its own libraries (hooks/customize.sh).
PLAT=(--platform "manylinux_2_36_$PIPARCH" --platform "manylinux_2_34_$PIPARCH"
      --platform "manylinux_2_28_$PIPARCH" --platform "manylinux2014_$PIPARCH"
      --platform "manylinux_2_17_$PIPARCH" --python-version 3.11 --implementation cp --abi cp311)
SDISTS=pyalsaaudio
grep -v '^#' "$HERE/requirements.txt" | grep -v -E "^($SDISTS)==" > "$WORK/binary.txt"
grep -E "^($SDISTS)==" "$HERE/requirements.txt" > "$WORK/sdist.txt"
python3 -m pip download --quiet --no-cache-dir --no-deps --only-binary=:all: "${PLAT[@]}" \
    -r "$WORK/binary.txt" -d "$WORK/wheelhouse"
python3 -m pip download --quiet --no-cache-dir --no-deps --no-binary=:all: \
    -r "$WORK/sdist.txt" -d "$WORK/wheelhouse"
cp "$HERE/requirements.txt" "$WORK/wheelhouse/requirements.txt"
# The dependencies' files are pinned by hash once recorded (wheels-ARCH.sha256);
# the project's own wheel is not in the list: it changes with every commit.
(cd "$WORK/wheelhouse" && sha256sum -- *.whl *.tar.gz | grep -v ' appliance-' | LC_ALL=C sort -k2) \
    > "$OUT.manifest/wheels.sha256"
if [ -f "$HERE/wheels-$ARCH.sha256" ]; then
    diff -u "$HERE/wheels-$ARCH.sha256" "$OUT.manifest/wheels.sha256" \
        || { echo "build.sh: PyPI files differ from image/wheels-$ARCH.sha256" >&2; exit 1; }
fi

# 2. The tree. Recommends off and documentation out: only what the list names
#    and what it depends on. mmdebstrap honours SOURCE_DATE_EPOCH and removes
#    apt's lists and caches itself, so no download cache is left in the tree.
COMPONENTS=main
if [ "$ARCH" = arm64 ]; then COMPONENTS="main non-free-firmware"; fi   # raspi-firmware
mmdebstrap --mode=root --variant=apt --architectures="$ARCH" \
    --include="$INCLUDE" \
    --aptopt='APT::Install-Recommends "false"' \
    --aptopt='Acquire::Check-Valid-Until "false"' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --setup-hook='mkdir -p "$1/boot/firmware"' \
    --customize-hook="\"$HERE/hooks/customize.sh\" \"\$1\"" \
    "$SUITE" "$OUT" \
    "deb $MIRROR $SUITE $COMPONENTS" \
    "deb $MIRROR $SUITE-updates $COMPONENTS" \
    "deb $SECURITY_MIRROR $SUITE-security $COMPONENTS"

# 3. What went in, to compare two builds (README: "Reproducibility").
chroot "$OUT" dpkg-query -W -f '${Package}=${Version}\n' | LC_ALL=C sort > "$OUT.manifest/packages.txt"
chroot "$OUT" env PYTHONDONTWRITEBYTECODE=1 /opt/appliance/.venv/bin/python -m pip freeze --all | LC_ALL=C sort > "$OUT.manifest/python.txt"
# Every file's time is the source's time: the same input gives the same tree.
find "$OUT" -xdev -newermt "@$SOURCE_DATE_EPOCH" -exec touch --no-dereference --date="@$SOURCE_DATE_EPOCH" {} +
python3 "$HERE/tree-digest.py" "$OUT" > "$OUT.manifest/tree.txt"
sha256sum "$OUT.manifest/tree.txt" | cut -d' ' -f1 > "$OUT.manifest/tree.sha256"
rm -rf "$WORK"

if [ "$DISK" = 1 ]; then
    "$HERE/mkdisk.sh" "$OUT" "$OUT.disk"
fi

echo "build.sh: $ARCH tree in $OUT ($(du -sh --apparent-size "$OUT" | cut -f1)," \
     "$(wc -l < "$OUT.manifest/packages.txt") Debian packages, tree digest" \
     "$(cut -c1-16 "$OUT.manifest/tree.sha256"), $(( $(date +%s) - started )) s)"
