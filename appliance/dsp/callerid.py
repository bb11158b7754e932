"""Caller ID message layers: Japanese Number Display (JCLIP), Bellcore CLASS, ETSI CLIP.

Digest (shared/reference/telephony.md §1.3–1.6):

* **JCLIP** (NTT ナンバー・ディスプレイ), V.23 FSK, sent off-hook after CAR.
  Frame ``DLE SOH 07 DLE STX type len params… DLE ETX crc_lo crc_hi``; every
  byte carries even parity in bit 7; a data byte 0x10 is sent twice (DLE
  transparency, also for LEN). CRC-16 x¹⁶+x¹²+x⁵+1, init 0, reflected, no
  final XOR ("KERMIT"), from the header byte through ETX, parity bits and
  stuffed DLEs included; a good frame leaves residue 0. Message type 0x40 is
  caller ID; parameters: 0x02 caller number, 0x04 reason for absence
  (P withheld, O out of area, C public phone, S service conflict), 0x09
  called number; others (0x21/0x22 …) are skipped by their length.
  We find the end by DLE ETX, not by LEN, because whether LEN counts stuffed
  bytes is not settled (§7.3); the encoder counts them, as spandsp does.
* **Bellcore** (GR-30 CLASS), Bell 202 FSK, on-hook: 300 bits of channel
  seizure, 180 mark bits, then ``type len data… checksum``: type 0x04 SDMF
  (8 date digits then the number, or 'O'/'P') or 0x80 MDMF (parameters
  0x01 date, 0x02 number, 0x03 dialled number, 0x04 reason 'O'/'P', 0x07
  name); checksum = two's complement of the byte sum mod 256.
* **ETSI** (EN 300 659), V.23 FSK: same framing as Bellcore MDMF with type
  0x80 (call set-up) and the same parameter codes we use.
* A message whose check fails is reported with ``checksum_ok`` False and
  no number. Reason codes map to the catalog's words: P → withheld,
  O → unavailable, C → public_phone, and S → unavailable: consumer ND
  adapters show S like O (「表示圏外」), because the number was not sent
  for a network reason; the raw code is kept in ``absent_code``.
* Bellcore and ETSI frames look alike; the modem tells them apart. The
  receiver measures the mark tone of the preamble (1200 Hz Bell 202 versus
  1300 Hz V.23, separable in 20 ms) and labels the message by what it heard.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from appliance.dsp.fsk import (
    BELL202, V23, FskChar, FskReceiver, FskSpec, async_bits, fsk_modulate,
)
from appliance.units import DBm0

DLE, SOH, STX, ETX = 0x10, 0x01, 0x02, 0x03
JCLIP_HEADER = 0x07
JCLIP_CALLER_ID = 0x40
CLASS_SDMF = 0x04
MDMF_CALLER_ID = 0x80
#: idle bit times between characters that end a message in progress
#: (spandsp's receiver uses the same figure for its "line idle" restart)
GAP_RESET_BITS = 10.0
#: longest frame we collect before giving up (JCLIP LEN is 7 bits, doubled by stuffing)
MAX_FRAME_BYTES = 300
NUMBER_CHARS = frozenset(b"0123456789+*#")


class Standard(StrEnum):
    JCLIP = "jclip"
    BELLCORE = "bellcore"
    ETSI = "etsi"


class AbsentReason(StrEnum):
    WITHHELD = "withheld"          # 非通知
    UNAVAILABLE = "unavailable"    # 表示圏外
    PUBLIC_PHONE = "public_phone"  # 公衆電話


ABSENT_CODES = {
    "P": AbsentReason.WITHHELD,
    "O": AbsentReason.UNAVAILABLE,
    "C": AbsentReason.PUBLIC_PHONE,
    "S": AbsentReason.UNAVAILABLE,   # service conflict: shown like O, raw code kept
}


@dataclass(frozen=True)
class CallerIdMessage:
    """One caller-ID message as received (or failed)."""

    standard: Standard
    number: str | None
    absent_reason: AbsentReason | None
    absent_code: str | None
    called_number: str | None
    checksum_ok: bool
    start_s: float                    #: start bit of the first byte, seconds since the first sample fed
    end_s: float
    message_type: int | None
    parameters: tuple[tuple[int, bytes], ...] = ()

    def to_json(self) -> dict:
        return {
            "standard": str(self.standard),
            "number": self.number,
            "absent_reason": None if self.absent_reason is None else str(self.absent_reason),
            "called_number": self.called_number,
            "checksum_ok": self.checksum_ok,
            "start_s": round(self.start_s, 4),
            "absent_code": self.absent_code,
        }


# -- byte layer -------------------------------------------------------------------
def even_parity(b: int) -> int:
    """7-bit value with bit 7 set so the byte has an even number of ones."""
    b &= 0x7F
    return b | 0x80 if bin(b).count("1") & 1 else b


def crc16_kermit(data: bytes, crc: int = 0) -> int:
    """CRC-16, polynomial x¹⁶+x¹²+x⁵+1 reflected (0x8408), init 0, no final XOR."""
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc


def _stuff(data: bytes) -> bytes:
    return bytes(data).replace(bytes([DLE]), bytes([DLE, DLE]))


def _tlv(ptype: int, value: bytes) -> bytes:
    if len(value) > 255:
        raise ValueError("parameter longer than 255 bytes")
    return bytes([ptype, len(value)]) + bytes(value)


def _ascii(value: str | None, what: str) -> bytes | None:
    if value is None:
        return None
    try:
        return value.encode("ascii")
    except UnicodeEncodeError:
        raise ValueError(f"{what} must be ASCII") from None


def jclip_frame(number: str | None = None, absent_code: str | None = None,
                called_number: str | None = None, *,
                extra_params: tuple[tuple[int, bytes], ...] = (),
                msg_type: int = JCLIP_CALLER_ID) -> bytes:
    """A complete Number Display frame: parity, DLE stuffing and CRC included."""
    body = b""
    for ptype, value in ((0x02, _ascii(number, "number")), (0x04, _ascii(absent_code, "code")),
                         (0x09, _ascii(called_number, "called number")), *extra_params):
        if value is not None:
            body += _tlv(ptype, value)
    stuffed = _stuff(body)
    if len(stuffed) > 0x7F:
        raise ValueError("JCLIP message body longer than 127 bytes")
    frame = bytes([DLE, SOH, JCLIP_HEADER, DLE, STX]) + _stuff(bytes([msg_type, len(stuffed)]))
    frame += stuffed + bytes([DLE, ETX])
    frame = bytes(even_parity(b) for b in frame)
    crc = crc16_kermit(frame[2:])
    return frame + bytes([crc & 0xFF, crc >> 8])


def clip_frame(number: str | None = None, absent_code: str | None = None,
               called_number: str | None = None, *, sdmf: bool = False,
               date: str | None = None,
               extra_params: tuple[tuple[int, bytes], ...] = ()) -> bytes:
    """A Bellcore/ETSI frame ``type len data… checksum`` (MDMF, or Bellcore SDMF)."""
    if sdmf:
        if called_number is not None or extra_params:
            raise ValueError("SDMF carries only a date and a number or reason")
        body = _ascii(date or "01010000", "date") + (
            _ascii(number, "number") if number is not None else _ascii(absent_code or "O", "code"))
        msg = bytes([CLASS_SDMF])
    else:
        body = b""
        for ptype, value in ((0x01, _ascii(date, "date")), (0x02, _ascii(number, "number")),
                             (0x03, _ascii(called_number, "called number")),
                             (0x04, _ascii(absent_code, "code")), *extra_params):
            if value is not None:
                body += _tlv(ptype, value)
        msg = bytes([MDMF_CALLER_ID])
    if len(body) > 255:
        raise ValueError("message body longer than 255 bytes")
    msg += bytes([len(body)]) + body
    return msg + bytes([(-sum(msg)) & 0xFF])


#: (modem, seizure bits, mark bits, stop bits) sent by our generator per standard
PREAMBLES = {
    Standard.JCLIP: (V23, 0, 75, 1),
    Standard.BELLCORE: (BELL202, 300, 180, 1),
    Standard.ETSI: (V23, 300, 180, 1),
}


def modulate_frame(standard: Standard | str, frame: bytes, *, level_dbm0: float = -14.0,
                   freq_offset: float = 0.0, seizure_bits: int | None = None,
                   mark_bits: int | None = None, stop_bits: int | None = None,
                   trailing_marks: int = 5) -> np.ndarray:
    """FSK audio (float, 16-bit scale) of a frame with its standard's preamble."""
    modem, seize, marks, stops = PREAMBLES[Standard(standard)]
    seize = seize if seizure_bits is None else seizure_bits
    marks = marks if mark_bits is None else mark_bits
    stops = stops if stop_bits is None else stop_bits
    bits = np.concatenate((
        np.arange(seize, dtype=np.uint8) & 1,          # 0101…: frames as 0x55 characters
        np.ones(marks, np.uint8),
        async_bits(frame, stops),
        np.ones(trailing_marks, np.uint8),
    ))
    return fsk_modulate(bits, modem, level_dbm0=level_dbm0, freq_offset=freq_offset)


