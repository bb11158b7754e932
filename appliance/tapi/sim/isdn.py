"""One simulated ISDN trunk (INS64 BRI or INS1500 PRI): Q.931 in LAPD I-frames, G.711 B-channels.

What the wire carries, as a passive monitor at the S/T (or PRI) interface
sees it (telephony.md §4):

* the D channel: every Q.931 message in a LAPD I-frame (SAPI 0, TEI 64 on a
  BRI, 0 on a PRI; C/R = 1 from the network, 0 from the user; N(S)/N(R) per
  side), delivered as ``D_FRAME`` events on channel 0 with the frame from the
  address field **including its FCS**, as the HDLC receiver saw it;
* incoming: SETUP from the network (bearer: the trunk's law, μ-law unless
  the scenario says A-law; exclusive B-channel,
  calling number type national without its 0 and presentation allowed — or
  restricted/not available without digits — and the called number), the
  terminal's ALERTING, its CONNECT after ``rings`` 3 s cycles, CONNECT ACK,
  then DISCONNECT / RELEASE / RELEASE COMPLETE started by whichever side
  hangs up (an unanswered caller gives up: the network disconnects);
* outgoing: SETUP from the user (channel "any", the called number as dialled,
  sending complete), CALL PROCEEDING with the B-channel, ALERTING with in-band
  ringback, CONNECT from the network, clearing as above;
* the B-channels: talk audio from CONNECT to the hang-up, through a G.711
  round trip (the law of the bearer), handed over as PCM like an analog line.

No ring, loop, FSK or DTMF on an ISDN line: the numbers exist only inside the
Q.931 bytes. The notice the engine plays is mixed into the near leg.
"""

from __future__ import annotations

import numpy as np

from appliance.dsp import g711, gen
from appliance.tapi import lapd, q931
from appliance.tapi.contract import EventKind
from appliance.tapi.sim.audio import call_seed, talk_audio
from appliance.tapi.sim.scenario import (ISDN_CLEAR_S, ISDN_PROCEED_S, Call, Glitch)
from appliance.tapi.sim.wire import NoticePath, S, SimRecord, _array_fn
from appliance.units import DBm0, LINE_RATE

NET, USER = "network", "user"
CONNECT_ACK_S = 0.02
CAUSE_NORMAL = 16


def national(number: str) -> tuple[int, str]:
    """(type of number, digits) as the network sends a Japanese number: national without its 0."""
    if len(number) > 1 and number.startswith("0") and not number.startswith("00"):
        return 2, number[1:]
    return 0, number


