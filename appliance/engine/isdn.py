"""One ISDN trunk's call controller: Q.931 from the D channel drives recordings on its B-channels.

Runs in the capture thread (same contract as engine/line.py). The D channel's
frames arrive as ``D_FRAME`` events on channel 0 of the trunk, the frame from
the LAPD address field with its FCS. Per call (telephony.md §4)::

    SETUP ─▶ offered ─ALERTING─▶ alerting ─CONNECT─▶ connected ─DISCONNECT | RELEASE
                                                                 | RELEASE COMPLETE─▶ released

* A call is keyed by (allocating side, call reference): the sender of a
  command frame is the network when LAPD C/R = 1; the call-reference flag
  says whether the sender allocated the reference. A SETUP from the network
  is an incoming call, from the user an outgoing one.
* The B-channel comes from channel identification (the network's SETUP, or
  its CALL PROCEEDING / ALERTING / CONNECT for an outgoing call that asked
  for "any").
* Numbers come only from the Q.931 bytes: calling party (incoming; a number
  of type national regains its leading 0; presentation restricted →
  ``withheld``, not available or no number → ``unavailable``), called party
  (the near number of an incoming call; the dialled number of an outgoing
  one).
* Incoming: the recording and the notice towards the caller start at
  CONNECT; outgoing: the recording starts when the B-channel is known and
  the far end answers at CONNECT. ``duration_s`` runs from CONNECT to the
  first clearing message. An incoming call cleared before CONNECT leaves an
  ``unanswered`` row with its number and no audio.
* Anything that does not fit (bad FCS, garbage, an unknown call reference, a
  second SETUP, a busy B-channel) is counted in ``stats.problems`` and
  reported without numbers; the trunk carries on.
"""

from __future__ import annotations

import numpy as np

from appliance.dsp.notice_check import NoticeCheck
from appliance.engine.exclusions import matching
from appliance.engine.line import Reframer
from appliance.engine.reports import CallEnded, CallStarted, LineProblem, NotRecorded
from appliance.tapi import lapd, q931
from appliance.tapi.contract import EventKind, LineEvent, LineInfo
from appliance.units import FRAME_SAMPLES, LINE_RATE

#: a call never connected is given up after this long without clearing (lost frames)
SETUP_TIMEOUT = 300 * LINE_RATE
#: a cleared call waits this long for RELEASE COMPLETE before it is forgotten
CLEARING_TIMEOUT = 30 * LINE_RATE
CLEARING_MESSAGES = (q931.DISCONNECT, q931.RELEASE, q931.RELEASE_COMPLETE)


class IsdnCall:
    def __init__(self, key: tuple[bool, int], direction: str, offered: int) -> None:
        self.key = key
        self.direction = direction
        self.offered = offered
        self.last = offered              #: last message seen
        self.channel: int | None = None
        self.law = "ulaw"
        self.far_number: str | None = None
        self.absent: str | None = None
        self.called: str | None = None
        self.alerted: int | None = None
        self.answered: int | None = None
        self.ended: int | None = None
        self.cause: int | None = None
        self.decided = False
        self.excluded = None
        self.rec = None
        self.reframe = Reframer()
        self.notice: NoticeCheck | None = None
        self.notice_end = 0

    @property
    def state(self) -> str:
        if self.ended is not None:
            return "released"
        if self.answered is not None:
            return "connected"
        return "alerting" if self.alerted is not None else "setup"


