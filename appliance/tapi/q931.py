"""Q.931 (ITU-T Q.931 / TTC JT-Q931) call control messages, decoded for a passive monitor.

Digest of the standard (shared/reference/telephony.md §4.3–4.4, §5):

* Header: protocol discriminator 0x08; call-reference length in the low 4
  bits of octet 2 (1 on BRI, 2 on PRI; 0 = dummy); the call reference, whose
  first bit is the flag (0 from the side that allocated it, 1 towards it);
  the message type (SETUP 0x05, CALL PROCEEDING 0x02, ALERTING 0x01,
  CONNECT 0x07, CONNECT ACK 0x0F, DISCONNECT 0x45, RELEASE 0x4D,
  RELEASE COMPLETE 0x5A, …).
* Information elements: single-octet ones have bit 8 set (shift 0x9X,
  sending complete 0xA1); the others are id, length, contents. Inside, bit 8
  of an octet ends its group (octet 3 vs 3a …).
* Party numbers (calling 0x6C, called 0x70, connected 0x4C, redirecting
  0x74): octet 3 = type of number (bits 7–5) | numbering plan (bits 4–1);
  when its bit 8 is 0, octet 3a = presentation (bits 7–6) | screening
  (bits 2–1); digits in IA5. Japan: the leading 0 is the trunk prefix, not
  part of a national number, so a number of type *national* gains its 0 for
  the catalog (and *international* the 010 prefix); type *unknown* is kept
  as dialled.
* Bearer capability 0x04: octet 3 transfer capability (0x80 speech, 0x90
  3.1 kHz audio, 0x88 unrestricted digital), octet 4 mode/rate, octet 5
  layer-1 protocol: 0x02 G.711 μ-law (INS-Net), 0x03 A-law.
* Channel identification 0x18: BRI one octet (bit 6 = 0; bit 4 exclusive;
  bits 2–1 = B1, B2, any); PRI (bit 6 = 1) then 0x83 and the channel number.
* Cause 0x08: octet 3 coding | location, octet 4 cause value (16 normal
  clearing, 17 busy, 18 no user responding, 19 no answer, 21 rejected, 31
  normal unspecified, 34 no circuit).

Decoding never raises on line input: a message that does not parse comes
back with ``error`` set, and undecodable IEs are kept raw.
"""

from __future__ import annotations

from dataclasses import dataclass, field

PD_Q931 = 0x08

MESSAGES = {
    0x01: "ALERTING", 0x02: "CALL PROCEEDING", 0x03: "PROGRESS", 0x05: "SETUP",
    0x07: "CONNECT", 0x0D: "SETUP ACKNOWLEDGE", 0x0F: "CONNECT ACKNOWLEDGE",
    0x20: "USER INFORMATION", 0x24: "HOLD", 0x25: "SUSPEND", 0x26: "RESUME",
    0x28: "HOLD ACKNOWLEDGE", 0x30: "HOLD REJECT", 0x31: "RETRIEVE", 0x33: "RETRIEVE ACKNOWLEDGE",
    0x37: "RETRIEVE REJECT", 0x45: "DISCONNECT", 0x46: "RESTART", 0x4D: "RELEASE",
    0x4E: "RESTART ACKNOWLEDGE", 0x5A: "RELEASE COMPLETE", 0x62: "FACILITY", 0x6E: "NOTIFY",
    0x75: "STATUS ENQUIRY", 0x7B: "INFORMATION", 0x7D: "STATUS",
}
SETUP, CALL_PROCEEDING, ALERTING, CONNECT, CONNECT_ACK = 0x05, 0x02, 0x01, 0x07, 0x0F
DISCONNECT, RELEASE, RELEASE_COMPLETE = 0x45, 0x4D, 0x5A