def encode_caller_id(standard: Standard | str, number: str | None = None,
                     absent_code: str | None = None, called_number: str | None = None,
                     *, sdmf: bool = False, **audio) -> np.ndarray:
    """Message → bytes → FSK audio, for the simulator and the tests."""
    standard = Standard(standard)
    if standard is Standard.JCLIP:
        frame = jclip_frame(number, absent_code, called_number)
    else:
        if sdmf and standard is Standard.ETSI:
            raise ValueError("ETSI CLIP has no SDMF")
        frame = clip_frame(number, absent_code, called_number, sdmf=sdmf)
    return modulate_frame(standard, frame, **audio)


# -- parameter interpretation -------------------------------------------------------
def _walk_tlv(data: bytes) -> tuple[list[tuple[int, bytes]], bool]:
    params, pos = [], 0
    while pos < len(data):
        if pos + 2 > len(data) or pos + 2 + data[pos + 1] > len(data):
            return params, False
        params.append((data[pos], bytes(data[pos + 2:pos + 2 + data[pos + 1]])))
        pos += 2 + data[pos + 1]
    return params, True


def _number(value: bytes | None) -> str | None:
    if not value or any(b not in NUMBER_CHARS for b in value):
        return None
    return value.decode("ascii")


def _message(standard: Standard, ok: bool, msg_type: int | None,
             params: list[tuple[int, bytes]], number_code: int, called_code: int,
             start_s: float, end_s: float) -> CallerIdMessage:
    if not ok:
        return CallerIdMessage(standard, None, None, None, None, False, start_s, end_s,
                               msg_type, tuple(params))
    found = {}
    for ptype, value in params:
        found.setdefault(ptype, value)
    code = found.get(0x04)
    absent_code = code[:1].decode("latin-1") if code else None
    reason = ABSENT_CODES.get(absent_code) if absent_code else None
    if absent_code is not None and not absent_code.isprintable():
        absent_code = None
    return CallerIdMessage(
        standard, _number(found.get(number_code)), reason, absent_code,
        _number(found.get(called_code)), True, start_s, end_s, msg_type, tuple(params))


