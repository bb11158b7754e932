"""One analog line's state machine (runs in the capture thread; see docs/engine.md).

Incoming: IDLE →(ring)→ ALERTING →(CAR cadence: close the relay)→ CALLER_ID
→(FSK message or 4 s: open the relay)→ RINGING →(loop closed: answer; notice
starts; recording starts)→ TALK →(loop open | busy tone | maximum)→ IDLE
(or CLEARING until the staff hang up after a busy tone). Ringing that stops
for 6 s without an answer leaves an ``unanswered`` row with the number.

Outgoing: IDLE →(loop closed without ringing: seizure; recording starts,
held)→ DIALLING (DTMF on the near leg; tones and voice on the far leg)
→(far party's first words after dialling: connect)→ TALK → IDLE.

Anything that does not fit (a hang-up without a call, ringing during a
call, …) is counted and reported, and the line carries on.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np

from appliance.dsp import (CallProgressDetector, DtmfReceiver, RingCadence, RingCadenceClassifier,
                           RingKind, RingStopped, Tone, ToneDetected, ToneEnded)
from appliance.dsp.callerid import CallerIdReceiver, CallerIdSpec
from appliance.dsp.notice_check import NoticeCheck
from appliance.dsp.onset import VoiceOnset
from appliance.engine.exclusions import matching
from appliance.engine.reports import CallEnded, CallStarted, LineProblem, NotRecorded
from appliance.tapi.contract import EventKind, LineEvent, LineInfo
from appliance.units import FRAME_SAMPLES, LINE_RATE

CID_TIMEOUT = 4 * LINE_RATE          # Asterisk gives up after 10 s; FSK arrives within 1 s
HOLD_DECIDE = 30 * LINE_RATE         # undecided outgoing recordings are kept after 30 s
BUSY_CONFIRM = LINE_RATE             # a busy cadence must last 1 s more to end a call


class State(StrEnum):
    IDLE = "idle"
    ALERTING = "alerting"
    CALLER_ID = "caller_id"
    RINGING = "ringing"
    TALK = "talk"
    DIALLING = "dialling"
    EXCLUDED = "excluded"
    CLEARING = "clearing"
    OFFLINE = "offline"


class Reframer:
    """Cuts arbitrary slices into 20 ms frames aligned to the recording's first sample."""

    def __init__(self) -> None:
        self.far = np.zeros(FRAME_SAMPLES, np.int16)
        self.near = np.zeros(FRAME_SAMPLES, np.int16)
        self.fill = 0

    def push(self, far: np.ndarray, near: np.ndarray, emit) -> None:
        n = far.size
        if n == FRAME_SAMPLES and not self.fill:
            emit(far, near)          # the usual case: the period is the frame (emit copies)
            return
        pos = 0
        while pos < n:
            take = min(FRAME_SAMPLES - self.fill, n - pos)
            self.far[self.fill:self.fill + take] = far[pos:pos + take]
            self.near[self.fill:self.fill + take] = near[pos:pos + take]
            self.fill += take
            pos += take
            if self.fill == FRAME_SAMPLES:
                emit(self.far, self.near)
                self.fill = 0

    def flush(self, emit) -> None:
        if self.fill:
            self.far[self.fill:] = 0
            self.near[self.fill:] = 0
            emit(self.far, self.near)
            self.fill = 0


class Call:
    """What the line has learnt about the call in progress."""

    def __init__(self, direction: str, offered: int) -> None:
        self.direction = direction
        self.offered = offered
        self.answered: int | None = None
        self.far_number: str | None = None
        self.absent: str | None = None
        self.called: str | None = None
        self.digits: list[str] = []
        self.last_digit_end = 0
        self.rec = None
        self.reframe = Reframer()
        self.notice: NoticeCheck | None = None
        self.notice_end = 0
        self.busy_start: int | None = None
        self.busy_seen_at = 0
        self.ringback = False
        self.decided = False
        self.excluded = None
        self.last_ring_end = offered