IE_NAMES = {
    0x04: "bearer_capability", 0x08: "cause", 0x14: "call_state", 0x18: "channel_id",
    0x1C: "facility", 0x1E: "progress", 0x27: "notification", 0x28: "display",
    0x29: "date_time", 0x2C: "keypad", 0x34: "signal", 0x4C: "connected_number",
    0x6C: "calling_number", 0x6D: "calling_subaddress", 0x70: "called_number",
    0x71: "called_subaddress", 0x74: "redirecting_number", 0x76: "redirection_number",
    0x7C: "low_layer_compat", 0x7D: "high_layer_compat", 0x7E: "user_user",
}
NUMBER_IES = (0x4C, 0x6C, 0x70, 0x74, 0x76)
TYPES_OF_NUMBER = {0: "unknown", 1: "international", 2: "national", 3: "network_specific",
                   4: "subscriber", 6: "abbreviated"}
PLANS = {0: "unknown", 1: "e164", 3: "x121", 4: "f69", 8: "national", 9: "private"}
PRESENTATION = {0: "allowed", 1: "restricted", 2: "not_available"}
SCREENING = {0: "user_not_screened", 1: "user_passed", 2: "user_failed", 3: "network"}
CAUSES = {1: "unallocated number", 16: "normal call clearing", 17: "user busy",
          18: "no user responding", 19: "no answer", 21: "call rejected",
          26: "non-selected user clearing", 27: "destination out of order",
          28: "invalid number format", 31: "normal, unspecified", 34: "no circuit available",
          41: "temporary failure", 102: "recovery on timer expiry"}
LOCATIONS = {0: "user", 1: "private local", 2: "public local", 3: "transit", 4: "public remote",
             5: "private remote", 7: "international", 10: "beyond interworking"}
TRANSFER = {0x00: "speech", 0x08: "unrestricted_digital", 0x09: "restricted_digital",
            0x10: "audio_3k1", 0x11: "audio_7k", 0x18: "video"}
LAWS = {0x02: "ulaw", 0x03: "alaw"}
#: Japan's international call prefix, given to numbers of type international
INTERNATIONAL_PREFIX = "010"


@dataclass(frozen=True)
class PartyNumber:
    type: str
    plan: str
    digits: str
    presentation: str | None = None
    screening: str | None = None

    @property
    def normalised(self) -> str:
        """The number as the catalog keeps it: national numbers regain their trunk prefix 0."""
        if self.type == "national" and not self.digits.startswith("0"):
            return "0" + self.digits
        if self.type == "international":
            return INTERNATIONAL_PREFIX + self.digits
        return self.digits

    def as_dict(self) -> dict:
        return {"type": self.type, "plan": self.plan, "digits": self.digits,
                "presentation": self.presentation, "screening": self.screening,
                "number": self.normalised}


@dataclass
class Message:
    pd: int = PD_Q931
    cr_len: int = 0
    cr: int = 0                 #: call reference value without the flag
    cr_flag: int = 0            #: 1 = sent towards the side that allocated the reference
    mtype: int = -1
    ies: dict = field(default_factory=dict)     #: decoded IEs by name (first occurrence)
    raw_ies: list = field(default_factory=list)  #: (codeset, id, bytes) of every IE
    error: str | None = None

    @property
    def name(self) -> str:
        return MESSAGES.get(self.mtype, f"0x{self.mtype:02X}" if self.mtype >= 0 else "?")

    def number(self, which: str) -> PartyNumber | None:
        return self.ies.get(which)

    @property
    def law(self) -> str | None:
        bc = self.ies.get("bearer_capability")
        return bc.get("law") if isinstance(bc, dict) else None

    @property
    def b_channel(self) -> int | None:
        ch = self.ies.get("channel_id")
        return ch.get("channel") if isinstance(ch, dict) else None

    @property
    def cause(self) -> int | None:
        c = self.ies.get("cause")
        return c.get("value") if isinstance(c, dict) else None

    def as_dict(self) -> dict:
        d: dict = {"protocol_discriminator": self.pd, "call_reference": self.cr,
                   "call_reference_flag": self.cr_flag, "call_reference_length": self.cr_len,
                   "message_type": self.mtype, "message": self.name}
        ies = {}
        for k, v in self.ies.items():
            ies[k] = v.as_dict() if isinstance(v, PartyNumber) else v
        d["ies"] = ies
        d["unknown_ies"] = [{"codeset": cs, "id": i, "hex": b.hex()} for cs, i, b in self.raw_ies
                            if cs != 0 or i not in IE_NAMES]
        if self.error:
            d["error"] = self.error
        return d