# -- receivers per framing -----------------------------------------------------------
class _JclipFramer:
    """DLE-framed, parity-protected Number Display frames from V.23 characters."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._raw: list[int] = []
        self._start = 0.0
        self._body: list[int] = []
        self._dle = False
        self._etx_at: int | None = None

    def push(self, c: FskChar) -> CallerIdMessage | None:
        if self._raw and c.gap_bits > GAP_RESET_BITS:
            self.reset()                                     # truncated: never reported
        if not self._raw:
            if c.value == 0x90:                              # DLE with its parity bit
                self._raw, self._start = [c.value], c.start_s
            return None
        raw = self._raw
        raw.append(c.value)
        pos, b = len(raw) - 1, c.value & 0x7F
        if pos <= 4:
            if b != (DLE, SOH, None, DLE, STX)[pos] and pos != 2:
                self.reset()
                if c.value == 0x90:
                    self._raw, self._start = [c.value], c.start_s
            return None
        if self._etx_at is None:
            if self._dle:
                self._dle = False
                if b == DLE:
                    self._body.append(DLE)
                elif b == ETX:
                    self._etx_at = pos
                else:                                        # DLE then junk: not a frame
                    self.reset()
            elif b == DLE:
                self._dle = True
            else:
                self._body.append(b)
            if len(raw) > MAX_FRAME_BYTES:
                self.reset()
            return None
        if pos < self._etx_at + 2:
            return None
        ok = crc16_kermit(bytes(raw[2:])) == 0
        body = self._body
        msg_type = body[0] if ok and body else None
        params, well_formed = _walk_tlv(bytes(body[2:])) if len(body) >= 2 else ([], False)
        start, end = self._start, c.end_s
        self.reset()
        if ok and msg_type != JCLIP_CALLER_ID:
            return None                                      # another service's message
        return _message(Standard.JCLIP, ok and well_formed, msg_type, params if ok else [],
                        0x02, 0x09, start, end)


class _ClipFramer:
    """``type len data… checksum`` frames (Bellcore SDMF/MDMF, ETSI MDMF)."""

    def __init__(self, standard: Standard, accept) -> None:
        self.standard = standard
        self._types = (CLASS_SDMF, MDMF_CALLER_ID) if standard is Standard.BELLCORE \
            else (MDMF_CALLER_ID,)
        self._accept = accept            # accept(first_char) -> bool: is this our modem?
        self.reset()

    def reset(self) -> None:
        self._raw: list[int] = []
        self._start = 0.0

    def push(self, c: FskChar) -> CallerIdMessage | None:
        if self._raw and c.gap_bits > GAP_RESET_BITS:
            self.reset()
        if not self._raw:
            # a message type only counts after a mark period (not inside seizure or data)
            if c.value in self._types and c.gap_bits > GAP_RESET_BITS and self._accept(c):
                self._raw, self._start = [c.value], c.start_s
            return None
        raw = self._raw
        raw.append(c.value)
        if len(raw) < 2 or len(raw) < raw[1] + 3:
            return None
        ok = sum(raw) & 0xFF == 0
        msg_type, body = raw[0], bytes(raw[2:-1])
        start = self._start
        self.reset()
        if msg_type == CLASS_SDMF:
            params = [(0x01, body[:8])]
            tail = body[8:]
            if len(tail) == 1 and tail in (b"O", b"P"):
                params.append((0x04, tail))
            else:
                params.append((0x02, tail))
            well_formed = len(body) >= 8
        else:
            params, well_formed = _walk_tlv(body)
        return _message(self.standard, ok and well_formed, msg_type if ok else None,
                        params if ok else [], 0x02, 0x03, start, c.end_s)


# -- the receiver -----------------------------------------------------------------
@dataclass(frozen=True)
class CallerIdSpec:
    """What to listen for: one standard, or ``"auto"`` for all three."""

    standard: str = "auto"
    #: FSK carrier gate; spandsp's default for the same modems is −30 dBm0
    min_level_dbm0: DBm0 = DBm0(-48.0)

    def __post_init__(self) -> None:
        if self.standard != "auto":
            Standard(self.standard)          # raises ValueError on an unknown name

    @property
    def standards(self) -> tuple[Standard, ...]:
        return tuple(Standard) if self.standard == "auto" else (Standard(self.standard),)


#: preamble samples measured to tell Bell 202 from V.23: 160 samples make
#: 1200 Hz and 1300 Hz exactly orthogonal
_PROBE = 160
_HISTORY = 1024


class CallerIdReceiver:
    """Caller ID from line audio: ``feed(samples) -> [CallerIdMessage]``, ``reset()``."""

    def __init__(self, spec: CallerIdSpec = CallerIdSpec()) -> None:
        self.spec = spec
        stds = spec.standards

        def modem(base: FskSpec) -> FskReceiver:
            return FskReceiver(FskSpec(base.name, base.mark_hz, base.space_hz, base.baud,
                                       base.sample_rate, spec.min_level_dbm0))

        self._paths: list[tuple[FskReceiver, list]] = []
        clip_family = [s for s in stds if s is not Standard.JCLIP]
        # a Bellcore/ETSI frame is kept only by the path whose modem the preamble
        # shows (each demodulator also decodes the other modem's tones), so one
        # signal never yields two messages nor the wrong standard's label
        self._probe = bool(clip_family)
        self._both = len(clip_family) > 1
        v23_parsers: list = []
        if Standard.JCLIP in stds:
            v23_parsers.append(_JclipFramer())
        if Standard.ETSI in stds:
            v23_parsers.append(_ClipFramer(Standard.ETSI, lambda c: self._is_modem(c, V23)))
        if v23_parsers:
            self._paths.append((modem(V23), v23_parsers))
        if Standard.BELLCORE in stds:
            self._paths.append((modem(BELL202), [
                _ClipFramer(Standard.BELLCORE, lambda c: self._is_modem(c, BELL202))]))
        k = np.arange(_PROBE)
        self._probe_osc = np.stack([np.exp(-2j * np.pi * f * k / 8000.0)
                                    for f in (V23.mark_hz, BELL202.mark_hz)])
        self.reset()

    def reset(self) -> None:
        for demod, parsers in self._paths:
            demod.reset()
            for p in parsers:
                p.reset()
        self._hist = np.zeros(0, np.int16)
        self._hist_base = 0

    def _is_modem(self, c: FskChar, modem: FskSpec) -> bool:
        end = c.start_sample - 8 - self._hist_base      # a bit clear of the start edge
        seg = self._hist[max(end - _PROBE, 0):max(end, 0)]
        if c.gap_bits < 24 or seg.size < _PROBE:
            # no preamble to measure: accept, but only once when both paths listen
            return modem is V23 or not self._both
        e = np.abs(self._probe_osc @ seg.astype(np.float64)) ** 2
        heard = V23 if e[0] > e[1] else BELL202
        return heard is modem

    def feed(self, samples) -> list[CallerIdMessage]:
        x = np.asarray(samples)
        if x.dtype != np.int16:
            x = np.clip(np.rint(np.asarray(x, dtype=np.float64)), -32768, 32767).astype(np.int16)
        x = x.ravel()
        if x.size == 0:
            return []
        if self._probe:
            self._hist = np.concatenate((self._hist, x))
        found: list[tuple[float, int, CallerIdMessage]] = []
        for order, (demod, parsers) in enumerate(self._paths):
            for c in demod.feed(x):
                for p in parsers:
                    m = p.push(c)
                    if m is not None:
                        found.append((m.end_s, order, m))
        if self._probe and self._hist.size > _HISTORY:
            cut = self._hist.size - _HISTORY
            self._hist = self._hist[cut:]
            self._hist_base += cut
        # completion order in sample time, whatever the chunking
        found.sort(key=lambda t: (t[0], t[1]))
        return [m for _, _, m in found]


def decode_caller_id(samples, standard: str = "auto", **spec) -> list[CallerIdMessage]:
    """Convenience: run a fresh receiver over a whole signal."""
    return CallerIdReceiver(CallerIdSpec(standard, **spec)).feed(samples)


__all__ = [
    "ABSENT_CODES", "AbsentReason", "CallerIdMessage", "CallerIdReceiver", "CallerIdSpec",
    "Standard", "clip_frame", "crc16_kermit", "decode_caller_id", "encode_caller_id",
    "even_parity", "jclip_frame", "modulate_frame",
]
