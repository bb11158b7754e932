"""Ring cadence classifier: normal ringing versus the Number Display CAR signal.

Digest (事業用電気通信設備規則 別表第4号; shared/reference/telephony.md §1.1, §2.1):
* ringing is 15–20 Hz at about 75 V rms, interrupted at 20 IPM ± 20 % with a
  33 ± 10 % make ratio: nominally **1 s on / 2 s off** (IR, 通常の呼出信号).
* the CAR signal (情報受信端末起動信号) that precedes Number Display FSK is
  the same ringing voltage in short bursts, about **0.5 s on / 0.5 s off**.
  Realtek's DAA driver accepts 250–600 ms bursts and gaps; the terminal
  answers it (一次応答) during the second burst, within about 6 s.
* the input is the ring detector's output, not audio: timestamped on/off
  edges.  An opto-isolator on 16 Hz ringing gives a pulse train; edges
  closer than ``merge_gap`` are one burst.

Events (times in seconds, from the edges' own timestamps):
* :class:`RingBurst` for each burst once its end is certain;
* :class:`RingCadence` ``car`` at the start of the second short burst after a
  short pause, ``normal`` as soon as a burst has lasted ``normal_min_on``;
  each at most once per ringing session;
* :class:`RingStopped` when no burst came for ``idle_timeout`` (needs the
  caller to say how far time has gone, with ``feed(..., until=t)``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from appliance.units import Seconds


class RingKind(StrEnum):
    NORMAL = "normal"
    CAR = "car"


RING_NAMES_JA = {RingKind.NORMAL: "通常の呼出信号", RingKind.CAR: "CAR信号 (ナンバー・ディスプレイ)"}


@dataclass(frozen=True)
class RingEdge:
    """The ring detector's output changed to ``on`` at ``t`` seconds."""

    t: float
    on: bool


@dataclass(frozen=True)
class RingSpec:
    merge_gap: Seconds = Seconds(0.15)
    car_on: tuple[Seconds, Seconds] = (Seconds(0.2), Seconds(0.7))
    car_off: tuple[Seconds, Seconds] = (Seconds(0.2), Seconds(0.8))
    normal_min_on: Seconds = Seconds(0.75)
    idle_timeout: Seconds = Seconds(6.0)


@dataclass(frozen=True)
class RingBurst:
    start_s: float
    end_s: float


@dataclass(frozen=True)
class RingCadence:
    kind: RingKind
    start_s: float     # start of the first burst of the pattern
    at_s: float        # when the pattern became certain


@dataclass(frozen=True)
class RingStopped:
    at_s: float


class RingCadenceClassifier:
    """``feed(edges, until=None) -> events``; ``finish()`` ends a burst still on."""

    def __init__(self, spec: RingSpec = RingSpec()) -> None:
        self.spec = spec
        self.reset()

    def reset(self) -> None:
        self._t = float("-inf")        # latest time seen
        self._in_burst = False
        self._on = False
        self._start = 0.0
        self._last_off = 0.0
        self._prev: tuple[float, float] | None = None
        self._session = False
        self._decided: set[RingKind] = set()

    def feed(self, edges: Iterable[RingEdge | tuple[float, bool]], until: float | None = None) -> list:
        out: list = []
        for e in edges:
            t, on = (e.t, e.on) if isinstance(e, RingEdge) else (float(e[0]), bool(e[1]))
            if not (t >= self._t):          # out of order or NaN: a glitch, ignore
                continue
            self._expire(t, out)
            self._t = t
            self._edge(t, on, out)
        if until is not None and until >= self._t:
            self._expire(until, out)
            self._t = until
        return out

    def finish(self) -> list:
        """End of input: report a burst still in progress as ending at the last edge."""
        out: list = []
        if self._in_burst:
            self._end_burst(self._last_off if not self._on else self._t, out)
        return out

    # ------------------------------------------------------------------
    def _expire(self, t: float, out: list) -> None:
        sp = self.spec
        # the detector still reads "on": the burst has certainly lasted until t
        if (self._in_burst and self._on and RingKind.NORMAL not in self._decided
                and t >= self._start + sp.normal_min_on):
            self._decided.add(RingKind.NORMAL)
            out.append(RingCadence(RingKind.NORMAL, self._start, self._start + sp.normal_min_on))
        if self._in_burst and not self._on and self._last_off + sp.merge_gap <= t:
            self._end_burst(self._last_off, out)
        if (not self._in_burst and self._session and self._prev is not None
                and self._prev[1] + sp.idle_timeout <= t):
            out.append(RingStopped(self._prev[1] + sp.idle_timeout))
            self._session = False
            self._decided = set()
            self._prev = None

    def _edge(self, t: float, on: bool, out: list) -> None:
        sp = self.spec
        if on:
            if self._in_burst:
                if not self._on:
                    self._on = True
                    self._check_normal(t, out)
                return
            # a new burst
            prev = self._prev
            if (prev is not None and RingKind.CAR not in self._decided
                    and sp.car_on[0] <= prev[1] - prev[0] <= sp.car_on[1]
                    and sp.car_off[0] <= t - prev[1] <= sp.car_off[1]):
                self._decided.add(RingKind.CAR)
                out.append(RingCadence(RingKind.CAR, prev[0], t))
            self._in_burst, self._on, self._start = True, True, t
            self._session = True
        elif self._in_burst and self._on:
            self._on = False
            self._last_off = t
            self._check_normal(t, out)

    def _check_normal(self, t: float, out: list) -> None:
        if RingKind.NORMAL not in self._decided and t - self._start >= self.spec.normal_min_on:
            self._decided.add(RingKind.NORMAL)
            out.append(RingCadence(RingKind.NORMAL, self._start, t))

    def _end_burst(self, end: float, out: list) -> None:
        out.append(RingBurst(self._start, end))
        self._prev = (self._start, end)
        self._in_burst = False
        self._on = False
