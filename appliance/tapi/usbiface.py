"""``alsa+serial://CTL?capture=PCM&playback=PCM&trunks=T1,T2,T3:isdn:2``: the USB interface.

One USB composite device: its audio through pyalsaaudio (alsa.py) and its
control channel through pyserial (serialctl.py, hw/protocol.md). Query keys:

* ``capture``, ``playback`` — ALSA PCM names (on the appliance
  ``hw:CARD=appliance`` from hw/99-appliance.rules);
* ``trunks`` — the trunks in the device's order: ``ID`` (analog) or
  ``ID:isdn:N`` (N B-channels); lines are (trunk, channel) in that order;
* ``map`` — capture channels, e.g. ``T1.far,T1.near,T3.2.far,…``
  (default: far then near of every line, in order);
* ``device`` (name in events, default ``usb0``), ``periods`` (playback
  queue, default 2), ``sync_wait`` (s to wait for the heartbeat that covers
  a period, default 0.5), ``silent`` (s without a message before the device
  is reopened, default 2), ``retry`` (s between reopen attempts, 0.25),
  ``stop_after`` (s of line time, then the source ends: bench runs only).

Device loss: a vanished control node, a serial or ALSA error, or a silent
device closes both and reports ``DEVICE_LOST``; the backend then produces
silent periods on the clock and reopens every ``retry`` seconds; when it
succeeds it reports ``DEVICE_BACK``. A device that resets (new boot id, or
its sample counter going back) is a loss and a return in the same period.
Nothing here raises on what the device sends.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np

from appliance.clock import Clock
from appliance.errors import ConfigError, LineInterfaceError, UnknownInterface
from appliance.tapi import q931, serialctl as sc
from appliance.tapi.alsa import AlsaAudio, AudioLost, expand_g711
from appliance.tapi.contract import (EventKind, LineEvent, LineInfo, LineInterface, LineKind,
                                     Period)
from appliance.tapi.lapd import append_fcs, parse as parse_lapd
from appliance.units import FRAME_SAMPLES, LINE_RATE

log = logging.getLogger(__name__)


@dataclass
class UsbStats:
    device_lost: int = 0
    device_back: int = 0
    device_resets: int = 0
    late_sync: int = 0
    silent: int = 0
    unknown_lines: int = 0
    reopen_failures: int = 0
    link: dict = field(default_factory=dict)


def parse_trunks(spec: str) -> list[tuple[str, LineKind, int]]:
    out = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        parts = item.split(":")
        if len(parts) == 1:
            out.append((parts[0], LineKind.ANALOG, 1))
        elif len(parts) == 3 and parts[1] == "isdn" and parts[2].isdigit() \
                and 1 <= int(parts[2]) <= 23:
            out.append((parts[0], LineKind.ISDN, int(parts[2])))
        else:
            raise ConfigError(f"trunks: {item!r} は ID か ID:isdn:N / must be ID or ID:isdn:N")
    if not out:
        raise ConfigError("trunks: 回線がありません / no trunks given")
    return out


#: calls whose law is remembered at once (a PRI has 23 B-channels; clearings may be lost)
MAX_CALL_LAWS = 256


class UsbInterface(LineInterface):
    def __init__(self, ctl: str, capture: str, playback: str | None,
                 trunks: list[tuple[str, LineKind, int]], clock: Clock,
                 channel_map: list[str] | None = None, device: str = "usb0", periods: int = 2,
                 sync_wait: float = 0.5, silent: float = 2.0, retry: float = 0.25,
                 stop_after: float | None = None) -> None:
        self.ctl, self.capture, self.playback = ctl, capture, playback
        self.clock = clock
        self.device = device
        self.periods = periods
        self.sync_wait, self.silent_s, self.retry_s = sync_wait, silent, retry
        self.epoch = clock.now()
        self._end = None if stop_after is None else int(round(stop_after * LINE_RATE))
        self._lines: list[LineInfo] = []
        self._trunk_index: dict[int, str] = {}
        for i, (tid, kind, n) in enumerate(trunks):
            self._trunk_index[i] = tid
            for ch in range(1, n + 1):
                self._lines.append(LineInfo(tid, ch, kind, device))
        self._row = {(ln.trunk, ln.channel): i for i, ln in enumerate(self._lines)}
        self._map = self._channel_map(channel_map)
        self.stats = UsbStats()
        self._sample = 0
        self._base = 0                       # host sample of device sample 0 (this connection)
        self._mono0 = clock.monotonic()
        self._audio: AlsaAudio | None = None
        self._link: sc.SerialLink | None = None
        self._pending: list[LineEvent] = []
        self._hb = -1                        # latest heartbeat (device samples)
        self._late_run = 0
        self._boot_id: int | None = None
        self.identity: sc.Identity | None = None
        self._plays: dict[int, list[tuple[int, np.ndarray]]] = {}
        self._path_on: set[int] = set()
        self._law: dict[tuple[str, int], str] = {}
        self._call_law: dict[tuple[str, int], str] = {}   # (trunk, call reference) → law
        self._next_retry = 0.0
        self._closed = False
        n = len(self._lines)
        self._far = np.zeros((n, FRAME_SAMPLES), np.int16)
        self._near = np.zeros((n, FRAME_SAMPLES), np.int16)
        self._events: list[LineEvent] = []
        try:
            self._open()
        except (sc.LinkLost, AudioLost, OSError) as exc:
            # the device may be absent at start: run as lost and keep trying (never raise)
            log.error("interface %s not available at start: %s", device, type(exc).__name__)
            self._lost_now(0)

    # --- the contract -----------------------------------------------------------------
    def lines(self) -> list[LineInfo]:
        return list(self._lines)

    @property
    def sample(self) -> int:
        return self._sample

    @property
    def connected(self) -> bool:
        return self._audio is not None

    def read(self) -> Period | None:
        if self._closed:
            raise LineInterfaceError("alsa+serial: interface is closed")
        p0 = self._sample
        if self._end is not None and p0 >= self._end:
            return None
        p1 = p0 + FRAME_SAMPLES
        self._far[:] = 0
        self._near[:] = 0
        events, self._events = self._events, []
        if self._audio is not None:
            try:
                self._capture(p0, p1, events)
            except (sc.LinkLost, AudioLost, OSError) as exc:
                log.error("interface %s lost: %s", self.device, type(exc).__name__)
                self._far[:] = 0
                self._near[:] = 0
                self._lost_now(p0)
                events += self._events
                self._events = []
        else:
            # silence at the line's pace, counted from the loss (the device paced us before)
            self.clock.sleep_until(self._lost_mono + (p1 - self._lost_sample) / LINE_RATE)
            if self.clock.monotonic() >= self._next_retry:
                self._try_reopen(p0)
                events += self._events
                self._events = []
        self._sample = p1
        events.sort(key=lambda e: e.sample)
        return Period(p0, self._far.copy(), self._near.copy(), events)

    def play(self, trunk: str, channel: int, samples: np.ndarray) -> int:
        row = self._line_row(trunk, channel)
        start = self._sample + (self._audio.latency if self._audio is not None else 0)
        self._plays.setdefault(row, []).append((start, np.asarray(samples, np.int16)))
        self._notice_path(row, True)
        return start

    def stop_play(self, trunk: str, channel: int) -> None:
        row = self._line_row(trunk, channel)
        self._plays.pop(row, None)
        self._notice_path(row, False)

    def set_loop(self, trunk: str, channel: int, closed: bool) -> None:
        row = self._line_row(trunk, channel)
        self._send(sc.SetLoop(self._trunk_no(trunk), channel, closed))
        del row

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._shut()

    # --- internals --------------------------------------------------------------------
    def _channel_map(self, spec: list[str] | None) -> list[tuple[int, str] | None]:
        if spec is None:
            return [(i, leg) for i in range(len(self._lines)) for leg in ("far", "near")]
        out: list[tuple[int, str] | None] = []
        for item in spec:
            if item in ("-", ""):
                out.append(None)
                continue
            parts = item.split(".")
            key = (parts[0], int(parts[1]) if len(parts) == 3 else 1)
            if parts[-1] not in ("far", "near") or key not in self._row:
                raise ConfigError(f"map: {item!r} は回線.far/near / must be TRUNK[.CH].far|near")
            out.append((self._row[key], parts[-1]))
        return out

    def _line_row(self, trunk: str, channel: int) -> int:
        try:
            return self._row[(trunk, channel)]
        except KeyError:
            raise LineInterfaceError(f"alsa+serial: no line {trunk}/{channel}") from None

    def _trunk_no(self, trunk: str) -> int:
        return next(i for i, t in self._trunk_index.items() if t == trunk)

    def _send(self, msg) -> None:
        if self._link is None:
            return                      # lost: the device forgot its relays anyway
        try:
            self._link.send(msg)
        except sc.LinkLost:
            pass                        # noticed by the next read

    def _notice_path(self, row: int, on: bool) -> None:
        if (row in self._path_on) == on:
            return
        (self._path_on.add if on else self._path_on.discard)(row)
        ln = self._lines[row]
        self._send(sc.NoticePath(self._trunk_no(ln.trunk), ln.channel, on))

    def _ctl_present(self) -> bool:
        return "://" in self.ctl or os.path.exists(self.ctl)

    def _open(self, base: int = 0) -> None:
        if not self._ctl_present():
            raise sc.LinkLost("control node absent")
        link = sc.SerialLink(self.ctl)
        try:
            link.send(sc.Request(sc.Msg.GET_IDENTITY))
            audio = AlsaAudio(self.capture, self.playback, len(self._map), len(self._lines),
                              self.periods)
        except Exception:
            link.close()
            raise
        self._link, self._audio = link, audio
        self._base = base                   # the next period starts device sample 0
        self._hb = -1
        self._late_run = 0
        self._plays.clear()
        self._path_on.clear()
        try:
            audio.prime()
        except AudioLost:
            self._shut()
            raise

    def _shut(self) -> None:
        if self._link is not None:
            self.stats.link = {k: v for k, v in vars(self._link.stats).items()}
            self._link.close()
        if self._audio is not None:
            self._audio.close()
        self._link = self._audio = None

    def _lost_now(self, s: int) -> None:
        self._shut()
        self.stats.device_lost += 1
        self._plays.clear()
        self._path_on.clear()
        self._events.append(LineEvent(EventKind.DEVICE_LOST, s, None, 0, self.device))
        self._lost_mono, self._lost_sample = self.clock.monotonic(), s
        self._next_retry = self.clock.monotonic() + self.retry_s

    def _try_reopen(self, s: int) -> None:
        self._next_retry = self.clock.monotonic() + self.retry_s
        try:
            self._open(base=s + FRAME_SAMPLES)
        except (sc.LinkLost, AudioLost, OSError):
            self.stats.reopen_failures += 1
            return
        self.stats.device_back += 1
        log.warning("interface %s back", self.device)
        self._events.append(LineEvent(EventKind.DEVICE_BACK, s, None, 0, self.device))

    def _capture(self, p0: int, p1: int, events: list[LineEvent]) -> None:
        audio, link = self._audio, self._link
        d0 = p0 - self._base
        # the playback period that reaches the line ``latency`` samples from now
        audio.write(self._playback_period(p0 + audio.latency))
        link.send(sc.HostSync(d0))
        block = audio.read()
        deadline = self.clock.monotonic() + self.sync_wait
        waited = 0.0
        while True:
            self._handle(link.poll(), p0)
            if self._hb >= d0 + FRAME_SAMPLES:
                break
            if waited >= self.sync_wait or self.clock.monotonic() > deadline:
                self.stats.late_sync += 1
                break
            self._handle(link.poll(wait=0.02), p0)
            waited += 0.02
        if self._hb >= d0 + FRAME_SAMPLES:
            self._late_run = 0
        else:
            # counted in waits, not clock time: a fake clock must not hide a silent device
            self._late_run += 1
            if self._late_run * self.sync_wait >= self.silent_s:
                self.stats.silent += 1
                raise sc.LinkLost("device silent")
        for ch, dest in enumerate(self._map):
            if dest is None:
                continue
            row, leg = dest
            x = block[:, ch]
            ln = self._lines[row]
            if ln.kind is LineKind.ISDN:
                x = expand_g711(x, self._law.get((ln.trunk, ln.channel), "ulaw"))
            (self._far if leg == "far" else self._near)[row] = x
        keep = []
        for ev in self._pending + self._events:
            (events if ev.sample < p1 else keep).append(ev)
        self._pending, self._events = keep, []

    def _handle(self, msgs: list, p0: int) -> None:
        for m in msgs:
            if isinstance(m, sc.Heartbeat):
                if self._hb >= 0 and m.sample + FRAME_SAMPLES < self._hb:
                    self._device_reset(p0)
                    continue
                self._hb = max(self._hb, m.sample)
            elif isinstance(m, sc.Identity):
                if self._boot_id is not None and m.boot_id != self._boot_id and self._hb >= 0:
                    self._device_reset(p0)
                self._boot_id = m.boot_id
                if self.identity != m:
                    log.info("interface %s: firmware %s, %d trunks", self.device, m.firmware,
                             m.trunks)
                self.identity = m
            elif isinstance(m, sc.WireEvent):
                trunk = self._trunk_index.get(m.trunk)
                if trunk is None or (trunk, m.channel) not in self._row:
                    self.stats.unknown_lines += 1
                    continue
                self._pending.append(LineEvent(EventKind(m.kind), self._base + m.sample, trunk,
                                               m.channel, self.device))
            elif isinstance(m, sc.DFrame):
                trunk = self._trunk_index.get(m.trunk)
                if trunk is None or not m.fcs_ok:
                    self.stats.unknown_lines += trunk is None
                    continue
                self._watch_bearer(trunk, m.frame)
                # the contract's d_frame carries the FCS as on the wire (the engine checks it)
                self._pending.append(LineEvent(EventKind.D_FRAME, self._base + m.sample, trunk,
                                               0, self.device, append_fcs(bytes(m.frame))))

    def _watch_bearer(self, trunk: str, frame: bytes) -> None:
        """B-channel law from each call's bearer capability (μ-law unless it says A-law).

        The law is in the SETUP; the B-channel may come later: an outgoing
        call's SETUP names no channel, the network's CALL PROCEEDING does. So
        the law is kept per call reference until a message names the channel."""
        f = parse_lapd(frame)
        if not f.carries_q931:
            return
        m = q931.parse(f.info)
        key = (trunk, m.cr)
        if m.mtype == q931.SETUP and m.law in ("ulaw", "alaw"):
            if len(self._call_law) >= MAX_CALL_LAWS:      # lost clearings: forget the oldest
                self._call_law.pop(next(iter(self._call_law)))
            self._call_law[key] = m.law
        if m.b_channel and key in self._call_law:
            self._law[(trunk, m.b_channel)] = self._call_law[key]
        if m.mtype == q931.RELEASE_COMPLETE:
            self._call_law.pop(key, None)

    def _device_reset(self, p0: int) -> None:
        """The device restarted under us: what it said before is void."""
        self.stats.device_resets += 1
        self._pending.clear()
        self._events += [LineEvent(EventKind.DEVICE_LOST, p0, None, 0, self.device),
                         LineEvent(EventKind.DEVICE_BACK, p0, None, 0, self.device)]
        self._hb = -1
        self._plays.clear()
        self._path_on.clear()

    def _playback_period(self, s0: int) -> np.ndarray:
        out = np.zeros((FRAME_SAMPLES, len(self._lines)), np.int32)
        done = []
        for row, plays in self._plays.items():
            rest = []
            for start, x in plays:
                lo, hi = max(start, s0), min(start + x.size, s0 + FRAME_SAMPLES)
                if lo < hi:
                    out[lo - s0:hi - s0, row] += x[lo - start:hi - start]
                if start + x.size > s0 + FRAME_SAMPLES:
                    rest.append((start, x))
            self._plays[row] = rest
            if not rest:
                done.append(row)
        for row in done:
            del self._plays[row]
            self._notice_path(row, False)
        return np.clip(out, -32768, 32767).astype(np.int16)


def open(rest: str, clock: Clock, base_dir: Path) -> UsbInterface:   # noqa: A001 (registry hook)
    return open_url("alsa+serial://" + rest, clock)


def open_url(url: str, clock: Clock, default_kind: str = "analog") -> UsbInterface:
    u = urlsplit(url)
    q = {k: v[-1] for k, v in parse_qs(u.query).items()}
    ctl = q.get("ctl") or (u.netloc + u.path)
    if not ctl or not (ctl.startswith("/") or "://" in ctl):
        # an ALSA name or a relative path here is a configuration slip, not a device to wait for
        raise UnknownInterface(
            f"{url}: 制御ポートの指定が正しくありません / interface not available: the control "
            "port must be an absolute device path (/dev/appliance/ctl) or ctl=pyserial-URL")
    trunks_spec = q.get("trunks", "T1" if default_kind == "analog" else "T1:isdn:2")
    try:
        return UsbInterface(
            ctl, q.get("capture", "hw:CARD=appliance"), q.get("playback", "hw:CARD=appliance"),
            parse_trunks(trunks_spec), clock,
            q["map"].split(",") if "map" in q else None, q.get("device", "usb0"),
            int(q.get("periods", 2)), float(q.get("sync_wait", 0.5)),
            float(q.get("silent", 2.0)), float(q.get("retry", 0.25)),
            float(q["stop_after"]) if "stop_after" in q else None)
    except ValueError as exc:
        raise ConfigError(f"{url}: {exc}") from None