def _digits(b: bytes) -> str:
    return "".join(chr(x & 0x7F) for x in b if 0x20 <= (x & 0x7F) < 0x7F)


def _party(c: bytes) -> PartyNumber | None:
    if not c:
        return None
    o3 = c[0]
    ton, npi = TYPES_OF_NUMBER.get((o3 >> 4) & 7, str((o3 >> 4) & 7)), PLANS.get(o3 & 0x0F,
                                                                              str(o3 & 0x0F))
    i, pres, scr = 1, None, None
    if not o3 & 0x80 and len(c) > 1:
        o3a = c[1]
        pres = PRESENTATION.get((o3a >> 5) & 3, "reserved")
        scr = SCREENING[o3a & 3]
        i = 2
        if not o3a & 0x80 and len(c) > 2:    # octet 3b (redirecting reason)
            i = 3
    return PartyNumber(ton, npi, _digits(c[i:]), pres, scr)


def _bearer(c: bytes) -> dict:
    d: dict = {}
    if c:
        d["transfer"] = TRANSFER.get(c[0] & 0x1F, f"0x{c[0] & 0x1F:02x}")
    if len(c) > 1:
        d["mode"] = "circuit" if not c[1] & 0x60 else "packet"
        d["rate"] = {0x10: "64k"}.get(c[1] & 0x1F, f"0x{c[1] & 0x1F:02x}")
    i = 2
    while i < len(c):
        if (c[i] >> 5) & 3 == 1:                     # layer 1 identification
            d["law"] = LAWS.get(c[i] & 0x1F, f"0x{c[i] & 0x1F:02x}")
            break
        i += 1
    return d


def _channel(c: bytes) -> dict:
    if not c:
        return {}
    o3 = c[0]
    pri = bool(o3 & 0x20)
    d: dict = {"interface": "primary" if pri else "basic", "exclusive": bool(o3 & 0x08),
               "d_channel": bool(o3 & 0x04)}
    sel = o3 & 3
    if not pri:
        d["channel"] = {1: 1, 2: 2}.get(sel)
        d["any"] = sel == 3
    else:
        d["any"] = sel == 3
        d["channel"] = None
        if sel == 1 and len(c) >= 3:
            d["channel"] = c[2] & 0x7F
    return d


def _cause(c: bytes) -> dict:
    d: dict = {}
    if c:
        d["location"] = LOCATIONS.get(c[0] & 0x0F, str(c[0] & 0x0F))
        d["coding"] = (c[0] >> 5) & 3
    i = 1 if c and c[0] & 0x80 else 2
    if len(c) > i:
        v = c[i] & 0x7F
        d["value"] = v
        d["meaning"] = CAUSES.get(v)
    return d


def _progress(c: bytes) -> dict:
    return {"location": LOCATIONS.get(c[0] & 0x0F) if c else None,
            "description": c[1] & 0x7F if len(c) > 1 else None}


_DECODERS = {0x04: _bearer, 0x18: _channel, 0x08: _cause, 0x1E: _progress,
             0x28: _digits, 0x2C: _digits}


