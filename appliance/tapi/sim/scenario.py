"""Simulator scenario files (TOML): parsed into frozen dataclasses, refused with file, line and reason.

Keys (see scenarios/*.toml and docs/engine.md)::

    [scenario]  start (ISO 8601 or TOML datetime), name, tail (s after the last call)
    [[trunk]]   id, kind ("analog" | "isdn"), channels, device, notice_path ("ok" | "broken"),
                law ("ulaw" | "alaw": an ISDN trunk's bearer, μ-law on INS-Net)
    [[call]]    trunk, channel, at, direction, far_number | absent_reason, called_number,
                rings, answered, talk, hangup, far_audio, near_audio
    [[glitch]]  at, trunk, channel, event, seconds   -- impossible line input, on purpose

A scenario is the truth the end-to-end tests compare the catalog with; the
simulator renders it as wire signals only.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from appliance.errors import ScenarioError

ABSENT_REASONS = {"withheld": "P", "unavailable": "O", "public_phone": "C"}
GLITCHES = ("loop_open", "loop_closed", "ring_on", "ring_off", "garbage_frames",
            "device_lost", "device_back", "d_garbage", "d_bad_fcs", "d_unknown_call",
            "d_release_without_setup")
#: glitches on an ISDN trunk's D channel (channel 0): see sim/isdn.py
D_GLITCHES = GLITCHES[7:]
#: ISDN timeline (seconds): the terminal alerts after SETUP; the network assigns the
#: B-channel (CALL PROCEEDING) and alerts on outgoing calls; a ring cycle is 3 s
ISDN_ALERT_S, ISDN_PROCEED_S, ISDN_ALERT_OUT_S, ISDN_CLEAR_S = 0.2, 0.1, 0.6, 0.05
#: longest call a scenario may hold (the engine's default maximum is 4 h)
MAX_TALK_S = 4 * 3600.0
MAX_CALLS = 5000

_KEYS = {
    "scenario": {"start", "name", "description", "tail"},
    "trunk": {"id", "kind", "channels", "device", "notice_path", "law"},
    "call": {"trunk", "channel", "at", "direction", "far_number", "absent_reason",
             "called_number", "rings", "answered", "talk", "hangup", "far_audio",
             "near_audio", "name"},
    "glitch": {"at", "trunk", "channel", "event", "seconds"},
}


@dataclass(frozen=True)
class Trunk:
    id: str
    kind: str = "analog"
    channels: int = 1
    device: str = "sim0"
    notice_path: str = "ok"
    law: str = "ulaw"              # ISDN bearer capability (G.711 law of the B-channels)


@dataclass(frozen=True)
class Call:
    index: int
    trunk: str
    channel: int
    at: float
    direction: str
    far_number: str | None
    absent_reason: str | None
    called_number: str | None
    rings: int
    answered: bool
    talk: float
    hangup: str
    far_audio: str
    near_audio: str
    name: str = ""
    isdn: bool = False

    @property
    def isdn_alerting(self) -> float:
        """ISDN: seconds from SETUP to ALERTING."""
        return ISDN_ALERT_S if self.direction == "in" else ISDN_ALERT_OUT_S

    @property
    def line(self) -> tuple[str, int]:
        return (self.trunk, self.channel)

    def busy_until(self) -> float:
        """A generous end of the line's use by this call (for overlap checks)."""
        if self.isdn:
            t = self.at + self.isdn_alerting + 3.0 * self.rings
            return t + (self.talk if self.answered else 0.0) + 0.5
        if self.direction == "in":
            t = self.at + 7.0 + 3.0 * self.rings        # CAR, FSK, ringing
            return t + (self.talk + 4.0 if self.answered else 6.5)   # busy tone / ring timeout
        t = self.at + 2.5 + 0.16 * len(self.far_number or "") + 3.0 * self.rings
        return t + (self.talk + 4.0 if self.answered else 1.0)


@dataclass(frozen=True)
class Glitch:
    at: float
    trunk: str | None
    channel: int
    event: str
    seconds: float = 0.1


@dataclass(frozen=True)
class Scenario:
    path: Path
    name: str
    start: datetime | None
    trunks: tuple[Trunk, ...]
    calls: tuple[Call, ...]
    glitches: tuple[Glitch, ...]
    tail: float

    @property
    def duration(self) -> float:
        ends = [c.busy_until() for c in self.calls] + [g.at + g.seconds for g in self.glitches]
        return max(ends, default=0.0) + self.tail


def _header_lines(text: str, table: str) -> list[int]:
    """1-based line numbers of each ``[[table]]`` header, in order."""
    pat = re.compile(rf"^\s*\[\[\s*{table}\s*\]\]")
    return [i + 1 for i, ln in enumerate(text.splitlines()) if pat.match(ln)]


