#!/usr/bin/env bash
# What the image targets need on the build machine (any Debian 12 as root), from
# Debian's packages only. arm64 on another architecture runs the tree's
# maintainer scripts through qemu-user (binfmt).
#   image/deps.sh arm64|amd64|boot
set -euo pipefail
need=(mmdebstrap e2fsprogs dosfstools mtools fdisk util-linux)
case "${1:-arm64}" in
    arm64) if [ "$(dpkg --print-architecture)" != arm64 ]; then need+=(qemu-user-static binfmt-support); fi ;;
    amd64) ;;
    boot) need+=(qemu-system-x86) ;;
    *) echo "image/deps.sh: arm64, amd64 or boot" >&2; exit 2 ;;
esac
missing=()
for p in "${need[@]}"; do
    dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} = 0 ]; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
    echo "image/deps.sh: as root: apt-get install ${missing[*]}" >&2; exit 2
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
