#!/usr/bin/env bash
# Regenerates the shipped default notice (音声案内) from its text with espeak-ng:
# 8 kHz 16-bit mono, the line's format. Run by hand when the wording changes.
# espeak-ng reads kanji as "Chinese letter", so it speaks the kana reading
# (notice_ja.reading.txt) of the published wording (notice_ja.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=appliance/engine/data
TEXT=$(cat "$OUT/notice_ja.reading.txt")
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
espeak-ng -v ja -s 165 -w "$TMP/raw.wav" "$TEXT"
sox "$TMP/raw.wav" -r 8000 -c 1 -b 16 "$OUT/notice_ja.wav" silence 1 0.05 1% reverse silence 1 0.05 1% reverse norm -6
ls -l "$OUT/notice_ja.wav"
