"""LAPD (ITU-T Q.921 / TTC JT-Q921): the D channel's link layer, decoded for a passive monitor.

Digest of the standard (shared/reference/telephony.md §4.2):

* HDLC framing: flag 0x7E at both ends; the sender inserts a 0 after five
  consecutive 1s (bit stuffing), the receiver deletes it; six 1s then 0 is a
  flag, seven or more 1s abort the frame. Octets go LSB first.
* Address, 2 octets: SAPI (6 bits) | C/R | EA=0, then TEI (7 bits) | EA=1.
  SAPI 0 = Q.931 call control, 1 packet-mode, 16 X.25, 63 layer-2
  management. TEI 127 = broadcast, 0–63 fixed, 64–126 assigned.
  C/R = 1 on a network→user command, 0 on a user→network command.
* Control: I-frame 2 octets (N(S)<<1|0, N(R)<<1|P); S-frame 2 octets
  (RR 0x01, RNR 0x05, REJ 0x09 then N(R)<<1|P/F); U-frame 1 octet
  (SABME 0x6F, UA 0x63, DISC 0x43, DM 0x0F, FRMR 0x87, UI 0x03, XID 0xAF,
  plus P/F 0x10).
* FCS-16: x¹⁶+x¹²+x⁵+1, preset 0xFFFF, reflected, complemented, low byte
  first. Check value on "123456789" = 0x906E; over frame+FCS without the
  final complement the residue is 0xF0B8.

A monitor never answers; decoding never raises on line input: whatever does
not parse comes back as a frame with ``error`` set.
"""

from __future__ import annotations

from dataclasses import dataclass

FLAG = 0x7E
GOOD_RESIDUE = 0xF0B8
#: shortest frame with FCS: address 2, control 1, FCS 2
MIN_FRAME = 5
#: Q.921 N201: longest information field (octets); a longer frame is garbage
MAX_INFO = 260

_U_NAMES = {0x6F: "SABME", 0x63: "UA", 0x43: "DISC", 0x0F: "DM", 0x87: "FRMR", 0x03: "UI",
            0xAF: "XID"}
_S_NAMES = {0x01: "RR", 0x05: "RNR", 0x09: "REJ"}
SAPI_NAMES = {0: "call control (Q.931)", 1: "packet-mode Q.931", 16: "X.25",
              63: "layer 2 management"}


def _crc_table() -> list[int]:
    table = []
    for b in range(256):
        c = b
        for _ in range(8):
            c = (c >> 1) ^ 0x8408 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc_table()


def fcs16(data: bytes, crc: int = 0xFFFF) -> int:
    """The running FCS register (no final complement) after ``data``."""
    for b in data:
        crc = (crc >> 8) ^ _TABLE[(crc ^ b) & 0xFF]
    return crc


def fcs(data: bytes) -> int:
    """The FCS to send after ``data`` (complemented; send low byte first)."""
    return fcs16(data) ^ 0xFFFF


def append_fcs(data: bytes) -> bytes:
    f = fcs(data)
    return bytes(data) + bytes([f & 0xFF, f >> 8])


def fcs_ok(frame_with_fcs: bytes) -> bool:
    return len(frame_with_fcs) >= 3 and fcs16(frame_with_fcs) == GOOD_RESIDUE


# --- bit level ------------------------------------------------------------------------

def octets_to_bits(data: bytes) -> list[int]:
    return [(b >> i) & 1 for b in data for i in range(8)]


def stuff(data: bytes) -> list[int]:
    """Bits of ``data`` (LSB first) with a 0 inserted after every five 1s."""
    out, ones = [], 0
    for bit in octets_to_bits(data):
        out.append(bit)
        ones = ones + 1 if bit else 0
        if ones == 5:
            out.append(0)
            ones = 0
    return out


def hdlc_encode(frames: list[bytes], idle_flags: int = 1) -> list[int]:
    """A bit stream carrying each frame (FCS included) between flags."""
    flag = octets_to_bits(bytes([FLAG]))
    bits: list[int] = flag * idle_flags
    for f in frames:
        bits += stuff(f) + flag
    return bits


@dataclass
class HdlcStats:
    frames: int = 0
    aborts: int = 0
    bad_fcs: int = 0
    short: int = 0
    not_octet_aligned: int = 0
    too_long: int = 0


