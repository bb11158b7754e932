"""The capture loop: read a period, run every line's state machine, hand off, repeat.

The capture thread's contract (docs/engine.md has the full list):

* it may: copy audio, run the dsp detectors, encode and seal (CPU only),
  queue jobs for the writer and reports for the reporter, issue interface
  commands (play, stop, relay) that do not block;
* it may not: touch the disk, the catalog or the network, log directly,
  sleep, or wait on a lock held by anyone doing those things;
* when the writer falls behind it drops frames of the calls it cannot hand
  over, counts them (``stats.lost_frames``) and raises an overrun alarm —
  never silently, never by stopping;
* bad input (a malformed period, an impossible event, a line that raises)
  is counted and reported; the loop carries on.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from appliance.config import Config
from appliance.dsp.tones import TonesBank
from appliance.engine.encoding import PeriodEncoder
from appliance.engine.isdn import IsdnTrunk
from appliance.engine.line import Line
from appliance.engine.notice import Notice
from appliance.engine.recorder import CallRecorder
from appliance.engine.reports import Alarm, LineProblem
from appliance.tapi.contract import EventKind, LineInterface, LineKind, Period
from appliance.units import FRAME_SAMPLES, LINE_RATE

log = logging.getLogger(__name__)

#: an alarm is repeated at most this often while it lasts (in periods: 10 s)
ALARM_EVERY = 500
#: from this many lines with a tone detector on, one TonesBank batch beats analysing
#: each line alone (measured: about 4 µs a line alone; batched 3.4 µs at 6 lines,
#: 1.8 at 16, 1.0 at 96)
TONES_BANK_MIN = 6


@dataclass
class EngineStats:
    periods: int = 0
    bad_periods: int = 0
    lost_frames: int = 0
    overrun_alarms: int = 0
    line_errors: int = 0
    notice_delays: list[int] = field(default_factory=list)     # samples, answer → playback
    problems: dict[str, int] = field(default_factory=dict)


class Engine:
    def __init__(self, iface: LineInterface, recorder: CallRecorder, config: Config,
                 notice: Notice, report) -> None:
        self.iface = iface
        self.recorder = recorder
        self.notice = notice
        self.exclusions = config.exclusions
        self.max_call = int(config.engine.max_call_s * LINE_RATE)
        self.report = report
        self.stats = EngineStats()
        self.epoch: datetime = iface.epoch
        self.lines = [Line(info, self) for info in iface.lines()]
        self._by_key = {(ln.info.trunk, ln.info.channel): ln for ln in self.lines}
        self._by_device: dict[str, list[Line]] = {}
        for ln in self.lines:
            self._by_device.setdefault(ln.info.device, []).append(ln)
        #: ISDN trunks: one call controller each (its D channel drives its B-channels)
        isdn: dict[str, list] = {}
        for row, ln in enumerate(self.lines):
            if ln.info.kind is LineKind.ISDN:
                isdn.setdefault(ln.info.trunk, []).append((row, ln.info))
        self.isdn = {trunk: IsdnTrunk(trunk, rows, self) for trunk, rows in isdn.items()}
        self._last_alarm = -ALARM_EVERY
        self._lost_reported = 0
        # the lines stage their frames; the period's end encodes them on both cores
        self.encoder = PeriodEncoder(recorder.settings.frames_per_encode,
                                     recorder.settings.helper_threads
                                     or max(1, (os.cpu_count() or 2) - 1))
        #: the far-leg call-progress analysis of all lines at once (dsp/tones.py)
        self.tones_bank = TonesBank()
        recorder.batch = self.encoder
        #: called as fn(engine, period, far, near) after every period, in the capture
        #: thread, so they keep its contract (appliance/ops/live.py: levels, line tests)
        self.observers: list = []

    def time(self, sample: int) -> datetime:
        return self.epoch + timedelta(seconds=sample / LINE_RATE)

    def run(self, max_periods: int | None = None) -> None:
        """Capture until the interface ends (or ``max_periods``, for tests)."""
        n = 0
        while max_periods is None or n < max_periods:
            period = self.iface.read()
            if period is None:
                break
            self.step(period)
            n += 1

    def step(self, period: Period) -> None:
        self.stats.periods += 1
        far, near = period.far, period.near
        n = len(self.lines)
        if (not isinstance(far, np.ndarray) or not isinstance(near, np.ndarray)
                or far.shape != (n, FRAME_SAMPLES) or near.shape != (n, FRAME_SAMPLES)
                or far.dtype != np.int16 or near.dtype != np.int16):
            self.stats.bad_periods += 1
            if self.stats.bad_periods == 1 or self.stats.bad_periods % ALARM_EVERY == 0:
                self.report(Alarm("bad_frames", self.stats.bad_periods,
                                  "malformed audio from the interface replaced by silence"))
            far = near = np.zeros((n, FRAME_SAMPLES), np.int16)
        per_line: dict[int, list] = {}
        per_trunk: dict[str, list] = {}
        for ev in period.events:
            self._route(ev, per_line, per_trunk)
        self._prefetch_tones(period.sample, far)
        for i, line in enumerate(self.lines):
            evs = per_line.get(i)
            if not evs and not line.busy:
                continue
            try:
                line.process(period.sample, far[i], near[i], evs or [])
            except Exception as exc:     # noqa: BLE001 — one line's bug must not stop the others
                self.stats.line_errors += 1
                self.report(LineProblem(line.info.trunk, line.info.channel,
                                        f"internal error {type(exc).__name__}: {exc}",
                                        self.time(period.sample)))
                try:
                    line._idle()
                except Exception:        # noqa: BLE001
                    pass
        for trunk, ctl in self.isdn.items():
            evs = per_trunk.get(trunk)
            if not evs and not ctl.busy:
                continue
            try:
                ctl.process(period.sample, far, near, evs or [])
            except Exception as exc:     # noqa: BLE001 — one trunk's bug must not stop the others
                self.stats.line_errors += 1
                self.report(LineProblem(trunk, 0, f"internal error {type(exc).__name__}: {exc}",
                                        self.time(period.sample)))
                ctl.calls.clear()
        try:
            self.encoder.run()
        except Exception as exc:         # noqa: BLE001 — a codec error must not stop capture
            self.stats.line_errors += 1
            self.report(Alarm("encoder_failed", self.stats.line_errors, f"{type(exc).__name__}"))
        self._check_overrun(period.sample)
        for obs in self.observers:
            try:
                obs(self, period, far, near)
            except Exception as exc:     # noqa: BLE001 — an observer's bug must not stop capture
                self.stats.line_errors += 1
                self.report(Alarm("observer_failed", self.stats.line_errors,
                                  f"{type(exc).__name__}"))

    def _prefetch_tones(self, p0: int, far: np.ndarray) -> None:
        """The far-leg tone analysis of every line with a detector, in one batch.

        Each detector uses it only if its line feeds it this period's whole
        frame (``frame=p0``); results are the same as analysing line by line.
        """
        dets, rows = [], []
        for i, line in enumerate(self.lines):
            det = line._tones
            if det is not None:
                dets.append(det)
                rows.append(i)
        if len(dets) < TONES_BANK_MIN:
            return              # fewer lines analyse faster alone (docs/performance.md)
        try:
            self.tones_bank.prefetch(p0, dets, far[rows])
        except Exception as exc:         # noqa: BLE001 — the lines analyse alone then
            for det in dets:
                det._pf = None
            self.stats.line_errors += 1
            self.report(Alarm("tones_bank_failed", self.stats.line_errors,
                              f"{type(exc).__name__}"))

    def _route(self, ev, per_line: dict[int, list], per_trunk: dict[str, list]) -> None:
        if ev.kind in (EventKind.DEVICE_LOST, EventKind.DEVICE_BACK) and ev.trunk is None:
            lines = self._by_device.get(ev.device, [])
            if ev.kind is EventKind.DEVICE_LOST:
                self.report(Alarm("device_lost", 1, f"device {ev.device}"))
            for ln in lines:
                per_line.setdefault(self.lines.index(ln), []).append(ev)
            for trunk, ctl in self.isdn.items():
                if ctl.device == ev.device:
                    per_trunk.setdefault(trunk, []).append(ev)
            return
        if ev.kind is EventKind.D_FRAME and ev.channel == 0 and ev.trunk in self.isdn:
            per_trunk.setdefault(ev.trunk, []).append(ev)
            return
        line = self._by_key.get((ev.trunk, ev.channel))
        if line is None:
            self.stats.problems["unknown_line"] = self.stats.problems.get("unknown_line", 0) + 1
            self.report(LineProblem(str(ev.trunk), ev.channel, f"{ev.kind} on an unknown line",
                                    self.time(ev.sample)))
            return
        per_line.setdefault(self.lines.index(line), []).append(ev)

    def _check_overrun(self, sample: int) -> None:
        lost = self.stats.lost_frames
        if lost > self._lost_reported:
            periods = self.stats.periods
            if periods - self._last_alarm >= ALARM_EVERY:
                self.stats.overrun_alarms += 1
                self._last_alarm = periods
                self.report(Alarm("writer_overrun", lost,
                                  "frames lost: the writer (disk) is too slow"))
            self._lost_reported = lost

    def finish(self) -> None:
        """End of the source: close calls still open as they stand."""
        end = self.iface.sample if hasattr(self.iface, "sample") else 0
        for ln in self.lines:
            if ln.call is not None and ln.call.rec is not None:
                ln._end(end, end)
        for ctl in self.isdn.values():
            ctl.finish(end)
        self.encoder.close()
