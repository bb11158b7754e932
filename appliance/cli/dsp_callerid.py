"""``appliance dsp caller-id FILE.wav``: decode FSK caller ID from a line recording.

JSON output (``--json``) is a contract: an array of
``{standard, number, absent_reason, called_number, checksum_ok, start_s}``
objects, plus ``absent_code`` (the raw P/O/C/S letter).
"""

from __future__ import annotations

import json
from pathlib import Path

from appliance.cli.wavio import read_line_wav
from appliance.dsp.callerid import CallerIdMessage, CallerIdReceiver, CallerIdSpec
from appliance.errors import ConfigError

STANDARD_NAMES = {
    "jclip": "ナンバー・ディスプレイ / Japanese Number Display",
    "bellcore": "Bellcore CLASS",
    "etsi": "ETSI CLIP",
}
ABSENT_NAMES = {
    "withheld": "非通知 / withheld",
    "unavailable": "表示圏外 / unavailable",
    "public_phone": "公衆電話 / public phone",
}


def register(dsp_sub) -> None:
    p = dsp_sub.add_parser(
        "caller-id",
        help="発信者番号(FSK)の解析 / decode FSK caller ID (JCLIP, Bellcore, ETSI)")
    p.add_argument("file", type=Path, metavar="FILE.wav", help="8 kHz 16-bit mono WAV")
    p.add_argument("--standard", choices=("auto", "jclip", "bellcore", "etsi"), default="auto",
                   help="方式 / standard (default: auto)")
    p.add_argument("--json", action="store_true", help="JSON で出力 / print JSON")
    p.set_defaults(func=run)


def _human(m: CallerIdMessage) -> str:
    head = f"{m.start_s:8.3f} s  {STANDARD_NAMES[str(m.standard)]}"
    if not m.checksum_ok:
        return f"{head}\n  チェックサム不一致(番号は使えません) / checksum failed (no number)"
    lines = [head]
    if m.number is not None:
        lines.append(f"  発信者番号 / caller number: {m.number}")
    if m.absent_code is not None:
        name = ABSENT_NAMES.get(str(m.absent_reason), "不明 / unknown")
        lines.append(f"  番号なし / number absent: {name} ({m.absent_code})")
    if m.called_number is not None:
        lines.append(f"  着信番号 / called number: {m.called_number}")
    if m.number is None and m.absent_code is None:
        lines.append("  番号情報なし / no number information")
    return "\n".join(lines)


def run(args) -> int:
    try:
        spec = CallerIdSpec(args.standard)
    except ValueError as exc:       # argparse's choices make this unreachable from the shell
        raise ConfigError(f"方式が不正です / bad standard: {exc}") from None
    samples = read_line_wav(args.file)
    messages = CallerIdReceiver(spec).feed(samples)
    if args.json:
        print(json.dumps([m.to_json() for m in messages], ensure_ascii=False))
    elif not messages:
        print("発信者番号情報は見つかりません / no caller ID found")
    else:
        print("\n".join(_human(m) for m in messages))
    return 0
