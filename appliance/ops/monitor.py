"""The alarm sources: watches the recorder and raises or clears each alarm.

Runs outside the capture thread: ``check()`` every few seconds from the
recorder's monitor thread (tests call it directly), ``on_report`` as a
listener of the engine's reporter thread. Line conditions are measured in
line time (samples of the interface's clock, from :class:`LiveState`), so a
simulated run gives the same alarms as real time.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from appliance.engine.reports import Alarm, CallEnded
from appliance.errors import ConfigError
from appliance.ops.alarms import AlarmCode, AlarmRegistry
from appliance.ops.live import LineTestDone, LiveState
from appliance.units import LINE_RATE

log = logging.getLogger(__name__)

Runner = Callable[[Sequence[str]], subprocess.CompletedProcess]


@dataclass(frozen=True)
class AlarmSettings:
    #: a line with no loop change, ring or noise floor for this long is dead
    line_dead_s: float = 6 * 3600.0
    #: loop current without a break for this long: a handset left off the hook
    stuck_offhook_s: float = 2 * 3600.0
    #: a capture-overrun alarm clears after this long without a new loss
    overrun_clear_s: float = 60.0
    #: free space below this raises "disk nearly full" (the sweep's own floor is lower)
    disk_warn_mb: int = 2000
    #: how often the monitor thread looks (seconds)
    check_every_s: float = 5.0
    #: BCM pin of the front-panel fault LED; None = no LED on this host
    fault_led_pin: int | None = None
    #: the web service raises recorder_not_answering after this long without an answer
    recorder_silent_s: float = 20.0
    #: how often the web service asks the recorder (seconds)
    recorder_check_s: float = 5.0
    #: a delivery path failing this long raises delivery_failing
    delivery_alarm_s: float = 300.0
    #: outside systemd, a capture loop without progress this long raises capture_stalled (0: off)
    capture_stall_s: float = 30.0

    @classmethod
    def from_config(cls, table: dict | None) -> "AlarmSettings":
        table = {k: v for k, v in (table or {}).items() if not isinstance(v, (dict, list))}
        unknown = set(table) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"[alarms] 不明なキー / unknown keys: {', '.join(sorted(unknown))}")
        for k, v in table.items():
            ok = (isinstance(v, int) and not isinstance(v, bool)) or (
                isinstance(v, float) and k != "fault_led_pin" and k != "disk_warn_mb")
            if not ok or v < 0:
                raise ConfigError(f"[alarms] {k} must be a non-negative number")
        s = cls(**table)
        if not 1 <= s.check_every_s <= 600 or s.line_dead_s < 60 or s.stuck_offhook_s < 60:
            raise ConfigError("[alarms] check_every_s 1–600; line_dead_s, stuck_offhook_s ≥ 60")
        if not 0 <= s.recorder_silent_s <= 3600 or not 0.2 <= s.recorder_check_s <= 600:
            raise ConfigError("[alarms] recorder_silent_s 0–3600, recorder_check_s 0.2–600")
        return s


def ntp_synchronised(runner: Runner) -> bool | None:
    """``timedatectl show -p NTPSynchronized``: True, False, or None when unknown."""
    try:
        r = runner(["timedatectl", "show", "-p", "NTPSynchronized", "--value"])
    except (OSError, subprocess.SubprocessError):
        return None
    value = (r.stdout or "").strip()
    if r.returncode != 0 or value not in ("yes", "no"):
        return None
    return value == "yes"


def free_bytes_of(path: Path) -> Callable[[], int]:
    return lambda: shutil.disk_usage(path).free


def subject_of(trunk: str, channel: int) -> str:
    return f"{trunk}/{channel}"


class Monitor:
    def __init__(self, registry: AlarmRegistry, live: LiveState, *,
                 settings: AlarmSettings = AlarmSettings(), min_free_mb: int = 0,
                 free_bytes: Callable[[], int], ntp: Callable[[], bool | None],
                 recorder=None, clock_watch=None, activity=None) -> None:
        self.registry = registry
        self.live = live
        self.engine = live.engine
        self.settings = settings
        self.min_free_mb = min_free_mb
        self.free_bytes = free_bytes
        self.ntp = ntp
        self.recorder = recorder
        #: chrony's state (appliance/ops/timekeeping.py); without it, ``ntp`` (timedatectl)
        self.clock_watch = clock_watch
        #: per-trunk activity alarms (appliance/ops/activity.py), or None
        self.activity = activity
        self.ntp_state: bool | None = None
        self._losses = self._loss_count()
        self._last_loss_at: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- reports (reporter thread) ---------------------------------------------------
    def on_report(self, r) -> None:
        if isinstance(r, CallEnded) and r.direction == "in":
            subject = subject_of(r.trunk, r.channel)
            if r.notice == "not_heard":
                self.registry.raise_(AlarmCode.NOTICE_NOT_HEARD, subject,
                                     "着信時の音声案内が回線上で確認できません / notice not heard")
            elif r.notice == "played":
                self.registry.clear(AlarmCode.NOTICE_NOT_HEARD, subject)
        elif isinstance(r, LineTestDone) and r.kind == "notice" and r.state in ("passed",
                                                                                  "failed"):
            subject = subject_of(r.trunk, r.channel)
            if r.heard:
                self.registry.clear(AlarmCode.NOTICE_NOT_HEARD, subject)
            else:
                self.registry.raise_(AlarmCode.NOTICE_NOT_HEARD, subject,
                                     "保守試験で音声案内が確認できません / notice test not heard")
        elif isinstance(r, Alarm) and r.what in ("writer_overrun", "bad_frames"):
            self.check_overrun()

    # --- periodic checks (monitor thread) ----------------------------------------------
    def check(self) -> None:
        self.check_lines()
        if self.activity is not None:
            self.activity.check([self.live.line_status(r) for r in range(len(self.live.infos))])
        self.check_overrun()
        self.check_disk()
        self.check_clock()
        self.registry.sync_led()

    def check_lines(self) -> None:
        live, s = self.live, self.settings
        now = live.sample
        lost = dict(live.lost)
        for d in live.devices:
            if d in lost:
                self.registry.raise_(AlarmCode.DEVICE_LOST, d,
                                     "回線インタフェースが応答しません / interface gone")
            else:
                self.registry.clear(AlarmCode.DEVICE_LOST, d)
        for r, info in enumerate(live.infos):
            subject = subject_of(info.trunk, info.channel)
            quiet = now - live.last_life[r]
            if info.device not in lost and quiet >= s.line_dead_s * LINE_RATE:
                self.registry.raise_(AlarmCode.LINE_DEAD, subject,
                                     f"無信号 {quiet / LINE_RATE / 60:.0f} 分 / no signal for "
                                     f"{quiet / LINE_RATE / 60:.0f} min")
            else:
                self.registry.clear(AlarmCode.LINE_DEAD, subject)
            since = live.loop_since[r]
            limit = (self.activity.stuck_offhook_s(info.trunk) if self.activity else None) \
                or s.stuck_offhook_s
            if since is not None and now - since >= limit * LINE_RATE:
                self.registry.raise_(AlarmCode.STUCK_OFFHOOK, subject,
                                     f"ループ閉 {(now - since) / LINE_RATE / 60:.0f} 分 / off-hook "
                                     f"for {(now - since) / LINE_RATE / 60:.0f} min")
            else:
                self.registry.clear(AlarmCode.STUCK_OFFHOOK, subject)

    def _loss_count(self) -> int:
        st = self.engine.stats
        n = st.lost_frames + st.bad_periods
        stats = getattr(self.engine.iface, "stats", None)
        for name in ("xruns", "late_sync"):      # what the hardware backends count
            v = getattr(stats, name, None)
            if isinstance(v, int):
                n += v
        return n

    def check_overrun(self) -> None:
        n, now = self._loss_count(), self.live.sample
        if n > self._losses:
            self.registry.raise_(AlarmCode.CAPTURE_OVERRUN, "",
                                 f"欠落 {n} / losses {n} (frames, bad periods, xruns)")
            self._losses, self._last_loss_at = n, now
        elif (self._last_loss_at is not None
              and now - self._last_loss_at >= self.settings.overrun_clear_s * LINE_RATE):
            self.registry.clear(AlarmCode.CAPTURE_OVERRUN)
            self._last_loss_at = None

    def check_disk(self) -> None:
        try:
            free = self.free_bytes()
        except OSError:
            return
        mb = free / (1024 * 1024)
        if mb < self.settings.disk_warn_mb:
            self.registry.raise_(AlarmCode.DISK_NEARLY_FULL, "",
                                 f"空き {mb:.0f} MB / {mb:.0f} MB free")
        else:
            self.registry.clear(AlarmCode.DISK_NEARLY_FULL)
        if self.min_free_mb and mb < self.min_free_mb:
            self.registry.raise_(AlarmCode.RETENTION_AT_RISK, "",
                                 f"空き {mb:.0f} MB < {self.min_free_mb} MB: 期間内の記録が廃棄され"
                                 "ます / records would be erased before their time")
        else:
            self.registry.clear(AlarmCode.RETENTION_AT_RISK)

    def check_clock(self) -> None:
        if self.clock_watch is not None:
            self.clock_watch.check()
            self.ntp_state = self.clock_watch.synchronised
            return
        state = self.ntp()
        self.ntp_state = state
        if self.recorder is not None:
            # read by the capture thread when a recording starts: a plain attribute
            self.recorder.clock_unsynced = state is False
        if state is False:
            self.registry.raise_(AlarmCode.CLOCK_UNSYNCED, "",
                                 "NTP 未同期: この間の録音に印を付けます / recordings are flagged")
        elif state is True:
            self.registry.clear(AlarmCode.CLOCK_UNSYNCED)

    # --- thread ------------------------------------------------------------------------
    def start(self) -> "Monitor":
        self._thread = threading.Thread(target=self._run, name="appliance-monitor", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while True:
            try:
                self.check()
            except Exception:          # noqa: BLE001 — the monitor must outlive one bad check
                log.exception("alarm monitor check failed")
            if self._stop.wait(self.settings.check_every_s):
                return

    def stop(self, timeout: float = 30.0) -> None:
        # longer than the catalog's busy timeout (10 s): a check waiting for the write lock
        # must finish before the caller closes the catalog under it (that crashed the
        # process under load: sqlite3 used from this thread while closed by another)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
