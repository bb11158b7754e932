"""``appliance isdn decode (--hex HEX | --pcap FILE) --json``: check a D-channel capture.

For technicians: prints each LAPD frame and the Q.931 message it carries
(numbers included, as the capture holds them — the capture is already in the
technician's hands; nothing is logged). pcap files with the link types
Wireshark writes for LAPD are read:

* 177 LINKTYPE_LINUX_LAPD: a 16-octet Linux "cooked" header (packet type,
  ARPHRD type, address length, 8 address octets, protocol) before the
  address field; packet type 4 = sent by the capturing side, and address
  octet 0 = 1 when the capturing side was the network (NT mode);
* 203 LINKTYPE_LAPD: the frame from the address field, no pseudo-header.

Frames in pcap files carry no FCS (the capturing driver checked it).
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

from appliance.errors import ApplianceError
from appliance.tapi import lapd, q931

LINKTYPE_LINUX_LAPD = 177
LINKTYPE_LAPD = 203
#: a pcap record larger than this is not a D-channel frame: the file is damaged
MAX_RECORD = 65535


class CaptureError(ApplianceError, ValueError):
    pass


def decode_frame(data: bytes, has_fcs: bool | None = None) -> dict:
    """One LAPD frame (address onwards) as a JSON-ready dict; FCS auto-detected when None."""
    data = bytes(data)
    fcs_state = None
    if has_fcs is None:
        has_fcs = lapd.fcs_ok(data) and len(data) >= lapd.MIN_FRAME
    if has_fcs:
        fcs_state = "ok" if lapd.fcs_ok(data) else "bad"
    f = lapd.parse(data, has_fcs=bool(has_fcs))
    out = {"hex": data.hex(" "), "lapd": f.as_dict(), "fcs": fcs_state}
    if f.carries_q931:
        out["q931"] = q931.parse(f.info).as_dict()
    return out


def parse_hex(text: str) -> bytes:
    clean = re.sub(r"(0x)|[\s:,|\-]", "", text, flags=re.IGNORECASE)
    if not clean or len(clean) % 2 or not re.fullmatch(r"[0-9a-fA-F]*", clean):
        raise CaptureError("16進数の形式が正しくありません / --hex must be pairs of hex digits")
    data = bytes.fromhex(clean)
    # a frame copied with its flags: the flags are not part of the frame
    return data.strip(b"\x7e") if data[:1] == b"\x7e" else data


def read_pcap(path: Path) -> tuple[int, list[tuple[float, bytes]]]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CaptureError(f"{path}: キャプチャを読めません / cannot read the capture "
                           f"({exc.strerror})") from None
    if len(raw) < 24:
        raise CaptureError(f"{path}: pcap ではありません / not a pcap file (too short)")
    magic = raw[:4]
    formats = {b"\xd4\xc3\xb2\xa1": ("<", 1e-6), b"\xa1\xb2\xc3\xd4": (">", 1e-6),
               b"\x4d\x3c\xb2\xa1": ("<", 1e-9), b"\xa1\xb2\x3c\x4d": (">", 1e-9)}
    if magic not in formats:
        raise CaptureError(f"{path}: pcap ではありません / not a pcap file (pcapng: save as pcap)")
    end, unit = formats[magic]
    linktype = struct.unpack(end + "I", raw[20:24])[0] & 0x0FFFFFFF
    if linktype not in (LINKTYPE_LINUX_LAPD, LINKTYPE_LAPD):
        raise CaptureError(f"{path}: LAPD のキャプチャではありません / link type {linktype} is not "
                           "LAPD (177 or 203)")
    records, pos = [], 24
    while pos + 16 <= len(raw):
        sec, frac, incl, _orig = struct.unpack(end + "IIII", raw[pos:pos + 16])
        if incl > MAX_RECORD or pos + 16 + incl > len(raw):
            break                                    # a cut or damaged tail: keep what came before
        records.append((sec + frac * unit, raw[pos + 16:pos + 16 + incl]))
        pos += 16 + incl
    return linktype, records


def decode_pcap(path: Path) -> list[dict]:
    linktype, records = read_pcap(path)
    out = []
    for i, (t, rec) in enumerate(records):
        meta: dict = {"index": i, "time": round(t, 6), "linktype": linktype}
        frame = rec
        if linktype == LINKTYPE_LINUX_LAPD:
            if len(rec) < 16:
                out.append({**meta, "error": "record shorter than its header"})
                continue
            pkttype = struct.unpack(">H", rec[:2])[0]
            meta["direction"] = {0: "received", 4: "sent"}.get(pkttype, str(pkttype))
            meta["capture_side"] = "network" if rec[6] == 1 else "user"
            frame = rec[16:]
        out.append({**meta, **decode_frame(frame, has_fcs=False)})
    return out


def cmd_decode(args) -> int:
    if args.hex is not None:
        frames = [decode_frame(parse_hex(args.hex))]
    else:
        frames = decode_pcap(args.pcap)
    if args.json:
        print(json.dumps({"frames": frames}, ensure_ascii=False, indent=2))
    else:
        for f in frames:
            q = f.get("q931")
            l2 = f.get("lapd", {})
            line = (f"SAPI {l2.get('sapi')} TEI {l2.get('tei')} {l2.get('frame')}"
                    + (f" {q['message']} CR {q['call_reference']}" if q else "")
                    + (f" [{l2['error']}]" if l2.get("error") else ""))
            print(line)
    return 0


def register(sub) -> None:
    p = sub.add_parser("isdn", help="ISDN D チャネルの解析 / ISDN D-channel tools")
    isub = p.add_subparsers(dest="isdn_command", metavar="ACTION")
    isub.required = True
    d = isub.add_parser("decode", help="LAPD/Q.931 フレームの解読 / decode LAPD frames and "
                                       "their Q.931 messages")
    src = d.add_mutually_exclusive_group(required=True)
    src.add_argument("--hex", metavar="HEX",
                     help="1 フレームの16進 / one LAPD frame from its address field, FCS optional")
    src.add_argument("--pcap", type=Path, metavar="FILE",
                     help="pcap ファイル (リンク種別 177 / 203) / a pcap capture (LAPD link types)")
    d.add_argument("--json", action="store_true", help="JSON で出力 / print JSON")
    d.set_defaults(func=cmd_decode)