class IsdnTrunk:
    def __init__(self, trunk: str, lines: list[tuple[int, LineInfo]], ctx) -> None:
        self.trunk = trunk
        self.ctx = ctx
        self.rows = {info.channel: row for row, info in lines}
        self.device = lines[0][1].device if lines else ""
        self.max_calls = 4 * len(self.rows) + 8
        self.calls: dict[tuple[bool, int], IsdnCall] = {}

    @property
    def busy(self) -> bool:
        return bool(self.calls)

    # --- the capture thread's entry point --------------------------------------------
    def process(self, p0: int, far: np.ndarray, near: np.ndarray, events: list[LineEvent]) -> None:
        pos = p0
        for ev in sorted(events, key=lambda e: e.sample):
            s = min(max(ev.sample, pos), p0 + FRAME_SAMPLES)
            if s > pos:
                self._audio(p0, pos, s, far, near)
                pos = s
            self._event(ev, s)
        if pos < p0 + FRAME_SAMPLES:
            self._audio(p0, pos, p0 + FRAME_SAMPLES, far, near)
        self._tick(p0 + FRAME_SAMPLES)

    def _event(self, ev: LineEvent, s: int) -> None:
        if ev.kind is EventKind.D_FRAME:
            self._frame(ev.data or b"", s)
        elif ev.kind is EventKind.DEVICE_LOST:
            for c in list(self.calls.values()):
                if c.ended is None:
                    self._end(c, s, state="truncated")
            self.calls.clear()
        elif ev.kind is EventKind.DEVICE_BACK:
            pass
        else:
            self._problem(f"unexpected_{ev.kind}", s)

    # --- the D channel --------------------------------------------------------------------
    def _frame(self, data: bytes, s: int) -> None:
        f = lapd.parse(data, has_fcs=True)
        if f.error:
            self._problem("d_frame_bad_fcs" if f.error == "bad FCS" else "d_frame_garbage", s)
            return
        if f.sapi != 0 or f.name not in ("I", "UI"):
            return                                   # link layer and TEI management
        if not f.info:
            return
        m = q931.parse(f.info)
        if m.error or m.cr_len == 0:
            if m.error or m.mtype in (q931.SETUP,) + CLEARING_MESSAGES:
                self._problem("q931_garbage", s)
            return                                   # global call reference (RESTART …)
        from_network = bool(f.cr)                    # commands: C/R = 1 from the network
        origin_network = from_network if m.cr_flag == 0 else not from_network
        key = (origin_network, m.cr)
        call = self.calls.get(key)
        if m.mtype == q931.SETUP:
            if call is not None:
                self._problem("setup_twice", s)
                return
            self._setup(key, m, s, incoming=origin_network)
            return
        if call is None:
            self._problem("unknown_call_reference", s)
            return
        call.last = s
        if call.ended is not None:
            if m.mtype == q931.RELEASE_COMPLETE:
                del self.calls[key]
            return
        if m.b_channel and call.channel is None:
            self._channel(call, m.b_channel, s)
        if m.mtype == q931.ALERTING and call.alerted is None:
            call.alerted = s
        elif m.mtype == q931.CONNECT and call.answered is None:
            self._connect(call, s)
        elif m.mtype in CLEARING_MESSAGES:
            call.cause = m.cause
            self._end(call, s)
            if m.mtype == q931.RELEASE_COMPLETE:
                del self.calls[key]

    def _setup(self, key, m: q931.Message, s: int, incoming: bool) -> None:
        if len(self.calls) >= self.max_calls:        # lost clearing messages: forget the oldest
            oldest = min(self.calls.values(), key=lambda c: c.last)
            self._problem("too_many_calls", s)
            self._drop(oldest, s)
        call = IsdnCall(key, "in" if incoming else "out", s)
        call.law = m.law or "ulaw"
        if incoming:
            calling = m.number("calling_number")
            if calling is None:
                call.absent = "unavailable"
            elif calling.presentation == "restricted":
                call.absent = "withheld"
            elif calling.presentation == "not_available" or not calling.digits:
                call.absent = "unavailable"
            else:
                call.far_number = calling.normalised
            called = m.number("called_number")
            call.called = called.normalised if called is not None and called.digits else None
        else:
            called = m.number("called_number")
            call.far_number = called.normalised if called is not None and called.digits else None
        self.calls[key] = call
        if m.b_channel:
            self._channel(call, m.b_channel, s)

    def _channel(self, call: IsdnCall, channel: int, s: int) -> None:
        if channel not in self.rows:
            self._problem("unknown_b_channel", s)
            return
        if any(c.channel == channel and c.ended is None for c in self.calls.values()
               if c is not call):
            self._problem("b_channel_in_use", s)
            return
        call.channel = channel
        if call.direction == "out" and not self._decide(call):
            ctx = self.ctx
            call.rec = ctx.recorder.start(self.trunk, channel, "out", ctx.time(s),
                                          offered_at=ctx.time(call.offered))
            ctx.report(CallStarted(call.rec.call_id, self.trunk, channel, "out", ctx.time(s)))

    def _decide(self, call: IsdnCall) -> bool:
        if not call.decided:
            call.decided = True
            call.excluded = matching(self.ctx.exclusions, self.trunk, call.channel,
                                     call.far_number, call.called)
        return call.excluded is not None

    def _connect(self, call: IsdnCall, s: int) -> None:
        ctx = self.ctx
        call.answered = s
        if call.channel is None:
            self._problem("connect_without_b_channel", s)
            return
        if self._decide(call):
            return
        if call.direction == "out":
            if call.rec is not None:
                call.rec.mark_answered(ctx.time(s))
            return
        call.rec = ctx.recorder.start(self.trunk, call.channel, "in", ctx.time(s),
                                      offered_at=ctx.time(call.offered))
        call.rec.mark_answered(ctx.time(s))
        notice = ctx.notice.samples
        start = ctx.iface.play(self.trunk, call.channel, notice)
        ctx.stats.notice_delays.append(start - s)
        call.notice = NoticeCheck(notice, start)
        call.notice_end = start + notice.size
        ctx.report(CallStarted(call.rec.call_id, self.trunk, call.channel, "in", ctx.time(s)))

    def _end(self, call: IsdnCall, s: int, state: str = "complete") -> None:
        ctx = self.ctx
        call.ended = s
        channel = call.channel if call.channel is not None else 0
        if call.channel is not None and self._decide(call):
            if call.excluded.keep_metadata:
                cid = ctx.recorder.log_row(
                    self.trunk, channel, call.direction, ctx.time(call.offered), ctx.time(s),
                    state="complete", excluded=True, far_number=call.far_number,
                    called_number=call.called if call.direction == "in" else call.far_number,
                    number_absent_reason=call.absent)
            else:
                cid = None
            ctx.report(NotRecorded(cid, self.trunk, channel, "excluded"))
            return
        if call.rec is None:
            # never connected (incoming) or never given a B-channel (outgoing)
            cid = ctx.recorder.log_row(
                self.trunk, channel, call.direction, ctx.time(call.offered), ctx.time(s),
                state="unanswered", far_number=call.far_number,
                called_number=call.called if call.direction == "in" else call.far_number,
                near_number=call.called if call.direction == "in" else None,
                number_absent_reason=call.absent)
            ctx.report(NotRecorded(cid, self.trunk, channel, "unanswered"))
            return
        if call.notice is not None and s < call.notice_end:
            ctx.iface.stop_play(self.trunk, channel)
        notice = "none"
        if call.direction == "in":
            notice = "played" if call.notice is not None and call.notice.heard else "not_heard"
        call.reframe.flush(lambda far, near: self._write(call, far, near))
        answered = ctx.time(call.answered) if call.answered is not None else None
        fields = call.rec.finish(
            ctx.time(s), answered_at=answered, far_number=call.far_number,
            near_number=call.called if call.direction == "in" else None,
            called_number=call.called if call.direction == "in" else call.far_number,
            number_absent_reason=call.absent, notice=notice, state=state)
        ctx.report(CallEnded(call.rec.call_id, self.trunk, channel, call.direction,
                             fields.get("duration_s"), fields.get("recorded_s", 0.0), notice,
                             call.rec.lost_frames))
        call.rec = None

    def _drop(self, call: IsdnCall, s: int) -> None:
        if call.ended is None:
            self._end(call, s, state="truncated" if call.rec is not None else "complete")
        self.calls.pop(call.key, None)

    def _write(self, call: IsdnCall, far: np.ndarray, near: np.ndarray) -> None:
        if not call.rec.write(far, near):
            self.ctx.stats.lost_frames += 1

    # --- the B-channels -------------------------------------------------------------------
    def _audio(self, p0: int, lo: int, hi: int, far: np.ndarray, near: np.ndarray) -> None:
        for call in self.calls.values():
            if call.rec is None or call.ended is not None:
                continue
            row = self.rows[call.channel]
            f, n = far[row, lo - p0:hi - p0], near[row, lo - p0:hi - p0]
            call.reframe.push(f, n, lambda a, b, call=call: self._write(call, a, b))
            if call.notice is not None:
                call.notice.feed(lo, n)

    def _tick(self, now: int) -> None:
        for call in list(self.calls.values()):
            if call.ended is not None:
                if now - call.ended >= CLEARING_TIMEOUT:
                    self.calls.pop(call.key, None)
            elif call.answered is None and now - call.last >= SETUP_TIMEOUT:
                self._problem("setup_timeout", now)
                self._drop(call, now)
            elif call.answered is not None and now - call.answered >= self.ctx.max_call:
                self._problem("maximum_duration", now)
                self._end(call, now)

    def finish(self, end: int) -> None:
        for call in list(self.calls.values()):
            if call.ended is None and call.rec is not None:
                self._end(call, end)
        self.calls.clear()

    def _problem(self, what: str, s: int) -> None:
        self.ctx.stats.problems[what] = self.ctx.stats.problems.get(what, 0) + 1
        self.ctx.report(LineProblem(self.trunk, 0, what, self.ctx.time(s)))