def parse(data: bytes) -> Message:
    """Decode a Q.931 message (the LAPD information field)."""
    data = bytes(data)
    m = Message()
    if len(data) < 3:
        m.error = "short message"
        return m
    m.pd = data[0]
    if m.pd != PD_Q931:
        m.error = f"not Q.931 (protocol discriminator 0x{m.pd:02x})"
        return m
    m.cr_len = data[1] & 0x0F
    if data[1] & 0xF0 or m.cr_len > 3 or len(data) < 3 + m.cr_len:
        m.error = "bad call reference"
        return m
    cr = data[2:2 + m.cr_len]
    if cr:
        m.cr_flag = cr[0] >> 7
        m.cr = int.from_bytes(bytes([cr[0] & 0x7F]) + cr[1:], "big")
    i = 2 + m.cr_len
    m.mtype = data[i] & 0x7F
    i += 1
    codeset, locked = 0, 0
    while i < len(data):
        b = data[i]
        if b & 0x80:                                  # single-octet IE
            if b & 0xF0 == 0x90:                      # shift
                if b & 0x08:
                    codeset = b & 7                   # non-locking: next IE only
                    i += 1
                    continue
                locked = codeset = b & 7
            elif b == 0xA1:
                m.ies.setdefault("sending_complete", True)
            m.raw_ies.append((codeset, b, b""))
            i += 1
            continue
        if i + 1 >= len(data):
            m.error = f"truncated information element 0x{b:02x}"
            break
        n = data[i + 1]
        content = data[i + 2:i + 2 + n]
        if len(content) < n:
            m.error = f"truncated information element 0x{b:02x}"
            break
        m.raw_ies.append((codeset, b, content))
        if codeset == 0 and b in IE_NAMES:
            name = IE_NAMES[b]
            if name not in m.ies:
                if b in NUMBER_IES:
                    value = _party(content)
                elif b in _DECODERS:
                    value = _DECODERS[b](content)
                else:
                    value = content.hex()
                if value is not None:
                    m.ies[name] = value
        codeset = locked
        i += 2 + n
    return m


# --- encoding (the emulator and tests build messages from the same rules) --------------

def ie(iei: int, content: bytes) -> bytes:
    return bytes([iei, len(content)]) + bytes(content)


def party_ie(iei: int, digits: str, ton: int = 0, plan: int = 1,
             presentation: int | None = None, screening: int = 3) -> bytes:
    if presentation is None:
        return ie(iei, bytes([0x80 | (ton << 4) | plan]) + digits.encode("ascii"))
    return ie(iei, bytes([(ton << 4) | plan, 0x80 | (presentation << 5) | screening])
              + digits.encode("ascii"))


def bearer_ie(law: str = "ulaw") -> bytes:
    return ie(0x04, bytes([0x80, 0x90, 0xA2 if law == "ulaw" else 0xA3]))


def bri_channel_ie(channel: int, exclusive: bool = True) -> bytes:
    return ie(0x18, bytes([0x80 | (0x08 if exclusive else 0) | (channel & 3)]))


def cause_ie(value: int, location: int = 0) -> bytes:
    return ie(0x08, bytes([0x80 | location, 0x80 | value]))


def message(mtype: int, cr: int, flag: int = 0, ies: bytes = b"", cr_len: int = 1) -> bytes:
    crb = cr.to_bytes(cr_len, "big")
    crb = bytes([crb[0] | (0x80 if flag else 0)]) + crb[1:]
    return bytes([PD_Q931, cr_len]) + crb + bytes([mtype]) + ies


def pri_channel_ie(channel: int | None, exclusive: bool = True) -> bytes:
    """PRI channel identification: B-channel ``channel`` (1–23), or None for "any"."""
    if channel is None:
        return ie(0x18, bytes([0xA3]))
    return ie(0x18, bytes([0xA1 | (0x08 if exclusive else 0), 0x83, 0x80 | (channel & 0x7F)]))


def progress_ie(description: int, location: int = 2) -> bytes:
    """Progress indicator, e.g. 8 = in-band information available (ringback)."""
    return ie(0x1E, bytes([0x80 | location, 0x80 | description]))


SENDING_COMPLETE = b"\xa1"
