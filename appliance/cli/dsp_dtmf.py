"""``appliance dsp dtmf|tones FILE.wav``: dialled digits and call-progress tones.

JSON output (``--json``) is a contract:
* ``dtmf``  → ``{"digits": "...", "events": [{"digit", "start_s", "end_s"}]}``
* ``tones`` → ``[{"tone": "dial"|"busy"|"ringback", "start_s", "end_s"}]``
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from appliance.cli.wavio import WavError, read_line_wav
from appliance.dsp.dtmf import decode_dtmf
from appliance.dsp.tones import TONE_NAMES_JA, detect_tones


def register(dsp_sub) -> None:
    p = dsp_sub.add_parser("dtmf", help="ダイヤル番号(DTMF)の解析 / decode DTMF digits")
    p.add_argument("file", type=Path, metavar="FILE.wav", help="8 kHz 16-bit mono WAV")
    p.add_argument("--json", action="store_true", help="JSON で出力 / print JSON")
    p.set_defaults(func=run_dtmf)

    p = dsp_sub.add_parser(
        "tones", help="発信音・話中音・呼出音の検出 / find dial, busy and ringback tones")
    p.add_argument("file", type=Path, metavar="FILE.wav", help="8 kHz 16-bit mono WAV")
    p.add_argument("--json", action="store_true", help="JSON で出力 / print JSON")
    p.set_defaults(func=run_tones)


def _read(path: Path) -> np.ndarray:
    try:
        return read_line_wav(path)
    except OSError as exc:   # a directory, no permission: read_line_wav only maps "missing"
        raise WavError(f"{path}: 読めません / cannot read ({exc.strerror or exc})") from None


def _s(v: float) -> float:
    return round(v, 3)


def run_dtmf(args) -> int:
    digits = decode_dtmf(_read(args.file))
    text = "".join(d.digit for d in digits)
    if args.json:
        print(json.dumps({"digits": text, "events": [
            {"digit": d.digit, "start_s": _s(d.start_s), "end_s": _s(d.end_s)} for d in digits]},
            ensure_ascii=False))
    elif not digits:
        print("ダイヤル番号は見つかりません / no DTMF digits found")
    else:
        print(f"ダイヤル番号 / digits: {text}")
        for d in digits:
            print(f"  {d.start_s:8.3f} – {d.end_s:8.3f} s  {d.digit}")
    return 0


def run_tones(args) -> int:
    tones = detect_tones(_read(args.file))
    if args.json:
        print(json.dumps([{"tone": str(t.tone), "start_s": _s(t.start_s), "end_s": _s(t.end_s)}
                          for t in tones], ensure_ascii=False))
    elif not tones:
        print("発信音・話中音・呼出音は見つかりません / no dial, busy or ringback tone found")
    else:
        for t in tones:
            print(f"{t.start_s:8.3f} – {t.end_s:8.3f} s  {TONE_NAMES_JA[t.tone]} / {t.tone}")
    return 0