class Line:
    def __init__(self, info: LineInfo, ctx) -> None:
        self.info = info
        self.ctx = ctx
        self.state = State.IDLE
        self.call: Call | None = None
        self.rings = RingCadenceClassifier()
        self._cid: CallerIdReceiver | None = None
        self._cid_deadline = 0
        self._tones: CallProgressDetector | None = None
        self._dtmf: DtmfReceiver | None = None
        self._onset: VoiceOnset | None = None
        self._det_base = 0          # sample where the far/near detectors started
        self._tones_base = 0        # sample 0 of the far-leg tone detector (a period's start)
        self._p0 = -1               # first sample of the period being processed

    # --- the capture thread's entry point --------------------------------------------
    @property
    def busy(self) -> bool:
        return self.state is not State.IDLE

    def process(self, p0: int, far: np.ndarray, near: np.ndarray, events: list[LineEvent]) -> None:
        self._p0 = p0
        if not events:               # most periods of a call: the whole frame, then the tick
            self._audio(p0, far, near)
            self._tick(p0 + FRAME_SAMPLES)
            return
        pos = p0
        for ev in events:
            s = min(max(ev.sample, pos), p0 + FRAME_SAMPLES)
            if s > pos:
                self._audio(pos, far[pos - p0:s - p0], near[pos - p0:s - p0])
                pos = s
            self._event(ev, s)
        if pos < p0 + FRAME_SAMPLES:
            self._audio(pos, far[pos - p0:], near[pos - p0:])
        self._tick(p0 + FRAME_SAMPLES)

    # --- events -----------------------------------------------------------------------
    def _event(self, ev: LineEvent, s: int) -> None:
        k, st = ev.kind, self.state
        if k in (EventKind.RING_ON, EventKind.RING_OFF):
            if st in (State.IDLE, State.ALERTING, State.CALLER_ID, State.RINGING) or (
                    st is State.EXCLUDED and self.call and self.call.answered is None
                    and self.call.direction == "in"):
                if st is State.IDLE:
                    if k is EventKind.RING_OFF:
                        return          # the tail of a ring we already closed
                    self._begin_incoming(s)
                self.call.last_ring_end = s
                self._rings(self.rings.feed([(s / LINE_RATE, k is EventKind.RING_ON)]), s)
            elif k is EventKind.RING_ON:
                self._problem("ring_during_call", s)
        elif k is EventKind.LOOP_CLOSED:
            if st is State.IDLE:
                self._begin_outgoing(s)
            elif st in (State.RINGING, State.ALERTING, State.CALLER_ID):
                self._answer(s)
            elif st is State.EXCLUDED and self.call and self.call.answered is None:
                self.call.answered = s
            else:
                self._problem("loop_closed_during_call", s)
        elif k is EventKind.LOOP_OPEN:
            if st in (State.TALK, State.DIALLING):
                c = self.call
                end = c.busy_start if c.busy_start is not None and c.answered is not None else s
                self._end(end, s)
            elif st in (State.CLEARING, State.EXCLUDED):
                if st is State.EXCLUDED:
                    self._excluded_end(s)
                self._idle()
            else:
                self._problem("hangup_without_call", s)
        elif k is EventKind.DEVICE_LOST:
            if self.state in (State.TALK, State.DIALLING):
                self._end(s, s, state="truncated")
            self._idle()
            self.state = State.OFFLINE
        elif k is EventKind.DEVICE_BACK:
            if self.state is State.OFFLINE:
                self.state = State.IDLE
        elif k is EventKind.POLARITY:
            pass                        # not relied upon (telephony.md §2.4)
        else:
            self._problem(f"unexpected_{k}", s)

    def _rings(self, results: list, s: int) -> None:
        for r in results:
            if isinstance(r, RingCadence) and r.kind is RingKind.CAR and self.state is State.ALERTING:
                # primary response: we are the Number Display terminal
                self.ctx.iface.set_loop(self.info.trunk, self.info.channel, True)
                self.state = State.CALLER_ID
                self._cid = CallerIdReceiver(CallerIdSpec("jclip"))
                self._det_base = s
                self._cid_deadline = s + CID_TIMEOUT
            elif isinstance(r, RingCadence) and r.kind is RingKind.NORMAL and self.state is State.ALERTING:
                self.state = State.RINGING        # no Number Display on this line
            elif isinstance(r, RingStopped):
                if self.state in (State.RINGING, State.ALERTING, State.CALLER_ID):
                    self._unanswered(int(round(r.at_s * LINE_RATE)))
                elif self.state is State.EXCLUDED and self.call.answered is None:
                    self._excluded_end(int(round(r.at_s * LINE_RATE)))
                    self._idle()

    # --- incoming -----------------------------------------------------------------------
    def _begin_incoming(self, s: int) -> None:
        self.call = Call("in", s)
        self.rings.reset()
        self.state = State.ALERTING

    def _cid_done(self, msg, s: int) -> None:
        self.ctx.iface.set_loop(self.info.trunk, self.info.channel, False)   # reception complete
        self._cid = None
        c = self.call
        if msg is not None:
            c.far_number, c.called = msg.number, msg.called_number
            c.absent = str(msg.absent_reason) if msg.absent_reason else None
        else:
            self._problem("caller_id_not_received", s)
        self.state = State.RINGING
        self._decide(s)

    def _answer(self, s: int) -> None:
        c = self.call
        if self.state is State.CALLER_ID:
            self._cid_done(None, s)
        c.answered = s
        if self._decide(s):
            return
        ctx = self.ctx
        c.rec = ctx.recorder.start(self.info.trunk, self.info.channel, "in", ctx.time(s),
                                   offered_at=ctx.time(c.offered))
        c.rec.mark_answered(ctx.time(s))
        notice = ctx.notice.samples
        start = ctx.iface.play(self.info.trunk, self.info.channel, notice)
        ctx.stats.notice_delays.append(start - s)
        c.notice = NoticeCheck(notice, start)
        c.notice_end = start + notice.size
        self._start_far_tones(s)
        self.state = State.TALK
        ctx.report(CallStarted(c.rec.call_id, self.info.trunk, self.info.channel, "in", ctx.time(s)))

    def _unanswered(self, end: int) -> None:
        c = self.call
        if self.state is State.CALLER_ID:
            self._cid_done(None, end)
        if self._decide(end):
            self._excluded_end(end)
        else:
            cid = self.ctx.recorder.log_row(
                self.info.trunk, self.info.channel, "in", self.ctx.time(c.offered),
                self.ctx.time(c.last_ring_end), state="unanswered", far_number=c.far_number,
                called_number=c.called, near_number=c.called, number_absent_reason=c.absent)
            self.ctx.report(NotRecorded(cid, self.info.trunk, self.info.channel, "unanswered"))
        self._idle()

    # --- outgoing -----------------------------------------------------------------------
    def _begin_outgoing(self, s: int) -> None:
        ctx = self.ctx
        c = self.call = Call("out", s)
        c.rec = ctx.recorder.start(self.info.trunk, self.info.channel, "out", ctx.time(s), hold=True)
        self._dtmf = DtmfReceiver()
        self._onset = VoiceOnset()
        self._start_far_tones(s)
        self.state = State.DIALLING
        ctx.report(CallStarted(c.rec.call_id, self.info.trunk, self.info.channel, "out", ctx.time(s)))

    def _connect(self, s: int) -> None:
        c = self.call
        c.answered = s
        self._decide(s)
        if c.rec is not None:
            c.rec.mark_answered(self.ctx.time(s))
        self._onset = None
        self.state = State.TALK

    # --- shared -------------------------------------------------------------------------
    def _start_far_tones(self, s: int) -> None:
        """The far leg's call-progress detector, on the period grid: the part of
        this period before ``s`` is fed as silence, so that its 20 ms blocks end
        where periods end and the engine's TonesBank can take each period's
        frame as the block itself (dsp/tones.py). The silence lies before the
        call's audio and shifts no event: they are dated from ``_tones_base``."""
        self._tones = CallProgressDetector()
        lead = (s - self._p0) % FRAME_SAMPLES
        self._tones_base = s - lead
        if lead:
            self._tones.feed(np.zeros(lead, np.int16))
        self._det_base = s

    def _decide(self, s: int) -> bool:
        """Apply the exclusions once the numbers are known; True if the call is excluded."""
        c = self.call
        if c.decided:
            return c.excluded is not None
        if c.direction == "out":
            c.far_number = "".join(c.digits) or None
        ex = matching(self.ctx.exclusions, self.info.trunk, self.info.channel, c.far_number,
                      c.called)
        c.decided, c.excluded = True, ex
        if ex is not None:
            if c.rec is not None:
                c.rec.discard()
                c.rec = None
            self.state = State.EXCLUDED
        elif c.rec is not None and c.rec.held:
            c.rec.commit()
        return ex is not None

    def _excluded_end(self, s: int) -> None:
        c = self.call
        if c is None or c.excluded is None:
            return
        cid = None
        if c.excluded.keep_metadata:
            cid = self.ctx.recorder.log_row(
                self.info.trunk, self.info.channel, c.direction, self.ctx.time(c.offered),
                self.ctx.time(s), state="complete", excluded=True, far_number=c.far_number,
                called_number=c.called, number_absent_reason=c.absent)
        self.ctx.report(NotRecorded(cid, self.info.trunk, self.info.channel, "excluded"))

    def _end(self, end: int, now: int, state: str = "complete", clearing: bool = False) -> None:
        c = self.call
        ctx = self.ctx
        if not c.decided:
            self._decide(now)
        if c.excluded is not None:
            self._excluded_end(end)
            self._idle()
            return
        if c.notice is not None and now < c.notice_end:
            ctx.iface.stop_play(self.info.trunk, self.info.channel)
        notice = "none"
        if c.direction == "in":
            notice = "played" if c.notice is not None and c.notice.heard else "not_heard"
        c.reframe.flush(self._write)
        answered = ctx.time(c.answered) if c.answered is not None else None
        fields = c.rec.finish(
            ctx.time(end), answered_at=answered, far_number=c.far_number,
            near_number=c.called if c.direction == "in" else None,
            called_number=c.called if c.direction == "in" else c.far_number,
            number_absent_reason=c.absent, notice=notice, state=state)
        ctx.report(CallEnded(c.rec.call_id, self.info.trunk, self.info.channel, c.direction,
                             fields.get("duration_s"), fields.get("recorded_s", 0.0), notice,
                             c.rec.lost_frames))
        c.rec = None
        if clearing:
            self.state = State.CLEARING      # the far party left; the staff have not hung up yet
            self.call = None
            self._tones = self._dtmf = self._onset = None
        else:
            self._idle()

    def _write(self, far: np.ndarray, near: np.ndarray) -> None:
        if not self.call.rec.write(far, near):
            self.ctx.stats.lost_frames += 1

    def _idle(self) -> None:
        self.state = State.IDLE
        self.call = None
        self._cid = self._tones = self._dtmf = self._onset = None
        self.rings.reset()

    def _problem(self, what: str, s: int) -> None:
        self.ctx.stats.problems[what] = self.ctx.stats.problems.get(what, 0) + 1
        self.ctx.report(LineProblem(self.info.trunk, self.info.channel, what, self.ctx.time(s)))

    # --- audio --------------------------------------------------------------------------
    def _audio(self, s: int, far: np.ndarray, near: np.ndarray) -> None:
        st, c = self.state, self.call
        if c is None or st in (State.IDLE, State.ALERTING, State.RINGING, State.EXCLUDED):
            return
        if st is State.CALLER_ID:
            msgs = [m for m in self._cid.feed(far) if m.checksum_ok]
            if msgs:
                self._cid_done(msgs[0], s + far.size)
            return
        if c.rec is not None:
            c.reframe.push(far, near, self._write)
        if c.notice is not None:
            c.notice.feed(s, near)
        if st is State.DIALLING:
            for d in self._dtmf.feed(near):
                c.digits.append(d.digit)
                c.last_digit_end = self._det_base + d.end
            for onset in self._onset.feed(far):
                at = self._det_base + onset
                if c.digits and at > c.last_digit_end:
                    self._connect(at)
                    break
        if self._tones is not None:
            # a whole frame may have been analysed by the engine's TonesBank
            frame = self._p0 if far.size == FRAME_SAMPLES else None
            for e in self._tones.feed(far, frame=frame):
                if isinstance(e, ToneDetected) and e.tone is Tone.BUSY and c.answered is not None:
                    c.busy_start, c.busy_seen_at = self._tones_base + e.start, s + far.size
                elif isinstance(e, ToneDetected) and e.tone is Tone.RINGBACK:
                    c.ringback = True
                    if c.direction == "out" and not c.decided:
                        self._decide(s)
                elif isinstance(e, ToneEnded) and e.tone is Tone.BUSY:
                    c.busy_start = None          # a cadence that did not last: not a hang-up

    def _tick(self, now: int) -> None:
        st, c = self.state, self.call
        if (st is State.TALK and c is not None and c.busy_start is None and c.answered is not None
                and now - c.answered < self.ctx.max_call):
            return                   # a call in progress with nothing due (the usual case)
        if st in (State.ALERTING, State.CALLER_ID, State.RINGING) or (
                st is State.EXCLUDED and c is not None and c.answered is None
                and c.direction == "in"):
            self._rings(self.rings.feed([], until=now / LINE_RATE), now)
        if self.state is State.CALLER_ID and now >= self._cid_deadline:
            self._cid_done(None, now)
        c = self.call
        if c is None or self.state not in (State.TALK, State.DIALLING):
            return
        if c.busy_start is not None and now - c.busy_seen_at >= BUSY_CONFIRM:
            self._end(c.busy_start, now, clearing=True)
            return
        if self.state is State.DIALLING and not c.decided and now - c.offered >= HOLD_DECIDE:
            self._decide(now)
        if now - (c.answered if c.answered is not None else c.offered) >= self.ctx.max_call:
            self._problem("maximum_duration", now)
            self._end(now, now)
