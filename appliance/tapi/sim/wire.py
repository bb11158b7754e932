"""The exchange side of one simulated analog line: what the wire carries, sample by sample.

Incoming (telephony.md §1.1): CAR bursts (0.5 s on / 0.5 s off) until the
terminal closes its loop (primary response) or 6 s pass; then the Number
Display FSK on the far leg; when the terminal opens the loop again
(reception complete), normal ringing 1 s on / 2 s off; the staff answer
(loop closed) in the pause after the ``rings``-th burst; talk; hang-up by the
staff (loop open) or by the caller (busy tone on the far leg, then the staff
put the handset down).

Outgoing: the staff lift the handset (loop closed), dial tone on the far leg,
the dialled number as DTMF on the near leg, ringback, the far party answers
(their voice is the only sign of it on an analog line), talk, hang-up.

Audio the appliance plays (the notice) is mixed into the near leg, which is
what the hybrid hears of it, unless the trunk's ``notice_path`` is broken.
Everything that happens is written to the shared history for tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from appliance.dsp import gen
from appliance.dsp.callerid import encode_caller_id
from appliance.tapi.contract import EventKind
from appliance.tapi.sim.audio import call_seed, talk_audio
from appliance.tapi.sim.scenario import ABSENT_REASONS, Call
from appliance.units import DBm0, Decibels, LINE_RATE, Milliseconds

CAR_MAX_S = 6.0         # the exchange waits about 6 s for the primary response
FSK_DELAY_S = 0.3       # primary response → first mark bit [UNVERIFIED in telephony.md]
ACK_TIMEOUT_S = 5.0     # FSK end → ringing anyway if the terminal never opens the loop
RING_AFTER_ACK_S = 0.5
CLEAR_DELAY_S = 3.0     # busy tone heard by the staff before they put the handset down
DIAL_AFTER_SEIZE_S = 1.2
RINGBACK_AFTER_DIAL_S = 1.0
DTMF_ON, DTMF_OFF = Milliseconds(80.0), Milliseconds(80.0)


def S(t: float) -> int:
    return int(round(t * LINE_RATE))


@dataclass
class SimRecord:
    """One thing that happened on the simulated wire (the simulator's history)."""

    sample: int
    trunk: str
    channel: int
    what: str
    detail: dict = field(default_factory=dict)


Fn = Callable[[int, int], np.ndarray]   # (offset into the segment, n) -> samples


def _array_fn(x: np.ndarray) -> Fn:
    def take(off: int, n: int) -> np.ndarray:
        out = np.zeros(n, np.int16)
        lo, hi = min(off, x.size), min(off + n, x.size)
        out[:hi - lo] = x[lo:hi]
        return out
    return take


class CallScript:
    """One call's wire activity; grows as the appliance acts (CAR response)."""

    def __init__(self, call: Call, start: int, line: "LineWire") -> None:
        self.call = call
        self.line = line
        self.emits: list[tuple[int, EventKind]] = []
        self.segs: list[tuple[str, int, int, Fn]] = []
        self.timers: list[tuple[int, Callable[[int], None]]] = []
        self.done_at: int | None = None
        self.phase = "car" if call.direction == "in" else "out"
        self.ring_on = False
        self.truth: dict = {"index": call.index, "offered": start}
        if call.direction == "in":
            for k in range(int(CAR_MAX_S)):
                self.emits += [(start + k * LINE_RATE, EventKind.RING_ON),
                               (start + k * LINE_RATE + LINE_RATE // 2, EventKind.RING_OFF)]
            self.timers.append((start + S(CAR_MAX_S), self._car_timeout))
        else:
            self._outgoing(start)

    # --- incoming ---------------------------------------------------------------
    def _car_timeout(self, s: int) -> None:
        if self.phase == "car":
            self.line.note(s, "car_unanswered")
            self._ringing(s)

    def on_loop(self, closed: bool, s: int) -> None:
        if self.phase == "car" and closed:
            self.phase = "fsk"
            self.emits = [(t, k) for t, k in self.emits if t < s]
            if self.ring_on:
                self.emits.append((s, EventKind.RING_OFF))
            self.timers = []
            c = self.call
            fsk = gen.saturate(encode_caller_id(
                "jclip", c.far_number, ABSENT_REASONS.get(c.absent_reason or ""),
                c.called_number))
            f0 = s + S(FSK_DELAY_S)
            self.segs.append(("far", f0, f0 + fsk.size, _array_fn(fsk)))
            self.truth["fsk"] = (f0, f0 + fsk.size)
            self.line.note(f0, "fsk_start", {"samples": int(fsk.size)})
            self.timers.append((f0 + fsk.size + S(ACK_TIMEOUT_S), self._ack_timeout))
        elif self.phase == "fsk" and not closed:
            self.line.note(s, "reception_complete")
            self.timers = []
            self._ringing(s + S(RING_AFTER_ACK_S))

    def _ack_timeout(self, s: int) -> None:
        if self.phase == "fsk":
            self.line.note(s, "no_reception_complete")
            self._ringing(s)

    def _ringing(self, r0: int) -> None:
        self.phase = "ring"
        c = self.call
        cycle = 3 * LINE_RATE
        for k in range(c.rings):
            self.emits += [(r0 + k * cycle, EventKind.RING_ON),
                           (r0 + k * cycle + LINE_RATE, EventKind.RING_OFF)]
        if c.answered:
            ans = r0 + c.rings * cycle - S(1.5) if c.rings else r0
            self.emits.append((ans, EventKind.LOOP_CLOSED))
            self.truth["answer"] = ans
            self._talk(ans)
        else:
            self.done_at = r0 + c.rings * cycle
            self.truth["end"] = r0 + (c.rings - 1) * cycle + LINE_RATE

    # --- outgoing ---------------------------------------------------------------
    def _outgoing(self, seize: int) -> None:
        c = self.call
        self.emits.append((seize, EventKind.LOOP_CLOSED))
        d0 = seize + S(DIAL_AFTER_SEIZE_S)
        dial = gen.call_progress("dial", DIAL_AFTER_SEIZE_S - 0.2, DBm0(-20.0))
        self.segs.append(("far", seize + S(0.2), d0, _array_fn(dial)))
        digits = gen.dtmf(c.far_number or "", DBm0(-9.0), Decibels(2.0), DTMF_ON, DTMF_OFF)
        self.segs.append(("near", d0, d0 + digits.size, _array_fn(digits)))
        self.truth["dialling"] = (d0, d0 + digits.size)
        rb0 = d0 + digits.size + S(RINGBACK_AFTER_DIAL_S)
        cycle = 3 * LINE_RATE
        if c.rings:
            rb = gen.call_progress("ringback", 3.0 * c.rings, DBm0(-12.0))
            self.segs.append(("far", rb0, rb0 + rb.size, _array_fn(rb)))
        if c.answered:
            connect = rb0 + c.rings * cycle - LINE_RATE if c.rings else rb0
            self.truth["answer"] = connect
            self._talk(connect)
        else:
            self.done_at = rb0 + c.rings * cycle + S(0.5)
            self.emits.append((self.done_at, EventKind.LOOP_OPEN))
            self.truth["end"] = self.done_at

    # --- talk and hang-up -------------------------------------------------------
    def _talk(self, t0: int) -> None:
        c = self.call
        end = t0 + S(c.talk)
        for leg, spec in (("far", c.far_audio), ("near", c.near_audio)):
            seed = call_seed(c.index, leg)
            self.segs.append((leg, t0, end,
                              lambda off, n, spec=spec, seed=seed, leg=leg:
                              talk_audio(spec, seed, leg, off, n)))
        self.truth["end"] = end
        if c.hangup == "near":
            self.emits.append((end, EventKind.LOOP_OPEN))
            self.done_at = end
        else:
            busy = gen.call_progress("busy", CLEAR_DELAY_S, DBm0(-10.0))
            self.segs.append(("far", end, end + busy.size, _array_fn(busy)))
            self.emits.append((end + busy.size, EventKind.LOOP_OPEN))
            self.done_at = end + busy.size
        self.emits.sort(key=lambda e: e[0])


class NoticePath:
    """What the appliance plays towards a simulated line (analog or ISDN B-channel).

    Subclasses keep ``plays`` (start sample, samples), ``notice_ok`` (whether
    the line carries it) and a ``note(s, what, detail)`` for the history.
    """

    plays: list[tuple[int, np.ndarray]]
    notice_ok: bool

    def play(self, s: int, samples: np.ndarray) -> None:
        self.plays.append((s, samples))
        self.note(s, "play_start", {"samples": int(samples.size), "heard": self.notice_ok})

    def stop_play(self, s: int) -> None:
        if self.plays:
            self.note(s, "play_stop")
        self.plays = [(p0, x[:max(0, s - p0)]) for p0, x in self.plays if s > p0]


class LineWire(NoticePath):
    """The exchange and the staff phone on one line; renders 20 ms at a time."""

    def __init__(self, trunk: str, channel: int, calls: list[Call], notice_ok: bool,
                 history: list[SimRecord], truth: dict[int, dict]) -> None:
        self.trunk, self.channel = trunk, channel
        self.pending = sorted(calls, key=lambda c: c.at)
        self.notice_ok = notice_ok
        self.history = history
        self.truth = truth
        self.script: CallScript | None = None
        self.plays: list[tuple[int, np.ndarray]] = []
        self.relay_closed = False

    def note(self, s: int, what: str, detail: dict | None = None) -> None:
        self.history.append(SimRecord(s, self.trunk, self.channel, what, detail or {}))

    def set_loop(self, closed: bool, s: int) -> None:
        self.note(s, "relay_closed" if closed else "relay_open")
        self.relay_closed = closed
        if self.script is not None:
            self.script.on_loop(closed, s)

    def render(self, p0: int, p1: int, far: np.ndarray, near: np.ndarray,
               events: list[tuple[int, EventKind]]) -> None:
        sc = self.script
        if sc is None and self.pending and S(self.pending[0].at) < p1:
            call = self.pending.pop(0)
            start = max(S(call.at), p0)
            if start != S(call.at):
                self.note(start, "call_delayed", {"index": call.index})
            sc = self.script = CallScript(call, start, self)
            self.truth[call.index] = sc.truth
            self.note(start, "call_start", {"index": call.index, "direction": call.direction})
        if sc is not None:
            while sc.timers and sc.timers[0][0] < p1:
                t, fn = sc.timers.pop(0)
                fn(max(t, p0))
            while sc.emits and sc.emits[0][0] < p1:
                t, kind = sc.emits.pop(0)
                sc.ring_on = kind is EventKind.RING_ON if kind in (
                    EventKind.RING_ON, EventKind.RING_OFF) else sc.ring_on
                events.append((t, kind))
                self.note(t, str(kind))
            for leg, s0, s1, fn in sc.segs:
                lo, hi = max(s0, p0), min(s1, p1)
                if lo < hi:
                    (far if leg == "far" else near)[lo - p0:hi - p0] += fn(lo - s0, hi - lo)
            sc.segs = [s for s in sc.segs if s[2] > p1]
            if sc.done_at is not None and sc.done_at < p1 and not sc.emits:
                self.note(sc.done_at, "call_end", {"index": sc.call.index})
                self.script = None
        if self.plays:
            for s0, x in self.plays:
                lo, hi = max(s0, p0), min(s0 + x.size, p1)
                if lo < hi and self.notice_ok:
                    near[lo - p0:hi - p0] += x[lo - s0:hi - s0]
            self.plays = [(s0, x) for s0, x in self.plays if s0 + x.size > p1]

    @property
    def idle(self) -> bool:
        # a line test's tone or notice plays on an idle line too
        return self.script is None and not self.pending and not self.plays