class _Where:
    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = {t: _header_lines(text, t) for t in ("trunk", "call", "glitch")}

    def err(self, table: str, i: int | None, reason: str) -> ScenarioError:
        if i is not None and i < len(self.lines.get(table, [])):
            where = f"{self.path}:{self.lines[table][i]}: [[{table}]] #{i + 1}"
        else:
            where = f"{self.path}: [{table}]"
        return ScenarioError(f"{where}: シナリオの誤り / invalid scenario: {reason}")


def _num(v, what: str, lo: float, hi: float) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
        raise ValueError(f"{what} must be a number within {lo:g}…{hi:g}, not {v!r}")
    return float(v)


def _int(v, what: str, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise ValueError(f"{what} must be an integer within {lo}…{hi}, not {v!r}")
    return v


def _audio(v, base: Path) -> str:
    if not isinstance(v, str):
        raise ValueError(f"audio must be a string, not {v!r}")
    if v == "speech":
        return v
    if v.startswith("tone:"):
        _num(float(v[5:]) if re.fullmatch(r"\d+(\.\d+)?", v[5:]) else -1, "tone frequency",
             50, 3800)
        return v
    if v.startswith("wav:"):
        p = Path(v[4:])
        p = p if p.is_absolute() else base / p
        if not p.is_file():
            raise ValueError(f"no such audio file {p}")
        return f"wav:{p}"
    raise ValueError(f"audio must be 'speech', 'tone:HZ' or 'wav:PATH', not {v!r}")


def load_scenario(path: Path) -> Scenario:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError(f"{path}: シナリオがありません / no such scenario file") from None
    except UnicodeDecodeError:
        raise ScenarioError(f"{path}: UTF-8 ではありません / not UTF-8") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: シナリオの構文エラー / syntax error: {exc}") from None
    return parse_scenario(raw, path, text)


def parse_scenario(raw: dict, path: Path, text: str = "") -> Scenario:
    w = _Where(path, text)
    for table in raw:
        if table not in _KEYS:
            raise w.err(table, None, f"unknown table [{table}]")
    head = raw.get("scenario", {})
    if not isinstance(head, dict):
        raise w.err("scenario", None, "[scenario] must be a table")
    for k in head:
        if k not in _KEYS["scenario"]:
            raise w.err("scenario", None, f"unknown key {k!r}")
    try:
        start = _start(head.get("start"))
        tail = _num(head.get("tail", 8.0), "tail", 0, 600)
    except ValueError as exc:
        raise w.err("scenario", None, str(exc)) from None

    trunks: dict[str, Trunk] = {}
    for i, t in enumerate(_array(raw, "trunk", w)):
        try:
            trunk = _trunk(t)
        except (ValueError, TypeError) as exc:
            raise w.err("trunk", i, str(exc)) from None
        if trunk.id in trunks:
            raise w.err("trunk", i, f"trunk {trunk.id!r} defined twice")
        trunks[trunk.id] = trunk
    if not trunks:
        raise w.err("trunk", None, "a scenario needs at least one [[trunk]]")

    calls = []
    items = _array(raw, "call", w)
    if len(items) > MAX_CALLS:
        raise w.err("call", None, f"more than {MAX_CALLS} calls")
    for i, c in enumerate(items):
        try:
            calls.append(_call(i, c, trunks, path.parent))
        except (ValueError, TypeError) as exc:
            raise w.err("call", i, str(exc)) from None
    by_line: dict[tuple[str, int], Call] = {}
    for c in sorted(calls, key=lambda c: c.at):
        prev = by_line.get(c.line)
        if prev is not None and c.at < prev.busy_until():
            raise w.err("call", c.index, (
                f"starts at {c.at:g} s while call #{prev.index + 1} still uses "
                f"{c.trunk}/{c.channel} (until about {prev.busy_until():.1f} s)"))
        by_line[c.line] = c

    glitches = []
    for i, g in enumerate(_array(raw, "glitch", w)):
        try:
            glitches.append(_glitch(g, trunks))
        except (ValueError, TypeError) as exc:
            raise w.err("glitch", i, str(exc)) from None
    return Scenario(path, str(head.get("name", path.stem)), start, tuple(trunks.values()),
                    tuple(calls), tuple(glitches), tail)


def _array(raw: dict, table: str, w: _Where) -> list[dict]:
    v = raw.get(table, [])
    if not isinstance(v, list) or not all(isinstance(x, dict) for x in v):
        raise w.err(table, None, f"use [[{table}]] tables")
    for i, x in enumerate(v):
        for k in x:
            if k not in _KEYS[table]:
                raise w.err(table, i, f"unknown key {k!r}")
    return v


def _start(v) -> datetime | None:
    if v is None:
        return None
    if isinstance(v, str):
        try:
            v = datetime.fromisoformat(v)
        except ValueError:
            raise ValueError(f"start must be an ISO 8601 time, not {v!r}") from None
    if not isinstance(v, datetime) or v.tzinfo is None:
        raise ValueError("start must be a date and time with its offset (+09:00)")
    return v.astimezone(timezone.utc)


def _trunk(t: dict) -> Trunk:
    tid = t.get("id")
    if not isinstance(tid, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,16}", tid):
        raise ValueError(f"id must be 1–16 letters, digits, '-' or '_', not {tid!r}")
    kind = t.get("kind", "analog")
    if kind not in ("analog", "isdn"):
        raise ValueError(f"kind must be 'analog' or 'isdn', not {kind!r}")
    channels = _int(t.get("channels", 1 if kind == "analog" else 2), "channels",
                    1, 1 if kind == "analog" else 23)
    path = t.get("notice_path", "ok")
    if path not in ("ok", "broken"):
        raise ValueError(f"notice_path must be 'ok' or 'broken', not {path!r}")
    device = t.get("device", "sim0")
    if not isinstance(device, str) or not device:
        raise ValueError("device must be a non-empty string")
    law = t.get("law", "ulaw")
    if law not in ("ulaw", "alaw"):
        raise ValueError(f"law must be 'ulaw' or 'alaw', not {law!r}")
    if law != "ulaw" and kind != "isdn":
        raise ValueError("law is an ISDN trunk's bearer: an analog trunk has none")
    return Trunk(tid, kind, channels, device, path, law)


def _call(i: int, c: dict, trunks: dict[str, Trunk], base: Path) -> Call:
    trunk = trunks.get(c.get("trunk"))
    if trunk is None:
        raise ValueError(f"trunk {c.get('trunk')!r} is not a [[trunk]] of this scenario")
    channel = _int(c.get("channel", 1), "channel", 1, trunk.channels)
    if "at" not in c:
        raise ValueError("'at' (seconds after start) is required")
    at = _num(c["at"], "at", 0, 7 * 86400)
    direction = c.get("direction")
    if direction not in ("in", "out"):
        raise ValueError(f"direction must be 'in' or 'out', not {direction!r}")
    far, absent = c.get("far_number"), c.get("absent_reason")
    if direction == "out":
        if absent is not None:
            raise ValueError("an outgoing call has a dialled number, not absent_reason")
        if not isinstance(far, str) or not re.fullmatch(r"[0-9*#]{1,20}", far):
            raise ValueError(f"far_number (the number dialled) must be 1–20 DTMF digits, not {far!r}")
    else:
        if (far is None) == (absent is None):
            raise ValueError("an incoming call has either far_number or absent_reason")
        if far is not None and (not isinstance(far, str) or not re.fullmatch(r"[0-9]{1,20}", far)):
            raise ValueError(f"far_number must be 1–20 digits, not {far!r}")
        if absent is not None and absent not in ABSENT_REASONS:
            raise ValueError(f"absent_reason must be one of {', '.join(ABSENT_REASONS)}, "
                             f"not {absent!r}")
        if absent == "public_phone" and trunk.kind == "isdn":
            raise ValueError("absent_reason 'public_phone' has no Q.931 encoding: "
                             "use withheld or unavailable on an ISDN trunk")
    called = c.get("called_number")
    if called is not None and (direction == "out" or not isinstance(called, str)
                               or not re.fullmatch(r"[0-9]{1,20}", called)):
        raise ValueError("called_number (incoming only) must be 1–20 digits")
    answered = c.get("answered", True)
    if not isinstance(answered, bool):
        raise ValueError("answered must be true or false")
    hangup = c.get("hangup", "near")
    if hangup not in ("far", "near"):
        raise ValueError(f"hangup must be 'far' or 'near', not {hangup!r}")
    name = c.get("name", "")
    if not isinstance(name, str):
        raise ValueError("name must be a string")
    return Call(i, trunk.id, channel, at, direction, far, absent, called,
                _int(c.get("rings", 2), "rings", 0 if answered else 1, 30), answered,
                _num(c.get("talk", 10.0), "talk", 0.5, MAX_TALK_S), hangup,
                _audio(c.get("far_audio", "speech"), base),
                _audio(c.get("near_audio", "speech"), base), name, trunk.kind == "isdn")


def _glitch(g: dict, trunks: dict[str, Trunk]) -> Glitch:
    event = g.get("event")
    if event not in GLITCHES:
        raise ValueError(f"event must be one of {', '.join(GLITCHES)}, not {event!r}")
    trunk = g.get("trunk")
    if event in ("device_lost", "device_back", "garbage_frames"):
        if trunk is not None and trunk not in trunks:
            raise ValueError(f"unknown trunk {trunk!r}")
    elif trunk not in trunks:
        raise ValueError(f"trunk {trunk!r} is not a [[trunk]] of this scenario")
    if event in D_GLITCHES and trunks[trunk].kind != "isdn":
        raise ValueError(f"{event} needs an ISDN trunk (its D channel)")
    return Glitch(_num(g.get("at"), "at", 0, 7 * 86400), trunk,
                  _int(g.get("channel", 1), "channel", 1, 23), event,
                  _num(g.get("seconds", 0.1), "seconds", 0.02, 60))
