"""Power: the appliance as a client of Network UPS Tools (NUT).

The recorder asks upsd for the UPS's ``ups.status`` every ``poll_s``
seconds with ``upsc`` (nut-client: the NUT project's own client of its
network protocol):

- ``OB`` (on battery) → ``on_battery`` (error); ``OL`` again clears it.
- ``LB`` (low battery) → ``low_battery`` (critical), a 電源 entry on the
  ledger, and a clean stop: the recorder stops as on SIGTERM, every call in
  progress is closed as *complete* (its file sealed and hashed, not cut),
  then ``[power] shutdown_command`` runs (``systemctl poweroff`` on the
  appliance; tests give a harmless command). The ledger entry is written
  before anything stops.
- upsd not answering for ``unreachable_after_s`` → ``ups_unreachable``.
- Power back: the machine boots, the recorder starts, finds the shutdown
  on the ledger without a return after it, and writes the gap — a
  ``recording_gaps`` row (reason ``power``, from the shutdown to this
  start) for the completeness report, and a 電源 ledger entry with both
  times. The alarms clear when the UPS reports ``OL``.

Why not upsmon: upsmon decides the shutdown itself and runs its
SHUTDOWNCMD as root, knowing nothing of calls in progress; the order here —
ledger, close every call, then power off — needs the recorder to be the one
that acts. Why ``upsc`` rather than a Python library: PyNUTClient (the NUT
project's module) is GPL-3.0 and would be loaded into the recorder's
process; nut2/pynut3 are unmaintained. ``upsc`` is the same project's
client, run as a separate program, once per poll.
"""

from __future__ import annotations

import logging
import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from appliance.errors import ConfigError
from appliance.governance.ledger import EntryKind, Ledger
from appliance.ops.alarms import AlarmCode, AlarmRegistry
from appliance.store.catalog import Catalog, from_utc_text, to_local_text, to_utc_text

log = logging.getLogger(__name__)

Runner = Callable[[Sequence[str]], subprocess.CompletedProcess]


@dataclass(frozen=True)
class PowerSettings:
    ups: str                                   # NAME@HOST[:PORT] as upsc takes it
    upsc: str = "/usr/bin/upsc"
    poll_s: float = 5.0
    unreachable_after_s: float = 30.0
    shutdown_command: tuple[str, ...] = ("/usr/bin/systemctl", "poweroff")

    @classmethod
    def from_config(cls, table: dict | None) -> "PowerSettings | None":
        if not table:
            return None
        unknown = set(table) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"[power] 不明なキー / unknown keys: {', '.join(sorted(unknown))}")
        ups = table.get("ups")
        if not isinstance(ups, str) or "@" not in ups:
            raise ConfigError("[power] ups は NAME@HOST[:PORT] / ups takes NAME@HOST[:PORT]")
        cmd = table.get("shutdown_command", list(cls.shutdown_command))
        if not isinstance(cmd, list) or not cmd or not all(isinstance(c, str) for c in cmd):
            raise ConfigError("[power] shutdown_command is a list of strings (argv)")
        s = cls(ups, str(table.get("upsc", cls.upsc)), float(table.get("poll_s", cls.poll_s)),
                float(table.get("unreachable_after_s", cls.unreachable_after_s)), tuple(cmd))
        if not 0.2 <= s.poll_s <= 300 or not 0 <= s.unreachable_after_s <= 3600:
            raise ConfigError("[power] poll_s 0.2–300, unreachable_after_s 0–3600")
        return s


@dataclass(frozen=True)
class UpsState:
    flags: frozenset[str]              # OL, OB, LB, CHRG, …
    charge: float | None               # battery.charge, %
    runtime_s: float | None            # battery.runtime

    @property
    def on_battery(self) -> bool:
        return "OB" in self.flags

    @property
    def low_battery(self) -> bool:
        return "LB" in self.flags

    @property
    def online(self) -> bool:
        return "OL" in self.flags


def parse_upsc(text: str) -> UpsState | None:
    """``upsc UPS`` output (``name: value`` lines) → state; None without ``ups.status``."""
    values = {}
    for line in text.splitlines()[:500]:
        key, sep, value = line.partition(": ")
        if sep:
            values[key.strip()] = value.strip()
    if "ups.status" not in values:
        return None

    def num(key: str) -> float | None:
        try:
            return float(values[key])
        except (KeyError, ValueError):
            return None
    return UpsState(frozenset(values["ups.status"].split()), num("battery.charge"),
                    num("battery.runtime"))