class IsdnCallScript:
    """One call's D-channel messages and B-channel audio, all known when the call starts."""

    def __init__(self, call: Call, start: int, cr: int, trunk: "IsdnTrunkWire") -> None:
        self.call = call
        self.channel = call.channel
        self.trunk = trunk
        self.cr = cr
        self.law = trunk.law
        #: (sample, sender, Q.931 bytes)
        self.msgs: list[tuple[int, str, bytes]] = []
        self.segs: list[tuple[str, int, int, object]] = []
        self.truth: dict = {"index": call.index, "offered": start, "call_reference": cr}
        if call.direction == "in":
            self._incoming(start)
        else:
            self._outgoing(start)
        self.msgs.sort(key=lambda m: m[0])
        self.done_at = self.msgs[-1][0]

    def _msg(self, s: int, sender: str, mtype: int, ies: bytes = b"") -> None:
        origin = NET if self.call.direction == "in" else USER
        flag = 0 if sender == origin else 1
        self.msgs.append((s, sender, q931.message(mtype, self.cr, flag, ies, self.trunk.cr_len)))

    def _chan(self, exclusive_channel: int | None) -> bytes:
        if self.trunk.pri:
            return q931.pri_channel_ie(exclusive_channel)
        if exclusive_channel is None:
            return q931.bri_channel_ie(3, exclusive=False)
        return q931.bri_channel_ie(exclusive_channel)

    def _incoming(self, s0: int) -> None:
        c = self.call
        ies = q931.bearer_ie(self.law) + self._chan(c.channel)
        if c.far_number:
            ton, digits = national(c.far_number)
            ies += q931.party_ie(0x6C, digits, ton, 1, presentation=0, screening=3)
        else:
            pres = 1 if c.absent_reason == "withheld" else 2
            ies += q931.party_ie(0x6C, "", 0, 0, presentation=pres, screening=3)
        if c.called_number:
            ton, digits = national(c.called_number)
            ies += q931.party_ie(0x70, digits, ton, 1)
        self._msg(s0, NET, q931.SETUP, ies)
        alert = s0 + S(c.isdn_alerting)
        self._msg(alert, USER, q931.ALERTING)
        ring_end = alert + S(3.0 * c.rings)
        if c.answered:
            self._talk(ring_end, USER, NET)
        else:                                  # the caller gives up
            self._clear(ring_end, NET, USER)
            self.truth["end"] = ring_end

    def _outgoing(self, s0: int) -> None:
        c = self.call
        ton, digits = 0, c.far_number or ""
        ies = (q931.bearer_ie(self.law) + self._chan(None)
               + q931.party_ie(0x70, digits, ton, 1) + q931.SENDING_COMPLETE)
        self._msg(s0, USER, q931.SETUP, ies)
        self._msg(s0 + S(ISDN_PROCEED_S), NET, q931.CALL_PROCEEDING, self._chan(c.channel))
        self.truth["b_channel"] = s0 + S(ISDN_PROCEED_S)
        alert = s0 + S(c.isdn_alerting)
        if c.rings:
            self._msg(alert, NET, q931.ALERTING, q931.progress_ie(8))
        if c.answered:
            connect = alert + S(3.0 * c.rings - 1.0) if c.rings else alert
            if c.rings:
                rb = gen.call_progress("ringback", (connect - alert) / LINE_RATE, DBm0(-12.0))
                self.segs.append(("far", alert, alert + rb.size, _array_fn(rb)))
            self._talk(connect, NET, USER)
        else:                                  # the staff give up
            end = alert + S(3.0 * c.rings)
            if c.rings:
                rb = gen.call_progress("ringback", 3.0 * c.rings, DBm0(-12.0))
                self.segs.append(("far", alert, alert + rb.size, _array_fn(rb)))
            self._clear(end, USER, NET)
            self.truth["end"] = end

    def _talk(self, t0: int, answerer: str, other: str) -> None:
        c = self.call
        self._msg(t0, answerer, q931.CONNECT, self._chan(c.channel) if answerer == NET else b"")
        self._msg(t0 + S(CONNECT_ACK_S), other, q931.CONNECT_ACK)
        end = t0 + S(c.talk)
        for leg, spec in (("far", c.far_audio), ("near", c.near_audio)):
            seed = call_seed(c.index, leg)
            self.segs.append((leg, t0, end,
                              lambda off, n, spec=spec, seed=seed, leg=leg:
                              talk_audio(spec, seed, leg, off, n)))
        self.truth["answer"] = t0
        self.truth["end"] = end
        near_side = USER
        first = near_side if c.hangup == "near" else NET
        self._clear(end, first, NET if first == USER else USER)

    def _clear(self, s: int, first: str, second: str) -> None:
        self._msg(s, first, q931.DISCONNECT, q931.cause_ie(CAUSE_NORMAL, 0 if first == USER else 2))
        self._msg(s + S(ISDN_CLEAR_S), second, q931.RELEASE)
        self._msg(s + S(2 * ISDN_CLEAR_S), first, q931.RELEASE_COMPLETE)


class IsdnChannelWire(NoticePath):
    """The LineWire-like view of one B-channel (what SimInterface renders and plays into)."""

    def __init__(self, trunk: "IsdnTrunkWire", channel: int, notice_ok: bool) -> None:
        self.trunk = trunk
        self.channel = channel
        self.notice_ok = notice_ok
        self.plays: list[tuple[int, np.ndarray]] = []

    def note(self, s: int, what: str, detail: dict | None = None) -> None:
        self.trunk.history.append(SimRecord(s, self.trunk.id, self.channel, what, detail or {}))

    def set_loop(self, closed: bool, s: int) -> None:
        self.note(s, "relay_ignored")           # no loop relay on an ISDN line

    def render(self, p0: int, p1: int, far: np.ndarray, near: np.ndarray, events: list) -> None:
        sc = self.trunk.active.get(self.channel)
        touched = False
        if sc is not None:
            for leg, s0, s1, fn in sc.segs:
                lo, hi = max(s0, p0), min(s1, p1)
                if lo < hi:
                    (far if leg == "far" else near)[lo - p0:hi - p0] += fn(lo - s0, hi - lo)
                    touched = True
            sc.segs = [s for s in sc.segs if s[2] > p1]
        if self.plays:
            for s0, x in self.plays:
                lo, hi = max(s0, p0), min(s0 + x.size, p1)
                if lo < hi and self.notice_ok:
                    near[lo - p0:hi - p0] += x[lo - s0:hi - s0]
                    touched = True
            self.plays = [(s0, x) for s0, x in self.plays if s0 + x.size > p1]
        if touched:                            # the B-channel carries G.711 codes
            law = sc.law if sc is not None else "ulaw"
            rt = g711.ulaw_roundtrip if law == "ulaw" else g711.alaw_roundtrip
            far[:] = rt(np.clip(far, -32768, 32767).astype(np.int16))
            near[:] = rt(np.clip(near, -32768, 32767).astype(np.int16))

    @property
    def idle(self) -> bool:
        return self.channel not in self.trunk.active and not self.plays