class HdlcReceiver:
    """Bits in (any chunking), frames out (FCS checked and stripped). Never raises."""

    def __init__(self) -> None:
        self.stats = HdlcStats()
        self._ones = 0
        self._bits: list[int] = []
        self._in_frame = False

    def feed(self, bits) -> list[bytes]:
        out: list[bytes] = []
        for bit in bits:
            bit = 1 if bit else 0
            if bit:
                self._ones += 1
                if self._ones >= 7:
                    if self._in_frame and self._ones == 7 and len(self._bits) > 6:
                        self.stats.aborts += 1      # idle 1s after a closing flag are not an abort
                    self._in_frame = False
                    self._bits = []
                    continue
                if self._in_frame:
                    self._bits.append(1)
                continue
            # a zero
            if self._ones == 6:                      # a flag: 0111111 0 (the leading 0 is queued)
                if self._in_frame and self._bits:
                    frame = self._close(self._bits[:-6] if len(self._bits) >= 6 else [])
                    if frame is not None:
                        out.append(frame)
                self._in_frame = True
                self._bits = []
            elif self._ones == 5:
                pass                                  # a stuffed zero: drop it
            elif self._in_frame:
                self._bits.append(0)
            self._ones = 0
        return out

    def _close(self, bits: list[int]) -> bytes | None:
        # the flag's leading 0 was appended before its six 1s
        if bits and bits[-1] == 0:
            bits = bits[:-1]
        if not bits:
            return None
        if len(bits) % 8:
            self.stats.not_octet_aligned += 1
            return None
        data = bytes(sum(bits[i + k] << k for k in range(8)) for i in range(0, len(bits), 8))
        if len(data) < MIN_FRAME:
            self.stats.short += 1
            return None
        if len(data) > MAX_INFO + 6:
            self.stats.too_long += 1
            return None
        if not fcs_ok(data):
            self.stats.bad_fcs += 1
            return None
        self.stats.frames += 1
        return data[:-2]


# --- frame level ----------------------------------------------------------------------

@dataclass(frozen=True)
class LapdFrame:
    sapi: int = 0
    cr: int = 0
    tei: int = 0
    kind: str = ""             #: "I", "S", "U" or "" when unparsable
    name: str = ""             #: I, RR, RNR, REJ, SABME, UA, DISC, DM, FRMR, UI, XID, ?
    ns: int | None = None
    nr: int | None = None
    pf: int = 0
    info: bytes = b""
    error: str | None = None

    @property
    def carries_q931(self) -> bool:
        return self.error is None and self.sapi == 0 and self.name in ("I", "UI") and bool(self.info)

    def command(self, network_side: bool | None = None) -> bool | None:
        """Whether this is a command, given which side sent it (None: unknown)."""
        if network_side is None:
            return None
        return bool(self.cr) == network_side

    def as_dict(self) -> dict:
        d = {"sapi": self.sapi, "sapi_name": SAPI_NAMES.get(self.sapi), "cr": self.cr,
             "tei": self.tei, "broadcast": self.tei == 127, "type": self.kind,
             "frame": self.name, "pf": self.pf}
        if self.ns is not None:
            d["ns"] = self.ns
        if self.nr is not None:
            d["nr"] = self.nr
        if self.info:
            d["info_len"] = len(self.info)
        if self.error:
            d["error"] = self.error
        return d


def build(sapi: int, cr: int, tei: int, control: bytes, info: bytes = b"",
          with_fcs: bool = True) -> bytes:
    body = bytes([(sapi << 2) | (cr << 1), (tei << 1) | 1]) + control + info
    return append_fcs(body) if with_fcs else body


def i_control(ns: int, nr: int, p: int = 0) -> bytes:
    return bytes([(ns << 1) & 0xFE, ((nr << 1) | p) & 0xFF])


UI = b"\x03"


def parse(frame: bytes, has_fcs: bool = False) -> LapdFrame:
    """Decode one LAPD frame (address onwards); ``has_fcs`` checks and strips the last 2 octets."""
    data = bytes(frame)
    if has_fcs:
        if len(data) < MIN_FRAME:
            return LapdFrame(error="short frame")
        if not fcs_ok(data):
            return LapdFrame(error="bad FCS")
        data = data[:-2]
    if len(data) < 3:
        return LapdFrame(error="short frame")
    a0, a1 = data[0], data[1]
    if a0 & 1 or not a1 & 1:
        return LapdFrame(error="bad address extension bits")
    sapi, cr, tei = a0 >> 2, (a0 >> 1) & 1, a1 >> 1
    c0 = data[2]
    if c0 & 1 == 0:                                  # I-frame
        if len(data) < 4:
            return LapdFrame(sapi, cr, tei, "I", "I", error="short I-frame")
        return LapdFrame(sapi, cr, tei, "I", "I", c0 >> 1, data[3] >> 1, data[3] & 1, data[4:])
    if c0 & 3 == 1:                                  # S-frame
        if len(data) < 4:
            return LapdFrame(sapi, cr, tei, "S", "?", error="short S-frame")
        name = _S_NAMES.get(c0, "?")
        return LapdFrame(sapi, cr, tei, "S", name, None, data[3] >> 1, data[3] & 1, data[4:],
                         None if name != "?" else f"unknown S control 0x{c0:02x}")
    pf = (c0 >> 4) & 1
    name = _U_NAMES.get(c0 & ~0x10, "?")
    return LapdFrame(sapi, cr, tei, "U", name, None, None, pf, data[3:],
                     None if name != "?" else f"unknown U control 0x{c0:02x}")