def read_ups(settings: PowerSettings, runner: Runner) -> UpsState | None:
    try:
        r = runner([settings.upsc, settings.ups])
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_upsc(r.stdout or "") if r.returncode == 0 else None


class PowerMonitor:
    """Polls the UPS from its own thread; raises and clears the power alarms; on low battery
    ledgers it and calls ``request_stop`` once (the recorder then closes every call)."""

    def __init__(self, registry: AlarmRegistry, catalog: Catalog, settings: PowerSettings,
                 read: Callable[[], UpsState | None], now: Callable[[], datetime],
                 monotonic: Callable[[], float], request_stop: Callable[[], None]) -> None:
        self.registry = registry
        self.catalog = catalog           # the registry's: used under its lock only
        self.settings = settings
        self.read = read
        self.now = now
        self.monotonic = monotonic
        self.request_stop = request_stop
        self.shutdown_requested = False
        self.state: UpsState | None = None
        self._silent_since: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> UpsState | None:
        state = self.read()
        self.state = state
        if state is None:
            now = self.monotonic()
            self._silent_since = self._silent_since if self._silent_since is not None else now
            if now - self._silent_since >= self.settings.unreachable_after_s:
                self.registry.raise_(AlarmCode.UPS_UNREACHABLE, "",
                                     "upsd が応答しません / upsd does not answer")
            return None
        self._silent_since = None
        self.registry.clear(AlarmCode.UPS_UNREACHABLE)
        charge = f"{state.charge:.0f}%" if state.charge is not None else "不明"
        if state.on_battery:
            self.registry.raise_(AlarmCode.ON_BATTERY, "",
                                 f"停電: バッテリー運転中 (残量 {charge}) / on battery ({charge})")
        elif state.online:
            self.registry.clear(AlarmCode.ON_BATTERY)
            self.registry.clear(AlarmCode.LOW_BATTERY)
        if state.low_battery and not self.shutdown_requested:
            self._low_battery(state, charge)
        return state

    def _low_battery(self, state: UpsState, charge: str) -> None:
        self.shutdown_requested = True
        self.registry.raise_(AlarmCode.LOW_BATTERY, "",
                             f"残量低下 ({charge}): 通話を閉じて停止します / closing every call "
                             "and shutting down")
        with self.registry._lock:       # the registry's connection is shared with its thread
            Ledger(self.catalog).append(
                EntryKind.POWER, self.now(), actor="recorder",
                detail={"event": "low_battery_shutdown", "ups": self.settings.ups,
                        "charge": state.charge, "runtime_s": state.runtime_s,
                        "shutdown_command": list(self.settings.shutdown_command)})
        log.critical("UPS low battery: closing every call, then %s",
                     " ".join(self.settings.shutdown_command))
        self.request_stop()

    def start(self) -> "PowerMonitor":
        self._thread = threading.Thread(target=self._run, name="power-monitor", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while True:
            try:
                self.check()
            except Exception:            # noqa: BLE001 — the monitor outlives one bad poll
                log.exception("power check failed")
            if self._stop.wait(self.settings.poll_s):
                return

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)


def note_power_return(catalog: Catalog, now: datetime) -> dict | None:
    """At the recorder's start: if the last 電源 entry is a low-battery shutdown, the time
    between it and now is a gap with reason ``power``. Returns the gap, or None."""
    with catalog.transaction():
        last = catalog.conn.execute(
            "SELECT detail FROM ledger WHERE kind = ? ORDER BY seq DESC LIMIT 1",
            (str(EntryKind.POWER),)).fetchone()
        if last is None or '"resumed"' in last[0]:
            return None
        row = catalog.conn.execute(
            "SELECT at, detail FROM ledger WHERE kind = ? AND detail LIKE ?"
            " ORDER BY seq DESC LIMIT 1",
            (str(EntryKind.POWER), '%"low_battery_shutdown"%')).fetchone()
        if row is None:
            return None
        since = from_utc_text(row[0])
        seconds = max(0.0, (now - since).total_seconds())
        catalog.conn.execute(
            "INSERT INTO recording_gaps (started_at, ended_at, reason, seconds, detail)"
            " VALUES (?, ?, 'power', ?, ?)",
            (row[0], to_utc_text(now), round(seconds, 3),
             "停電による停止から再開まで / from the low-battery shutdown to the restart"))
        Ledger(catalog).append(EntryKind.POWER, now, actor="recorder",
                               detail={"event": "resumed", "gap_from": to_local_text(row[0]),
                                       "gap_to": to_local_text(to_utc_text(now)),
                                       "gap_s": round(seconds, 3)})
    return {"from": row[0], "to": to_utc_text(now), "seconds": seconds}