class IsdnTrunkWire:
    """The network and the terminal on one ISDN trunk; the D channel's frames, 20 ms at a time."""

    def __init__(self, trunk_id: str, channels: int, calls: list[Call], notice_ok: bool,
                 history: list[SimRecord], truth: dict[int, dict], law: str = "ulaw") -> None:
        self.id = trunk_id
        self.law = law                          # every call's bearer on this trunk
        self.pri = channels > 2
        self.cr_len = 2 if self.pri else 1
        self.tei = 0 if self.pri else 64
        self.history = history
        self.truth = truth
        self.pending = sorted(calls, key=lambda c: c.at)
        self.active: dict[int, IsdnCallScript] = {}
        self.channels = {ch: IsdnChannelWire(self, ch, notice_ok) for ch in range(1, channels + 1)}
        self._vs = {NET: 0, USER: 0}            # N(S) of each side's next I-frame
        self._cr = {NET: 0, USER: 0}            # last call reference each side allocated
        self._cr_max = 0x7FFF if self.pri else 0x7F

    def note(self, s: int, what: str, detail: dict | None = None) -> None:
        self.history.append(SimRecord(s, self.id, 0, what, detail or {}))

    def _next_cr(self, side: str) -> int:
        self._cr[side] = self._cr[side] % self._cr_max + 1
        return self._cr[side]

    def frame(self, sender: str, info: bytes) -> bytes:
        """A LAPD I-frame from ``sender`` carrying ``info``, FCS included."""
        other = USER if sender == NET else NET
        ctl = lapd.i_control(self._vs[sender], self._vs[other])
        self._vs[sender] = (self._vs[sender] + 1) % 128
        return lapd.build(0, 1 if sender == NET else 0, self.tei, ctl, info)

    def render(self, p0: int, p1: int) -> list[tuple[int, EventKind, bytes]]:
        """Start the calls due and return this period's D-channel frames (sample, kind, bytes)."""
        for _ in range(len(self.pending)):
            c = self.pending[0]
            if S(c.at) >= p1:
                break
            self.pending.pop(0)
            if c.channel in self.active:
                self.note(max(S(c.at), p0), "call_refused_channel_busy", {"index": c.index})
                continue
            start = max(S(c.at), p0)
            sc = IsdnCallScript(c, start, self._next_cr(NET if c.direction == "in" else USER), self)
            self.active[c.channel] = sc
            self.truth[c.index] = sc.truth
            self.history.append(SimRecord(start, self.id, c.channel, "call_start",
                                          {"index": c.index, "direction": c.direction}))
        due: list[tuple[int, str, bytes, int]] = []
        for ch, sc in list(self.active.items()):
            while sc.msgs and sc.msgs[0][0] < p1:
                s, sender, info = sc.msgs.pop(0)
                due.append((max(s, p0), sender, info, ch))
            if not sc.msgs and sc.done_at < p1 and not sc.segs:
                self.history.append(SimRecord(sc.done_at, self.id, ch, "call_end",
                                              {"index": sc.call.index}))
                del self.active[ch]
        out = []
        for s, sender, info, ch in sorted(due, key=lambda d: d[0]):
            self.note(s, "q931", {"from": sender, "message": q931.MESSAGES.get(info[2 + self.cr_len]),
                                  "channel": ch})
            out.append((s, EventKind.D_FRAME, self.frame(sender, info)))
        return out

    def glitch(self, g: Glitch, s: int) -> bytes:
        """A bad frame on the D channel, on purpose."""
        if g.event == "d_garbage":      # a good FCS around nonsense: Q.931 with a bad call reference
            junk = bytes(np.random.default_rng(int(s)).integers(0, 256, 12, dtype=np.uint8))
            return self.frame(NET, b"\x08\x0f" + junk)
        if g.event == "d_bad_fcs":
            f = bytearray(self.frame(NET, q931.message(
                q931.SETUP, 0x70 if not self.pri else 0x7000, 0,
                q931.bearer_ie() + q931.bri_channel_ie(1), self.cr_len)))
            f[-1] ^= 0x5A
            return bytes(f)
        if g.event == "d_unknown_call":
            return self.frame(NET, q931.message(q931.DISCONNECT, 0x6E, 0,
                                                q931.cause_ie(CAUSE_NORMAL, 2), self.cr_len))
        # d_release_without_setup
        return self.frame(NET, q931.message(q931.RELEASE, 0x6F, 1, b"", self.cr_len))

    @property
    def idle(self) -> bool:
        return not self.pending and not self.active
