"""The interface's serial control channel (hw/protocol.md): codec and pyserial transport.

Digest of hw/protocol.md:

* Framing: each message is ``type | seq | body | CRC-16`` (the HDLC FCS of
  lapd.py over type..body, low byte first), COBS-encoded and ended by one
  0x00. A receiver that loses sync (noise, a cut frame) is back in step at
  the next 0x00; a frame longer than ``MAX_FRAME`` is dropped whole.
* Device → host: IDENTITY (protocol version, firmware, serial, trunks,
  boot id), HEARTBEAT (device sample counter: the audio clock, every 20 ms),
  LINE_EVENT (sample, trunk, channel, kind), D_FRAME (sample, trunk,
  direction, FCS status, the LAPD frame), COUNTERS, ACK.
* Host → device: HOST_SYNC (the host's capture position: a host watchdog for
  the device, and the pace of the bench emulator in lockstep), SET_LOOP,
  NOTICE_PATH, GET_IDENTITY, GET_COUNTERS.
* Multi-octet integers are little-endian. Unknown types are counted and
  skipped, so old hosts survive new devices.

The codec never raises on line input: bad bytes become counters.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from appliance.tapi.lapd import fcs

PROTOCOL_VERSION = 1
#: longest decoded frame (a D-channel frame of 260 octets plus headers, with room)
MAX_FRAME = 512


class Msg(enum.IntEnum):
    IDENTITY = 0x01
    HEARTBEAT = 0x02
    LINE_EVENT = 0x03
    D_FRAME = 0x04
    COUNTERS = 0x05
    ACK = 0x06
    HOST_SYNC = 0x81
    SET_LOOP = 0x82
    NOTICE_PATH = 0x83
    GET_IDENTITY = 0x84
    GET_COUNTERS = 0x85


#: line event kinds on the wire (EventKind values of the tapi contract)
EVENT_CODES = {1: "ring_on", 2: "ring_off", 3: "loop_closed", 4: "loop_open", 5: "polarity"}
EVENT_NUMBERS = {v: k for k, v in EVENT_CODES.items()}
COUNTER_NAMES = ("frames_sent", "bad_frames_received", "audio_overruns", "hdlc_aborts",
                 "hdlc_bad_fcs", "resets")


# --- COBS ------------------------------------------------------------------------------

def cobs_encode(data: bytes) -> bytes:
    out = bytearray()
    block = bytearray()
    for b in data:
        if b == 0:
            out.append(len(block) + 1)
            out += block
            block.clear()
        else:
            block.append(b)
            if len(block) == 254:
                out.append(255)
                out += block
                block.clear()
    out.append(len(block) + 1)
    out += block
    return bytes(out)


def cobs_decode(data: bytes) -> bytes | None:
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        code = data[i]
        if code == 0 or i + code > n:
            return None
        block = data[i + 1:i + code]
        if 0 in block:
            return None
        out += block
        i += code
        if code < 255 and i < n:
            out.append(0)
    return bytes(out)


# --- messages ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Identity:
    version: int
    firmware: str
    serial: str
    trunks: int
    boot_id: int


@dataclass(frozen=True)
class Heartbeat:
    sample: int
    flags: int = 0


@dataclass(frozen=True)
class WireEvent:
    sample: int
    trunk: int          #: trunk index on the device, 0-based
    channel: int
    kind: str


@dataclass(frozen=True)
class DFrame:
    sample: int
    trunk: int
    from_network: bool
    fcs_ok: bool
    frame: bytes


@dataclass(frozen=True)
class Counters:
    values: dict


@dataclass(frozen=True)
class Ack:
    seq: int
    status: int


@dataclass(frozen=True)
class HostSync:
    sample: int


@dataclass(frozen=True)
class SetLoop:
    trunk: int
    channel: int
    closed: bool


@dataclass(frozen=True)
class NoticePath:
    trunk: int
    channel: int
    on: bool


@dataclass(frozen=True)
class Request:
    what: Msg           #: GET_IDENTITY or GET_COUNTERS


def encode(msg, seq: int = 0) -> bytes:
    """One message, framed for the wire (COBS, CRC, 0x00)."""
    if isinstance(msg, Identity):
        fw = msg.firmware.encode()[:16].ljust(16, b"\0")
        sn = msg.serial.encode()[:16].ljust(16, b"\0")
        t, body = Msg.IDENTITY, struct.pack("<B16s16sBI", msg.version, fw, sn, msg.trunks,
                                           msg.boot_id)
    elif isinstance(msg, Heartbeat):
        t, body = Msg.HEARTBEAT, struct.pack("<QB", msg.sample, msg.flags)
    elif isinstance(msg, WireEvent):
        t, body = Msg.LINE_EVENT, struct.pack("<QBBB", msg.sample, msg.trunk, msg.channel,
                                             EVENT_NUMBERS[msg.kind])
    elif isinstance(msg, DFrame):
        flags = (1 if msg.from_network else 0) | (2 if msg.fcs_ok else 0)
        t, body = Msg.D_FRAME, struct.pack("<QBB", msg.sample, msg.trunk, flags) + msg.frame
    elif isinstance(msg, Counters):
        t, body = Msg.COUNTERS, struct.pack("<" + "I" * len(COUNTER_NAMES),
                                            *(msg.values.get(k, 0) for k in COUNTER_NAMES))
    elif isinstance(msg, Ack):
        t, body = Msg.ACK, struct.pack("<BB", msg.seq, msg.status)
    elif isinstance(msg, HostSync):
        t, body = Msg.HOST_SYNC, struct.pack("<Q", msg.sample)
    elif isinstance(msg, SetLoop):
        t, body = Msg.SET_LOOP, struct.pack("<BBB", msg.trunk, msg.channel, msg.closed)
    elif isinstance(msg, NoticePath):
        t, body = Msg.NOTICE_PATH, struct.pack("<BBB", msg.trunk, msg.channel, msg.on)
    elif isinstance(msg, Request):
        t, body = msg.what, b""
    else:
        raise TypeError(f"not a protocol message: {msg!r}")
    payload = bytes([t, seq & 0xFF]) + body
    f = fcs(payload)
    return cobs_encode(payload + bytes([f & 0xFF, f >> 8])) + b"\0"


def _decode_payload(t: int, body: bytes):
    try:
        if t == Msg.IDENTITY:
            v, fw, sn, trunks, boot = struct.unpack("<B16s16sBI", body)
            return Identity(v, fw.rstrip(b"\0").decode(errors="replace"),
                            sn.rstrip(b"\0").decode(errors="replace"), trunks, boot)
        if t == Msg.HEARTBEAT:
            return Heartbeat(*struct.unpack("<QB", body))
        if t == Msg.LINE_EVENT:
            s, tr, ch, k = struct.unpack("<QBBB", body)
            return WireEvent(s, tr, ch, EVENT_CODES[k]) if k in EVENT_CODES else None
        if t == Msg.D_FRAME:
            s, tr, flags = struct.unpack("<QBB", body[:10])
            return DFrame(s, tr, bool(flags & 1), bool(flags & 2), body[10:])
        if t == Msg.COUNTERS:
            vals = struct.unpack("<" + "I" * len(COUNTER_NAMES), body)
            return Counters(dict(zip(COUNTER_NAMES, vals)))
        if t == Msg.ACK:
            return Ack(*struct.unpack("<BB", body))
        if t == Msg.HOST_SYNC:
            return HostSync(*struct.unpack("<Q", body))
        if t == Msg.SET_LOOP:
            tr, ch, c = struct.unpack("<BBB", body)
            return SetLoop(tr, ch, bool(c))
        if t == Msg.NOTICE_PATH:
            tr, ch, on = struct.unpack("<BBB", body)
            return NoticePath(tr, ch, bool(on))
        if t in (Msg.GET_IDENTITY, Msg.GET_COUNTERS) and not body:
            return Request(Msg(t))
    except struct.error:
        return None
    return None


@dataclass
class LinkStats:
    frames: int = 0
    bad_crc: int = 0
    bad_cobs: int = 0
    too_long: int = 0
    malformed: int = 0
    unknown_type: int = 0
    discarded_bytes: int = 0

    def errors(self) -> int:
        return self.bad_crc + self.bad_cobs + self.too_long + self.malformed + self.unknown_type


class Decoder:
    """Bytes in (any chunking), messages out. Never raises on what the line carries."""

    def __init__(self) -> None:
        self.stats = LinkStats()
        self._buf = bytearray()
        self._overflow = False

    def feed(self, data: bytes) -> list:
        out = []
        start = 0
        data = bytes(data)
        while True:
            z = data.find(b"\0", start)
            if z < 0:
                self._append(data[start:])
                break
            self._append(data[start:z])
            frame, overflow = bytes(self._buf), self._overflow
            self._buf.clear()
            self._overflow = False
            start = z + 1
            if overflow:
                self.stats.too_long += 1
                continue
            if not frame:
                continue                 # back-to-back delimiters: idle line, not an error
            msg = self._frame(frame)
            if msg is not None:
                out.append(msg)
        return out

    def _append(self, b: bytes) -> None:
        if self._overflow:
            self.stats.discarded_bytes += len(b)
            return
        self._buf += b
        if len(self._buf) > MAX_FRAME + MAX_FRAME // 254 + 2:
            self.stats.discarded_bytes += len(self._buf)
            self._buf.clear()
            self._overflow = True

    def _frame(self, frame: bytes):
        payload = cobs_decode(frame)
        if payload is None:
            self.stats.bad_cobs += 1
            return None
        if len(payload) < 4:
            self.stats.malformed += 1
            return None
        if fcs(payload[:-2]) != payload[-2] | (payload[-1] << 8):
            self.stats.bad_crc += 1
            return None
        t = payload[0]
        if t not in Msg._value2member_map_:
            self.stats.unknown_type += 1
            return None
        msg = _decode_payload(t, payload[2:-2])
        if msg is None:
            self.stats.malformed += 1
            return None
        self.stats.frames += 1
        return msg


class SerialLink:
    """The control channel over pyserial (any pyserial URL: a device, a pty, ``loop://``).

    Errors of the line are counted in :attr:`stats`, never raised; losing the
    port itself (``SerialException``, ``OSError``) is raised as
    :class:`LinkLost` for the backend to treat as the device vanishing.
    """

    def __init__(self, url: str, baudrate: int = 115200) -> None:
        import serial
        self._serial_mod = serial
        self.url = url
        self.decoder = Decoder()
        self._seq = 0
        try:
            self.port = serial.serial_for_url(url, baudrate=baudrate, timeout=0,
                                              write_timeout=0.5)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise LinkLost(f"{url}: {exc}") from None

    @property
    def stats(self) -> LinkStats:
        return self.decoder.stats

    def send(self, msg) -> int:
        self._seq = (self._seq + 1) & 0xFF
        try:
            self.port.write(encode(msg, self._seq))
        except (self._serial_mod.SerialException, OSError) as exc:
            raise LinkLost(str(exc)) from None
        return self._seq

    def poll(self, wait: float = 0.0) -> list:
        """Messages that arrived; waits up to ``wait`` seconds for the first byte."""
        import select
        try:
            if wait > 0 and not self.port.in_waiting:
                fd = self.port.fileno() if hasattr(self.port, "fileno") else None
                if fd is not None:
                    select.select([fd], [], [], wait)
            n = self.port.in_waiting
            data = self.port.read(n) if n else b""
        except (self._serial_mod.SerialException, OSError, TypeError) as exc:
            raise LinkLost(str(exc)) from None
        return self.decoder.feed(data) if data else []

    def close(self) -> None:
        try:
            self.port.close()
        except Exception:           # noqa: BLE001 — a vanished port may fail to close
            pass


class LinkLost(Exception):
    """The serial port went away (internal to the backends)."""
